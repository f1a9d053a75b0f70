"""The dashboard's named queries for single posts (the Posts view and the most engaged posts): text comes from
the database file, labels from the facts copy (:class:`aimusic.store.dashboard_facts.Facts`) when given, so the
file's posts and scores are never joined in full. No Streamlit here.

First argument ``con``: a read-only connection to the file; ``fcon``: a cursor of the facts copy.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pandas as pd

from aimusic.store.queries import Filters, engagement_sql

#: Posts view orderings (label -> SQL over the posts table ``p`` and scores ``s``; needs_scores)
POST_SORTS: dict[str, tuple[str, bool]] = {
    "newest": ("p.created_at DESC, p.source, p.post_id", False),
    "oldest": ("p.created_at ASC, p.source, p.post_id", False),
    "most engaged": (f"({engagement_sql('p')}) DESC, p.created_at DESC, p.source, p.post_id", False),
    "most negative": ("s.negative DESC NULLS LAST, p.created_at DESC, p.source, p.post_id", True),
    "most positive": ("s.positive DESC NULLS LAST, p.created_at DESC, p.source, p.post_id", True),
}

#: orderings whose first key is a posts column: (that key, its direction, the comparison keeping the posts at or
#: past the page's last value, ties included). Not "most engaged": computing the sum twice cost more than it saved
#: at 10M posts (1.5 s against 1.0 s).
_CUTS = {
    "newest": ("p.created_at", "DESC", ">="),
    "oldest": ("p.created_at", "ASC", "<="),
}

#: the SQL form of :func:`aimusic.core.text.join_title_body` (title, blank line, body; the body alone when it
#: already starts with the title)
_TEXT = """CASE WHEN p.title IS NOT NULL AND NOT starts_with(coalesce(p.text, ''), p.title)
              THEN CASE WHEN coalesce(p.text, '') = '' THEN p.title ELSE p.title || chr(10) || chr(10) || p.text END
              ELSE coalesce(p.text, '') END"""
_POST_FIELDS = f"""
    p.created_at, p.source, p.kind, p.author, p.community, {_TEXT} AS text,
    {engagement_sql('p')} AS engagement, p.score, p.replies, p.reposts, p.lang,
    CASE WHEN regexp_matches(p.url, '^https?://') THEN p.url END AS url, p.post_id"""
#: the posts columns the table reads (naming them keeps a top-N cheap: no other column is read)
_POST_SOURCE_COLUMNS = (
    "created_at, source, post_id, kind, author, community, title, text, score, replies, reposts, lang, url"
)
POST_TABLE_COLUMNS = [
    "created_at", "source", "kind", "author", "community", "text", "sentiment", "confidence", "engagement", "score",
    "replies", "reposts", "lang", "url", "post_id",
]


def posts_count(con: duckdb.DuckDBPyConnection, filters: Filters) -> int:
    where, params = filters.where("p")
    return int(con.execute(f"SELECT count(*) FROM posts p WHERE {where}", params).fetchall()[0][0])


def _labels(
    page: pd.DataFrame, model: str | None, con: duckdb.DuckDBPyConnection, fcon: duckdb.DuckDBPyConnection | None
) -> pd.DataFrame:
    """Add ``sentiment`` and ``confidence`` (the label's probability) to a page of posts, keeping its order:
    from the facts copy when given, else from the file's scores (pre-filtered on the page's ids)."""
    if page.empty:
        out = page.assign(sentiment=pd.Series(dtype=object), confidence=pd.Series(dtype=float))
        return out[POST_TABLE_COLUMNS]
    ids = page["post_id"].tolist()
    if fcon is not None:
        labels = fcon.execute(
            """SELECT source, post_id, label AS sentiment, greatest(negative, neutral, positive) AS confidence
               FROM facts WHERE list_contains(?, post_id)""", [ids]
        ).df()
    else:
        labels = con.execute(
            """SELECT source, post_id, label AS sentiment, greatest(negative, neutral, positive) AS confidence
               FROM scores WHERE model = ? AND post_id = ANY(?)""", [model, ids]
        ).df()
    out = page.merge(labels, on=["source", "post_id"], how="left", validate="one_to_one")
    return out[POST_TABLE_COLUMNS]


def posts_page(
    con: duckdb.DuckDBPyConnection,
    filters: Filters,
    model: str | None,
    sort: str = "newest",
    limit: int = 500,
    fcon: duckdb.DuckDBPyConnection | None = None,
) -> pd.DataFrame:
    """Up to ``limit`` posts matching ``filters`` (text search included) in the order ``sort`` names, with the
    model's label and its probability.

    The file's posts are cut to the page before anything else is read, and labels come from the facts copy
    (``fcon``) when given; orderings by sentiment pick the posts in the facts copy when there is no text
    search. So the file's posts and scores are never joined in full."""
    order, needs_scores = POST_SORTS[sort]
    where, params = filters.where("p")
    if needs_scores and fcon is not None and not filters.search:
        column = "negative" if sort == "most negative" else "positive"
        fwhere, fparams = filters.where("f")
        keys = fcon.execute(
            f"""SELECT f.source, f.post_id FROM facts f WHERE {fwhere}
                ORDER BY f.{column} DESC NULLS LAST, f.created_at DESC, f.source, f.post_id LIMIT ?""",
            [*fparams, int(limit)],
        ).fetchall()
        return posts_by_keys(con, [(str(a), str(b)) for a, b in keys], model, fcon)
    if needs_scores:  # a text search ordered by sentiment: join the (searched, so fewer) posts with scores
        sql = f"""
            SELECT {_POST_FIELDS}, s.label AS sentiment, greatest(s.negative, s.neutral, s.positive) AS confidence
            FROM posts p
            LEFT JOIN scores s ON s.source = p.source AND s.post_id = p.post_id AND s.model = ?
            WHERE {where} ORDER BY {order} LIMIT ?"""
        return con.execute(sql, [model, *params, int(limit)]).df()[POST_TABLE_COLUMNS]
    if sort in _CUTS and not filters.search:  # the cut-off value alone first (one column to sort), then the posts
        # at or past it (a text search reads every text anyway: one pass)
        expr, direction, op = _CUTS[sort]
        cut = con.execute(f"SELECT {expr} FROM posts p WHERE {where} ORDER BY {expr} {direction} LIMIT 1 OFFSET ?",
                          [*params, max(int(limit) - 1, 0)]).fetchall()
        if cut:
            where, params = f"{where} AND {expr} {op} ?", [*params, cut[0][0]]
    sql = f"""
        WITH p AS (SELECT {_POST_SOURCE_COLUMNS} FROM posts p WHERE {where} ORDER BY {order} LIMIT ?)
        SELECT {_POST_FIELDS} FROM p ORDER BY {order}"""
    return _labels(con.execute(sql, [*params, int(limit)]).df(), model, con, fcon)


def top_keys(
    fcon: duckdb.DuckDBPyConnection, filters: Filters, label: str, limit: int = 10
) -> list[tuple[str, str]]:
    """Keys of the most engaged posts with sentiment ``label`` in the window (from the facts copy)."""
    where, params = filters.where("f")
    rows = fcon.execute(
        f"""SELECT f.source, f.post_id FROM facts f WHERE {where} AND f.label = ?
            ORDER BY f.engagement DESC, f.created_at DESC, f.source, f.post_id LIMIT ?""",
        [*params, label, int(limit)],
    ).fetchall()
    return [(str(s), str(p)) for s, p in rows]


def posts_by_keys(
    con: duckdb.DuckDBPyConnection,
    keys: Sequence[tuple[str, str]],
    model: str | None,
    fcon: duckdb.DuckDBPyConnection | None = None,
) -> pd.DataFrame:
    """The posts with these (source, post_id) keys, in the given order, with their labels."""
    ids = [k[1] for k in keys]
    sql = f"""
        WITH k AS (SELECT unnest(?::VARCHAR[]) AS source, unnest(?::VARCHAR[]) AS post_id,
                          unnest(range(1, ?::BIGINT + 1)) AS rank)
        SELECT {_POST_FIELDS} FROM k
        JOIN (SELECT {_POST_SOURCE_COLUMNS} FROM posts WHERE post_id = ANY(?)) p USING (source, post_id)
        ORDER BY k.rank"""
    page = con.execute(sql, [[k[0] for k in keys], ids, len(keys), ids]).df()
    return _labels(page, model, con, fcon)


def top_posts(
    con: duckdb.DuckDBPyConnection, filters: Filters, model: str | None, label: str, limit: int = 10, *,
    fcon: duckdb.DuckDBPyConnection,
) -> pd.DataFrame:
    """The window's most engaged posts with sentiment ``label``: :func:`top_keys` then :func:`posts_by_keys`."""
    return posts_by_keys(con, top_keys(fcon, filters, label, limit), model, fcon)

"""The dashboard's named queries for single posts (the Posts view and the most engaged posts), from the database
file: each query cuts the posts to the page before it reads texts or labels, so the file's posts and scores are
never joined in full (see :func:`posts_page`). No Streamlit here.

First argument ``con``: a read-only connection to the file; ``fcon`` (optional): a cursor of the in-memory facts
copy (:class:`aimusic.store.dashboard_facts.Facts`), which the dashboard no longer builds for these queries; the
tests use it as the reference the file-only path must match.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, timedelta
from typing import Any

import duckdb
import pandas as pd

from aimusic.store import dashboard_daily as daily
from aimusic.store import dashboard_top as top
from aimusic.store.dashboard_queries import EPOCH, day_number, summary_where
from aimusic.store.queries import Filters, engagement_sql

#: Posts view orderings (label -> SQL over the posts table ``p`` and scores ``s``; needs_scores)
POST_SORTS: dict[str, tuple[str, bool]] = {
    "newest": ("p.created_at DESC, p.source, p.post_id", False),
    "oldest": ("p.created_at ASC, p.source, p.post_id", False),
    "most engaged": (f"({engagement_sql('p')}) DESC, p.created_at DESC, p.source, p.post_id", False),
    "most negative": ("s.negative DESC NULLS LAST, p.created_at DESC, p.source, p.post_id", True),
    "most positive": ("s.positive DESC NULLS LAST, p.created_at DESC, p.source, p.post_id", True),
}

#: orderings by time: the page lies in the days at the window's newest (or oldest) end, read slice by slice
_BY_TIME = {"newest": True, "oldest": False}  # ordering -> newest first
#: when the daily summary cannot say how many days hold the page (a text search, a minimum engagement above its
#: cap, no current summary), the first slice is one day (or the days holding ``limit`` posts before the search),
#: and each next slice this many times as long
_SLICE_GROWTH = 4

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
        # ``post_id IN (constants)`` lets DuckDB use the ``scores_post`` index (schema 12) when the file has it:
        # a few index lookups instead of a scan of every score
        labels = con.execute(
            """SELECT source, post_id, label AS sentiment, greatest(negative, neutral, positive) AS confidence
               FROM scores WHERE post_id IN ? AND model = ?""", [sorted(set(ids)), model]
        ).df()
    out = page.merge(labels, on=["source", "post_id"], how="left", validate="one_to_one")
    return _none_for_no_label(out[POST_TABLE_COLUMNS])


def _none_for_no_label(page: pd.DataFrame) -> pd.DataFrame:
    """A post without a label has ``None`` as its sentiment, whichever path read it."""
    return page.assign(sentiment=page["sentiment"].astype(object).where(page["sentiment"].notna(), None))


#: sentiment orderings read at first this many times the page's length of the model's highest probabilities
_SENTIMENT_READ_AHEAD = 4
#: ... and, when too few of those pass the filters, this many times more, until the reads pass this share of the
#: model's scores (then one join of the filtered posts with every score)
_SENTIMENT_GROWTH = 8
_SENTIMENT_MAX_SHARE = 0.25


def _sentiment_keys(con: duckdb.DuckDBPyConnection, filters: Filters, model: str | None, column: str, limit: int
                    ) -> list[tuple[str, str]]:
    """Keys of the ``limit`` posts with the model's highest ``column`` probability under ``filters`` (no text
    search), in the facts copy's order (probability, newest, source, id; unscored posts last).

    Reads the ``k`` highest probabilities of the model first and keeps the posts at or above the ``k``-th
    (ties included) that pass the filters: when ``limit`` of them do, no other post can rank before them. Else
    ``k`` grows; past a quarter of the scores, one join of the filtered posts with the scores answers."""
    where, params = filters.where("p")
    order = f"s.{column} DESC NULLS LAST, p.created_at DESC, p.source, p.post_id"
    total = int(con.execute(f"SELECT count({column}) FROM scores WHERE model = ?", [model]).fetchall()[0][0])
    ahead = max(int(limit), 1) * _SENTIMENT_READ_AHEAD
    while limit > 0 and ahead <= total * _SENTIMENT_MAX_SHARE:
        cut = con.execute(f"SELECT {column} FROM scores WHERE model = ? AND {column} IS NOT NULL "
                          f"ORDER BY {column} DESC LIMIT 1 OFFSET ?", [model, ahead - 1]).fetchall()
        if not cut:
            break
        keys = con.execute(
            f"""SELECT p.source, p.post_id
                FROM (SELECT source, post_id, {column} FROM scores WHERE model = ? AND {column} >= ?) s
                JOIN posts p ON p.source = s.source AND p.post_id = s.post_id
                WHERE {where} ORDER BY {order} LIMIT ?""",
            [model, cut[0][0], *params, int(limit)],
        ).fetchall()
        if len(keys) >= limit:
            return [(str(a), str(b)) for a, b in keys]
        ahead *= _SENTIMENT_GROWTH
    keys = con.execute(
        f"""SELECT p.source, p.post_id FROM posts p
            LEFT JOIN scores s ON s.source = p.source AND s.post_id = p.post_id AND s.model = ?
            WHERE {where} ORDER BY {order} LIMIT ?""",
        [model, *params, int(limit)],
    ).fetchall()
    return [(str(a), str(b)) for a, b in keys]


def _with_floor(con: duckdb.DuckDBPyConnection, filters: Filters, model: str | None, label: str | None,
                limit: int, where: str, params: list[Any]) -> tuple[str, list[Any]]:
    """``where`` narrowed to the posts engaged enough to be among the ``limit`` most engaged (from the daily
    summary's engagement counts, :func:`aimusic.store.dashboard_daily.engagement_floor`)."""
    floor = daily.engagement_floor(con, filters, model, label, limit)
    if floor is None:
        return where, params
    return f"{where} AND {engagement_sql('p')} >= ?", [*params, floor]


def _data_days(con: duckdb.DuckDBPyConnection, filters: Filters) -> tuple[int, int] | None:
    """The window's first and last day numbers, clamped to the days that hold posts (``None``: no posts there)."""
    oldest, newest = con.execute("SELECT min(created_at), max(created_at) FROM posts").fetchall()[0]
    if oldest is None:
        return None
    low, high = (day_number(t.astimezone(UTC).date()) for t in (oldest, newest))
    first = max(low, day_number(filters.start)) if filters.start else low
    last = min(high, day_number(filters.end)) if filters.end else high
    return (first, last) if first <= last else None


def _days_holding(con: duckdb.DuckDBPyConnection, filters: Filters, newest: bool, first: int, last: int,
                  limit: int) -> int:
    """How many days from the window's newest (or oldest) end hold at least ``limit`` posts under ``filters``
    (every filter but a text search; from the daily summary), or every day of the window when fewer posts match."""
    where, params = summary_where(filters, "d")
    rows = con.execute(
        f"""SELECT d.day, sum(d.posts) FROM dash_daily d WHERE d.model = '' AND {where}
            GROUP BY d.day ORDER BY d.day {'DESC' if newest else 'ASC'}""", params
    ).fetchall()
    seen = 0
    for day, n in rows:
        seen += int(n)
        if seen >= limit:
            return abs(int(day) - (last if newest else first)) + 1
    return last - first + 1


def _time_page(con: duckdb.DuckDBPyConnection, filters: Filters, sort: str, limit: int, *, summary: bool
               ) -> pd.DataFrame:
    """The first ``limit`` posts under ``filters`` (text search included) newest or oldest first, found in slices of
    whole days from the window's newest (or oldest) end: every post of a slice ranks before every post of the slices
    after it, so once ``limit`` posts matched, no older (newer) day is read. Each slice reads one column (the times
    of its first matching posts); one query then reads the page's posts, from the slices read, at or past the last
    time kept. With the daily summary current, the first slice is the days that hold ``limit`` posts under the
    filters (the only one unless a text search drops some); else one day, each next slice :data:`_SLICE_GROWTH`
    times longer."""
    order = POST_SORTS[sort][0]
    newest = _BY_TIME[sort]
    unsearched = dataclasses.replace(filters, search=None)
    counted = summary and daily.supported(unsearched)  # the daily summary sizes the first slice
    if limit <= 0:
        span = None
    elif counted and filters.start and filters.end:  # empty days at the ends cost nothing to slice: no clamping
        span = (day_number(filters.start), day_number(filters.end)) if filters.start <= filters.end else None
    else:
        span = _data_days(con, filters)
    window, cut = filters, None
    if span is not None:
        first, last = span
        days = _days_holding(con, unsearched, newest, first, last, limit) if counted else 1
        edge, found = (last if newest else first), 0
        while found < limit and first <= edge <= last:
            low, high = (max(first, edge - days + 1), edge) if newest else (edge, min(last, edge + days - 1))
            edge = low - 1 if newest else high + 1
            where, params = _days(filters, low, high).where("p")
            times = con.execute(f"SELECT p.created_at FROM posts p WHERE {where} ORDER BY p.created_at "
                                f"{'DESC' if newest else 'ASC'} LIMIT ?", [*params, limit - found]).fetchall()
            found += len(times)
            if found >= limit:
                cut = times[-1][0]
            days *= _SLICE_GROWTH
        # the page lies in the days read: from the slice where it filled up to the window's end
        window = _days(filters, edge + 1, last) if newest else _days(filters, first, edge - 1)
    where, params = window.where("p")
    if cut is not None:
        where, params = f"{where} AND p.created_at {'>=' if newest else '<='} ?", [*params, cut]
    elif span is None:
        where = f"FALSE AND {where}"
    return con.execute(
        f"""WITH p AS (SELECT {_POST_SOURCE_COLUMNS} FROM posts p WHERE {where} ORDER BY {order} LIMIT ?)
            SELECT {_POST_FIELDS} FROM p ORDER BY {order}""", [*params, limit]).df()


def _days(filters: Filters, low: int, high: int) -> Filters:
    """``filters`` over the days numbered ``low`` to ``high``."""
    return dataclasses.replace(filters, start=EPOCH + timedelta(days=low), end=EPOCH + timedelta(days=high))


def posts_page(
    con: duckdb.DuckDBPyConnection,
    filters: Filters,
    model: str | None,
    sort: str = "newest",
    limit: int = 500,
    fcon: duckdb.DuckDBPyConnection | None = None,
    *,
    summary: bool = False,
) -> pd.DataFrame:
    """Up to ``limit`` posts matching ``filters`` (text search included) in the order ``sort`` names, with the
    model's label and its probability.

    With ``summary`` (the file's summary is current) the page comes from the ranked lists kept in the file
    (:mod:`aimusic.store.dashboard_top`) whenever they answer exactly. Else the file's posts are cut to the page
    before anything else is read, so the file's posts and scores are never joined in full: orderings by
    sentiment read the highest probabilities first (:func:`_sentiment_keys`), or pick the posts in the facts copy
    (``fcon``) when given; newest and oldest find the page's cut-off time first; with ``summary`` "most engaged"
    reads only the posts engaged enough to make the page. Labels come from the file's scores, or from the facts
    copy when given."""
    order, needs_scores = POST_SORTS[sort]
    where, params = filters.where("p")
    if summary and fcon is None:
        ranked = top.page(con, filters, model, sort, int(limit))
        if ranked is not None:
            return _page_from_top(con, ranked)
    if needs_scores and not filters.search:
        column = "negative" if sort == "most negative" else "positive"
        if fcon is not None:
            fwhere, fparams = filters.where("f")
            keys = [(str(a), str(b)) for a, b in fcon.execute(
                f"""SELECT f.source, f.post_id FROM facts f WHERE {fwhere}
                    ORDER BY f.{column} DESC NULLS LAST, f.created_at DESC, f.source, f.post_id LIMIT ?""",
                [*fparams, int(limit)],
            ).fetchall()]
        else:
            keys = _sentiment_keys(con, filters, model, column, int(limit))
        return posts_by_keys(con, keys, model, fcon)
    if needs_scores:  # a text search ordered by sentiment: join the (searched, so fewer) posts with scores
        sql = f"""
            SELECT {_POST_FIELDS}, s.label AS sentiment, greatest(s.negative, s.neutral, s.positive) AS confidence
            FROM posts p
            LEFT JOIN scores s ON s.source = p.source AND s.post_id = p.post_id AND s.model = ?
            WHERE {where} ORDER BY {order} LIMIT ?"""
        return con.execute(sql, [model, *params, int(limit)]).df()[POST_TABLE_COLUMNS]
    if sort in _BY_TIME:
        return _labels(_time_page(con, filters, sort, int(limit), summary=summary), model, con, fcon)
    if sort == "most engaged" and summary and daily.supported(filters):
        where, params = _with_floor(con, filters, model, None, int(limit), where, params)
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


def top_keys_from_file(con: duckdb.DuckDBPyConnection, filters: Filters, model: str | None, label: str,
                       limit: int = 10, *, summary: bool = False) -> list[tuple[str, str]]:
    """:func:`top_keys` from the file: the filtered posts with the model's ``label``; with ``summary`` (the daily
    summary is current) only those engaged enough to make the list."""
    where, params = filters.where("p")
    if summary and daily.supported(filters):
        where, params = _with_floor(con, filters, model, label, int(limit), where, params)
    rows = con.execute(
        f"""SELECT p.source, p.post_id FROM posts p
            JOIN scores s ON s.source = p.source AND s.post_id = p.post_id AND s.model = ? AND s.label = ?
            WHERE {where} ORDER BY {engagement_sql('p')} DESC, p.created_at DESC, p.source, p.post_id LIMIT ?""",
        [model, label, *params, int(limit)],
    ).fetchall()
    return [(str(s), str(p)) for s, p in rows]


def _page_from_top(con: duckdb.DuckDBPyConnection, ranked: pd.DataFrame) -> pd.DataFrame:
    """The posts of a page picked from the ranked lists (:func:`aimusic.store.dashboard_top.page`), in its order,
    with the labels it carries; found by the row ids the lists recorded (verified), else through their times
    (``posts_created`` index), never a scan of every id."""
    if ranked.empty:
        return _labels(pd.DataFrame(columns=[c for c in POST_TABLE_COLUMNS if c not in ("sentiment", "confidence")]),
                       None, con, None)
    keys = ranked[["source", "post_id", "sentiment", "confidence"]]
    # by row id first (the lists' hint; verified: every key must come back), else by time (the posts_created index)
    for column, values, cast in (("rowid", ranked["post_rowid"].astype("int64").tolist(), "BIGINT[]"),
                                 ("created_at", sorted({t.to_pydatetime() for t in ranked["created_at"]}),
                                  "TIMESTAMPTZ[]")):
        found = con.execute(f"""SELECT {_POST_FIELDS} FROM (SELECT {_POST_SOURCE_COLUMNS} FROM posts
                                WHERE {column} = ANY(?::{cast})) p""", [values]).df()
        page = keys.merge(found, on=["source", "post_id"], how="inner", validate="one_to_one")
        if len(page) == len(keys):
            break
    return _none_for_no_label(page[POST_TABLE_COLUMNS].reset_index(drop=True))


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
    con: duckdb.DuckDBPyConnection, filters: Filters, model: str | None, label: str, limit: int = 10,
    fcon: duckdb.DuckDBPyConnection | None = None, *, summary: bool = False,
) -> pd.DataFrame:
    """The window's most engaged posts with sentiment ``label``: their keys (from the facts copy when given, else
    :func:`top_keys_from_file`), then :func:`posts_by_keys`."""
    if fcon is None and summary:
        ranked = top.page(con, filters, model, "most engaged", int(limit), label=label)
        if ranked is not None:
            return _page_from_top(con, ranked)
    keys = (top_keys(fcon, filters, label, limit) if fcon is not None
            else top_keys_from_file(con, filters, model, label, limit, summary=summary))
    return posts_by_keys(con, keys, model, fcon)

"""The dashboard's queries: filters in, small DataFrames out. No Streamlit here (tests and benchmarks call these).

Two kinds of functions:

* ``facts``-based (first argument ``fcon``, a cursor of :class:`aimusic.dashboard.facts.Facts`): the aggregates
  of Overview, Compare and Voices. They never join ``scores`` again: the facts copy carries each post's label.
* file-based (first argument ``con``, a read-only connection to the database file): posts with their text,
  runs, events, the options offered by the filters, and the data version.

Every user value reaches DuckDB as a bound parameter; the few pieces of SQL text that vary (time bucket, sort
order, grouping column) are chosen from fixed tables here, never taken from input.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from aimusic.dashboard.entities import entity_rows_sql
from aimusic.dashboard.stats import net_interval, net_sentiment
from aimusic.store.queries import Filters, engagement_sql

#: buckets with fewer scored posts than this are greyed out and left out of the net-sentiment line
MIN_SCORED = 20

EPOCH = date(1970, 1, 1)

#: time bucket -> SQL expression over ``facts.day`` giving the bucket's first day (days since 1970-01-01)
BUCKETS: dict[str, str] = {
    "day": "{a}.day",
    "week": "(({a}.day - 4) // 7) * 7 + 4",  # ISO weeks: 1970-01-05 was a Monday
}

SENTIMENT_COUNTS = """
    count(*) AS posts,
    count({a}.label) AS scored,
    count(*) FILTER (WHERE {a}.label = 'negative') AS negative,
    count(*) FILTER (WHERE {a}.label = 'neutral') AS neutral,
    count(*) FILTER (WHERE {a}.label = 'positive') AS positive"""

#: Posts view orderings (label -> SQL over the posts table ``p`` and scores ``s``; needs_scores)
POST_SORTS: dict[str, tuple[str, bool]] = {
    "newest": ("p.created_at DESC, p.source, p.post_id", False),
    "oldest": ("p.created_at ASC, p.source, p.post_id", False),
    "most engaged": (f"({engagement_sql('p')}) DESC, p.created_at DESC, p.source, p.post_id", False),
    "most negative": ("s.negative DESC NULLS LAST, p.created_at DESC, p.source, p.post_id", True),
    "most positive": ("s.positive DESC NULLS LAST, p.created_at DESC, p.source, p.post_id", True),
}


def day_number(day: date) -> int:
    return (day - EPOCH).days


def _with_sentiment(df: pd.DataFrame) -> pd.DataFrame:
    """Add net sentiment, its 95% interval, the label shares and ``enough`` (scored >= MIN_SCORED)."""
    if df.empty:
        for col in ("net", "net_low", "net_high", "share_negative", "share_neutral", "share_positive"):
            df[col] = pd.Series(dtype=float)
        df["enough"] = pd.Series(dtype=bool)
        return df
    pos, neg, n = df["positive"].to_numpy(), df["negative"].to_numpy(), df["scored"].to_numpy()
    df["net"] = net_sentiment(pos, neg, n)
    low, high = net_interval(pos, neg, n)
    df["net_low"], df["net_high"] = low, high
    with np.errstate(divide="ignore", invalid="ignore"):
        for label in ("negative", "neutral", "positive"):
            df[f"share_{label}"] = np.where(n > 0, df[label].to_numpy() / n, np.nan)
    df["enough"] = n >= MIN_SCORED
    return df


def _bucket_dates(df: pd.DataFrame, column: str = "bucket") -> pd.DataFrame:
    if column in df:
        df[column] = [EPOCH + timedelta(days=int(d)) for d in df[column]]
    return df


# --- version and options (file) ------------------------------------------------------------------------------
def db_info(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """What the filters offer and what the page must say (demo data, empty, unscored). Two scans of posts."""
    first, last, posts, synthetic = con.execute(
        "SELECT min(created_at), max(created_at), count(*), coalesce(bool_or(synthetic), false) FROM posts"
    ).fetchall()[0]
    mix = con.execute(
        "SELECT source, coalesce(lang, 'und') AS lang, count(*) AS n FROM posts GROUP BY ALL"
    ).df()
    models = con.execute(
        "SELECT model, count(*) FROM scores GROUP BY model ORDER BY count(*) DESC, max(scored_at) DESC"
    ).fetchall()
    meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    runs = con.execute("SELECT count(*) FROM runs").fetchall()[0][0]

    def by_count(column: str) -> list[str]:
        if mix.empty:
            return []
        totals = mix.groupby(column)["n"].sum()
        return sorted(totals.index, key=lambda k: (-totals[k], k))

    return {
        "posts": int(posts),
        "first_day": first.astimezone(UTC).date() if first else None,
        "last_day": last.astimezone(UTC).date() if last else None,
        "synthetic": bool(synthetic),
        "contains_demo": str(meta.get("contains_demo", "")).lower() in ("true", "1", "yes"),
        "sources": by_count("source"),
        "langs": by_count("lang"),
        "models": [m for m, _ in models],
        "model_counts": dict(models),
        "runs": int(runs),
    }


# --- Overview (facts) ----------------------------------------------------------------------------------------
def totals(fcon: duckdb.DuckDBPyConnection, filters: Filters) -> pd.DataFrame:
    """Headline figures for the window (``window = 'current'``) and, when the window is closed, for the window of
    equal length just before it (``'previous'``): posts, authors, engagement, label counts, net sentiment."""
    previous = filters.previous_window()
    span = dataclasses.replace(filters, start=previous.start) if previous else filters
    where, params = span.where("f")
    if previous and filters.start:
        window = "CASE WHEN f.day >= ? THEN 'current' ELSE 'previous' END"
        wparams: list[Any] = [day_number(filters.start)]
    else:
        window, wparams = "'current'", []
    sql = f"""
        SELECT {window} AS window, count(DISTINCT f.author_h) AS authors, sum(f.engagement) AS engagement,
               {SENTIMENT_COUNTS.format(a="f")}
        FROM facts f WHERE {where} GROUP BY ALL"""
    df = fcon.execute(sql, [*wparams, *params]).df()
    present = set(df["window"]) if not df.empty else set()
    rows = [df]
    for name in ("current", "previous") if previous else ("current",):
        if name not in present:
            rows.append(pd.DataFrame([{"window": name, "authors": 0, "engagement": 0, "posts": 0, "scored": 0,
                                       "negative": 0, "neutral": 0, "positive": 0}]))
    df = pd.concat([r for r in rows if not r.empty], ignore_index=True)
    df = df.astype({c: "int64" for c in ("authors", "posts", "scored", "negative", "neutral", "positive")})
    df["engagement"] = df["engagement"].fillna(0).astype("int64")
    return _with_sentiment(df).sort_values("window").reset_index(drop=True)


def series(fcon: duckdb.DuckDBPyConnection, filters: Filters, bucket: str = "day") -> pd.DataFrame:
    """Per time bucket and source, plus one row per bucket for all sources together (``source`` NULL):
    posts, label counts, net sentiment with its interval, shares, ``enough``."""
    expr = BUCKETS[bucket].format(a="f")
    where, params = filters.where("f")
    sql = f"""
        SELECT {expr} AS bucket, f.source, {SENTIMENT_COUNTS.format(a="f")}
        FROM facts f WHERE {where}
        GROUP BY GROUPING SETS ((bucket, f.source), (bucket))
        ORDER BY bucket, f.source NULLS FIRST"""
    df = fcon.execute(sql, params).df()
    return _with_sentiment(_bucket_dates(df))


# --- Compare (facts) -----------------------------------------------------------------------------------------
def _grouped_base(filters: Filters, by: str) -> tuple[str, list[Any]]:
    where, params = filters.where("f")
    if by == "source":
        return f"SELECT f.*, f.source AS grp FROM facts f WHERE {where}", params
    if by == "entity":
        return entity_rows_sql(where, params, "f")
    raise ValueError(f"unknown grouping {by!r}")


def compare(fcon: duckdb.DuckDBPyConnection, filters: Filters, by: str) -> pd.DataFrame:
    """One row per source (``by='source'``) or entity (``by='entity'``) for the window, with the previous
    window's posts and net sentiment and the changes against it."""
    previous = filters.previous_window()
    span = dataclasses.replace(filters, start=previous.start) if previous else filters
    base, params = _grouped_base(span, by)
    start_day = day_number(filters.start) if filters.start else -(10**9)
    sql = f"""
        WITH b AS ({base})
        SELECT b.grp AS "group", b.day >= ? AS current, count(DISTINCT b.author_h) AS authors,
               sum(b.engagement) AS engagement, {SENTIMENT_COUNTS.format(a="b")}
        FROM b GROUP BY ALL"""
    both = fcon.execute(sql, [*params, start_day]).df()
    counts = ["posts", "authors", "engagement", "scored", "negative", "neutral", "positive"]
    cur = both[both["current"]].drop(columns="current")
    prev = both[~both["current"]].set_index("group")[["posts", "scored", "negative", "positive"]]
    df = cur.set_index("group").join(prev.add_prefix("prev_"), how="left").reset_index()
    prev_cols = ["prev_posts", "prev_scored", "prev_negative", "prev_positive"]
    df[prev_cols] = df[prev_cols].fillna(0)
    df = df.astype({c: "int64" for c in [*counts, *prev_cols]})
    df = _with_sentiment(df.sort_values(["posts", "group"], ascending=[False, True]).reset_index(drop=True))
    with np.errstate(divide="ignore", invalid="ignore"):
        df["prev_net"] = net_sentiment(df["prev_positive"], df["prev_negative"], df["prev_scored"])
        prev_posts = df["prev_posts"].to_numpy(dtype=float)
        df["posts_change_pct"] = np.where(
            prev_posts > 0, (df["posts"].to_numpy(dtype=float) - prev_posts) / prev_posts * 100, np.nan
        )
    df["net_change"] = df["net"] - df["prev_net"]
    if previous is None:
        df[["prev_net", "posts_change_pct", "net_change"]] = np.nan
    return df


def compare_series(fcon: duckdb.DuckDBPyConnection, filters: Filters, by: str, bucket: str = "week") -> pd.DataFrame:
    """Per time bucket and group (source or entity): posts and net sentiment with its interval."""
    base, params = _grouped_base(filters, by)
    expr = BUCKETS[bucket].format(a="b")
    sql = f"""
        WITH b AS ({base})
        SELECT {expr} AS bucket, b.grp AS "group", {SENTIMENT_COUNTS.format(a="b")}
        FROM b GROUP BY ALL ORDER BY bucket, "group" """
    return _with_sentiment(_bucket_dates(fcon.execute(sql, params).df()))


# --- Voices (facts) ------------------------------------------------------------------------------------------
VOICE_KEYS = {"author": "author", "community": "community"}
VOICE_ORDERS = {"posts": "posts DESC, engagement DESC", "engagement": "engagement DESC, posts DESC"}


def voices(
    fcon: duckdb.DuckDBPyConnection, filters: Filters, by: str = "author", order: str = "posts", limit: int = 25
) -> pd.DataFrame:
    """The most active (``order='posts'``) or most engaged authors or communities, with their sentiment mix."""
    key = VOICE_KEYS[by]
    where, params = filters.where("f")
    sql = f"""
        SELECT f.source, f.{key} AS {key}, count(DISTINCT f.author_h) AS authors, sum(f.engagement) AS engagement,
               {SENTIMENT_COUNTS.format(a="f")}
        FROM facts f WHERE {where} AND f.{key} IS NOT NULL
        GROUP BY ALL ORDER BY {VOICE_ORDERS[order]}, f.source, {key} LIMIT ?"""
    df = fcon.execute(sql, [*params, int(limit)]).df()
    if by == "author":
        df = df.drop(columns=["authors"])
    return _with_sentiment(df)


# --- Posts (file, with labels from the facts copy) -----------------------------------------------------------
_POST_FIELDS = f"""
    p.created_at, p.source, p.kind, p.author, p.community,
    CASE WHEN p.title IS NOT NULL AND NOT starts_with(p.text, p.title) THEN p.title || ' - ' || p.text
         ELSE p.text END AS text,
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
               FROM scores WHERE model = ? AND list_contains(?, post_id)""", [model, ids]
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
        JOIN (SELECT {_POST_SOURCE_COLUMNS} FROM posts WHERE list_contains(?, post_id)) p USING (source, post_id)
        ORDER BY k.rank"""
    page = con.execute(sql, [[k[0] for k in keys], ids, len(keys), ids]).df()
    return _labels(page, model, con, fcon)


# --- Runs (file) ---------------------------------------------------------------------------------------------
RUN_COLUMNS = """run_id, source, status, started_at, finished_at,
    date_diff('second', started_at, finished_at) AS seconds, fetched, new, updated, irrelevant, skipped, scored,
    failed, model, error"""


def runs_latest(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The last run of each source, with when it last delivered (a run that ended ok or partial)."""
    return con.execute(
        f"""WITH last AS (SELECT {RUN_COLUMNS} FROM runs
                          QUALIFY row_number() OVER (PARTITION BY source ORDER BY started_at DESC) = 1),
                 ok AS (SELECT source, max(coalesce(finished_at, started_at)) AS last_delivery,
                               count(*) AS deliveries
                        FROM runs WHERE status IN ('ok', 'partial') GROUP BY source),
                 n AS (SELECT source, count(*) AS runs, count(*) FILTER (WHERE status = 'failed') AS failures
                       FROM runs GROUP BY source)
            SELECT last.*, ok.last_delivery, coalesce(ok.deliveries, 0) AS deliveries, n.runs, n.failures
            FROM last LEFT JOIN ok USING (source) LEFT JOIN n USING (source)
            ORDER BY source"""
    ).df()


def runs_recent(con: duckdb.DuckDBPyConnection, limit: int = 100, failed_only: bool = False) -> pd.DataFrame:
    where = "WHERE status = 'failed' OR failed" if failed_only else ""
    return con.execute(
        f"SELECT {RUN_COLUMNS} FROM runs {where} ORDER BY started_at DESC, source LIMIT ?", [int(limit)]
    ).df()


def newest_posts(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per platform: posts, newest post time and when posts were last fetched (data freshness)."""
    return con.execute(
        """SELECT source, count(*) AS posts, max(created_at) AS newest_post, max(fetched_at) AS last_fetched,
                  max(updated_at) AS last_written
           FROM posts GROUP BY source ORDER BY source"""
    ).df()


# --- Events (file + topics) ----------------------------------------------------------------------------------
def events(
    con: duckdb.DuckDBPyConnection, configured: Sequence[tuple[date, str, str | None]],
    start: date | None = None, end: date | None = None,
) -> pd.DataFrame:
    """Timeline events from topics.toml (``origin = 'topics'``) and the database, inside [start, end]."""
    stored = con.execute("SELECT event_date AS date, title, url, origin FROM events").df()
    config = pd.DataFrame(
        [{"date": d, "title": t, "url": u, "origin": "topics"} for d, t, u in configured],
        columns=["date", "title", "url", "origin"],
    )
    df = pd.concat([f for f in (config, stored) if not f.empty], ignore_index=True) if (
        not config.empty or not stored.empty
    ) else config
    if df.empty:
        return df
    df["date"] = [d.date() if isinstance(d, datetime | pd.Timestamp) else d for d in df["date"]]
    df = df.drop_duplicates(subset=["date", "title"], keep="first")
    if start:
        df = df[df["date"] >= start]
    if end:
        df = df[df["date"] <= end]
    return df.sort_values(["date", "title"]).reset_index(drop=True)

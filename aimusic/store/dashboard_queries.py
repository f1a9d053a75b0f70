"""The dashboard's named queries: filters in, small DataFrames out. No Streamlit here (tests and benchmarks call
these directly); the dashboard imports no database driver and reaches the data only through functions of this
module, :mod:`aimusic.store.dashboard_posts` and :mod:`aimusic.store.debate_queries`.

Two kinds of functions:

* ``facts``-based (first argument ``fcon``, a cursor of :class:`aimusic.store.dashboard_facts.Facts`): the
  aggregates of Overview, Compare and Voices over one row per post. They never join ``scores`` again: the facts
  copy carries each post's label and its stored ``entities``. The dashboard answers them from the file's summary
  instead (:mod:`aimusic.store.dashboard_daily`, :mod:`aimusic.store.dashboard_voices`) whenever it can; these
  stay the reference the tests compare with.
* file-based (first argument ``con``, a read-only connection to the database file): runs, events, the options
  offered by the filters.

Every user value reaches DuckDB as a bound parameter; the few pieces of SQL text that vary (time bucket,
grouping column, ordering) are chosen from fixed tables here, never taken from input.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from aimusic.core.stats import net_interval, net_sentiment
from aimusic.store.dashboard_facts import NotAnAimusicDatabase
from aimusic.store.queries import Filters, holds_any, join_conditions, one

#: buckets with fewer scored posts than this are greyed out and left out of the net-sentiment line
MIN_SCORED = 20
#: the rolling mean drawn over daily points: each day pools the scored posts of the days ending on it
ROLLING_DAYS = 7

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


def day_number(day: date) -> int:
    return (day - EPOCH).days


def summary_where(filters: Filters, alias: str, engagement: str = "eng") -> tuple[str, list[Any]]:
    """The filters over a summary table keyed by day number (``day``, ``source``, ``lang``; ``terms``,
    ``entities`` and the ``engagement`` column where the filters use them): a SQL condition and its parameters."""
    a = alias
    return join_conditions([
        (f"{a}.day >= ?", one(day_number(filters.start) if filters.start else None)),
        (f"{a}.day <= ?", one(day_number(filters.end) if filters.end else None)),
        (f"list_contains(?, {a}.source)", one(list(filters.sources) or None)),
        (f"list_contains(?, {a}.lang)", one(list(filters.langs) or None)),
        (holds_any(f"{a}.terms", filters.terms), list(filters.terms) or None),
        (holds_any(f"{a}.entities", filters.entities), list(filters.entities) or None),
        (f"{a}.{engagement} >= ?", one(int(filters.min_engagement) or None)),
    ])


def with_sentiment(df: pd.DataFrame) -> pd.DataFrame:
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


# --- options (file) ------------------------------------------------------------------------------------------
def db_info(con: duckdb.DuckDBPyConnection, summary: bool = False) -> dict[str, Any]:
    """What the filters offer and what the page must say (demo data, empty, unscored, untagged entities).
    ``summary=True``: the source/language mix and the entities' counts come from the file's daily summary, which
    must be current (:func:`aimusic.store.dashboard_summary.is_current`): the same figures without a pass over
    every post."""
    try:
        first, last, posts, synthetic, untagged = con.execute(
            """SELECT min(created_at), max(created_at), count(*), coalesce(bool_or(synthetic), false),
                      count(*) - count(entities_key) FROM posts"""
        ).fetchall()[0]
    except duckdb.CatalogException as exc:
        raise NotAnAimusicDatabase(str(exc).splitlines()[0]) from None
    if summary:
        mix = con.execute(
            "SELECT source, lang, sum(posts)::BIGINT AS n FROM dash_daily WHERE model = '' GROUP BY ALL"
        ).df()
        entities = con.execute(
            """SELECT entity, sum(posts)::BIGINT AS n FROM (
                 SELECT unnest(entities) AS entity, posts FROM dash_daily WHERE model = '')
               GROUP BY entity ORDER BY n DESC, entity"""
        ).fetchall()
    else:
        mix = con.execute(
            "SELECT source, coalesce(lang, 'und') AS lang, count(*) AS n FROM posts GROUP BY ALL"
        ).df()
        entities = con.execute(
            """SELECT entity, count(*) AS n FROM (SELECT unnest(entities) AS entity FROM posts)
               GROUP BY entity ORDER BY n DESC, entity"""
        ).fetchall()
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
        "entities": [e for e, _ in entities],
        "untagged": int(untagged),
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
    return finish_totals(fcon.execute(sql, [*wparams, *params]).df(), previous is not None)


def finish_totals(df: pd.DataFrame, has_previous: bool) -> pd.DataFrame:
    """The headline rows from the raw counts (window, authors, engagement, posts, scored and label counts): a
    zero row for a window without posts, integer counts, net sentiment and its interval."""
    present = set(df["window"]) if not df.empty else set()
    rows = [df]
    for name in ("current", "previous") if has_previous else ("current",):
        if name not in present:
            rows.append(pd.DataFrame([{"window": name, "authors": 0, "engagement": 0, "posts": 0, "scored": 0,
                                       "negative": 0, "neutral": 0, "positive": 0}]))
    df = pd.concat([r for r in rows if not r.empty], ignore_index=True)
    df = df.astype({c: "int64" for c in ("authors", "posts", "scored", "negative", "neutral", "positive")})
    df["engagement"] = df["engagement"].fillna(0).astype("int64")
    return with_sentiment(df).sort_values("window").reset_index(drop=True)


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
    return with_sentiment(_bucket_dates(df))


def sentiment_rolling(fcon: duckdb.DuckDBPyConnection, filters: Filters, days: int = ROLLING_DAYS) -> pd.DataFrame:
    """The rolling ``days``-day figure for each day of the window that has posts (all sources together): the
    label counts of that day and the ``days - 1`` days before it, pooled (so each day weighs by its posts),
    then net sentiment with its interval, shares and ``enough`` as in :func:`series`. The first days of the
    window pool days before it, so the line starts where the window starts.
    Columns: bucket, days_pooled, scored, negative, neutral, positive, net, net_low, net_high, share_*, enough."""
    days, span, first = rolling_span(filters, days)
    where, params = span.where("f")
    daily = f"SELECT f.day AS day, {SENTIMENT_COUNTS.format(a='f')} FROM facts f WHERE {where} GROUP BY f.day"
    sql = rolling_sql(daily, days)
    return finish_rolling(fcon.execute(sql, [*params, first]).df())


#: the first day number of an open window (no start)
NO_DAY = 10**9


def rolling_span(filters: Filters, days: int) -> tuple[int, Filters, int]:
    """(days, the filters widened by ``days - 1`` days before the window, the window's first day number) for a
    rolling figure."""
    days = max(int(days), 1)
    span = dataclasses.replace(filters, start=filters.start - timedelta(days=days - 1)) if filters.start else filters
    return days, span, day_number(filters.start) if filters.start else -NO_DAY


def rolling_sql(daily: str, days: int) -> str:
    """The counts of each day (``daily``: a query giving day, posts, scored, negative, neutral, positive) pooled
    with the ``days - 1`` days before it, for the days from the window's first (one parameter) on."""
    return f"""
        WITH d AS ({daily}),
        r AS (
            SELECT day, count(*) OVER w AS days_pooled, sum(posts) OVER w AS posts, sum(scored) OVER w AS scored,
                   sum(negative) OVER w AS negative, sum(neutral) OVER w AS neutral, sum(positive) OVER w AS positive
            FROM d WINDOW w AS (ORDER BY day RANGE BETWEEN {days - 1} PRECEDING AND CURRENT ROW))
        SELECT day AS bucket, days_pooled, posts, scored, negative, neutral, positive
        FROM r WHERE day >= ? ORDER BY day"""


def finish_rolling(df: pd.DataFrame) -> pd.DataFrame:
    counts = ["days_pooled", "posts", "scored", "negative", "neutral", "positive"]
    df = df.astype({c: "int64" for c in counts})
    return with_sentiment(_bucket_dates(df))


# --- Compare (facts) -----------------------------------------------------------------------------------------
def group_rows(rows: str, alias: str, params: list[Any], by: str, entities: Sequence[str] | None
               ) -> tuple[str, list[Any]]:
    """``rows`` (a FROM clause whose table is ``alias``) with a group column ``grp``: the source, or each entity of
    the row's list (only the selected ``entities`` when given)."""
    if by == "source":
        return f"SELECT {alias}.*, {alias}.source AS grp FROM {rows}", params
    if by == "entity":
        base = f"SELECT {alias}.*, unnest({alias}.entities) AS grp FROM {rows}"
        if entities:
            return f"SELECT * FROM ({base}) WHERE list_contains(?, grp)", [*params, list(entities)]
        return base, params
    raise ValueError(f"unknown grouping {by!r}")


def _grouped_base(filters: Filters, by: str) -> tuple[str, list[Any]]:
    """One row per (filtered post, group): a post counts once per platform, once per entity it mentions. With
    an entity filter, only the selected entities are groups (a post about Suno and Udio is not an Udio row when
    the filter says Suno)."""
    where, params = filters.where("f")
    return group_rows(f"facts f WHERE {where}", "f", params, by, filters.entities)


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
    return finish_compare(fcon.execute(sql, [*params, start_day]).df(), previous is not None)


def finish_compare(both: pd.DataFrame, has_previous: bool) -> pd.DataFrame:
    """The Compare table from the raw counts per (group, current): the previous window's columns joined on, the
    changes against it (NaN without a previous window), net sentiment and shares."""
    counts = ["posts", "authors", "engagement", "scored", "negative", "neutral", "positive"]
    cur = both[both["current"]].drop(columns="current")
    prev = both[~both["current"]].set_index("group")[["posts", "scored", "negative", "positive"]]
    df = cur.set_index("group").join(prev.add_prefix("prev_"), how="left").reset_index()
    prev_cols = ["prev_posts", "prev_scored", "prev_negative", "prev_positive"]
    df[prev_cols] = df[prev_cols].fillna(0)
    df = df.astype({c: "int64" for c in [*counts, *prev_cols]})
    df = with_sentiment(df.sort_values(["posts", "group"], ascending=[False, True]).reset_index(drop=True))
    with np.errstate(divide="ignore", invalid="ignore"):
        df["prev_net"] = net_sentiment(df["prev_positive"], df["prev_negative"], df["prev_scored"])
        prev_posts = df["prev_posts"].to_numpy(dtype=float)
        df["posts_change_pct"] = np.where(
            prev_posts > 0, (df["posts"].to_numpy(dtype=float) - prev_posts) / prev_posts * 100, np.nan
        )
    df["net_change"] = df["net"] - df["prev_net"]
    if not has_previous:
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
    return with_sentiment(_bucket_dates(fcon.execute(sql, params).df()))


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
    return with_sentiment(df)


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

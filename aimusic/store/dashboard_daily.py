"""The Overview's and Compare's aggregates read from the daily summary in the file (``dash_daily`` and
``dash_authors``, kept by :mod:`aimusic.store.dashboard_summary`) instead of one row per post. No Streamlit here.

Each function returns exactly what its namesake in :mod:`aimusic.store.dashboard_queries` returns over the facts
copy (the tests compare them), for the filters :func:`supported` accepts: every sidebar filter, with a minimum
engagement up to :data:`~aimusic.store.dashboard_summary.ENGAGEMENT_CAP` and no text search. Distinct authors come
from ``dash_authors`` (``dash_entity_authors`` under an entity filter or per entity) as bitmaps of author ids, or
from the posts when a tracked-term filter is set. First argument ``con``: a read-only
connection to the database file, whose summary is current (:func:`aimusic.store.dashboard_summary.is_current`);
``model`` is the sentiment model (``None``: no labels).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import duckdb
import pandas as pd

from aimusic.store import dashboard_queries as q
from aimusic.store.dashboard_queries import (
    BUCKETS,
    _bucket_dates,
    day_number,
    finish_compare,
    finish_rolling,
    finish_totals,
    summary_where,
    with_sentiment,
)
from aimusic.store.dashboard_summary import DAY_SQL, ENGAGEMENT_CAP
from aimusic.store.queries import Filters


def supported(filters: Filters) -> bool:
    """Whether the summary answers these filters exactly."""
    return not filters.search and int(filters.min_engagement or 0) <= ENGAGEMENT_CAP


def _where(filters: Filters, alias: str = "d") -> tuple[str, list[Any]]:
    """The filters over a summary table (``day``, ``source``, ``lang``, ``eng``, and ``entities``/``terms`` for
    ``dash_daily``)."""
    return summary_where(filters, alias)


def _counts(a: str = "d") -> str:
    """Posts, engagement and label counts over summary rows (``?`` x4: the model)."""
    return f"""
    coalesce(sum({a}.posts) FILTER (WHERE {a}.model = ''), 0)::BIGINT AS posts,
    coalesce(sum({a}.engagement) FILTER (WHERE {a}.model = ''), 0)::BIGINT AS engagement,
    coalesce(sum({a}.posts) FILTER (WHERE {a}.model = ?), 0)::BIGINT AS scored,
    coalesce(sum({a}.posts) FILTER (WHERE {a}.model = ? AND {a}.label = 'negative'), 0)::BIGINT AS negative,
    coalesce(sum({a}.posts) FILTER (WHERE {a}.model = ? AND {a}.label = 'neutral'), 0)::BIGINT AS neutral,
    coalesce(sum({a}.posts) FILTER (WHERE {a}.model = ? AND {a}.label = 'positive'), 0)::BIGINT AS positive"""


def _rows(filters: Filters, model: str | None, alias: str = "d") -> tuple[str, list[Any]]:
    """The summary rows the filters and the model select (the all-posts rows and the model's label rows)."""
    where, params = _where(filters, alias)
    return f"dash_daily {alias} WHERE ({alias}.model = '' OR {alias}.model = ?) AND {where}", [model, *params]


def max_author_id(con: duckdb.DuckDBPyConnection) -> int:
    """The highest author id of ``dash_author_ids`` (at least 1): the upper bound of the distinct-author bitmaps."""
    return int(con.execute("SELECT coalesce(max(id), 1) FROM dash_author_ids").fetchall()[0][0])


def distinct_authors(column: str = "author_id") -> str:
    """Exact distinct authors over summary rows: one bit per author id (``?``: :func:`max_author_id`)."""
    return f"coalesce(bit_count(bitstring_agg({column}, 1, ?::INTEGER)), 0)"


def _authors(con: duckdb.DuckDBPyConnection, filters: Filters, window_from: int | None, by: str | None
             ) -> pd.DataFrame:
    """Distinct authors per window (``current`` from day ``window_from`` on, else ``previous``) and group
    (column ``grp``: the source or each entity a post mentions)."""
    grp = {"source": "source", "entity": "unnest(entities)"}.get(by or "", "NULL")
    if not filters.terms:
        where, params = _where(filters, "a")
        table = "dash_entity_authors" if filters.entities or by == "entity" else "dash_authors"
        inner = f"SELECT day, {grp} AS grp, author_id FROM {table} a WHERE {where}"
        count, cparams = distinct_authors(), [max_author_id(con)]
    else:  # a tracked-term filter: from the posts
        where, params = filters.where("p")
        inner = (f"SELECT {day_sql('p')} AS day, {grp} AS grp, hash(p.author) AS author_h FROM posts p "
                 f"WHERE p.author IS NOT NULL AND {where}")
        count, cparams = "count(DISTINCT author_h)", []
    window = "CASE WHEN day >= ? THEN 'current' ELSE 'previous' END" if window_from is not None else "'current'"
    sql = f"SELECT {window} AS window, grp, {count} AS authors FROM ({inner}) GROUP BY ALL"
    return con.execute(sql, [*([window_from] if window_from is not None else []), *cparams, *params]).df()


def day_sql(alias: str) -> str:
    return DAY_SQL.format(a=alias)


def _span(filters: Filters) -> tuple[Filters, Filters | None]:
    previous = filters.previous_window()
    return (dataclasses.replace(filters, start=previous.start) if previous else filters), previous


def totals(con: duckdb.DuckDBPyConnection, filters: Filters, model: str | None) -> pd.DataFrame:
    """:func:`aimusic.store.dashboard_queries.totals` from the summary."""
    span, previous = _span(filters)
    rows, params = _rows(span, model)
    first = day_number(filters.start) if previous and filters.start else None
    window = "CASE WHEN d.day >= ? THEN 'current' ELSE 'previous' END" if first is not None else "'current'"
    df = con.execute(
        f"SELECT {window} AS window, {_counts()} FROM {rows} GROUP BY ALL HAVING posts > 0",
        [*([first] if first is not None else []), *[model] * 4, *params],
    ).df()
    authors = _authors(con, span, first, None)
    df = df.merge(authors[["window", "authors"]], on="window", how="left")
    df["authors"] = df["authors"].fillna(0)
    return finish_totals(df[["window", "authors", "engagement", "posts", "scored", "negative", "neutral",
                             "positive"]], previous is not None)


def series(con: duckdb.DuckDBPyConnection, filters: Filters, model: str | None, bucket: str = "day") -> pd.DataFrame:
    """:func:`aimusic.store.dashboard_queries.series` from the summary."""
    rows, params = _rows(filters, model)
    sql = f"""
        SELECT {BUCKETS[bucket].format(a="d")} AS bucket, d.source, {_counts()} FROM {rows}
        GROUP BY GROUPING SETS ((bucket, d.source), (bucket)) HAVING posts > 0
        ORDER BY bucket, d.source NULLS FIRST"""
    df = con.execute(sql, [*[model] * 4, *params]).df().drop(columns="engagement")
    return with_sentiment(_bucket_dates(df))


def sentiment_rolling(con: duckdb.DuckDBPyConnection, filters: Filters, model: str | None, days: int = 7
                      ) -> pd.DataFrame:
    """:func:`aimusic.store.dashboard_queries.sentiment_rolling` from the summary."""
    days, span, first = q.rolling_span(filters, days)
    rows, params = _rows(span, model)
    sql = q.rolling_sql(f"SELECT d.day AS day, {_counts()} FROM {rows} GROUP BY d.day HAVING posts > 0", days)
    return finish_rolling(con.execute(sql, [*[model] * 4, *params, first]).df())


def posts_count(con: duckdb.DuckDBPyConnection, filters: Filters) -> int:
    """:func:`aimusic.store.dashboard_posts.posts_count` from the summary (no text search)."""
    where, params = _where(filters)
    return int(con.execute(f"SELECT coalesce(sum(posts), 0) FROM dash_daily d WHERE d.model = '' AND {where}",
                           params).fetchall()[0][0])


def _grouped(filters: Filters, model: str | None, by: str) -> tuple[str, list[Any]]:
    """Summary rows with ``grp``, as :func:`aimusic.store.dashboard_queries._grouped_base` makes them per post."""
    rows, params = _rows(filters, model)
    return q.group_rows(rows, "d", params, by, filters.entities)


def compare(con: duckdb.DuckDBPyConnection, filters: Filters, model: str | None, by: str) -> pd.DataFrame:
    """:func:`aimusic.store.dashboard_queries.compare` from the summary."""
    span, previous = _span(filters)
    base, params = _grouped(span, model, by)
    start_day = day_number(filters.start) if filters.start else -q.NO_DAY
    both = con.execute(
        f"""WITH d AS ({base})
            SELECT d.grp AS "group", d.day >= ? AS current, {_counts()} FROM d GROUP BY ALL HAVING posts > 0""",
        [*params, start_day, *[model] * 4],
    ).df()
    authors = _authors(con, span, start_day, by)
    if by == "entity" and filters.entities:
        authors = authors[authors["grp"].isin(filters.entities)]
    authors = authors.assign(current=authors["window"] == "current").rename(columns={"grp": "group"})
    both = both.merge(authors[["group", "current", "authors"]], on=["group", "current"], how="left")
    both["authors"] = both["authors"].fillna(0)
    both = both[["group", "current", "authors", "engagement", "posts", "scored", "negative", "neutral", "positive"]]
    return finish_compare(both, previous is not None)


def compare_series(con: duckdb.DuckDBPyConnection, filters: Filters, model: str | None, by: str,
                   bucket: str = "week") -> pd.DataFrame:
    """:func:`aimusic.store.dashboard_queries.compare_series` from the summary."""
    base, params = _grouped(filters, model, by)
    sql = f"""
        WITH d AS ({base})
        SELECT {BUCKETS[bucket].format(a="d")} AS bucket, d.grp AS "group", {_counts()}
        FROM d GROUP BY ALL HAVING posts > 0 ORDER BY bucket, "group" """
    df = con.execute(sql, [*params, *[model] * 4]).df().drop(columns="engagement")
    return with_sentiment(_bucket_dates(df))


#: the facts-copy queries of :mod:`aimusic.store.dashboard_queries` this module answers from the summary
REPLACES = {
    q.totals: totals, q.series: series, q.sentiment_rolling: sentiment_rolling, q.compare: compare,
    q.compare_series: compare_series,
}


def engagement_floor(con: duckdb.DuckDBPyConnection, filters: Filters, model: str | None, label: str | None,
                     limit: int) -> int | None:
    """The highest engagement ``e`` such that at least ``limit`` posts under ``filters`` (with the model's
    ``label`` when given) have an engagement of ``e`` or more: the most engaged ``limit`` posts all have at least
    ``e``, so a query for them may skip the others. ``None`` when no such bound above -1 exists."""
    where, params = _where(filters)
    which, wparams = ("d.model = ? AND d.label = ?", [model, label]) if label else ("d.model = ''", [])
    rows = con.execute(
        f"SELECT d.eng, sum(d.posts) FROM dash_daily d WHERE {which} AND {where} GROUP BY d.eng ORDER BY d.eng DESC",
        [*wparams, *params],
    ).fetchall()
    seen = 0
    for eng, n in rows:
        seen += int(n)
        if seen >= limit:
            return int(eng) if eng >= 0 else None
    return None

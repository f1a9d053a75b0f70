"""Voices from the database file: the most active (or most engaged) authors and communities with their sentiment
mix, read from the summary tables ``dash_voices`` and, under an entity filter, ``dash_entity_voices`` (kept by
:mod:`aimusic.store.dashboard_summary`) instead of one row per post. No Streamlit here.

:func:`voices` returns exactly what :func:`aimusic.store.dashboard_queries.voices` returns over the in-memory facts
copy (the tests compare them). Authors are ranked only among those whose totals over every day
(``dash_voice_totals``, an upper bound of any window's sums) can reach the page (:func:`_candidates`), so a long
window does not group every author-day. The summary answers the date window, sources, languages and entities
(:func:`supported`); a tracked-term, minimum-engagement or text filter is answered from the posts, exact but
slower on a large file: the groups are ranked over the posts alone, and only the page's groups are joined with the
model's scores (:func:`_from_posts`).

First argument ``con``: a read-only connection to the file; ``summary``: whether its summary is current
(:func:`aimusic.store.dashboard_summary.is_current`); ``model`` is the sentiment model (``None``: no labels).
"""

from __future__ import annotations

from typing import Any

import duckdb
import pandas as pd

from aimusic.store.dashboard_daily import distinct_authors, max_author_id
from aimusic.store.dashboard_queries import (
    SENTIMENT_COUNTS,
    VOICE_KEYS,
    VOICE_ORDERS,
    summary_where,
    with_sentiment,
)
from aimusic.store.queries import Filters, engagement_sql

#: the first two ordering keys, and how a group compares with the page's last one (ties included)
_AT_OR_ABOVE = {
    "posts": "g.posts > c.posts OR (g.posts = c.posts AND g.engagement >= c.engagement)",
    "engagement": "g.engagement > c.engagement OR (g.engagement = c.engagement AND g.posts >= c.posts)",
}


def supported(filters: Filters) -> bool:
    """Whether the Voices summary answers these filters exactly (window, sources, languages, entities)."""
    return not (filters.search or filters.terms or int(filters.min_engagement or 0))


def _page_cut(order: str) -> str:
    """CTEs over the ranked groups ``g`` (columns posts, engagement): ``c``, the page's last group (its row number is
    the ``OFFSET ?`` parameter: the limit minus one), and ``s``, the groups at or above it, ties included (every
    group when ``g`` has fewer)."""
    return f"""c AS (SELECT posts, engagement FROM g ORDER BY {VOICE_ORDERS[order]} LIMIT 1 OFFSET ?),
        s AS (SELECT g.* FROM g
              WHERE NOT EXISTS (SELECT 1 FROM c) OR EXISTS (SELECT 1 FROM c WHERE {_AT_OR_ABOVE[order]}))"""


def _where(filters: Filters) -> tuple[str, list[Any]]:
    return summary_where(filters, "v")  # day, source, language, entities: see supported()


def _table(filters: Filters) -> str:
    """``dash_entity_voices`` (the posts that mention an entity, keyed by their entity list) under an entity filter,
    else ``dash_voices``."""
    return "dash_entity_voices" if filters.entities else "dash_voices"


def _counts() -> str:
    """Posts, engagement and the model's labels over ``dash_voices`` rows (``?`` x4: the model)."""
    return """
        coalesce(sum(v.posts) FILTER (WHERE v.model = ''), 0)::BIGINT AS posts,
        coalesce(sum(v.engagement) FILTER (WHERE v.model = ''), 0)::BIGINT AS engagement,
        coalesce(sum(v.posts) FILTER (WHERE v.model = ?), 0)::BIGINT AS scored,
        coalesce(sum(v.negative) FILTER (WHERE v.model = ?), 0)::BIGINT AS negative,
        coalesce(sum(v.neutral) FILTER (WHERE v.model = ?), 0)::BIGINT AS neutral,
        coalesce(sum(v.positive) FILTER (WHERE v.model = ?), 0)::BIGINT AS positive"""


def _labels() -> str:
    """The model's label counts over ``dash_voices`` rows ``v`` of that model."""
    return """sum(v.posts)::BIGINT AS scored, sum(v.negative)::BIGINT AS negative,
               sum(v.neutral)::BIGINT AS neutral, sum(v.positive)::BIGINT AS positive"""


#: Voices ranks only the groups whose bound (``dash_voice_totals``) reaches the value of the page's last group among
#: this many times the page's length of the groups with the highest bounds ("seeds")
_SEEDS = 5
#: ... unless more groups than this reach it (then every group of the window is ranked)
_MAX_CANDIDATES = 250_000


def _candidates(con: duckdb.DuckDBPyConnection, filters: Filters, order: str, limit: int) -> tuple[str, list[Any]]:
    """A SQL set of (source, author id) groups that holds every group of the page (ties included), and its
    parameters; ``("", [])`` when it would not be small enough to help.

    The window's sums of a few groups with the highest bounds (the seeds) set a bar: the ``limit``-th highest
    first ordering key among them. ``limit`` groups reach the bar, so a group whose bound (its sum over every day,
    language and community, engagement counted where positive: never less than its window's sum) is below it
    cannot be on the page. The groups whose bound reaches the bar are the candidates.

    Not under an entity filter ordered by engagement: such a filter keeps only some posts of a summary row, so an
    author's entity posts can sum to more than the row's engagement (a negative post beside them) and more than the
    bound; every group is ranked then. A filter never gives an author more posts than all of them, so ordering by
    posts keeps the bound."""
    if filters.entities and order == "engagement":
        return "", []
    where, params = _where(filters)
    key = order  # the first ordering key is the column of the same name here and in ``dash_voice_totals``
    src, sparams = ("list_contains(?, t.source)", [list(filters.sources)]) if filters.sources else ("TRUE", [])
    bar = con.execute(
        f"""WITH s AS (SELECT t.source, t.author_id FROM dash_voice_totals t WHERE {src} ORDER BY t.{key} DESC LIMIT ?)
            SELECT sum(v.{key}) AS value
            FROM {_table(filters)} v SEMI JOIN s ON s.source = v.source AND s.author_id = v.author_id
            WHERE v.model = '' AND {where} GROUP BY v.source, v.author_id ORDER BY value DESC LIMIT 1 OFFSET ?""",
        [*sparams, max(int(limit), 1) * _SEEDS, *params, max(int(limit) - 1, 0)],
    ).fetchall()
    if not bar:
        return "", []
    cand = f"SELECT t.source, t.author_id FROM dash_voice_totals t WHERE {src} AND t.{key} >= ?"
    n = con.execute(f"SELECT count(*) FROM ({cand})", [*sparams, bar[0][0]]).fetchall()[0][0]
    return (cand, [*sparams, bar[0][0]]) if n <= _MAX_CANDIDATES else ("", [])


def _top_authors(con: duckdb.DuckDBPyConnection, filters: Filters, model: str | None, order: str, limit: int
                 ) -> pd.DataFrame:
    """Rank (source, author id) groups by their posts and engagement (the all-posts rows only), among the
    :func:`_candidates` when they are few; only the groups at or above the page's last one (ties included) get their
    labels and names (which break the remaining ties)."""
    where, params = _where(filters)
    cand, cparams = _candidates(con, filters, order, limit) if int(limit) > 0 else ("", [])
    semi = f"SEMI JOIN ({cand}) k ON k.source = v.source AND k.author_id = v.author_id" if cand else ""
    sql = f"""
        WITH g AS MATERIALIZED (
            SELECT v.source, v.author_id, sum(v.posts)::BIGINT AS posts, sum(v.engagement)::BIGINT AS engagement
            FROM {_table(filters)} v {semi}
            WHERE v.model = '' AND v.author_id IS NOT NULL AND {where}
            GROUP BY v.source, v.author_id),
        {_page_cut(order)},
        l AS (SELECT v.source, v.author_id, {_labels()} FROM {_table(filters)} v
              SEMI JOIN s ON s.source = v.source AND s.author_id = v.author_id
              WHERE v.model = ? AND {where} GROUP BY ALL)
        SELECT s.source, i.author AS author, 0 AS authors, s.engagement, s.posts,
               coalesce(l.scored, 0) AS scored, coalesce(l.negative, 0) AS negative,
               coalesce(l.neutral, 0) AS neutral, coalesce(l.positive, 0) AS positive
        FROM s JOIN dash_author_ids i ON i.id = s.author_id
        LEFT JOIN l ON l.source = s.source AND l.author_id = s.author_id
        ORDER BY {VOICE_ORDERS[order]}, s.source, author LIMIT ?"""
    return con.execute(sql, [*cparams, *params, max(int(limit) - 1, 0), model, *params, int(limit)]).df()


def _top_communities(con: duckdb.DuckDBPyConnection, filters: Filters, model: str | None, order: str, limit: int
                     ) -> pd.DataFrame:
    """Rank (source, community) groups, then count the distinct authors of the page's groups only."""
    where, params = _where(filters)
    top = f"""
        SELECT v.source, v.community, {_counts()}
        FROM {_table(filters)} v
        WHERE (v.model = '' OR v.model = ?) AND v.community IS NOT NULL AND {where}
        GROUP BY v.source, v.community ORDER BY {VOICE_ORDERS[order]}, v.source, v.community LIMIT ?"""
    sql = f"""
        WITH t AS ({top}),
        a AS (SELECT v.source, v.community, {distinct_authors('v.author_id')} AS authors
              FROM {_table(filters)} v SEMI JOIN t ON t.source = v.source AND t.community = v.community
              WHERE v.model = '' AND {where} GROUP BY ALL)
        SELECT t.source, t.community, coalesce(a.authors, 0)::BIGINT AS authors, t.engagement, t.posts, t.scored,
               t.negative, t.neutral, t.positive
        FROM t LEFT JOIN a ON a.source = t.source AND a.community = t.community
        ORDER BY {VOICE_ORDERS[order]}, t.source, t.community"""
    return con.execute(sql, [*[model] * 4, model, *params, int(limit), max_author_id(con), *params]).df()


def _from_posts(con: duckdb.DuckDBPyConnection, filters: Filters, model: str | None, by: str, order: str,
                limit: int) -> pd.DataFrame:
    """The facts copy's query over the file's posts and the model's scores (filters the summary cannot answer).

    In two steps: the groups are ranked over the posts alone, then only the groups at or above the page's last one
    (ties included) get their labels (the join with ``scores``) and, for communities, their distinct authors. Joining
    every filtered post with its score cost most of the time (10M posts, an entity filter: 813,000 posts)."""
    key = VOICE_KEYS[by]
    where, params = filters.where("p")
    # posts without an author are no author (as in the copy and the summary): hash(NULL) is not NULL
    authors = "count(DISTINCT hash(p.author)) FILTER (WHERE p.author IS NOT NULL)" if by == "community" else "0"
    sql = f"""
        WITH g AS MATERIALIZED (
            SELECT p.source, p.{key} AS {key}, count(*) AS posts, sum({engagement_sql('p')})::BIGINT AS engagement
            FROM posts p WHERE {where} AND p.{key} IS NOT NULL GROUP BY ALL),
        {_page_cut(order)},
        l AS (SELECT p.source, p.{key} AS {key}, {authors} AS authors, {SENTIMENT_COUNTS.format(a="sc")}
              FROM posts p SEMI JOIN s ON s.source = p.source AND s.{key} = p.{key}
              LEFT JOIN scores sc ON sc.source = p.source AND sc.post_id = p.post_id AND sc.model = ?
              WHERE {where} GROUP BY ALL)
        SELECT s.source, s.{key}, coalesce(l.authors, 0) AS authors, s.engagement, s.posts,
               coalesce(l.scored, 0) AS scored, coalesce(l.negative, 0) AS negative,
               coalesce(l.neutral, 0) AS neutral, coalesce(l.positive, 0) AS positive
        FROM s LEFT JOIN l ON l.source = s.source AND l.{key} = s.{key}
        ORDER BY {VOICE_ORDERS[order]}, s.source, s.{key} LIMIT ?"""
    return con.execute(sql, [*params, max(int(limit) - 1, 0), model, *params, int(limit)]).df()


def voices(con: duckdb.DuckDBPyConnection, filters: Filters, model: str | None, by: str = "author",
           order: str = "posts", limit: int = 25, *, summary: bool = True) -> pd.DataFrame:
    """:func:`aimusic.store.dashboard_queries.voices` from the file: from ``dash_voices`` when ``summary`` (the
    summary is current) and :func:`supported`, else from the posts."""
    if by not in VOICE_KEYS or order not in VOICE_ORDERS:
        raise ValueError(f"unknown grouping {by!r} or order {order!r}")
    if summary and supported(filters):
        top = _top_authors if by == "author" else _top_communities
        df = top(con, filters, model, order, limit)
    else:
        df = _from_posts(con, filters, model, by, order, limit)
    df = df.astype({c: "int64" for c in ("authors", "engagement", "posts", "scored", "negative", "neutral",
                                         "positive")})
    if by == "author":
        df = df.drop(columns=["authors"])
    return with_sentiment(df.reset_index(drop=True))

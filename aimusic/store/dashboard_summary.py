"""The dashboard's daily summary: per-day aggregates kept in the database file, so the Overview and Compare never
scan (or join) every post. No Streamlit here.

``dash_daily`` holds two kinds of rows, one per combination of the columns the sidebar filters on:

* ``model = ''``: every post, counted per (day, source, lang, entities, terms, eng) with its engagement summed;
* ``model = <model>``, ``label`` set: the posts with that label from that model (``scores``), same keys.

``eng`` is the post's engagement clipped to [-1, :data:`ENGAGEMENT_CAP`], so a minimum-engagement filter up to
the cap is exact (``engagement >= m`` exactly when ``eng >= m``); a higher minimum is answered from the posts.
``entities`` and ``terms`` are the post's own lists (a few dozen distinct lists), so "mentions any of" filters
and per-entity groupings are exact too.

``dash_authors`` holds the distinct (day, source, lang, author hash) with the highest engagement of those posts
(clipped the same way), ``dash_entity_authors`` the same per entity list (posts with entities only), so distinct
authors under every filter but tracked terms (and per entity) are counted from far fewer rows than posts; a term
filter counts them from the posts.

Maintenance is incremental (:func:`refresh`): the days of posts written (``updated_at``) or scored
(``scores.scored_at``) since the marks in ``dash_state`` are recomputed, nothing else; with no new writes a
refresh reads four numbers and returns. After each incremental refresh the summary is checked against the file
(posts, and posts per model and label); any difference (rows deleted, a clock that went backwards) rebuilds it.
``Store.refresh_summary`` runs it; ``Store.record_run`` (the end of every monitoring run) and the dashboard, when
it finds the summary behind the data, call that.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

import duckdb

log = logging.getLogger(__name__)

#: engagement values above this are one bucket in the summary (a higher minimum-engagement filter reads posts)
ENGAGEMENT_CAP = 100

DAY_SQL = "CAST(epoch_us({a}.created_at) // 86400000000 AS INTEGER)"
ENG_SQL = ("greatest(least(coalesce({a}.score, 0) + coalesce({a}.replies, 0) + coalesce({a}.reposts, 0), "
           f"{ENGAGEMENT_CAP}), -1)")

#: migration 10 (:mod:`aimusic.store.schema`); a later change to these tables needs a new migration
TABLES = (
    """CREATE TABLE dash_daily (
        model VARCHAR NOT NULL, label VARCHAR, day INTEGER NOT NULL, source VARCHAR NOT NULL, lang VARCHAR NOT NULL,
        entities VARCHAR[] NOT NULL, terms VARCHAR[], eng INTEGER NOT NULL, posts BIGINT NOT NULL,
        engagement BIGINT NOT NULL)""",
    """CREATE TABLE dash_authors (
        day INTEGER NOT NULL, source VARCHAR NOT NULL, lang VARCHAR NOT NULL, author_h UBIGINT NOT NULL,
        eng INTEGER NOT NULL)""",
    """CREATE TABLE dash_entity_authors (
        day INTEGER NOT NULL, source VARCHAR NOT NULL, lang VARCHAR NOT NULL, entities VARCHAR[] NOT NULL,
        author_h UBIGINT NOT NULL, eng INTEGER NOT NULL)""",
    """CREATE TABLE dash_state (
        id INTEGER PRIMARY KEY, posts BIGINT NOT NULL, posts_mark TIMESTAMPTZ, scores BIGINT NOT NULL,
        scores_mark TIMESTAMPTZ, refreshed_at TIMESTAMPTZ NOT NULL)""",
)

SUMMARY_TABLES = ("dash_daily", "dash_authors", "dash_entity_authors")

_POSTS = f"""SELECT source, post_id, {DAY_SQL.format(a='p')} AS day, coalesce(lang, 'und') AS lang,
       coalesce(entities, []::VARCHAR[]) AS entities, terms, {ENG_SQL.format(a='p')} AS eng,
       coalesce(score, 0) + coalesce(replies, 0) + coalesce(reposts, 0) AS engagement,
       CASE WHEN author IS NOT NULL THEN hash(author) END AS author_h
   FROM posts p"""

_FILL = (
    """INSERT INTO dash_daily
       SELECT '' AS model, NULL AS label, day, source, lang, entities, terms, eng, count(*), sum(engagement)
       FROM _dash_p GROUP BY ALL""",
    """INSERT INTO dash_daily
       SELECT s.model, s.label, p.day, p.source, p.lang, p.entities, p.terms, p.eng, count(*), sum(p.engagement)
       FROM _dash_p p JOIN scores s ON s.source = p.source AND s.post_id = p.post_id
       WHERE s.label IS NOT NULL GROUP BY ALL""",
    """INSERT INTO dash_authors
       SELECT day, source, lang, author_h, max(eng) FROM _dash_p WHERE author_h IS NOT NULL GROUP BY ALL""",
    """INSERT INTO dash_entity_authors
       SELECT day, source, lang, entities, author_h, max(eng) FROM _dash_p
       WHERE author_h IS NOT NULL AND len(entities) > 0 GROUP BY ALL""",
)


def _current(con: duckdb.DuckDBPyConnection) -> tuple[int, datetime | None, int, datetime | None]:
    return con.execute(
        """SELECT (SELECT count(*) FROM posts), (SELECT max(updated_at) FROM posts),
                  (SELECT count(*) FROM scores), (SELECT max(scored_at) FROM scores)"""
    ).fetchall()[0]


def _state(con: duckdb.DuckDBPyConnection) -> tuple[Any, ...] | None:
    rows = con.execute("SELECT posts, posts_mark, scores, scores_mark FROM dash_state WHERE id = 1").fetchall()
    return tuple(rows[0]) if rows else None


def is_current(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the summary covers every write the file holds (cheap: four aggregates and one row)."""
    try:
        return _state(con) == tuple(_current(con))
    except duckdb.CatalogException:  # a database written before the summary existed (opened read-only)
        return False


def has_summary(con: duckdb.DuckDBPyConnection) -> bool:
    try:
        return _state(con) is not None
    except duckdb.CatalogException:
        return False


def refresh(con: duckdb.DuckDBPyConnection, *, full: bool = False) -> str:
    """Bring the summary up to the file's posts and scores; return 'unchanged', 'incremental' or 'full'.

    ``con`` is a read-write connection with no open transaction; the refresh runs in one transaction."""
    started = time.perf_counter()
    current = tuple(_current(con))
    state = _state(con)
    if not full and state == current:
        return "unchanged"
    con.execute("BEGIN")
    try:
        mode = "full" if full or state is None else "incremental"
        if mode == "incremental" and not _incremental(con, state):
            mode = "full"
        if mode == "full":
            _rebuild(con)
        con.execute(
            "INSERT OR REPLACE INTO dash_state VALUES (1, ?, ?, ?, ?, now())", list(current)
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    log.info("dashboard summary: %s refresh in %.2fs", mode, time.perf_counter() - started)
    return mode


def _rebuild(con: duckdb.DuckDBPyConnection) -> None:
    for table in SUMMARY_TABLES:
        con.execute(f"DELETE FROM {table}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _dash_p AS {_POSTS}")
    for sql in _FILL:
        con.execute(sql)
    con.execute("DROP TABLE _dash_p")


def _incremental(con: duckdb.DuckDBPyConnection, state: tuple[Any, ...]) -> bool:
    """Recompute the days touched since the marks; False when the result disagrees with the file."""
    _, posts_mark, _, scores_mark = state
    since_posts = "WHERE p.updated_at > ?" if posts_mark is not None else ""
    since_scores = "AND s.scored_at > ?" if scores_mark is not None else ""
    params = [v for v in (posts_mark, scores_mark) if v is not None]
    days = [d for (d,) in con.execute(
        f"""SELECT {DAY_SQL.format(a='p')} FROM posts p {since_posts}
            UNION
            SELECT {DAY_SQL.format(a='p')} FROM posts p
            WHERE EXISTS (SELECT 1 FROM scores s WHERE s.source = p.source AND s.post_id = p.post_id {since_scores})""",
        params,
    ).fetchall()]
    if days:
        low, high = min(days), max(days)
        for table in SUMMARY_TABLES:
            con.execute(f"DELETE FROM {table} WHERE list_contains(?, day)", [days])
        # the created_at range lets DuckDB skip row groups; the list keeps exactly the touched days
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _dash_p AS SELECT * FROM ({_POSTS}
                WHERE p.created_at >= make_timestamptz(?::BIGINT * 86400000000)
                  AND p.created_at < make_timestamptz((?::BIGINT + 1) * 86400000000))
                WHERE list_contains(?, day)""",
            [low, high, days],
        )
        for sql in _FILL:
            con.execute(sql)
        con.execute("DROP TABLE _dash_p")
    return _matches(con)


def _matches(con: duckdb.DuckDBPyConnection) -> bool:
    """Cheap check: posts, and posts per model and label, agree between the summary and the file."""
    mine = con.execute(
        "SELECT model, coalesce(label, ''), sum(posts) FROM dash_daily GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    theirs = con.execute(
        """SELECT '' AS model, '' AS label, count(*) FROM posts HAVING count(*) > 0
           UNION ALL
           SELECT model, label, count(*) FROM scores WHERE label IS NOT NULL GROUP BY ALL ORDER BY ALL"""
    ).fetchall()
    if [tuple(r) for r in mine] != [tuple(r) for r in theirs]:
        log.info("dashboard summary drifted from the file: rebuilding")
        return False
    return True

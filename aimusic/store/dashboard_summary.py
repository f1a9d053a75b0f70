"""The dashboard's daily summary: per-day aggregates kept in the database file, so the Overview and Compare never
scan (or join) every post. No Streamlit here.

``dash_daily`` holds two kinds of rows, one per combination of the columns the sidebar filters on:

* ``model = ''``: every post, counted per (day, source, lang, entities, terms, eng) with its engagement summed;
* ``model = <model>``, ``label`` set: the posts with that label from that model (``scores``), same keys.

``eng`` is the post's engagement clipped to [-1, :data:`ENGAGEMENT_CAP`], so a minimum-engagement filter up to
the cap is exact (``engagement >= m`` exactly when ``eng >= m``); a higher minimum is answered from the posts.
``entities`` and ``terms`` are the post's own lists (a few dozen distinct lists), so "mentions any of" filters
and per-entity groupings are exact too.

``dash_authors`` holds the distinct (day, source, lang, author) with the highest engagement of those posts
(clipped the same way), ``dash_entity_authors`` the same per entity list (posts with entities only), so distinct
authors under every filter but tracked terms (and per entity) are counted from far fewer rows than posts; a term
filter counts them from the posts. Authors there are dense integer ids (``dash_author_ids``: one per distinct
``posts.author``, numbered from 1 in the order they were first summarised), so a distinct count is a bitmap
(``bit_count(bitstring_agg(author_id, 1, max_id))``), exact and several times cheaper than hashing.

``dash_voices`` (Voices) holds per (day, source, lang, author id, community) the posts and their summed
engagement (``model = ''``), and per model the labelled posts and their labels (``model = <model>``, ``posts``
counting the labelled posts), so the most active authors and communities are ranked without one row per post.
``dash_entity_voices`` (schema 13) holds the same for the posts that mention a tracked entity, keyed by their entity
list too (as in ``dash_daily``), so Voices under an entity filter is read from the summary as well; kept apart so
that the unfiltered Voices reads no more rows than before (one table keyed by entities had 1.9x the rows).
``dash_top`` and ``dash_top_cut`` (the Posts view's orderings) are kept by :mod:`aimusic.store.dashboard_top`.

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

from aimusic.store import dashboard_top

log = logging.getLogger(__name__)

#: engagement values above this are one bucket in the summary (a higher minimum-engagement filter reads posts)
ENGAGEMENT_CAP = 100

DAY_SQL = "CAST(epoch_us({a}.created_at) // 86400000000 AS INTEGER)"
ENG_SQL = ("greatest(least(coalesce({a}.score, 0) + coalesce({a}.replies, 0) + coalesce({a}.reposts, 0), "
           f"{ENGAGEMENT_CAP}), -1)")

#: migration 10 (:mod:`aimusic.store.schema`), as first released; migration 11 is :data:`TABLES_11`
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

#: migration 11: authors as dense ids (bitmap distinct counts) and the Voices summary; dropping ``dash_state``'s
#: row makes the next refresh a full build
TABLES_11 = (
    "DROP TABLE dash_authors",
    "DROP TABLE dash_entity_authors",
    """CREATE TABLE dash_authors (
        day INTEGER NOT NULL, source VARCHAR NOT NULL, lang VARCHAR NOT NULL, author_id INTEGER NOT NULL,
        eng INTEGER NOT NULL)""",
    """CREATE TABLE dash_entity_authors (
        day INTEGER NOT NULL, source VARCHAR NOT NULL, lang VARCHAR NOT NULL, entities VARCHAR[] NOT NULL,
        author_id INTEGER NOT NULL, eng INTEGER NOT NULL)""",
    "CREATE TABLE dash_author_ids (author VARCHAR NOT NULL, id INTEGER NOT NULL)",
    """CREATE TABLE dash_voices (
        model VARCHAR NOT NULL, day INTEGER NOT NULL, source VARCHAR NOT NULL, lang VARCHAR NOT NULL,
        author_id INTEGER, community VARCHAR, posts BIGINT NOT NULL, engagement BIGINT NOT NULL,
        negative BIGINT NOT NULL, neutral BIGINT NOT NULL, positive BIGINT NOT NULL)""",
    *dashboard_top.TABLES,
    "DELETE FROM dash_state",
)

#: the upper bounds Voices ranks authors with (:mod:`aimusic.store.dashboard_voices`): per (source, author id) over
#: every day, language and community, the posts and the engagement counted only where positive (each ``dash_voices``
#: row's summed engagement when above 0), so no window, language or source filter can give an author more
_TOTALS = """SELECT v.source, v.author_id, sum(v.posts)::BIGINT, sum(greatest(v.engagement, 0))::BIGINT
    FROM dash_voices v {semi} WHERE v.model = '' AND v.author_id IS NOT NULL GROUP BY v.source, v.author_id"""

#: migration 12: the Voices bounds, filled from the Voices summary as it is (no rebuild); the same migration adds
#: an index on ``scores.post_id`` (:mod:`aimusic.store.schema`)
TABLES_12 = (
    """CREATE TABLE dash_voice_totals (
        source VARCHAR NOT NULL, author_id INTEGER NOT NULL, posts BIGINT NOT NULL, engagement BIGINT NOT NULL)""",
    f"INSERT INTO dash_voice_totals {_TOTALS.format(semi='')}",
)

#: migration 13: the Voices summary of the posts that mention an entity, keyed by their entity list too; dropping
#: ``dash_state``'s row makes the next refresh a full build, which fills it
TABLES_13 = (
    """CREATE TABLE dash_entity_voices (
        model VARCHAR NOT NULL, day INTEGER NOT NULL, source VARCHAR NOT NULL, lang VARCHAR NOT NULL,
        author_id INTEGER, community VARCHAR, entities VARCHAR[] NOT NULL, posts BIGINT NOT NULL,
        engagement BIGINT NOT NULL, negative BIGINT NOT NULL, neutral BIGINT NOT NULL, positive BIGINT NOT NULL)""",
    "DELETE FROM dash_state",
)

SUMMARY_TABLES = ("dash_daily", "dash_authors", "dash_entity_authors", "dash_voices", "dash_entity_voices",
                  *dashboard_top.DAY_TABLES)

#: the posts in scope (``{where}``), with their author's id (``dash_author_ids`` must hold every author first)
_POSTS = f"""SELECT p.source, p.post_id, {DAY_SQL.format(a='p')} AS day, coalesce(p.lang, 'und') AS lang,
       coalesce(p.entities, []::VARCHAR[]) AS entities, p.terms, {ENG_SQL.format(a='p')} AS eng,
       coalesce(p.score, 0) + coalesce(p.replies, 0) + coalesce(p.reposts, 0) AS engagement,
       i.id AS author_id, p.community, p.created_at, p.post_rowid
   FROM (SELECT *, p.rowid AS post_rowid FROM posts p {{where}}) p
   LEFT JOIN dash_author_ids i ON i.author = p.author"""

#: the scores of the posts in scope, every model (one pass over ``scores`` for all the tables)
_SCORES = """CREATE OR REPLACE TEMP TABLE _dash_s AS
    SELECT s.source, s.post_id, s.model, s.label, s.negative, s.neutral, s.positive
    FROM scores s {semi}"""
_SEMI = "SEMI JOIN _dash_p p ON p.source = s.source AND p.post_id = s.post_id"

#: new authors of the posts in scope get the next ids
_NEW_AUTHORS = """INSERT INTO dash_author_ids
    SELECT author, (SELECT coalesce(max(id), 0) FROM dash_author_ids) + row_number() OVER (ORDER BY author)
    FROM (SELECT DISTINCT p.author FROM posts p {where}) p
    WHERE author IS NOT NULL AND NOT EXISTS (SELECT 1 FROM dash_author_ids i WHERE i.author = p.author)"""

_FILL = (
    """INSERT INTO dash_daily
       SELECT '' AS model, NULL AS label, day, source, lang, entities, terms, eng, count(*), sum(engagement)
       FROM _dash_p GROUP BY ALL""",
    """INSERT INTO dash_daily
       SELECT s.model, s.label, p.day, p.source, p.lang, p.entities, p.terms, p.eng, count(*), sum(p.engagement)
       FROM _dash_p p JOIN _dash_s s ON s.source = p.source AND s.post_id = p.post_id
       WHERE s.label IS NOT NULL GROUP BY ALL""",
    """INSERT INTO dash_authors
       SELECT day, source, lang, author_id, max(eng) FROM _dash_p WHERE author_id IS NOT NULL GROUP BY ALL""",
    """INSERT INTO dash_entity_authors
       SELECT day, source, lang, entities, author_id, max(eng) FROM _dash_p
       WHERE author_id IS NOT NULL AND len(entities) > 0 GROUP BY ALL""",
    """INSERT INTO dash_voices
       SELECT '' AS model, day, source, lang, author_id, community, count(*), sum(engagement), 0, 0, 0
       FROM _dash_p GROUP BY ALL""",
    """INSERT INTO dash_voices
       SELECT s.model, p.day, p.source, p.lang, p.author_id, p.community, count(*), 0,
              count(*) FILTER (WHERE s.label = 'negative'), count(*) FILTER (WHERE s.label = 'neutral'),
              count(*) FILTER (WHERE s.label = 'positive')
       FROM _dash_p p JOIN _dash_s s ON s.source = p.source AND s.post_id = p.post_id
       WHERE s.label IS NOT NULL GROUP BY ALL""",
    """INSERT INTO dash_entity_voices
       SELECT '' AS model, day, source, lang, author_id, community, entities, count(*), sum(engagement), 0, 0, 0
       FROM _dash_p WHERE len(entities) > 0 GROUP BY ALL""",
    """INSERT INTO dash_entity_voices
       SELECT s.model, p.day, p.source, p.lang, p.author_id, p.community, p.entities, count(*), 0,
              count(*) FILTER (WHERE s.label = 'negative'), count(*) FILTER (WHERE s.label = 'neutral'),
              count(*) FILTER (WHERE s.label = 'positive')
       FROM _dash_p p JOIN _dash_s s ON s.source = p.source AND s.post_id = p.post_id
       WHERE s.label IS NOT NULL AND len(p.entities) > 0 GROUP BY ALL""",
)


def _current(con: duckdb.DuckDBPyConnection) -> tuple[int, datetime | None, int, datetime | None]:
    return con.execute(
        """SELECT (SELECT count(*) FROM posts), (SELECT max(updated_at) FROM posts),
                  (SELECT count(*) FROM scores), (SELECT max(scored_at) FROM scores)"""
    ).fetchall()[0]


def _state(con: duckdb.DuckDBPyConnection) -> tuple[Any, ...] | None:
    rows = con.execute("SELECT posts, posts_mark, scores, scores_mark FROM dash_state WHERE id = 1").fetchall()
    return tuple(rows[0]) if rows else None


#: the schema version (:mod:`aimusic.store.schema`) whose summary tables this module reads and writes
SUMMARY_SCHEMA = 13


def is_current(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the summary covers every write the file holds (cheap: four aggregates and one row), in the tables
    of :data:`SUMMARY_SCHEMA` (a file of an earlier release, opened read-only, is not current even when its own
    summary was: it must be migrated first)."""
    try:
        version = con.execute("SELECT max(version) FROM schema_migrations").fetchall()[0][0]
        return version is not None and version >= SUMMARY_SCHEMA and _state(con) == tuple(_current(con))
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


def _fill(con: duckdb.DuckDBPyConnection, where: str, params: list[Any]) -> None:
    """Summarise the posts ``where`` selects (their days must have no summary rows left)."""
    con.execute(_NEW_AUTHORS.format(where=where), params)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _dash_p AS {_POSTS.format(where=where)}", params)
    con.execute(_SCORES.format(semi=_SEMI if where else ""))  # every score when every post is in scope
    for sql in _FILL:
        con.execute(sql)
    dashboard_top.fill(con)
    con.execute("DROP TABLE _dash_p")
    con.execute("DROP TABLE _dash_s")


def _rebuild(con: duckdb.DuckDBPyConnection) -> None:
    for table in (*SUMMARY_TABLES, "dash_author_ids", "dash_voice_totals"):
        con.execute(f"DELETE FROM {table}")
    _fill(con, "", [])
    con.execute(f"INSERT INTO dash_voice_totals {_TOTALS.format(semi='')}")


def _touched_authors(con: duckdb.DuckDBPyConnection, days: list[int]) -> None:
    """Add the (source, author id) groups with Voices rows on ``days`` to ``_dash_va``."""
    con.execute("""INSERT INTO _dash_va SELECT DISTINCT source, author_id FROM dash_voices
                   WHERE model = '' AND author_id IS NOT NULL AND list_contains(?, day)""", [days])


def _retotal(con: duckdb.DuckDBPyConnection) -> None:
    """Recompute the Voices bounds of the groups in ``_dash_va`` (those whose days were recomputed)."""
    con.execute("DELETE FROM dash_voice_totals t USING _dash_va a WHERE t.source = a.source "
                "AND t.author_id = a.author_id")
    semi = "SEMI JOIN _dash_va a ON a.source = v.source AND a.author_id = v.author_id"
    con.execute(f"INSERT INTO dash_voice_totals {_TOTALS.format(semi=semi)}")
    con.execute("DROP TABLE _dash_va")


def _incremental(con: duckdb.DuckDBPyConnection, state: tuple[Any, ...]) -> bool:
    """Recompute the days touched since the marks; False when the result disagrees with the file."""
    _, posts_mark, _, scores_mark = state
    known = {m for (m,) in con.execute("SELECT DISTINCT model FROM dash_daily WHERE model <> ''").fetchall()}
    new = sorted(set(dashboard_top.models(con)) - known)
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
        con.execute("CREATE OR REPLACE TEMP TABLE _dash_va (source VARCHAR, author_id INTEGER)")
        _touched_authors(con, days)  # before their rows go: their bounds change too
        for table in SUMMARY_TABLES:
            con.execute(f"DELETE FROM {table} WHERE list_contains(?, day)", [days])
        # the created_at range lets DuckDB skip row groups; the list keeps exactly the touched days
        where = f"""WHERE p.created_at >= make_timestamptz(?::BIGINT * 86400000000)
                      AND p.created_at < make_timestamptz((?::BIGINT + 1) * 86400000000)
                      AND list_contains(?, {DAY_SQL.format(a='p')})"""
        _fill(con, where, [low, high, days])
        _touched_authors(con, days)
        _retotal(con)
    if new:  # a model seen for the first time: its ranked lists for every day
        _lists(con, new)
    return _matches(con)


def _lists(con: duckdb.DuckDBPyConnection, models: list[str]) -> None:
    """The ranked lists of ``models`` for every day (:mod:`aimusic.store.dashboard_top`)."""
    for table in dashboard_top.DAY_TABLES:
        con.execute(f"DELETE FROM {table} WHERE list_contains(?, model)", [models])
    con.execute(f"CREATE OR REPLACE TEMP TABLE _dash_p AS {_POSTS.format(where='')}")
    con.execute(_SCORES.format(semi=""))
    dashboard_top.fill(con, models)
    con.execute("DROP TABLE _dash_p")
    con.execute("DROP TABLE _dash_s")


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
    bounds = con.execute(
        """SELECT (SELECT coalesce(sum(posts), 0) FROM dash_voice_totals),
                  (SELECT coalesce(sum(posts), 0) FROM dash_voices WHERE model = '' AND author_id IS NOT NULL),
                  (SELECT coalesce(sum(posts), 0) FROM dash_entity_voices WHERE model = ''),
                  (SELECT coalesce(sum(posts), 0) FROM dash_daily WHERE model = '' AND len(entities) > 0)"""
    ).fetchall()[0]
    if [tuple(r) for r in mine] != [tuple(r) for r in theirs] or bounds[0] != bounds[1] or bounds[2] != bounds[3]:
        log.info("dashboard summary drifted from the file: rebuilding")
        return False
    return True

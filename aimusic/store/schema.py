"""The database schema: every migration in one ordered list, and :func:`migrate`.

Version numbers were reserved per feature (1 spine, 2 sentiment engine, 3 alerts/operations, 4 debate signals,
5 sources/backfill, 6 dashboard, 7 privacy, 8 relevance reason, 9 labels; 10-12 the dashboard's summary came after),
so the list has gaps (2, 5 and 6 were never needed) and a database written by release 0.1 holds {1, 3, 4, 7}.
Migrations are applied in version order, each in its own transaction, and recorded in ``schema_migrations``; a
new one gets the next number after the last and goes at the end of :data:`MIGRATIONS`.

A database that holds a version this release does not know was written by a newer release (or another
branch): it is refused, with the versions named, rather than written with a schema this code does not
understand.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path
from typing import NamedTuple

import duckdb

from aimusic.store.dashboard_summary import TABLES as DASHBOARD_SUMMARY_TABLES
from aimusic.store.dashboard_summary import TABLES_11 as DASHBOARD_SUMMARY_TABLES_11
from aimusic.store.dashboard_summary import TABLES_12 as DASHBOARD_SUMMARY_TABLES_12
from aimusic.store.dashboard_summary import TABLES_13 as DASHBOARD_SUMMARY_TABLES_13

log = logging.getLogger(__name__)


class StoreError(RuntimeError):
    """The database cannot be used; the message names the file and what to do."""


class Migration(NamedTuple):
    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "initial schema: posts, scores, runs, cursors, events, meta",
        (
            """CREATE TABLE posts (
                source VARCHAR NOT NULL, post_id VARCHAR NOT NULL, kind VARCHAR NOT NULL,
                parent_id VARCHAR, thread_id VARCHAR, created_at TIMESTAMPTZ NOT NULL,
                author VARCHAR, title VARCHAR, text VARCHAR NOT NULL, url VARCHAR, lang VARCHAR,
                score BIGINT, replies BIGINT, reposts BIGINT, community VARCHAR, terms VARCHAR[],
                nsfw BOOLEAN NOT NULL DEFAULT false, synthetic BOOLEAN NOT NULL DEFAULT false,
                fetched_at TIMESTAMPTZ NOT NULL, text_md5 VARCHAR NOT NULL,
                first_seen_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (source, post_id))""",
            """CREATE TABLE scores (
                source VARCHAR NOT NULL, post_id VARCHAR NOT NULL, model VARCHAR NOT NULL,
                label VARCHAR, negative DOUBLE, neutral DOUBLE, positive DOUBLE,
                status VARCHAR NOT NULL DEFAULT 'scored', text_md5 VARCHAR NOT NULL,
                scored_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (source, post_id, model))""",
            """CREATE TABLE runs (
                run_id VARCHAR NOT NULL, source VARCHAR NOT NULL, started_at TIMESTAMPTZ NOT NULL,
                finished_at TIMESTAMPTZ, status VARCHAR NOT NULL, fetched BIGINT DEFAULT 0,
                new BIGINT DEFAULT 0, updated BIGINT DEFAULT 0, irrelevant BIGINT DEFAULT 0,
                skipped BIGINT DEFAULT 0, failed BOOLEAN DEFAULT false, scored BIGINT DEFAULT 0,
                model VARCHAR, error VARCHAR,
                PRIMARY KEY (run_id, source))""",
            """CREATE TABLE cursors (
                source VARCHAR NOT NULL, key VARCHAR NOT NULL, value VARCHAR NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (source, key))""",
            """CREATE TABLE events (
                event_date DATE NOT NULL, title VARCHAR NOT NULL, url VARCHAR,
                origin VARCHAR NOT NULL DEFAULT 'user', created_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (event_date, title))""",
            "CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)",
            "CREATE INDEX posts_created ON posts (created_at)",
        ),
    ),
    Migration(
        3,
        "alerts: volume spikes and sentiment shifts, one per (kind, scope, day)",
        (
            """CREATE TABLE alerts (
                kind VARCHAR NOT NULL, scope VARCHAR NOT NULL, day DATE NOT NULL,
                window_start TIMESTAMPTZ NOT NULL, window_end TIMESTAMPTZ NOT NULL,
                observed DOUBLE NOT NULL, expected DOUBLE, low DOUBLE, high DOUBLE, score DOUBLE,
                direction VARCHAR NOT NULL, posts BIGINT, model VARCHAR, message VARCHAR NOT NULL,
                top_posts VARCHAR, run_id VARCHAR, created_at TIMESTAMPTZ NOT NULL,
                delivered_at TIMESTAMPTZ, delivery VARCHAR,
                PRIMARY KEY (kind, scope, day))""",
        ),
    ),
    Migration(
        4,
        "debate signals: entities on posts, arguments and stance per post and model",
        (
            # entities_key = text_md5 || ':' || the entity config's fingerprint; NULL or stale = tag again
            "ALTER TABLE posts ADD COLUMN entities VARCHAR[]",
            "ALTER TABLE posts ADD COLUMN entities_key VARCHAR",
            """CREATE TABLE post_arguments (
                source VARCHAR NOT NULL, post_id VARCHAR NOT NULL, model VARCHAR NOT NULL,
                arguments VARCHAR[] NOT NULL, matched_by VARCHAR[] NOT NULL, similarity DOUBLE[] NOT NULL,
                text_md5 VARCHAR NOT NULL, tagged_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (source, post_id, model))""",
            """CREATE TABLE stances (
                source VARCHAR NOT NULL, post_id VARCHAR NOT NULL, model VARCHAR NOT NULL,
                label VARCHAR, "anti" DOUBLE, neutral DOUBLE, pro DOUBLE,
                status VARCHAR NOT NULL DEFAULT 'scored', text_md5 VARCHAR NOT NULL,
                scored_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (source, post_id, model))""",
        ),
    ),
    Migration(
        7,
        "privacy: takedown digests and the index of export files",
        (
            """CREATE TABLE takedowns (
                kind VARCHAR NOT NULL, source VARCHAR NOT NULL, value_sha256 VARCHAR NOT NULL,
                requested_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (kind, source, value_sha256))""",
            """CREATE TABLE exports (
                path VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, format VARCHAR NOT NULL, rows BIGINT,
                filters VARCHAR, created_at TIMESTAMPTZ NOT NULL)""",
        ),
    ),
    Migration(
        8,
        "relevance: why each post was kept (terms, community or semantic)",
        ("ALTER TABLE posts ADD COLUMN relevance VARCHAR",),
    ),
    Migration(
        9,
        "labels: the user's own labels per post and task, for training and for measuring accuracy",
        (
            """CREATE TABLE labels (
                source VARCHAR NOT NULL, post_id VARCHAR NOT NULL, task VARCHAR NOT NULL,
                label VARCHAR NOT NULL, labeller VARCHAR NOT NULL DEFAULT 'me',
                labelled_at TIMESTAMPTZ NOT NULL, picked VARCHAR NOT NULL DEFAULT 'random',
                PRIMARY KEY (source, post_id, task, labeller))""",
        ),
    ),
    Migration(
        10,
        "dashboard summary: daily aggregates and author-days (aimusic.store.dashboard_summary)",
        DASHBOARD_SUMMARY_TABLES,
    ),
    Migration(
        11,
        "dashboard summary: authors as dense ids, and the Voices summary (aimusic.store.dashboard_summary)",
        DASHBOARD_SUMMARY_TABLES_11,
    ),
    Migration(
        12,
        "dashboard: an index on scores.post_id (a page's labels without a scan of every score) and the Voices "
        "bounds (aimusic.store.dashboard_summary)",
        ("CREATE INDEX scores_post ON scores (post_id)", *DASHBOARD_SUMMARY_TABLES_12),
    ),
    Migration(
        13,
        "dashboard: the Voices summary of posts that mention an entity (Voices under an entity filter from the "
        "summary; the next refresh rebuilds the summary) (aimusic.store.dashboard_summary)",
        DASHBOARD_SUMMARY_TABLES_13,
    ),
)
KNOWN_VERSIONS = frozenset(m.version for m in MIGRATIONS)
SCHEMA_VERSION = MIGRATIONS[-1].version

if [m.version for m in MIGRATIONS] != sorted(KNOWN_VERSIONS) or len(KNOWN_VERSIONS) != len(MIGRATIONS):
    raise AssertionError("MIGRATIONS must list each version once, in increasing order")


def rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back if a transaction is still open (a failed COMMIT has already ended it)."""
    with contextlib.suppress(duckdb.TransactionException):
        con.execute("ROLLBACK")


def applied_versions(con: duckdb.DuckDBPyConnection) -> set[int]:
    """The versions recorded in ``schema_migrations`` (empty for a new database)."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'schema_migrations' AND schema_name = 'main'"
        " AND database_name = current_database()"
    ).fetchall()[0][0]
    if not exists:
        return set()
    return {int(v) for (v,) in con.execute("SELECT version FROM schema_migrations").fetchall()}


def migrate(con: duckdb.DuckDBPyConnection, *, path: Path | str | None = None) -> int:
    """Apply the pending migrations in order and return the schema version.

    Refuses (:class:`StoreError`, nothing written) a database that holds any version this release does not
    know. ``path`` only names the file in messages.
    """
    done = applied_versions(con)
    unknown = sorted(done - KNOWN_VERSIONS)
    if unknown:
        where = f"database {path}" if path else "the database"
        raise StoreError(
            f"{where} has schema version(s) {', '.join(map(str, unknown))} that this aimusic does not know "
            f"(it knows {', '.join(str(m.version) for m in MIGRATIONS)}): it was written by a newer release. "
            "Upgrade aimusic, or pass --db with another file."
        )
    con.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"""
    )
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        con.execute("BEGIN")
        try:
            for statement in migration.statements:
                con.execute(statement)
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [migration.version, migration.name])
            con.execute("COMMIT")
        except BaseException:
            rollback(con)
            raise
        log.info("database migrated to schema version %s (%s)", migration.version, migration.name)
    return SCHEMA_VERSION


# Files this process has brought to SCHEMA_VERSION, by resolved path and file identity: a Store opened again
# on the same file skips the check (one read-write connection less per Store). A file that is deleted and
# created again is checked again (it does not exist when the Store is built, or it has another identity).
_MIGRATED: set[tuple[str, int, int, int]] = set()
_MIGRATED_GUARD = threading.Lock()


def _file_key(path: Path) -> tuple[str, int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return str(path.resolve()), stat.st_dev, stat.st_ino, SCHEMA_VERSION


def is_migrated(path: Path) -> bool:
    """True when this process already brought ``path`` (this very file) to :data:`SCHEMA_VERSION`."""
    key = _file_key(path)
    with _MIGRATED_GUARD:
        return key is not None and key in _MIGRATED


def mark_migrated(path: Path) -> None:
    key = _file_key(path)
    if key is not None:
        with _MIGRATED_GUARD:
            _MIGRATED.add(key)

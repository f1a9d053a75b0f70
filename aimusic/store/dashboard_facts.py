"""The dashboard's way into the database: its kept and short read-only connections, its one write, the data
version, and an
in-memory, incrementally refreshed copy of what its aggregates read (the *facts*). No Streamlit here.

Connections:

* :func:`read` (the dashboard's queries): a cursor on one read-only connection per file that this process keeps
  while reads keep coming, so DuckDB's block cache stays warm between queries and reruns; it is closed after a few
  idle seconds and as soon as a monitoring run waits for the file (:mod:`aimusic.store.read_keeper`).
* :func:`read_connection`: a short-lived read-only connection through :class:`aimusic.store.db.Store`, which waits
  (with backoff, up to 30 s) while a monitoring run holds the file (also :func:`read`'s fallback while a writer
  waits). Inside one process DuckDB also refuses a
  read-only connection while a read-write one is open (and vice versa); the dashboard's own event writes can
  cause that, so it is retried too.
* :func:`add_event`: the dashboard's only write, a read-write connection held for one INSERT.

The facts copy. Every chart needs each post's sentiment label, i.e. a join of ``posts`` with ``scores`` on
(source, post_id, model). Over a million posts that join alone costs 150-300 ms on a 2-core machine, for every
chart and every filter change. The dashboard therefore keeps, per (database file, model), one in-memory DuckDB
table ``facts`` with one row per post: the columns the filters and aggregates use (no text), the post's stored
``entities`` (the one definition of which entities a post mentions: ``posts.entities``, tagged from
``[[entities]]`` in topics.toml by :mod:`aimusic.debate.signals`) and the model's label. Aggregates over it take
a few milliseconds to a few tens of milliseconds. It is correct and incremental:

* The copy is tied to a :class:`DataVersion` (one cheap query on the file). When the version changes, only
  posts with ``updated_at`` after the last high-water mark and scores with ``scored_at`` after theirs are read
  again and upserted into the copy. While the short read-only connection is open no writer can change the file,
  so each refresh reads one consistent state. Writers stamp rows with their transaction's start time, so a row
  committed after a refresh carries a later stamp than the mark.
* After each incremental refresh the copy checks itself against the file (post count, posts per label); any
  difference (rows deleted by hand, a clock that went backwards) triggers a full rebuild.

Since the file carries a summary (:mod:`aimusic.store.dashboard_summary`), the copy serves only what the
summary cannot: the Overview's and Compare's aggregates under a minimum engagement above the summary's cap or a
text search (and a file whose summary cannot be written). Voices and the Posts view read the file
(:mod:`aimusic.store.dashboard_voices`, :mod:`aimusic.store.dashboard_posts`); the tests keep the copy as the
per-post reference they must match. It is built on first use only (8.5-15 s and ~2 GB at 10 million posts).

Thread-safe: Streamlit serves sessions on threads; :meth:`Facts.sync` takes a lock, queries go through
:meth:`Facts.cursor` (one DuckDB cursor each).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from aimusic.store import dashboard_summary, read_keeper
from aimusic.store.db import Store, StoreError

log = logging.getLogger(__name__)

IN_PROCESS_WAIT = 15.0  # seconds to wait for this process's own other-mode connection to close

#: the columns of ``facts`` (``lang`` is never NULL: 'und' when unknown; ``day`` counts days since 1970-01-01 UTC;
#: ``author_h`` is the author's 64-bit hash, which counts distinct authors at half the cost of the strings: a
#: collision among a million authors has a probability around 1e-8; ``entities`` is never NULL)
FACT_COLUMNS = (
    "source", "post_id", "created_at", "day", "author", "author_h", "community", "lang", "score", "replies", "reposts",
    "engagement", "terms", "entities", "synthetic", "label", "negative", "neutral", "positive",
)

_SELECT = """
    SELECT p.source, p.post_id, p.created_at,
           CAST(epoch_us(p.created_at) // 86400000000 AS INTEGER) AS day,
           p.author, CASE WHEN p.author IS NOT NULL THEN hash(p.author) END AS author_h,
           p.community, coalesce(p.lang, 'und') AS lang, p.score, p.replies, p.reposts,
           coalesce(p.score, 0) + coalesce(p.replies, 0) + coalesce(p.reposts, 0) AS engagement,
           p.terms, coalesce(p.entities, []::VARCHAR[]) AS entities, p.synthetic,
           s.label, s.negative, s.neutral, s.positive
    FROM posts p
    LEFT JOIN scores s ON s.source = p.source AND s.post_id = p.post_id AND s.model = ?"""


class NotAnAimusicDatabase(Exception):
    """The file opens but lacks aimusic's tables (a DuckDB file written by something else)."""


# --- connections ---------------------------------------------------------------------------------------------
def _in_process_conflict(exc: BaseException) -> bool:
    return isinstance(exc, StoreError) and "different configuration" in str(exc).lower()


def _retrying() -> Retrying:
    return Retrying(
        retry=retry_if_exception(_in_process_conflict),
        stop=stop_after_delay(IN_PROCESS_WAIT),
        wait=wait_exponential(multiplier=0.02, max=0.5),
        reraise=True,
    )


@contextlib.contextmanager
def read_connection(db: str | Path, *, keep: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection (raises :class:`StoreError` with a readable message): short-lived, or with
    ``keep`` a cursor on this process's kept connection to the file (:mod:`aimusic.store.read_keeper`: its cache
    stays warm between reads; let go when idle or when a writer waits), short-lived when none can be kept now."""
    with contextlib.ExitStack() as stack:
        con = stack.enter_context(read_keeper.cursor(db)) if keep else None
        if con is None:
            store = Store(db, read_only=True)
            for attempt in _retrying():
                with attempt:
                    con = stack.enter_context(store.connect())
        yield con


def read(db: str | Path, query: Any, *args: Any, **kwargs: Any) -> Any:
    """``query(read_only_connection, *args, **kwargs)`` on this process's kept read-only connection (short-lived
    while a writer waits): how the dashboard runs a named query (from this package's ``*_queries`` modules) on the
    database file."""
    with read_connection(db, keep=True) as con:
        return query(con, *args, **kwargs)


def add_event(db: str | Path, when: date, title: str, url: str | None = None) -> None:
    """Store a user's timeline event (``origin = 'dashboard'``); retried while the file is busy."""
    title = title.strip()
    if not title:
        raise ValueError("an event needs a title")
    if url is not None:
        url = url.strip() or None
        if url and not url.lower().startswith(("http://", "https://")):
            raise ValueError("the link must start with http:// or https://")
    for attempt in _retrying():
        with attempt:
            Store(db).add_event(when, title, url, origin="dashboard")
    log.info("event added to %s: %s %s", db, when, title)


# --- the data version ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DataVersion:
    """What changes whenever anything the dashboard shows changes; cheap to read (one query)."""

    posts: int = 0
    posts_updated: datetime | None = None
    scores: int = 0
    scores_at: datetime | None = None
    runs: int = 0
    runs_at: datetime | None = None
    events: int = 0
    events_at: datetime | None = None
    meta: int = 0
    #: debate signals (stance and argument rows) and alerts; ``None`` on a database that predates them
    signals: int | None = None
    signals_at: datetime | None = None
    alerts: int | None = None
    alerts_at: datetime | None = None

    def key(self) -> str:
        return "|".join("" if v is None else str(v) for v in self.__dict__.values())


_VERSION_SQL = """
    SELECT (SELECT count(*) FROM posts), (SELECT max(updated_at) FROM posts),
           (SELECT count(*) FROM scores), (SELECT max(scored_at) FROM scores),
           (SELECT count(*) FROM runs), (SELECT greatest(max(started_at), max(finished_at)) FROM runs),
           (SELECT count(*) FROM events), (SELECT max(created_at) FROM events),
           (SELECT count(*) FROM meta)"""
_SIGNALS_SQL = """
    SELECT (SELECT count(*) FROM stances) + (SELECT count(*) FROM post_arguments),
           greatest((SELECT max(scored_at) FROM stances), (SELECT max(tagged_at) FROM post_arguments)),
           (SELECT count(*) FROM alerts), (SELECT greatest(max(created_at), max(delivered_at)) FROM alerts)"""


def read_version(con: duckdb.DuckDBPyConnection) -> DataVersion:
    """The data version; :class:`NotAnAimusicDatabase` when the file lacks aimusic's tables."""
    try:
        base = con.execute(_VERSION_SQL).fetchall()[0]
    except duckdb.CatalogException as exc:
        raise NotAnAimusicDatabase(str(exc).splitlines()[0]) from None
    try:
        signals = con.execute(_SIGNALS_SQL).fetchall()[0]
    except duckdb.CatalogException:  # written before the signals' and alerts' migrations (opened read-only)
        signals = (None, None, None, None)
    return DataVersion(*base, *signals)


def data_version(db: str | Path) -> DataVersion:
    """:func:`read_version` through :func:`read` (the kept connection, or a short one)."""
    return read(db, read_version)


def peek_version(db: str | Path, *, wait: float = 1.0) -> DataVersion:
    """:func:`read_version` on a short read-only connection of its own, waiting at most ``wait`` seconds for a
    busy file (then :class:`StoreError`). It leaves the kept connection alone, so a page that only watches for
    new data still lets the file go when idle."""
    with Store(db, read_only=True, lock_wait=wait).connect() as con:
        return read_version(con)


#: how long the dashboard waits for a writer (a monitoring pass) before answering from the in-memory copy instead
SUMMARY_LOCK_WAIT = 2.0


def ensure_summary(db: str | Path) -> bool:
    """Make sure the file's daily summary (:mod:`aimusic.store.dashboard_summary`) covers its posts and scores:
    when it is behind (a write path that does not refresh it, a database of an earlier release), refresh it on a
    short read-write connection (incremental: only the touched days). False when it cannot be written (a
    read-only file, or a writer holding it for more than :data:`SUMMARY_LOCK_WAIT` seconds): the dashboard then
    answers from the facts copy."""
    with read_connection(db) as con:
        if dashboard_summary.is_current(con):
            return True
    try:
        for attempt in _retrying():
            with attempt:
                mode = Store(db, lock_wait=SUMMARY_LOCK_WAIT).refresh_summary()
    except StoreError as exc:
        log.warning("the dashboard summary of %s cannot be refreshed (%s): using the in-memory copy", db, exc)
        return False
    log.info("dashboard summary of %s: %s refresh", db, mode)
    return True


# --- the facts copy ------------------------------------------------------------------------------------------
class Facts:
    """The ``facts`` table for one database file and one sentiment model (see the module docstring)."""

    def __init__(self, db: str, model: str | None) -> None:
        self.db = db
        self.model = model
        self._con = duckdb.connect(":memory:")
        self._con.execute("SET TimeZone = 'UTC'")
        self._lock = threading.Lock()
        self.version: DataVersion | None = None  # what the copy holds (as read from the file)
        self._asked: DataVersion | None = None  # the version last asked for (may be older than ``version``)
        self._posts_mark: datetime | None = None
        self._scores_mark: datetime | None = None
        self.last_sync: dict[str, Any] = {}

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor for one query (safe to use from another thread than other cursors)."""
        if self.version is None:
            raise RuntimeError("Facts.sync() must run before queries")
        return self._con.cursor()

    def run(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        """``query(facts_cursor, *args, **kwargs)``: a named query of :mod:`aimusic.store.dashboard_queries`."""
        return query(self.cursor(), *args, **kwargs)

    def close(self) -> None:
        self._con.close()

    def reset(self) -> None:
        """Forget what the copy holds: the next :meth:`sync` rebuilds it in full."""
        with self._lock:
            self.version = self._asked = None

    def sync(self, version: DataVersion) -> str:
        """Bring the copy up to ``version``; return 'unchanged', 'incremental' or 'full'."""
        with self._lock:
            if version in (self.version, self._asked):
                return "unchanged"
            started = time.perf_counter()
            with read_connection(self.db) as src:
                current = read_version(src)
                mode = "full"
                if self.version is not None and current.posts >= self.version.posts:
                    mode = "incremental" if self._incremental(src) else "full"
                if mode == "full":
                    self._rebuild(src)
                self.version = current
            self._asked = version
            self.last_sync = {"mode": mode, "seconds": time.perf_counter() - started}
            log.debug("facts for %s (%s): %s refresh in %.3fs", self.db, self.model, mode, self.last_sync["seconds"])
            return mode

    # -- internals ----------------------------------------------------------------------------------------
    def _marks(self, src: duckdb.DuckDBPyConnection) -> tuple[datetime | None, datetime | None]:
        return src.execute(
            "SELECT (SELECT max(updated_at) FROM posts), (SELECT max(scored_at) FROM scores WHERE model = ?)",
            [self.model],
        ).fetchall()[0]

    def _rebuild(self, src: duckdb.DuckDBPyConnection) -> None:
        posts_mark, scores_mark = self._marks(src)
        table = src.sql(_SELECT, params=[self.model]).to_arrow_table()
        con = self._con
        con.execute("BEGIN")
        try:
            con.execute("DROP TABLE IF EXISTS facts")
            con.register("_facts_in", table)
            con.execute("CREATE TABLE facts AS SELECT * FROM _facts_in")
            con.unregister("_facts_in")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self._posts_mark, self._scores_mark = posts_mark, scores_mark

    def _incremental(self, src: duckdb.DuckDBPyConnection) -> bool:
        """Apply changes since the marks; False when the copy no longer matches the file (rebuild)."""
        posts_mark, scores_mark = self._marks(src)
        changed = (
            src.sql(_SELECT + " WHERE p.updated_at > ?", params=[self.model, self._posts_mark]).to_arrow_table()
            if self._posts_mark is not None
            else src.sql(_SELECT, params=[self.model]).to_arrow_table()
        )
        since = "AND scored_at > ?" if self._scores_mark is not None else ""
        rescored = src.sql(
            f"SELECT source, post_id, label, negative, neutral, positive FROM scores WHERE model = ? {since}",
            params=[self.model, self._scores_mark] if since else [self.model],
        ).to_arrow_table()
        expected = src.execute("SELECT count(*) FROM posts").fetchall()[0][0]
        con = self._con
        con.execute("BEGIN")
        try:
            if changed.num_rows:
                con.register("_chg", changed)
                con.execute(
                    "DELETE FROM facts USING _chg WHERE facts.source = _chg.source AND facts.post_id = _chg.post_id"
                )
                con.execute("INSERT INTO facts SELECT * FROM _chg")
                con.unregister("_chg")
            if rescored.num_rows:
                con.register("_sc", rescored)
                con.execute(
                    """UPDATE facts SET label = _sc.label, negative = _sc.negative, neutral = _sc.neutral,
                         positive = _sc.positive FROM _sc
                       WHERE facts.source = _sc.source AND facts.post_id = _sc.post_id"""
                )
                con.unregister("_sc")
            have = con.execute("SELECT count(*) FROM facts").fetchall()[0][0]
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        if have != expected:
            log.info("facts copy of %s drifted (%s rows, file has %s): rebuilding", self.db, have, expected)
            return False
        if not self._labels_match(src):
            log.info("facts labels of %s drifted from the file: rebuilding", self.db)
            return False
        self._posts_mark, self._scores_mark = posts_mark, scores_mark
        return True

    def _labels_match(self, src: duckdb.DuckDBPyConnection) -> bool:
        """Cheap check: the number of posts per label agrees between the copy and the file's scores."""
        mine = self._con.cursor().execute(
            "SELECT label, count(*) FROM facts WHERE label IS NOT NULL GROUP BY label ORDER BY label"
        ).fetchall()
        theirs = src.execute(
            "SELECT label, count(*) FROM scores WHERE model = ? AND label IS NOT NULL GROUP BY label ORDER BY label",
            [self.model],
        ).fetchall()
        return mine == theirs

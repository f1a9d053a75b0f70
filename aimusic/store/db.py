"""DuckDB storage: the Store (connections, bulk idempotent upserts of posts and scores, cursors, runs, meta).

Connections are short-lived: every public method opens one, does its work in a transaction and closes it,
so a dashboard reading the same file waits milliseconds, not minutes. DuckDB lets only one process open a
file while a writer holds it, so opening retries with backoff on lock conflicts (readers and writers alike). The
dashboard keeps one read-only connection open while it is used; a writer refused the file announces itself so it
is let go (:mod:`aimusic.store.read_keeper`).

Writes go through Arrow tables (never ``executemany``): a batch is deduplicated on its key first (the most
recently fetched copy wins), new keys are inserted, and existing rows are updated only when something
changed (text, engagement, ...), so re-upserting unchanged data writes nothing.

The schema and its migrations are :mod:`aimusic.store.schema`; named reads are :mod:`aimusic.store.queries`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from aimusic.core.config import cached_settings
from aimusic.core.records import POST_COLUMNS, POST_SCHEMA
from aimusic.store import dashboard_summary, read_keeper, schema
from aimusic.store.pseudonyms import pseudonymize_table
from aimusic.store.schema import SCHEMA_VERSION, StoreError, migrate, rollback

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["LOCK_WAIT_SECONDS", "SCHEMA_VERSION", "Store", "StoreError", "UpsertResult", "migrate", "rollback"]

log = logging.getLogger(__name__)

LOCK_WAIT_SECONDS = 30.0  # how long to keep retrying when another process holds the file


_UPDATABLE = [c for c in POST_COLUMNS if c not in ("source", "post_id")]
_CHANGED = " OR ".join(
    f"p.{c} IS DISTINCT FROM i.{c}"
    for c in ("text_md5", "title", "score", "replies", "reposts", "author", "url", "nsfw", "terms")
) + " OR (i.lang IS NOT NULL AND p.lang IS DISTINCT FROM i.lang)"
# A post without a platform language tag gets a detected one (sentiment step, aimusic/core/languages.py): a re-fetch
# without a tag keeps it while the text is unchanged, and clears it (to detect again) when the text changed.
_LANG_SET = "lang = coalesce(i.lang, CASE WHEN p.text_md5 = i.text_md5 THEN p.lang END)"


@dataclass(frozen=True)
class UpsertResult:
    received: int
    new: int
    updated: int

    @property
    def unchanged(self) -> int:
        return self.received - self.new - self.updated


def _is_lock_error(exc: BaseException) -> bool:
    msg = str(exc).lower()
    return "lock" in msg and ("conflicting" in msg or "could not set" in msg)


def _is_disk_error(exc: BaseException) -> bool:
    msg = str(exc).lower()
    return any(s in msg for s in ("no space left", "file too large", "disk full", "could not write file"))


_WRITE_LOCKS: dict[str, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def _write_lock(path: Path) -> threading.Lock:
    key = str(path.resolve())
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(key, threading.Lock())


class Store:
    """One DuckDB file. Cheap to construct; every method opens and closes its own connection.

    Writers in one process (e.g. sources collected on parallel threads) take turns through a per-file lock;
    writers in other processes are waited for through DuckDB's file lock (see :meth:`connect`).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        read_only: bool = False,
        lock_wait: float = LOCK_WAIT_SECONDS,
        pseudonymize_key: str | None = None,
        migrate: bool | None = None,
    ) -> None:
        """Cheap: no settings are parsed and, once this process has migrated the file, no connection is opened.

        ``pseudonymize_key`` stores author handles as keyed hashes; ``None`` means ``AIMUSIC_PSEUDONYMIZE_KEY``
        (read when a write needs it, from cached settings), ``""`` none. A writable store brings the file to
        the current schema once per file and process; ``migrate=True`` checks again, ``False`` never.
        """
        self.path = Path(path)
        self.read_only = read_only
        self.lock_wait = lock_wait
        self._pseudonymize_key = pseudonymize_key
        if not read_only and migrate is not False:
            self._prepare_file()
            if migrate or not schema.is_migrated(self.path):
                with self.connect() as con:
                    schema.migrate(con, path=self.path)
                schema.mark_migrated(self.path)

    @property
    def pseudonymize_key(self) -> str | None:
        if self._pseudonymize_key is None:
            secret = cached_settings().pseudonymize_key
            return secret.get_secret_value() if secret else None
        return self._pseudonymize_key or None

    # -- connections --------------------------------------------------------------------------------------
    def _prepare_file(self) -> None:
        parent = self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the data directory {parent}: {exc.strerror}. "
                "Create it or pass --db with a writable path."
            ) from None

    @contextlib.contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection (read-only if the store is), retried while another process holds a lock."""
        if self.read_only and not self.path.exists():
            raise StoreError(f"database {self.path} does not exist yet: run `aimusic run` or `aimusic demo`")
        guard = contextlib.nullcontext() if self.read_only else _write_lock(self.path)
        with guard, self._open() as con:
            try:
                yield con
            except duckdb.Error as exc:  # disk full, file too large, permission lost mid-run
                if isinstance(exc, duckdb.IOException) or _is_disk_error(exc):
                    raise StoreError(self._explain(exc)) from exc
                raise

    @contextlib.contextmanager
    def _open(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Connect, retrying on lock conflicts. A writer first has this process's kept read connection closed, and
        while another process holds the file it announces itself, so a dashboard's kept connection is let go
        (:mod:`aimusic.store.read_keeper`)."""
        deadline = time.monotonic() + self.lock_wait
        delay = 0.02
        if not self.read_only:
            read_keeper.writer_arriving(self.path, self.lock_wait)
        try:
            while True:
                try:
                    con = duckdb.connect(str(self.path), read_only=self.read_only)
                    break
                except duckdb.Error as exc:
                    if _is_lock_error(exc) and time.monotonic() < deadline:
                        if not self.read_only:
                            read_keeper.announce_writer(self.path)
                        time.sleep(delay)
                        delay = min(delay * 2, 0.5)
                        continue
                    if not self.read_only and delay > 0.02:
                        read_keeper.withdraw_writer(self.path)
                    raise StoreError(self._explain(exc)) from None
            if not self.read_only and delay > 0.02:  # it waited, so it announced itself: in now
                read_keeper.withdraw_writer(self.path)
            if self.read_only:  # no kept connection opens on the same database instance meanwhile
                read_keeper.reader_opened(self.path)
            try:
                con.execute("SET TimeZone = 'UTC'")
                yield con
            finally:
                try:
                    con.close()
                finally:
                    if self.read_only:
                        read_keeper.reader_closed(self.path)
        finally:
            if not self.read_only:
                read_keeper.writer_left(self.path)

    def _explain(self, exc: BaseException) -> str:
        msg = str(exc)
        low = msg.lower()
        if _is_lock_error(exc):
            return (
                f"database {self.path} is busy: another aimusic process holds it for writing and did not "
                f"release it within {self.lock_wait:.0f}s. Wait for it to finish and retry."
            )
        if _is_disk_error(exc):
            return (
                f"cannot write {self.path}: the disk is full or a file size limit was hit ({msg.splitlines()[0]}). "
                "Free some space (or pass --db on another disk) and run again: committed data is safe."
            )
        if "read-only" in low or "permission denied" in low or "readonly" in low or "read only" in low:
            return (
                f"database {self.path} cannot be written ({msg.splitlines()[0]}). "
                "Fix the file's permissions or pass --db."
            )
        if "not a valid duckdb" in low or "corrupt" in low or "magic" in low or "unable to open" in low:
            return (
                f"{self.path} is not a usable DuckDB database ({msg.splitlines()[0]}). Move it aside and run "
                "again to start a new one, or pass --db with another path."
            )
        return f"cannot open database {self.path}: {msg.splitlines()[0]}"

    # -- posts --------------------------------------------------------------------------------------------
    def upsert_posts(
        self, posts: pa.Table, *, cursors: dict[tuple[str, str], str] | None = None
    ) -> UpsertResult:
        """Insert new posts and update changed ones, in one transaction with the given cursor updates.

        ``posts`` must have :data:`POST_SCHEMA`'s columns. Cursors are written in the same transaction, so a
        cursor never moves past data that is not committed.
        """
        if posts.num_rows == 0 and not cursors:
            return UpsertResult(0, 0, 0)
        if "relevance" not in posts.column_names:  # tables built before the relevance reason existed
            posts = posts.append_column("relevance", pa.nulls(posts.num_rows, pa.string()))
        incoming = posts.select(list(POST_COLUMNS)).cast(POST_SCHEMA)
        key = self.pseudonymize_key
        if key:
            incoming = pseudonymize_table(incoming, key)
        with self.connect() as con:
            con.execute("BEGIN")
            try:
                result = _upsert_posts(con, incoming)
                if cursors:
                    _set_cursors(con, cursors)
                con.execute("COMMIT")
            except BaseException:
                rollback(con)
                raise
        return result

    def count(self, table: str) -> int:
        if table not in {"posts", "scores", "runs", "cursors", "events", "meta"}:
            raise ValueError(f"unknown table {table!r}")
        with self.connect() as con:
            return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    # -- cursors ------------------------------------------------------------------------------------------
    def get_cursors(self, source: str) -> dict[str, str]:
        with self.connect() as con:
            rows = con.execute("SELECT key, value FROM cursors WHERE source = ?", [source]).fetchall()
        return dict(rows)

    def set_cursors(self, cursors: dict[tuple[str, str], str]) -> None:
        with self.connect() as con:
            _set_cursors(con, cursors)

    # -- scores -------------------------------------------------------------------------------------------
    # "No current score": no row from this model, or one computed on older text. Written as NOT EXISTS:
    # DuckDB 2.0.1 ignores LIMIT on the equivalent LEFT JOIN ... IS NULL form.
    _UNSCORED = """FROM posts p WHERE NOT EXISTS (
                     SELECT 1 FROM scores s WHERE s.source = p.source AND s.post_id = p.post_id
                       AND s.model = ? AND s.text_md5 = p.text_md5)"""

    def unscored(self, model: str, limit: int) -> pa.Table:
        """Up to ``limit`` posts without a current score from ``model``."""
        with self.connect() as con:
            return con.sql(
                f"SELECT p.source, p.post_id, p.title, p.text, p.lang, p.text_md5 {self._UNSCORED} LIMIT ?",
                params=[model, limit],
            ).to_arrow_table()

    def count_unscored(self, model: str) -> int:
        with self.connect() as con:
            return int(con.execute(f"SELECT count(*) {self._UNSCORED}", [model]).fetchone()[0])

    def upsert_scores(self, scores: pa.Table) -> int:
        """Write scores (columns: source, post_id, model, label, negative, neutral, positive, status,
        text_md5); a re-score of the same post and model replaces the old row."""
        if scores.num_rows == 0:
            return 0
        with self.connect() as con:
            con.register("_scores_in", scores)
            con.execute(
                """INSERT INTO scores BY NAME
                   SELECT source, post_id, model, label, negative, neutral, positive, status, text_md5,
                          now() AS scored_at FROM _scores_in
                   ON CONFLICT (source, post_id, model) DO UPDATE SET
                     label = excluded.label, negative = excluded.negative, neutral = excluded.neutral,
                     positive = excluded.positive, status = excluded.status, text_md5 = excluded.text_md5,
                     scored_at = excluded.scored_at"""
            )
            con.unregister("_scores_in")
        return scores.num_rows

    # -- runs ---------------------------------------------------------------------------------------------
    def record_run(self, row: dict[str, Any]) -> None:
        """Insert or replace one ``runs`` row (keyed by run_id and source)."""
        cols = [
            "run_id", "source", "started_at", "finished_at", "status", "fetched", "new", "updated",
            "irrelevant", "skipped", "failed", "scored", "model", "error",
        ]
        values = [row.get(c) for c in cols]
        with self.connect() as con:
            con.execute(
                f"INSERT OR REPLACE INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
                values,
            )
            if row.get("finished_at") is not None:  # a run ended: bring the dashboard's summary up to date
                try:
                    dashboard_summary.refresh(con)
                except duckdb.Error as exc:  # the dashboard refreshes it when it finds it behind
                    log.warning("dashboard summary not refreshed after the run: %s", str(exc).splitlines()[0])

    def refresh_summary(self, *, full: bool = False) -> str:
        """Bring the dashboard's daily summary up to the posts and scores (:mod:`aimusic.store.dashboard_summary`):
        'unchanged', 'incremental' (only the days touched since the last refresh) or 'full'."""
        with self.connect() as con:
            return dashboard_summary.refresh(con, full=full)

    # -- events and meta ----------------------------------------------------------------------------------
    def add_event(self, when: date, title: str, url: str | None = None, origin: str = "user") -> None:
        with self.connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?, now())", [when, title.strip(), url, origin]
            )

    def set_meta(self, key: str, value: str) -> None:
        with self.connect() as con:
            con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, value])

    def get_meta(self, key: str) -> str | None:
        with self.connect() as con:
            row = con.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    # -- reads --------------------------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Run a parameterised read and return a pandas DataFrame: for tests and exploration. Library code
        outside :mod:`aimusic.store` calls the named queries (:mod:`aimusic.store.queries` and siblings)."""
        with self.connect() as con:
            return con.execute(sql, list(params or [])).df()

    def sources(self) -> list[str]:
        """The sources that have stored posts, sorted."""
        with self.connect() as con:
            return [r[0] for r in con.execute("SELECT DISTINCT source FROM posts ORDER BY source").fetchall()]

    def file_size(self) -> int:
        """Bytes on disk: the database file and its write-ahead log."""
        wal = self.path.with_name(self.path.name + ".wal")
        return self.path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def _upsert_posts(con: duckdb.DuckDBPyConnection, incoming: pa.Table) -> UpsertResult:
    con.register("_batch", incoming)
    try:
        repeated = con.execute(
            "SELECT count(*) FROM (SELECT 1 FROM _batch GROUP BY source, post_id HAVING count(*) > 1)"
        ).fetchone()[0]
        # the most recently fetched copy of a repeated key wins; the check is cheap, the dedupe is not
        dedupe = (
            "QUALIFY row_number() OVER (PARTITION BY source, post_id ORDER BY fetched_at DESC) = 1" if repeated else ""
        )
        con.execute(f"CREATE OR REPLACE TEMP TABLE _incoming AS SELECT *, md5(text) AS text_md5 FROM _batch {dedupe}")
        if con.execute("SELECT count(*) FROM takedowns").fetchall()[0][0]:
            # posts and authors under a takedown request are never stored again
            con.execute(
                """DELETE FROM _incoming i USING takedowns t
                   WHERE (t.source = '' OR t.source = i.source)
                     AND ((t.kind = 'post' AND t.value_sha256 = sha256(i.post_id))
                       OR (t.kind = 'author' AND t.value_sha256 = sha256(i.author)))"""
            ).fetchall()
    finally:
        con.unregister("_batch")
    received = incoming.num_rows
    cols = ", ".join(POST_COLUMNS)
    # update first, so rows inserted by this batch are not joined again
    sets = ", ".join(f"{c} = coalesce(i.{c}, p.{c})" if c == "relevance" else f"{c} = i.{c}"
                     for c in [*_UPDATABLE, "text_md5"] if c not in ("fetched_at",))
    updated = con.execute(
        f"""UPDATE posts p SET {sets}, fetched_at = i.fetched_at, updated_at = now()
            FROM _incoming i
            WHERE p.source = i.source AND p.post_id = i.post_id AND ({_CHANGED})"""
    ).fetchone()[0]
    new = con.execute(
        f"""INSERT INTO posts ({cols}, text_md5, first_seen_at, updated_at)
            SELECT {cols}, text_md5, now(), now() FROM _incoming i
            WHERE NOT EXISTS (SELECT 1 FROM posts p WHERE p.source = i.source AND p.post_id = i.post_id)"""
    ).fetchone()[0]
    con.execute("DROP TABLE _incoming")
    return UpsertResult(received=received, new=int(new), updated=int(updated))


def _set_cursors(con: duckdb.DuckDBPyConnection, cursors: dict[tuple[str, str], str]) -> None:
    table = pa.table(
        {
            "source": [k[0] for k in cursors],
            "key": [k[1] for k in cursors],
            "value": [str(v) for v in cursors.values()],
        }
    )
    con.register("_cursors_in", table)
    con.execute(
        """INSERT INTO cursors SELECT source, key, value, now() FROM _cursors_in
           ON CONFLICT (source, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"""
    )
    con.unregister("_cursors_in")

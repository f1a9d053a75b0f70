"""One read-only connection per database file, kept open through a burst of reads and let go as soon as a writer
wants the file. No Streamlit here.

Why: DuckDB keeps the blocks it has read (decompressed) in memory for as long as the database is open. A dashboard
that opens a new read-only connection for every query starts each one with an empty cache and pays for opening
the file: at 10 million posts that is most of a query's time (a Posts page 150-350 ms cold, 70-100 ms warm). The
dashboard's reads (:func:`aimusic.store.dashboard_facts.read`) therefore go through :func:`cursor`: a cursor on one
read-only connection per file, kept by this process while reads keep coming.

Why it is let go: while any process holds the file open, even read-only, no other process can open it for
writing (``Conflicting lock``). The kept connection is closed

* after :data:`IDLE_SECONDS` without a read (a watcher thread checks every :data:`POLL_SECONDS`);
* as soon as a writer of *another process* waits for the file: :class:`aimusic.store.db.Store` touches a marker
  file of its own next to the database (:func:`announce_writer`, ``<file>.writer.<pid>``: one per writer process,
  so a writer that gets in removes only its own, never another's that still waits) while its open is refused,
  and the watcher
  closes the kept connection when no read is in flight; reads that arrive meanwhile wait for the writer (up to
  :data:`WRITER_PRIORITY_SECONDS`) and then use a short connection of their own (the caller's fallback);
* before a writer of *this process* opens the file (:func:`writer_arriving`; DuckDB refuses a read-write
  connection in a process that has the file open read-only);
* when the file was replaced (``aimusic compact`` swaps in a rewritten file): the next read reopens it.

So a monitoring run waits at most for the reads in flight plus one poll and its own next retry (up to 0.5 s
later), never for the idle time (short connections of the dashboard, e.g. its facts copy or an export, are waited
for as before); a writer that cannot announce itself (an older release, the DuckDB shell, a
read-only directory) gets in once the dashboard has had no read for :data:`IDLE_SECONDS` (within
:class:`~aimusic.store.db.Store`'s 30 s of retries when the dashboard is idle). Nothing is stale: no process
can write the file while it is open here, and a reopened connection reads the file as it is (one is opened only
while no other connection of this process is open on the file: DuckDB would hand it the instance already open,
which after ``aimusic compact`` could be the replaced file).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

log = logging.getLogger(__name__)

IDLE_SECONDS = 10.0  # close the kept connection after this long without a read
POLL_SECONDS = 0.1  # how often the watcher looks at the idle time and the writer marker
WRITER_FRESH_SECONDS = 2.0  # a marker not touched for this long is left over (its writer died): ignored
WRITER_STALE_SECONDS = 60.0  # ... and one not touched for this long is removed (a waiting writer touches its own
# marker every 0.5 s at most, and touching creates it again)
_MARKER = ".writer."  # <database>.writer.<pid>
WRITER_PRIORITY_SECONDS = 1.0  # how long a read waits for an announced writer (about two of its retries) before
# it uses a connection of its own: a writer refused by someone else must not make every dashboard query wait long


def writer_marker(path: str | Path, pid: int | None = None) -> Path:
    """The file a waiting writer touches: ``<database>.writer.<pid>`` (next to the resolved file), one per writer
    process (``pid``: this process by default), so one writer getting in never withdraws another's announcement."""
    path = Path(path).resolve()
    return path.with_name(f"{path.name}{_MARKER}{os.getpid() if pid is None else int(pid)}")


def announce_writer(path: str | Path) -> None:
    """A writer of this process is waiting for ``path`` (called on each refused open; best effort)."""
    with contextlib.suppress(OSError):
        writer_marker(path).touch()


def withdraw_writer(path: str | Path) -> None:
    """This process's writer got in or gave up: its own marker goes (other writers' stay)."""
    with contextlib.suppress(OSError):
        writer_marker(path).unlink(missing_ok=True)


def writer_markers(path: str | Path) -> list[Path]:
    """Every writer marker of ``path``: ``<database>.writer.<pid>``, and ``<database>.writer`` (the one marker that
    releases before per-process markers touched; still honoured, so such a writer is let in too)."""
    path = Path(path).resolve()
    legacy = path.name + _MARKER[:-1]
    try:
        with os.scandir(path.parent) as entries:
            return [Path(e.path) for e in entries
                    if e.name == legacy or (e.name.startswith(legacy + ".") and e.name[len(legacy) + 1:].isdigit())]
    except OSError:
        return []


def writer_waiting(path: str | Path) -> bool:
    """Whether a writer announced itself within the last :data:`WRITER_FRESH_SECONDS`. Markers not touched for
    :data:`WRITER_STALE_SECONDS` were left by writers that died: they are removed (best effort)."""
    now, fresh = time.time(), False
    for marker in writer_markers(path):
        try:
            age = now - marker.stat().st_mtime
        except OSError:  # withdrawn meanwhile
            continue
        if age < WRITER_FRESH_SECONDS:
            fresh = True
        elif age > WRITER_STALE_SECONDS:
            with contextlib.suppress(OSError):
                marker.unlink()
    return fresh


@dataclass
class _Kept:
    con: duckdb.DuckDBPyConnection
    ident: tuple[int, int] | None  # (device, inode) of the file when opened: a replaced file is reopened
    in_use: int = 0
    last_used: float = field(default_factory=time.monotonic)
    failed: bool = False
    closed: bool = False
    opened: float = field(default_factory=time.monotonic)


_GUARD = threading.Condition()
_KEPT: dict[str, _Kept] = {}
_WRITERS: dict[str, int] = {}  # writers of this process that are opening or hold the file, per file
# other connections of this process to the file (short read-only ones through Store): DuckDB hands a new connection
# to a path the database instance already open in the process, even if the file was replaced since (``aimusic
# compact``), so a kept connection is opened only when no other one is: it then reads the file as it is now
_READERS: dict[str, int] = {}
_STATS = {"opened": 0, "closed": 0}


def _key(path: str | Path) -> str:
    return str(Path(path).resolve())


def _ident(key: str) -> tuple[int, int] | None:
    try:
        st = os.stat(key)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _must_go(key: str, kept: _Kept) -> bool:
    return kept.failed or _WRITERS.get(key, 0) > 0 or writer_waiting(key) or _ident(key) != kept.ident


def _close(key: str, kept: _Kept, why: str) -> None:
    """Close ``kept`` (no read in flight; the guard is held)."""
    if kept.closed:
        return
    kept.closed = True
    _KEPT.pop(key, None)
    try:
        kept.con.close()
    except duckdb.Error as exc:  # nothing to save: it only read
        log.debug("closing the kept connection to %s: %s", key, exc)
    _STATS["closed"] += 1
    log.debug("kept read connection to %s closed (%s) after %.1fs", key, why, time.monotonic() - kept.opened)
    _GUARD.notify_all()


def _watch(key: str, kept: _Kept) -> None:
    while True:
        time.sleep(POLL_SECONDS)
        with _GUARD:
            if kept.closed:
                return
            if kept.in_use:
                continue
            if _must_go(key, kept):
                _close(key, kept, "a writer waits")
            elif time.monotonic() - kept.last_used > IDLE_SECONDS:
                _close(key, kept, "idle")
            if kept.closed:
                return


def _open(key: str) -> _Kept | None:
    """Open the kept connection to ``key``; called with the guard held, and ``duckdb.connect`` runs under it (tens
    of milliseconds for a large file): opening it outside the guard let a writer of this process and short
    read-only connections collide with the opening one (DuckDB refuses a second configuration of an open file),
    which a stress test of three reader threads and a writer thread per file showed as failed writes."""
    ident = _ident(key)
    try:
        con = duckdb.connect(key, read_only=True)
    except duckdb.Error as exc:  # a writer holds the file, or this process has it open read-write: no keeping
        log.debug("no kept connection to %s: %s", key, str(exc).splitlines()[0])
        return None
    kept = _Kept(con, ident)
    _KEPT[key] = kept
    _STATS["opened"] += 1
    threading.Thread(target=_watch, args=(key, kept), name="aimusic-read-keeper", daemon=True).start()
    return kept


def _checkout(key: str) -> tuple[_Kept, duckdb.DuckDBPyConnection] | None:
    deadline = time.monotonic() + WRITER_PRIORITY_SECONDS
    with _GUARD:
        while True:
            kept = _KEPT.get(key)
            busy = False  # a connection that must go still has reads in flight: wait for it to close
            if kept is not None and _must_go(key, kept):
                if kept.in_use:
                    busy, kept = True, None
                else:
                    _close(key, kept, "a writer waits or the file changed")
                    kept = None
            writer = _WRITERS.get(key, 0) > 0 or writer_waiting(key)
            if kept is None and not busy and not writer and not _READERS.get(key) and Path(key).exists():
                kept = _open(key)
            if kept is not None:
                break
            if not (busy or writer) or time.monotonic() >= deadline:
                return None  # the caller opens a short connection (and waits for a writer through its retries)
            _GUARD.wait(POLL_SECONDS)  # a writer first: let the kept connection close and the writer pass
        kept.in_use += 1
        kept.last_used = time.monotonic()
    try:
        cur = kept.con.cursor()
        cur.execute("SET TimeZone = 'UTC'")
    except BaseException:
        _checkin(key, kept, failed=True)
        raise
    return kept, cur


def _checkin(key: str, kept: _Kept, *, failed: bool) -> None:
    with _GUARD:
        kept.in_use -= 1
        kept.last_used = time.monotonic()
        kept.failed = kept.failed or failed
        if not kept.in_use and _must_go(key, kept):
            _close(key, kept, "a writer waits" if not kept.failed else "a read failed")


@contextlib.contextmanager
def cursor(path: str | Path) -> Iterator[duckdb.DuckDBPyConnection | None]:
    """A cursor on the kept read-only connection to ``path`` (opened if needed), or ``None`` when none can be kept
    now (a writer waits or holds the file, or the file does not exist): the caller then opens a short connection."""
    key = _key(path)
    got = _checkout(key)
    if got is None:
        yield None
        return
    kept, cur = got
    failed = False
    try:
        yield cur
    except duckdb.Error:
        failed = True  # an unexpected state of the connection is not kept
        raise
    finally:
        with contextlib.suppress(duckdb.Error):
            cur.close()
        _checkin(key, kept, failed=failed)


def writer_arriving(path: str | Path, wait: float) -> None:
    """A writer of this process is about to open ``path``: no connection is kept from now until
    :func:`writer_left`, and the kept one is closed once its reads in flight are done (waiting up to ``wait``
    seconds for them)."""
    key = _key(path)
    deadline = time.monotonic() + wait
    with _GUARD:
        _WRITERS[key] = _WRITERS.get(key, 0) + 1
        try:
            while (kept := _KEPT.get(key)) is not None:
                if not kept.in_use:
                    _close(key, kept, "a writer of this process")
                    break
                if time.monotonic() >= deadline:
                    break  # the writer's open then reports the conflict
                _GUARD.wait(POLL_SECONDS)
        except BaseException:  # e.g. Ctrl-C while waiting: the caller's writer_left will not run
            _leave(_WRITERS, key)
            raise


def writer_left(path: str | Path) -> None:
    """The writer announced by :func:`writer_arriving` closed its connection."""
    with _GUARD:
        _leave(_WRITERS, _key(path))
        _GUARD.notify_all()


def reader_opened(path: str | Path) -> None:
    """A short read-only connection of this process to ``path`` is open (see :data:`_READERS`)."""
    key = _key(path)
    with _GUARD:
        _READERS[key] = _READERS.get(key, 0) + 1


def reader_closed(path: str | Path) -> None:
    """The connection announced by :func:`reader_opened` is closed."""
    with _GUARD:
        _leave(_READERS, _key(path))


def _leave(counts: dict[str, int], key: str) -> None:
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


def release_all() -> None:
    """Close every kept connection that has no read in flight (tests, shutdown)."""
    with _GUARD:
        for key, kept in list(_KEPT.items()):
            if not kept.in_use:
                _close(key, kept, "released")


def kept_files() -> list[str]:
    """The files this process keeps open now (resolved paths)."""
    with _GUARD:
        return sorted(_KEPT)


def stats() -> dict[str, int]:
    """How many kept connections were opened and closed so far in this process."""
    with _GUARD:
        return dict(_STATS)

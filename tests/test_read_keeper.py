"""The dashboard's kept read-only connection (aimusic/store/read_keeper.py): reused between reads, let go when idle,
when a writer of this process or of another one wants the file, or when the file was replaced; a monitoring run
in another process always gets in within its bounded wait, and nothing it writes is lost."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from writer_testkit import read_while_running, spawn

from aimusic.store import read_keeper
from aimusic.store.dashboard_facts import read, read_version
from aimusic.store.db import Store

#: a writer process: N short writes (a run opens and closes the file per batch), each with a bounded wait
_WRITER = """
import json, sys, time
from aimusic.store.db import Store
db, n, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
prefix = sys.argv[4] if len(sys.argv) > 4 else "w"
store = Store(db, lock_wait=wait)
waits = []
for i in range(n):
    started = time.monotonic()
    store.set_meta(f"{prefix}{i}", str(i))
    waits.append(time.monotonic() - started)
    time.sleep(0.05)
print(json.dumps({"written": n, "max_wait": max(waits)}))
"""


@pytest.fixture(autouse=True)
def _released() -> Iterator[None]:
    read_keeper.release_all()
    yield
    read_keeper.release_all()


def _meta(con: object) -> dict[str, str]:
    return dict(con.execute("SELECT key, value FROM meta").fetchall())  # type: ignore[attr-defined]


def test_reads_reuse_one_kept_connection(tmp_path: Path):
    db = tmp_path / "a.duckdb"
    Store(db).set_meta("k", "1")
    before = read_keeper.stats()["opened"]
    for _ in range(5):
        assert read(db, _meta)["k"] == "1"
    assert read_keeper.stats()["opened"] == before + 1
    assert read_keeper.kept_files() == [str(db.resolve())]


def test_an_idle_kept_connection_is_let_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(read_keeper, "IDLE_SECONDS", 0.2)
    db = tmp_path / "a.duckdb"
    Store(db)
    read(db, read_version)
    deadline = time.monotonic() + 10
    while read_keeper.kept_files() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert read_keeper.kept_files() == []


def test_a_writer_of_this_process_gets_in_and_the_next_read_sees_it(tmp_path: Path):
    db = tmp_path / "a.duckdb"
    Store(db).set_meta("k", "1")
    assert read(db, _meta)["k"] == "1"  # kept open now
    Store(db).set_meta("k", "2")  # would fail ("different configuration") if the kept connection stayed open
    assert read(db, _meta)["k"] == "2"


def test_a_replaced_file_is_reopened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(read_keeper, "IDLE_SECONDS", 600.0)
    db, other = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    Store(db).set_meta("k", "old")
    shutil.copy(db, other)
    Store(other).set_meta("k", "new")
    assert read(db, _meta)["k"] == "old"
    os.replace(other, db)  # what `aimusic compact` does once the rewritten copy is checked
    assert read(db, _meta)["k"] == "new"


def test_no_connection_is_kept_on_a_replaced_file_while_a_short_one_holds_the_old_one(tmp_path: Path,
                                                                                     monkeypatch: pytest.MonkeyPatch):
    """DuckDB hands a new connection the database already open in the process; a kept connection opened while a
    short one still held the replaced file would read the old file for as long as it is kept."""
    monkeypatch.setattr(read_keeper, "IDLE_SECONDS", 600.0)
    db, other = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    Store(db).set_meta("k", "old")
    shutil.copy(db, other)
    Store(other).set_meta("k", "new")
    with Store(db, read_only=True).connect():  # e.g. the facts copy or an export reading while compact swaps
        os.replace(other, db)
        read(db, _meta)
        assert read_keeper.kept_files() == []
    assert read(db, _meta)["k"] == "new" and read_keeper.kept_files() == [str(db.resolve())]


def test_a_stale_writer_marker_is_ignored(tmp_path: Path):
    db = tmp_path / "a.duckdb"
    Store(db).set_meta("k", "v")
    marker = read_keeper.writer_marker(db)
    marker.touch()
    old = time.time() - 10 * read_keeper.WRITER_FRESH_SECONDS  # left by a writer that died
    os.utime(marker, (old, old))
    assert not read_keeper.writer_waiting(db)
    read(db, _meta)
    assert read_keeper.kept_files() == [str(db.resolve())]


def test_each_writer_has_its_own_marker_and_removes_only_its_own(tmp_path: Path):
    """Two writers wait for the file: the first one in withdraws its announcement, the second's still holds."""
    db = tmp_path / "a.duckdb"
    Store(db).set_meta("k", "v")
    other = read_keeper.writer_marker(db, pid=os.getpid() + 1)  # a writer of another process, still waiting
    assert other != read_keeper.writer_marker(db) and other.name == f"a.duckdb.writer.{os.getpid() + 1}"
    other.touch()
    read_keeper.announce_writer(db)  # this process's writer waits too
    assert sorted(read_keeper.writer_markers(db)) == sorted([other, read_keeper.writer_marker(db)])
    read_keeper.withdraw_writer(db)  # ... and gets in first
    assert read_keeper.writer_markers(db) == [other]
    assert read_keeper.writer_waiting(db)  # the other writer is still announced: no connection is kept for now
    read(db, _meta)
    assert read_keeper.kept_files() == []
    other.unlink()
    read(db, _meta)
    assert read_keeper.kept_files() == [str(db.resolve())]


def test_stale_markers_are_ignored_then_removed_and_the_old_single_marker_still_counts(tmp_path: Path):
    db = tmp_path / "a.duckdb"
    Store(db).set_meta("k", "v")
    ignored, removed = (read_keeper.writer_marker(db, pid=p) for p in (11, 12))
    ages = (2 * read_keeper.WRITER_FRESH_SECONDS, 2 * read_keeper.WRITER_STALE_SECONDS)
    for marker, age in zip((ignored, removed), ages, strict=True):
        marker.touch()
        os.utime(marker, (time.time() - age, time.time() - age))
    (tmp_path / "a.duckdb.writer.tmp").touch()  # not a marker: left alone
    assert not read_keeper.writer_waiting(db)
    assert read_keeper.writer_markers(db) == [ignored] and not removed.exists()
    assert (tmp_path / "a.duckdb.writer.tmp").exists()
    legacy = tmp_path / "a.duckdb.writer"  # touched by a writer of an earlier release
    legacy.touch()
    assert read_keeper.writer_waiting(db)


def test_two_writer_processes_get_in_while_the_dashboard_keeps_reading(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch):
    """Two writers at once, each announcing itself while refused: when one gets in and withdraws its marker, the
    other's still lets the kept connection go. Every write of both gets in, each within its 5 s."""
    monkeypatch.setattr(read_keeper, "IDLE_SECONDS", 600.0)
    db = tmp_path / "a.duckdb"
    Store(db).set_meta("start", "0")
    read(db, read_version)
    first, second = (spawn(["-c", _WRITER, str(db), "12", "5", prefix]) for prefix in ("a", "b"))
    reads, errors, result = read_while_running(first, lambda: read(db, read_version), 0.02, timeout=60)
    _, _, other = read_while_running(second, lambda: read(db, read_version), 0.02, timeout=60)
    assert result["written"] == other["written"] == 12 and max(result["max_wait"], other["max_wait"]) < 5
    assert errors == [] and len(reads) >= 5
    meta = read(db, _meta)
    assert all(meta[f"{p}{i}"] == str(i) for p in "ab" for i in range(12))
    assert read_keeper.writer_markers(db) == []


def test_a_writer_process_gets_in_while_the_dashboard_keeps_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The kept connection would never idle out here (reads every 20 ms, idle limit 10 minutes): only the writer's
    announcement lets it in. Each of its writes waits at most 5 s (then it would fail); all must get in."""
    monkeypatch.setattr(read_keeper, "IDLE_SECONDS", 600.0)
    db = tmp_path / "a.duckdb"
    Store(db).set_meta("start", "0")
    read(db, read_version)
    writer = spawn(["-c", _WRITER, str(db), "15", "5"])
    reads, errors, result = read_while_running(writer, lambda: read(db, read_version), 0.02, timeout=60)
    assert result["written"] == 15 and result["max_wait"] < 5
    assert errors == [] and len(reads) >= 5
    meta = read(db, _meta)
    assert all(meta[f"w{i}"] == str(i) for i in range(15))
    assert read_keeper.writer_markers(db) == []  # the writer cleaned up its announcement


def test_a_monitoring_run_loses_nothing_while_the_dashboard_keeps_the_file(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch):
    """The real pipeline (pages of posts upserted with cursors, then scored) in another process, for 4 s, while
    the dashboard's reads go through the kept connection."""
    monkeypatch.setattr(read_keeper, "IDLE_SECONDS", 600.0)
    db = tmp_path / "soak.duckdb"
    Store(db)
    writer = spawn(["-m", "tests.workers.writer", str(db), "soak", "4"])
    seen, errors, result = read_while_running(writer, lambda: read(db, read_version).posts, 0.05)
    assert result["status"] == "ok" and result["error"] is None
    assert errors == [] and len(seen) >= 5
    assert seen == sorted(seen), "a read saw the post count go down"
    assert read(db, read_version).posts == result["new"] > 0


def test_writer_threads_of_this_process_never_collide_with_kept_or_short_reads(tmp_path: Path):
    """Reader threads (the dashboard's sessions) and a writer thread (its labels, events and summary refresh) on two
    files at once: every write gets in, no read fails (opening the kept connection outside the module's lock once
    made writes fail with DuckDB's "different configuration" error)."""
    import threading

    dbs = [tmp_path / f"f{i}.duckdb" for i in range(2)]
    for db in dbs:
        Store(db).set_meta("k", "0")
    errors: list[str] = []
    writes = dict.fromkeys(map(str, dbs), 0)
    stop = time.monotonic() + 3.0

    def reader(db: Path) -> None:
        while time.monotonic() < stop:
            try:
                read(db, lambda con: con.execute("SELECT value FROM meta WHERE key = 'k'").fetchall())
            except Exception as exc:
                errors.append(f"read: {exc!r}"[:300])

    def writer(db: Path) -> None:
        store, i = Store(db, lock_wait=5), 0
        while time.monotonic() < stop:
            try:
                store.set_meta("k", str(i))
                writes[str(db)] += 1
                i += 1
            except Exception as exc:
                errors.append(f"write: {exc!r}"[:300])
            time.sleep(0.01)

    threads = [threading.Thread(target=reader, args=(db,)) for db in dbs for _ in range(3)]
    threads += [threading.Thread(target=writer, args=(db,)) for db in dbs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads) and errors == [] and min(writes.values()) > 0, (errors[:3], writes)

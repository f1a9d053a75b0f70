"""Compact a DuckDB file: checkpoint it, and rewrite it when much of it is free space.

What DuckDB 2.0 offers, measured here: ``CHECKPOINT`` (and ``FORCE CHECKPOINT``) merges the WAL into the file
and marks the blocks of deleted or rewritten rows free for reuse, but never shrinks the file; ``VACUUM`` is
accepted and changes nothing on disk (a 1M-row table with 90% of its rows deleted stayed at 87.6 MB through
``CHECKPOINT``, ``VACUUM`` and ``FORCE CHECKPOINT``). ``COPY FROM DATABASE`` into a freshly attached file
writes only live data (the same table: 10.2 MB) and keeps tables, primary keys, indexes, views and macros.

So :func:`compact` checkpoints, reads ``PRAGMA database_size``, and when free blocks are at least
``min_free_ratio`` of the file (and ``min_free_bytes``), copies the database into ``<db>.compact-tmp``, checks
that every table has the same row count in both, keeps the old file as ``<db>.bak`` (a hard link, no copy)
and atomically renames the new file into place. The caller must hold the run lock (:mod:`aimusic.ops.runlock`) so no
aimusic writer runs meanwhile; a dashboard reading the old file keeps reading it until it reconnects.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from aimusic.store.db import Store, StoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompactResult:
    path: str
    before_bytes: int
    after_bytes: int
    total_blocks: int
    free_blocks: int
    rewritten: bool
    reason: str

    @property
    def free_ratio(self) -> float:
        return self.free_blocks / self.total_blocks if self.total_blocks else 0.0

    def line(self) -> str:
        action = "rewritten" if self.rewritten else "checkpointed"
        return (
            f"{self.path}: {action}, {self.before_bytes / 1e6:.1f} MB -> {self.after_bytes / 1e6:.1f} MB "
            f"({self.free_ratio:.0%} of blocks were free; {self.reason})"
        )


def file_bytes(path: Path) -> int:
    wal = path.with_name(path.name + ".wal")
    return (path.stat().st_size if path.exists() else 0) + (wal.stat().st_size if wal.exists() else 0)


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ident(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def compact(
    path: str | Path,
    *,
    min_free_ratio: float = 0.2,
    min_free_bytes: int = 8 * 1024 * 1024,
    force: bool = False,
    keep_backup: bool = True,
) -> CompactResult:
    """Checkpoint ``path`` and rewrite it if enough of it is free space (or ``force``)."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"database {path} does not exist: nothing to compact")
    before = file_bytes(path)
    store = Store(path)
    with store.connect() as con:
        con.execute("CHECKPOINT")
        size = con.execute("PRAGMA database_size").df().iloc[0]
    block_size, total, free = int(size["block_size"]), int(size["total_blocks"]), int(size["free_blocks"])
    ratio = free / total if total else 0.0
    worth = ratio >= min_free_ratio and free * block_size >= min_free_bytes
    if not (force or worth):
        reason = f"below the rewrite threshold ({min_free_ratio:.0%} and {min_free_bytes / 1e6:.0f} MB free)"
        return CompactResult(str(path), before, file_bytes(path), total, free, False, reason)

    tmp = path.with_name(path.name + ".compact-tmp")
    backup = path.with_name(path.name + ".bak")
    for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
        leftover.unlink(missing_ok=True)
    try:
        with store.connect() as con:
            name = con.execute("SELECT current_database()").fetchall()[0][0]
            con.execute(f"ATTACH {_sql_string(str(tmp))} AS _compacted")
            try:
                con.execute(f"COPY FROM DATABASE {_ident(name)} TO _compacted")
                tables = con.execute(
                    "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ?", [name]
                ).fetchall()
                for schema, table in tables:
                    q = f"{_ident(schema)}.{_ident(table)}"
                    old = con.execute(f"SELECT count(*) FROM {_ident(name)}.{q}").fetchall()[0][0]
                    new = con.execute(f"SELECT count(*) FROM _compacted.{q}").fetchall()[0][0]
                    if old != new:
                        raise StoreError(f"compaction check failed: {table} has {old} rows, the copy {new}")
            finally:
                con.execute("DETACH _compacted")
        if path.with_name(path.name + ".wal").exists():
            raise StoreError(f"{path} still has a WAL after checkpoint (another writer?): not replacing it")
        if keep_backup:
            backup.unlink(missing_ok=True)
            os.link(path, backup)
        os.replace(tmp, path)
    except BaseException:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            with contextlib.suppress(OSError):
                leftover.unlink()
        raise
    after = file_bytes(path)
    reason = "forced" if force and not worth else f"{ratio:.0%} free >= {min_free_ratio:.0%}"
    if keep_backup:
        reason += f"; previous file kept as {backup.name}"
    log.info("compacted %s: %.1f MB -> %.1f MB", path, before / 1e6, after / 1e6)
    return CompactResult(str(path), before, after, total, free, True, reason)

"""One run at a time per database: an advisory lock on ``<db>.lock`` (``fcntl.flock``).

Scheduled runs of different deployments (free sources every 2 h, Reddit hourly, the nightly export, the
weekly maintenance) and a manual ``aimusic run`` may all target the same DuckDB file. Each takes this lock
first, so a slow run never races the next: the next one **waits** up to ``AIMUSIC_RUN_LOCK_WAIT`` seconds
(default 600) and then **skips** with a message naming the holder (its pid, run id and start time).

The lock belongs to an open file description, so it is released when the holder exits or crashes; no stale
lock survives its process. It works across processes and between threads of one process.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)


def lock_path(db: str | Path) -> Path:
    db = Path(db)
    return db.with_name(db.name + ".lock")


@dataclass
class LockResult:
    acquired: bool
    waited: float = 0.0
    holder: dict | None = None  # who held it, when we gave up

    def describe_holder(self) -> str:
        h = self.holder or {}
        if not h:
            return "another process"
        what = h.get("what") or "a run"
        return f"{what} (pid {h.get('pid', '?')} on {h.get('host', '?')}, since {h.get('since', '?')})"


def _read_holder(path: Path) -> dict | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
        return json.loads(text) if text else None
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def run_lock(db: str | Path, wait: float, *, what: str = "a run") -> Iterator[LockResult]:
    """Hold the database's run lock for the ``with`` block, waiting up to ``wait`` seconds for it.

    Yields a :class:`LockResult`; when ``acquired`` is false the block must not touch the database and
    ``describe_holder()`` says who has it. ``what`` (e.g. "monitor run 1234abcd") is written into the lock
    file for the next waiter's message.
    """
    path = lock_path(db)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    started = time.monotonic()
    deadline = started + max(wait, 0.0)
    delay = 0.05
    announced = False
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                now = time.monotonic()
                if now >= deadline:
                    yield LockResult(False, now - started, _read_holder(path))
                    return
                if not announced:
                    holder = LockResult(False, holder=_read_holder(path)).describe_holder()
                    log.info("waiting up to %.0fs for %s to release %s", wait, holder, path.name)
                    announced = True
                time.sleep(min(delay, max(deadline - now, 0.0)))
                delay = min(delay * 2, 2.0)
        info = {
            "what": what,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        try:
            yield LockResult(True, time.monotonic() - started)
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)

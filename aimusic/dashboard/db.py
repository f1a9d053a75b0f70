"""Which database the dashboard reads, and its only two ways in: short read-only reads and one small write.

* :func:`resolve_dashboard_db`: ``AIMUSIC_DB`` (``aimusic dashboard`` sets it), else ``data/aimusic.duckdb``;
  when the default file does not exist but ``data/demo.duckdb`` does, the demo database is shown (the page
  marks it as demo data).
* :func:`read_connection`: a short-lived read-only connection through :class:`aimusic.store.db.Store`, which waits
  (with backoff, up to 30 s) while a monitoring run holds the file. Inside one process DuckDB also refuses a
  read-only connection while a read-write one is open (and vice versa); the dashboard's own event writes can
  cause that, so it is retried too.
* :func:`add_event`: the dashboard's only write, a read-write connection held for one INSERT.

No Streamlit here.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from aimusic.core.config import DEFAULT_DB, DEMO_DB, resolve_db
from aimusic.store.db import Store, StoreError

log = logging.getLogger(__name__)

IN_PROCESS_WAIT = 15.0  # seconds to wait for this process's own other-mode connection to close


def _in_process_conflict(exc: BaseException) -> bool:
    return isinstance(exc, StoreError) and "different configuration" in str(exc).lower()


def _retrying() -> Retrying:
    return Retrying(
        retry=retry_if_exception(_in_process_conflict),
        stop=stop_after_delay(IN_PROCESS_WAIT),
        wait=wait_exponential(multiplier=0.02, max=0.5),
        reraise=True,
    )


@dataclass(frozen=True)
class DashboardDb:
    path: Path
    #: why this file was chosen when it is not the configured one (shown on the page)
    note: str | None = None

    @property
    def exists(self) -> bool:
        return self.path.exists()


def resolve_dashboard_db() -> DashboardDb:
    """The database to show: configured path, else the default, else the demo database if only it exists."""
    path = resolve_db(None)
    if path.resolve() == DEFAULT_DB.resolve() and not path.exists() and DEMO_DB.exists():
        return DashboardDb(DEMO_DB, note=f"{DEFAULT_DB.name} does not exist yet, so the demo database is shown")
    return DashboardDb(path)


@contextlib.contextmanager
def read_connection(db: str | Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived read-only connection (raises :class:`StoreError` with a readable message)."""
    store = Store(db, read_only=True)
    with contextlib.ExitStack() as stack:
        for attempt in _retrying():
            with attempt:
                con = stack.enter_context(store.connect())
        yield con


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

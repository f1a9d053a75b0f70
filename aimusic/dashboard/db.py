"""Which database the dashboard reads. Its ways in (short read-only reads, one small write, the in-memory facts
copy) live in the store: :mod:`aimusic.store.dashboard_facts`.

:func:`resolve_dashboard_db`: ``AIMUSIC_DB`` (``aimusic dashboard`` sets it), else ``data/aimusic.duckdb``; when
the default file does not exist but ``data/demo.duckdb`` does, the demo database is shown (the page marks it as
demo data). No Streamlit here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aimusic.core.config import DEFAULT_DB, DEMO_DB, resolve_db


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

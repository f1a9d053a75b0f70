"""What every view receives: the filters, the database's data version, and cached access to the store's named
queries (:mod:`aimusic.store.dashboard_queries`, :mod:`aimusic.store.dashboard_daily`,
:mod:`aimusic.store.dashboard_posts`, :mod:`aimusic.store.dashboard_voices`, :mod:`aimusic.store.debate_queries`).
The dashboard imports no database driver: it hands a query function and its arguments to :class:`ViewContext`,
which runs it on the process's kept read-only connection (:mod:`aimusic.store.read_keeper`: warm between queries,
let go when idle or when a run waits for the file; or, for the few aggregates the file's summary cannot answer, on
the in-memory facts copy) and caches the small DataFrame it returns.

Caching: query results are kept with ``st.cache_data`` under (query name, database, data version, model,
arguments). The data version is one cheap query on the file (re-read at most every :data:`VERSION_TTL_SECONDS`),
so a finished monitoring run shows up on the next rerun without a restart, and an unchanged view is served from
the cache without touching the database. The in-memory facts copy
(:class:`aimusic.store.dashboard_facts.Facts`) is shared by all sessions through ``st.cache_resource``; it is built
only for the aggregates the file's summary cannot answer (a minimum engagement above its cap, or a text search):
Voices and the Posts view read the file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd
import streamlit as st

from aimusic.core.topics import Topics
from aimusic.dashboard.db import DashboardDb
from aimusic.dashboard.state import FilterState
from aimusic.store import dashboard_daily, dashboard_facts
from aimusic.store import dashboard_queries as q
from aimusic.store.dashboard_facts import DataVersion, Facts, read
from aimusic.store.dashboard_posts import posts_count
from aimusic.store.queries import Filters

VERSION_TTL_SECONDS = 2.0
CACHE_TTL_SECONDS = 3600

Query = Callable[..., Any]


def _name(fn: Query) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def _args_key(args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> str:
    plain = [a.cache_key() if isinstance(a, Filters) else a for a in args]
    return json.dumps([plain, kwargs or {}], default=str, sort_keys=True)


@st.cache_data(ttl=VERSION_TTL_SECONDS, show_spinner=False)
def data_version(db: str) -> DataVersion:
    return dashboard_facts.data_version(db)


@st.cache_resource(max_entries=4, show_spinner=False, on_release=lambda facts: facts.close())
def _facts(db: str, model: str | None) -> Facts:
    return Facts(db, model)


@st.cache_data(max_entries=16, ttl=CACHE_TTL_SECONDS, show_spinner=False)
def _summary_ready(db: str, version_key: str) -> bool:
    return dashboard_facts.ensure_summary(db)


def _synced(db: str, model: str | None, version: DataVersion) -> Facts:
    facts = _facts(db, model)
    facts.sync(version)
    return facts


@st.cache_data(max_entries=512, ttl=CACHE_TTL_SECONDS, show_spinner=False)
def _facts_query(
    name: str, db: str, model: str | None, version_key: str, args_key: str,
    _fn: Query, _version: DataVersion, _args: tuple[Any, ...],
) -> Any:
    return _synced(db, model, _version).run(_fn, *_args)


@st.cache_data(max_entries=512, ttl=CACHE_TTL_SECONDS, show_spinner=False)
def _file_query(
    name: str, db: str, version_key: str, args_key: str, _fn: Query, _args: tuple[Any, ...], _kwargs: dict[str, Any],
) -> Any:
    return read(db, _fn, *_args, **_kwargs)


@st.cache_data(max_entries=128, ttl=CACHE_TTL_SECONDS, show_spinner=False)
def _posts_query(
    name: str, db: str, version_key: str, args_key: str, summary: bool, _fn: Query, _args: tuple[Any, ...],
) -> pd.DataFrame:
    return read(db, _fn, *_args, summary=summary)


def db_info(db: str, version: DataVersion) -> dict[str, Any]:
    """:func:`aimusic.store.dashboard_queries.db_info` for this data version (cached), from the daily summary
    when it is up to date (brought up to date here when it is behind)."""
    summary = _summary_ready(db, version.key())
    return _file_query(_name(q.db_info), db, version.key(), f"[{summary}]", q.db_info, (), {"summary": summary})


def clear_caches() -> None:
    """Forget cached results (e.g. after the dashboard wrote an event)."""
    data_version.clear()
    _summary_ready.clear()


@dataclass
class ViewContext:
    """Everything a view needs; views run the store's named queries through :meth:`facts`, :meth:`file` and
    :meth:`posts`, never a connection of their own."""

    db: DashboardDb
    version: DataVersion
    info: dict[str, Any]
    state: FilterState
    filters: Filters
    model: str | None
    bucket: str
    configured_events: tuple[tuple[date, str, str | None], ...] = ()
    topics: Topics | None = None
    topics_problem: str | None = None

    @property
    def path(self) -> str:
        return str(self.db.path)

    def facts(self, fn: Query, *args: Any) -> Any:
        """``fn(facts_cursor, *args)`` over the in-memory facts copy, cached by data version and arguments; or, for
        the aggregates the file's daily summary answers (:data:`aimusic.store.dashboard_daily.REPLACES`, filters
        it supports), its namesake over the summary: the same result without a copy of every post."""
        alt = dashboard_daily.REPLACES.get(fn)
        if (alt is not None and args and isinstance(args[0], Filters) and dashboard_daily.supported(args[0])
                and _summary_ready(self.path, self.version.key())):
            return self.file(alt, args[0], self.model, *args[1:])
        return _facts_query(_name(fn), self.path, self.model, self.version.key(), _args_key(args), fn, self.version,
                            args)

    def file(self, fn: Query, *args: Any, **kwargs: Any) -> Any:
        """``fn(read_only_connection, *args, **kwargs)`` on the database file (the kept connection), cached by data
        version and arguments (a count of posts from the daily summary when it answers the filters)."""
        if (fn is posts_count and args and isinstance(args[0], Filters) and dashboard_daily.supported(args[0])
                and _summary_ready(self.path, self.version.key())):
            fn = dashboard_daily.posts_count
        return _file_query(_name(fn), self.path, self.version.key(), _args_key(args, kwargs), fn, args, kwargs)

    @property
    def summary(self) -> bool:
        """Whether the file's summary is current (brought up to date here when it is behind and can be)."""
        return _summary_ready(self.path, self.version.key())

    def posts(self, fn: Query, *args: Any) -> pd.DataFrame:
        """``fn(read_only_connection, *args, summary=...)``: posts, labels and Voices from the file
        (:mod:`aimusic.store.dashboard_posts`, :mod:`aimusic.store.dashboard_voices`), helped by its summary when
        it is current; cached by data version and arguments. No in-memory copy."""
        return _posts_query(_name(fn), self.path, self.version.key(), _args_key(args), self.summary, fn, args)

    def events(self, in_window: bool = True) -> pd.DataFrame:
        start, end = (self.filters.start, self.filters.end) if in_window else (None, None)
        return self.file(q.events, self.configured_events, start, end)

    def window_text(self) -> str:
        f = self.filters
        if f.start is None or f.end is None:
            return "all dates (UTC)"
        return f"{f.start:%d %b %Y} to {f.end:%d %b %Y} UTC ({f.days} days)"

    def file_stem(self, name: str) -> str:
        f = self.filters
        span = f"_{f.start}_{f.end}" if f.start and f.end else ""
        return f"aimusic-{name}{span}"

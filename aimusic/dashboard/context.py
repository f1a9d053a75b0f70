"""What every view receives: the filters, the database's data version, and cached access to the queries.

Caching: query results are kept with ``st.cache_data`` under (query, database, data version, model, entity map,
arguments). The data version is one cheap query on the file (re-read at most every
:data:`VERSION_TTL_SECONDS`), so a finished monitoring run shows up on the next rerun without a restart,
and an unchanged view is served from the cache without touching DuckDB. The in-memory facts copy
(:class:`aimusic.dashboard.facts.Facts`) is shared by all sessions through ``st.cache_resource``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd
import streamlit as st

from aimusic.core.topics import Topics
from aimusic.dashboard import data
from aimusic.dashboard.db import DashboardDb, read_connection
from aimusic.dashboard.entities import EntityMap
from aimusic.dashboard.facts import DataVersion, Facts, read_version
from aimusic.dashboard.state import FilterState
from aimusic.store.queries import Filters

VERSION_TTL_SECONDS = 2.0
CACHE_TTL_SECONDS = 3600


def _args_key(args: tuple[Any, ...]) -> str:
    return json.dumps([a.cache_key() if isinstance(a, Filters) else a for a in args], default=str)


@st.cache_data(ttl=VERSION_TTL_SECONDS, show_spinner=False)
def data_version(db: str) -> DataVersion:
    with read_connection(db) as con:
        return read_version(con)


@st.cache_resource(max_entries=4, show_spinner=False, on_release=lambda facts: facts.close())
def _facts(db: str, model: str | None, emap_key: str, _emap: EntityMap) -> Facts:
    return Facts(db, model, _emap)


@st.cache_data(max_entries=512, ttl=CACHE_TTL_SECONDS, show_spinner=False)
def _facts_query(
    fn: str, db: str, model: str | None, emap_key: str, version_key: str, args_key: str,
    _emap: EntityMap, _version: DataVersion, _args: tuple[Any, ...],
) -> Any:
    facts = _facts(db, model, emap_key, _emap)
    facts.sync(_version)
    return getattr(data, fn)(facts.cursor(), *_args)


@st.cache_data(max_entries=512, ttl=CACHE_TTL_SECONDS, show_spinner=False)
def _file_query(fn: str, db: str, version_key: str, args_key: str, _args: tuple[Any, ...]) -> Any:
    with read_connection(db) as con:
        return getattr(data, fn)(con, *_args)


@st.cache_data(max_entries=128, ttl=CACHE_TTL_SECONDS, show_spinner=False)
def _posts_page(
    db: str, model: str | None, emap_key: str, version_key: str, args_key: str,
    _emap: EntityMap, _version: DataVersion, _args: tuple[Any, ...],
) -> pd.DataFrame:
    filters, sort, limit = _args
    facts = _facts(db, model, emap_key, _emap)
    facts.sync(_version)
    with read_connection(db) as con:
        return data.posts_page(con, filters, model, sort, limit, fcon=facts.cursor())


@st.cache_data(max_entries=128, ttl=CACHE_TTL_SECONDS, show_spinner=False)
def _top_posts(
    db: str, model: str | None, emap_key: str, version_key: str, args_key: str,
    _emap: EntityMap, _version: DataVersion, _args: tuple[Any, ...],
) -> pd.DataFrame:
    filters, label, limit = _args
    facts = _facts(db, model, emap_key, _emap)
    facts.sync(_version)
    keys = data.top_keys(facts.cursor(), filters, label, limit)
    with read_connection(db) as con:
        return data.posts_by_keys(con, keys, model, facts.cursor())


def db_info(db: str, version: DataVersion) -> dict[str, Any]:
    """:func:`aimusic.dashboard.data.db_info` for this data version (cached)."""
    return _file_query("db_info", db, version.key(), "[]", ())


def clear_caches() -> None:
    """Forget cached results (e.g. after the dashboard wrote an event)."""
    data_version.clear()


@dataclass
class ViewContext:
    """Everything a view needs; views call :meth:`facts` and :meth:`file` rather than DuckDB directly."""

    db: DashboardDb
    version: DataVersion
    info: dict[str, Any]
    state: FilterState
    filters: Filters
    model: str | None
    bucket: str
    emap: EntityMap
    configured_events: tuple[tuple[date, str, str | None], ...] = ()
    topics: Topics | None = None
    topics_problem: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return str(self.db.path)

    @property
    def emap_key(self) -> str:
        return json.dumps([self.emap.pairs, self.emap.names])

    def facts(self, fn: str, *args: Any) -> Any:
        """``aimusic.dashboard.data.<fn>(facts_cursor, *args)``, cached by data version and arguments."""
        return _facts_query(
            fn, self.path, self.model, self.emap_key, self.version.key(), _args_key(args),
            self.emap, self.version, args,
        )

    def file(self, fn: str, *args: Any) -> Any:
        """``aimusic.dashboard.data.<fn>(read_only_connection, *args)``, cached by data version and arguments."""
        return _file_query(fn, self.path, self.version.key(), _args_key(args), args)

    def posts_page(self, filters: Filters, sort: str, limit: int) -> pd.DataFrame:
        args = (filters, sort, limit)
        return _posts_page(
            self.path, self.model, self.emap_key, self.version.key(), _args_key(args), self.emap, self.version, args
        )

    def top_posts(self, filters: Filters, label: str, limit: int = 10) -> pd.DataFrame:
        args = (filters, label, limit)
        return _top_posts(
            self.path, self.model, self.emap_key, self.version.key(), _args_key(args), self.emap, self.version, args
        )

    def events(self, in_window: bool = True) -> pd.DataFrame:
        start, end = (self.filters.start, self.filters.end) if in_window else (None, None)
        return self.file("events", self.configured_events, start, end)

    def window_text(self) -> str:
        f = self.filters
        if f.start is None or f.end is None:
            return "all dates (UTC)"
        return f"{f.start:%d %b %Y} to {f.end:%d %b %Y} UTC ({f.days} days)"

    def file_stem(self, name: str) -> str:
        f = self.filters
        span = f"_{f.start}_{f.end}" if f.start and f.end else ""
        return f"aimusic-{name}{span}"

"""The shared filters as plain values (no Streamlit; the widgets live in :mod:`aimusic.dashboard.sidebar`).

The sidebar's widgets are bound to the page's query string (Streamlit's ``bind="query-params"``), so a view can
be bookmarked and shared, e.g.::

    ?view=Compare&dates=2025-11-01&dates=2025-11-30&source=reddit&source=bluesky&entity=Suno&lang=en
     &model=vader-3.3.2&min_engagement=5&bucket=week

Repeated keys hold lists; a filter at its default value is left out of the URL (no ``dates`` means the default
window, :meth:`Options.default_window`). Values that do not fit the database (an unknown source, a malformed
date) are ignored, so an old link still opens.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from aimusic.store.queries import Filters

#: the default window is the data's whole range when it spans at most this many days, else its last this many
DEFAULT_WINDOW_DAYS = 365
BUCKET_CHOICES = ("auto", "day", "week")
#: with ``bucket=auto``, windows longer than this are drawn by week (shorter ones by day, with a rolling mean)
AUTO_WEEKLY_AFTER_DAYS = 366


@dataclass(frozen=True)
class FilterState:
    """What the sidebar shows."""

    start: date | None = None
    end: date | None = None
    sources: tuple[str, ...] = ()
    entities: tuple[str, ...] = ()
    terms: tuple[str, ...] = ()
    langs: tuple[str, ...] = ()
    model: str | None = None
    min_engagement: int = 0
    bucket: str = "auto"

    def to_filters(self) -> Filters:
        """Each filter narrows the posts: entities (``posts.entities``) and tracked terms keep posts naming
        any of the selected ones; together, posts must satisfy both."""
        return Filters(
            start=self.start, end=self.end, sources=self.sources, langs=self.langs, terms=self.terms,
            entities=self.entities, min_engagement=self.min_engagement, model=self.model,
        )

    def resolved_bucket(self) -> str:
        if self.bucket in ("day", "week"):
            return self.bucket
        days = (self.end - self.start).days + 1 if self.start and self.end else None
        return "week" if days is None or days > AUTO_WEEKLY_AFTER_DAYS else "day"


@dataclass(frozen=True)
class Options:
    """What the database offers (from :func:`aimusic.store.dashboard_queries.db_info`)."""

    first_day: date | None
    last_day: date | None
    sources: tuple[str, ...]
    entities: tuple[str, ...]
    terms: tuple[str, ...]
    langs: tuple[str, ...]
    models: tuple[str, ...]

    def default_window(self) -> tuple[date | None, date | None]:
        """The data's whole range when it spans at most a year (so the first screen shows the story: the demo's
        180 days hold its events and their spikes), else the data's last 365 days."""
        if self.last_day is None:
            return None, None
        start = self.last_day - timedelta(days=DEFAULT_WINDOW_DAYS - 1)
        if self.first_day and start < self.first_day:
            start = self.first_day
        return start, self.last_day

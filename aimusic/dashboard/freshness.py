"""Is each source delivering on schedule? Pure functions over the ``runs`` summary (no Streamlit).

A source's schedule is ``cron`` in its ``[sources.<name>]`` section of topics.toml if present, else the
source's :attr:`~aimusic.sources.base.Source.default_cron`. A source is *late* when no run has delivered (ended
``ok`` or ``partial``) since the schedule's next firing after the last delivery, plus a grace period for the
run itself. Synthetic sources (demo) are not scheduled, so never late; sources that never delivered are
reported as such rather than as late.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from cronsim import CronSim, CronSimError

from aimusic.core.topics import Topics

log = logging.getLogger(__name__)

GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class Freshness:
    source: str
    cron: str | None
    every: str | None  # e.g. "every 6 h"
    last_delivery: datetime | None
    expected_by: datetime | None
    late: bool
    message: str


def schedule_for(source: str, topics: Topics | None) -> str | None:
    """The cron schedule of ``source`` (None for synthetic or unknown sources)."""
    if topics is not None:
        cron = (topics.sources.get(source) or {}).get("cron")
        if isinstance(cron, str) and cron.strip():
            return cron.strip()
    from aimusic.sources import REGISTRY, get_source
    from aimusic.sources.base import SourceUnavailable

    if source not in REGISTRY:
        return None
    try:
        src = get_source(source)
    except SourceUnavailable:
        return None
    return None if src.synthetic else src.default_cron


def _fires(cron: str, after: datetime, n: int = 2) -> list[datetime]:
    it = CronSim(cron, after)
    return [next(it) for _ in range(n)]


def describe(cron: str, now: datetime) -> str:
    first, second = _fires(cron, now)
    hours = (second - first).total_seconds() / 3600
    return f"every {hours:.0f} h" if hours < 48 else f"every {hours / 24:.0f} days"


def check(source: str, cron: str | None, last_delivery: datetime | None, now: datetime,
          grace: timedelta = GRACE) -> Freshness:
    """Whether ``source`` is late at ``now`` given its last delivery and schedule."""
    if cron is None:
        return Freshness(source, None, None, last_delivery, None, False, "not scheduled")
    try:
        every = describe(cron, now)
    except (CronSimError, StopIteration) as exc:
        return Freshness(source, cron, None, last_delivery, None, False, f"invalid schedule {cron!r}: {exc}")
    if last_delivery is None:
        return Freshness(source, cron, every, None, None, False, "has never delivered")
    expected = _fires(cron, last_delivery, 1)[0] + grace
    late = now > expected
    ago = now - last_delivery
    hours = ago.total_seconds() / 3600
    since = f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.1f} days"
    if late:
        message = (f"{source} has not delivered for {since} (last at {last_delivery:%Y-%m-%d %H:%M} UTC); its "
                   f"schedule {cron} ({every}) expected a run by {expected:%Y-%m-%d %H:%M} UTC")
    else:
        message = f"on schedule ({every}); last delivery {since} ago"
    return Freshness(source, cron, every, last_delivery, expected, late, message)

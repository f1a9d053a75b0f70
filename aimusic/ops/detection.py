"""Alert detection, pure: hourly counts in, alerts out (no database, no I/O).

Each check compares the last ``window_hours`` (24 h by default, ending at
the last full hour) with the past:

- **volume spike** (per source and overall): the window's post count against the *same window on the same
  weekday* over the last ``baseline_weeks`` weeks, so a weekly rhythm (quiet weekends, release-day peaks) is
  not news. Robust statistics: median and MAD, with a Poisson floor (``sqrt(median)``) so a very regular
  history does not make every wobble an alert. An alert needs at least ``min_posts`` posts, ``spike_z`` robust
  z-scores above the median and ``spike_ratio`` times the median, and ``min_history_weeks`` weeks of history
  (weeks before a source's first post do not count as zeros).
- **sentiment shift** (per source and overall): net sentiment ((positive - negative) / scored, one model)
  of the window against the daily windows of the last ``sentiment_days`` days that have at least
  ``min_scored`` scored posts; an alert needs ``sentiment_z`` robust z-scores (the day's own sampling error
  included) and an absolute change of at least ``min_shift``.

The thresholds are :class:`aimusic.ops.alert_rules.AlertRules`; storing, the cooldown and replaying are
:mod:`aimusic.ops.alerts`; delivery is :mod:`aimusic.ops.notify`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from aimusic.ops.alert_rules import AlertRules

HOUR = timedelta(hours=1)
MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation
ALL = "all"


@dataclass(frozen=True)
class Window:
    """Counts in one time window: posts, and the sentiment labels of those scored by one model."""

    start: datetime
    end: datetime
    posts: int = 0
    scored: int = 0
    positive: int = 0
    negative: int = 0

    @property
    def net(self) -> float:
        return (self.positive - self.negative) / self.scored if self.scored else float("nan")


@dataclass(frozen=True)
class Finding:
    direction: str  # up or down
    observed: float
    expected: float
    low: float | None
    high: float | None
    score: float  # robust z-score
    history: int  # number of baseline windows used


@dataclass
class Alert:
    kind: str  # volume_spike or sentiment_shift
    scope: str  # "all" or a source name
    day: date
    window_start: datetime
    window_end: datetime
    observed: float
    expected: float
    low: float | None
    high: float | None
    score: float
    direction: str
    posts: int
    model: str | None
    message: str
    top_posts: list[dict[str, Any]] = field(default_factory=list)
    run_id: str | None = None

    @property
    def title(self) -> str:
        what = "Volume spike" if self.kind == "volume_spike" else "Sentiment shift"
        return f"{what}: {scope_label(self.scope)} ({self.day.isoformat()})"


def scope_label(scope: str) -> str:
    return "all sources" if scope == ALL else scope


def median_mad(values: Sequence[float]) -> tuple[float, float]:
    """Median and MAD scaled to a standard deviation (0 for a constant series)."""
    arr = np.asarray(values, dtype=float)
    med = float(np.median(arr))
    return med, float(np.median(np.abs(arr - med))) * MAD_TO_SIGMA


def volume_spike(observed: int, baseline: Sequence[int], rules: AlertRules) -> Finding | None:
    """A spike if the count is large, far above the robust baseline and a multiple of its median."""
    if observed < rules.min_posts or len(baseline) < rules.min_history_weeks:
        return None
    med, mad = median_mad(baseline)
    scale = max(mad, math.sqrt(max(med, 1.0)))  # Poisson floor: counts vary at least by sqrt(mean)
    z = (observed - med) / scale
    if z >= rules.spike_z and observed >= rules.spike_ratio * max(med, 1.0):
        return Finding("up", float(observed), med, None, med + rules.spike_z * scale, z, len(baseline))
    return None


def sentiment_shift(observed: Window, baseline: Sequence[Window], rules: AlertRules) -> Finding | None:
    """A shift if the window's net sentiment leaves the normal range of the daily history by enough."""
    if observed.scored < rules.min_scored:
        return None
    history = [w.net for w in baseline if w.scored >= rules.min_scored]
    if len(history) < rules.min_history_days:
        return None
    med, mad = median_mad(history)
    net = observed.net
    p_pos, p_neg = observed.positive / observed.scored, observed.negative / observed.scored
    sampling = math.sqrt(max(p_pos + p_neg - net * net, 1e-4) / observed.scored)  # s.e. of a net share
    scale = math.sqrt(mad * mad + sampling * sampling)
    z = (net - med) / scale
    low, high = med - rules.sentiment_z * scale, med + rules.sentiment_z * scale
    if abs(z) >= rules.sentiment_z and abs(net - med) >= rules.min_shift:
        return Finding("up" if z > 0 else "down", net, med, low, high, z, len(history))
    return None


class Series:
    """Hourly counts of one scope as cumulative sums, so any window sum costs O(1)."""

    COLUMNS = ("posts", "scored", "positive", "negative")

    def __init__(self, start: datetime, values: np.ndarray):
        self.start = start
        self.hours = values.shape[0]
        self._cum = np.vstack([np.zeros((1, values.shape[1]), dtype=np.int64), np.cumsum(values, axis=0)])

    def _index(self, when: datetime) -> int:
        return int(min(max((when - self.start) // HOUR, 0), self.hours))

    def window(self, start: datetime, end: datetime) -> Window:
        sums = self._cum[self._index(end)] - self._cum[self._index(start)]
        return Window(start, end, *(int(v) for v in sums))


def floor_hour(when: datetime) -> datetime:
    when = when.astimezone(UTC)
    return when.replace(minute=0, second=0, microsecond=0)


def build_series(hourly: pd.DataFrame, start: datetime, end: datetime) -> dict[str, Series]:
    """Per-source :class:`Series` from rows of (source, hour, posts, scored, positive, negative)."""
    start, end = floor_hour(start), floor_hour(end) + (HOUR if end != floor_hour(end) else timedelta(0))
    hours = max(int((end - start) // HOUR), 1)
    out: dict[str, Series] = {}
    if hourly.empty:
        return out
    hour = pd.to_datetime(hourly["hour"], utc=True)
    idx = ((hour - pd.Timestamp(start)) // pd.Timedelta(hours=1)).to_numpy(dtype=np.int64)
    for source in sorted(hourly["source"].unique()):
        mask = (hourly["source"] == source).to_numpy() & (idx >= 0) & (idx < hours)
        values = np.zeros((hours, len(Series.COLUMNS)), dtype=np.int64)
        rows = hourly.loc[mask, list(Series.COLUMNS)].to_numpy(dtype=np.int64)
        np.add.at(values, idx[mask], rows)
        out[str(source)] = Series(start, values)
    return out


def _sum(windows: Sequence[Window]) -> Window:
    first = windows[0]
    return Window(
        first.start, first.end, *(sum(getattr(w, c) for w in windows) for c in Series.COLUMNS)
    )


def detect(
    series: dict[str, Series],
    coverage: dict[str, datetime],
    as_of: datetime,
    rules: AlertRules,
    *,
    model: str | None = None,
) -> list[Alert]:
    """Every alert for the window that ends at ``as_of`` (floored to the hour).

    ``coverage`` gives each source's first post: windows before it are missing history, not zeros. The
    overall scope sums the sources that already have ``min_history_weeks`` of history, so adding a platform
    does not look like a spike.
    """
    end = floor_hour(as_of)
    span = timedelta(hours=rules.window_hours)
    start = end - span
    alerts: list[Alert] = []
    covered = {s: coverage[s] for s in series if s in coverage}
    need_from = start - timedelta(weeks=rules.min_history_weeks)
    eligible = sorted(s for s, first in covered.items() if first <= need_from)

    scopes: list[tuple[str, list[str]]] = [(ALL, eligible)]
    if rules.per_source:
        scopes += [(s, [s]) for s in sorted(covered)]
    for scope, members in scopes:
        if not members:
            continue
        since = max(covered[s] for s in members)
        observed = _sum([series[s].window(start, end) for s in members])
        # volume: the same window 1..N weeks back, from the scope's first post on
        weekly = []
        for k in range(1, rules.baseline_weeks + 1):
            ws = start - timedelta(weeks=k)
            if ws >= floor_hour(since):
                weekly.append(_sum([series[s].window(ws, ws + span) for s in members]).posts)
        finding = volume_spike(observed.posts, weekly, rules)
        if finding:
            alerts.append(_volume_alert(scope, observed, finding, rules, model))
        # sentiment: daily windows over the last sentiment_days days
        daily = []
        for d in range(1, rules.sentiment_days + 1):
            ws = start - timedelta(days=d)
            if ws >= floor_hour(since):
                daily.append(_sum([series[s].window(ws, ws + span) for s in members]))
        finding = sentiment_shift(observed, daily, rules)
        if finding:
            alerts.append(_sentiment_alert(scope, observed, finding, rules, model))
    return alerts


def _alert_day(window_end: datetime) -> date:
    return (window_end - timedelta(microseconds=1)).date()


def _alert(kind: str, scope: str, w: Window, f: Finding, model: str | None, message: str) -> Alert:
    return Alert(
        kind, scope, _alert_day(w.end), w.start, w.end, f.observed, f.expected, f.low, f.high, f.score,
        f.direction, w.posts, model, message,
    )


def _volume_alert(scope: str, w: Window, f: Finding, rules: AlertRules, model: str | None) -> Alert:
    ratio = f.observed / max(f.expected, 1.0)
    return _alert("volume_spike", scope, w, f, model, (
        f"Volume spike in {scope_label(scope)}: {w.posts:,} posts in the {rules.window_hours} h to "
        f"{w.end:%Y-%m-%d %H:%M} UTC, {ratio:.1f}x the usual {f.expected:,.0f} (median of the same window "
        f"over the last {f.history} weeks; normal up to {f.high:,.0f}; robust z {f.score:.1f})"
    ))


def _sentiment_alert(scope: str, w: Window, f: Finding, rules: AlertRules, model: str | None) -> Alert:
    verb = "rose" if f.direction == "up" else "fell"
    return _alert("sentiment_shift", scope, w, f, model, (
        f"Net sentiment {verb} in {scope_label(scope)}: {f.observed:+.2f} over {w.scored:,} scored posts in the "
        f"{rules.window_hours} h to {w.end:%Y-%m-%d %H:%M} UTC, usually {f.expected:+.2f} (normal range "
        f"{f.low:+.2f} to {f.high:+.2f} over the last {f.history} days; model {model or 'unknown'}; "
        f"robust z {f.score:+.1f})"
    ))

"""Alerts: volume spikes and shifts in net sentiment, detected after each run and stored in DuckDB.

Detection is pure (counts in, findings out) and compares the last ``window_hours`` (24 h by default, ending at
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

Each alert is stored once per (kind, scope, UTC day) and not raised again for the same kind and scope while
its window overlaps the last one (a cooldown of ``window_hours``), so hourly runs do not repeat one spike.
The thresholds live in the ``[alerts]`` table of ``data/topics.toml``. Delivery is :mod:`aimusic.ops.notify`.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aimusic.core.topics import Topics, TopicsError
from aimusic.store.db import Store

log = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation
ALL = "all"


class AlertRules(BaseModel):
    """The ``[alerts]`` table of topics.toml (every key optional)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    window_hours: int = Field(default=24, ge=1, le=168)
    per_source: bool = True
    # volume spikes
    baseline_weeks: int = Field(default=6, ge=2, le=52)
    min_history_weeks: int = Field(default=3, ge=2, le=52)
    min_posts: int = Field(default=20, ge=1)
    spike_z: float = Field(default=4.0, gt=0)
    spike_ratio: float = Field(default=2.0, ge=1)
    # sentiment shifts
    sentiment_days: int = Field(default=28, ge=3, le=365)
    min_history_days: int = Field(default=7, ge=3)
    min_scored: int = Field(default=30, ge=5)
    sentiment_z: float = Field(default=4.0, gt=0)
    min_shift: float = Field(default=0.15, ge=0, le=2)
    # digest
    top_posts: int = Field(default=5, ge=0, le=50)


def load_rules(topics: Topics) -> AlertRules:
    """Validate the ``[alerts]`` table; a bad key names itself and the expected form."""
    from aimusic.core.topics import _describe

    try:
        return AlertRules.model_validate(topics.alerts)
    except ValidationError as exc:
        text = topics.path.read_text(encoding="utf-8") if topics.path and topics.path.exists() else ""
        raise TopicsError(_describe(exc, text, topics.path or "topics", ("alerts",))) from None


# --- pure detection -----------------------------------------------------------------------------------------


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


def _volume_alert(scope: str, w: Window, f: Finding, rules: AlertRules, model: str | None) -> Alert:
    ratio = f.observed / max(f.expected, 1.0)
    message = (
        f"Volume spike in {scope_label(scope)}: {w.posts:,} posts in the {rules.window_hours} h to "
        f"{w.end:%Y-%m-%d %H:%M} UTC, {ratio:.1f}x the usual {f.expected:,.0f} (median of the same window "
        f"over the last {f.history} weeks; normal up to {f.high:,.0f}; robust z {f.score:.1f})"
    )
    return Alert(
        "volume_spike", scope, _alert_day(w.end), w.start, w.end, f.observed, f.expected, f.low, f.high,
        f.score, f.direction, w.posts, model, message,
    )


def _sentiment_alert(scope: str, w: Window, f: Finding, rules: AlertRules, model: str | None) -> Alert:
    verb = "rose" if f.direction == "up" else "fell"
    message = (
        f"Net sentiment {verb} in {scope_label(scope)}: {f.observed:+.2f} over {w.scored:,} scored posts in the "
        f"{rules.window_hours} h to {w.end:%Y-%m-%d %H:%M} UTC, usually {f.expected:+.2f} (normal range "
        f"{f.low:+.2f} to {f.high:+.2f} over the last {f.history} days; model {model or 'unknown'}; "
        f"robust z {f.score:+.1f})"
    )
    return Alert(
        "sentiment_shift", scope, _alert_day(w.end), w.start, w.end, f.observed, f.expected, f.low, f.high,
        f.score, f.direction, w.posts, model, message,
    )


# --- storage ------------------------------------------------------------------------------------------------

_ALERT_COLUMNS = [
    "kind", "scope", "day", "window_start", "window_end", "observed", "expected", "low", "high", "score",
    "direction", "posts", "model", "message", "top_posts", "run_id",
]
_ALERTS_SCHEMA = pa.schema(
    [
        ("kind", pa.string()), ("scope", pa.string()), ("day", pa.date32()),
        ("window_start", pa.timestamp("us", tz="UTC")), ("window_end", pa.timestamp("us", tz="UTC")),
        ("observed", pa.float64()), ("expected", pa.float64()), ("low", pa.float64()), ("high", pa.float64()),
        ("score", pa.float64()), ("direction", pa.string()), ("posts", pa.int64()), ("model", pa.string()),
        ("message", pa.string()), ("top_posts", pa.string()), ("run_id", pa.string()),
    ]
)


def load_hourly(store: Store, start: datetime, end: datetime, model: str | None) -> pd.DataFrame:
    """Hourly post counts and sentiment labels (of ``model``) per source in [start, end)."""
    return store.query(
        """SELECT p.source, date_trunc('hour', p.created_at) AS hour, count(*) AS posts,
                  count(s.label) AS scored,
                  count(*) FILTER (WHERE s.label = 'positive') AS positive,
                  count(*) FILTER (WHERE s.label = 'negative') AS negative
           FROM posts p
           LEFT JOIN scores s ON s.source = p.source AND s.post_id = p.post_id AND s.model = ?
           WHERE p.created_at >= ? AND p.created_at < ?
           GROUP BY ALL""",
        [model, start, end],
    )


def load_coverage(store: Store) -> dict[str, datetime]:
    """Each source's first post: the start of its history."""
    df = store.query("SELECT source, min(created_at) AS first FROM posts GROUP BY source")
    return {str(s): pd.Timestamp(t).to_pydatetime().astimezone(UTC) for s, t in df.itertuples(index=False)}


def _history_span(rules: AlertRules) -> timedelta:
    return max(timedelta(weeks=rules.baseline_weeks), timedelta(days=rules.sentiment_days)) + timedelta(
        hours=rules.window_hours
    )


def evaluate(
    store: Store, *, as_of: datetime | None = None, model: str | None = None, rules: AlertRules | None = None
) -> list[Alert]:
    """Detect alerts for the window ending at ``as_of`` (default: now) without storing them."""
    rules = rules or AlertRules()
    end = floor_hour(as_of or datetime.now(UTC))
    begin = end - _history_span(rules)
    series = build_series(load_hourly(store, begin, end, model), begin, end)
    return detect(series, load_coverage(store), end, rules, model=model)


def top_posts(store: Store, alert: Alert, model: str | None, limit: int) -> list[dict[str, Any]]:
    """The most engaged posts behind an alert (for a sentiment shift: those with the shift's label)."""
    if limit <= 0:
        return []
    label = None
    if alert.kind == "sentiment_shift":
        label = "positive" if alert.direction == "up" else "negative"
    df = store.query(
        """SELECT p.source, p.post_id, p.created_at, p.author, p.url, left(coalesce(p.title || ' - ', '') ||
                  p.text, 280) AS text, coalesce(p.score, 0) + coalesce(p.replies, 0) + coalesce(p.reposts, 0)
                  AS engagement, s.label
           FROM posts p
           LEFT JOIN scores s ON s.source = p.source AND s.post_id = p.post_id AND s.model = ?
           WHERE p.created_at >= ? AND p.created_at < ? AND (? = 'all' OR p.source = ?)
             AND (?::VARCHAR IS NULL OR s.label = ?)
           ORDER BY engagement DESC, p.created_at DESC
           LIMIT ?""",
        [model, alert.window_start, alert.window_end, alert.scope, alert.scope, label, label, limit],
    )
    rows = df.to_dict("records")
    for row in rows:
        row["created_at"] = pd.Timestamp(row["created_at"]).isoformat()
        row["engagement"] = int(row["engagement"])
    return rows


def store_alerts(store: Store, alerts: Sequence[Alert], rules: AlertRules) -> list[Alert]:
    """Insert alerts that are new for their (kind, scope, day) and outside the cooldown; return those."""
    if not alerts:
        return []
    fresh: list[Alert] = []
    with store.connect() as con:
        for alert in alerts:
            recent = con.execute(
                """SELECT count(*) FROM alerts WHERE kind = ? AND scope = ? AND window_end > ?
                   AND window_end <= ? AND day <> ?""",
                [alert.kind, alert.scope, alert.window_end - timedelta(hours=rules.window_hours), alert.window_end,
                 alert.day],
            ).fetchall()[0][0]
            if recent:
                log.info("alert %s/%s within the cooldown of an earlier one: not raised again", alert.kind,
                         alert.scope)
                continue
            fresh.append(alert)
        if not fresh:
            return []
        rows = []
        for a in fresh:
            row = asdict(a)
            row["top_posts"] = json.dumps(a.top_posts, ensure_ascii=False, default=str)
            rows.append({c: row[c] for c in _ALERT_COLUMNS})
        table = pa.Table.from_pylist(rows, schema=_ALERTS_SCHEMA)
        con.register("_alerts_in", table)
        inserted = con.execute(
            f"""INSERT INTO alerts ({", ".join(_ALERT_COLUMNS)}, created_at)
                SELECT {", ".join(_ALERT_COLUMNS)}, now() FROM _alerts_in
                ON CONFLICT DO NOTHING RETURNING kind, scope, day"""
        ).fetchall()
        con.unregister("_alerts_in")
    keys = set(inserted)
    return [a for a in fresh if (a.kind, a.scope, a.day) in keys]


def mark_delivered(store: Store, alerts: Sequence[Alert], outcome: str, delivered: bool) -> None:
    """Record how the notification for these alerts went (never the URLs: they carry tokens)."""
    if not alerts:
        return
    with store.connect() as con:
        for a in alerts:
            con.execute(
                """UPDATE alerts SET delivery = ?, delivered_at = CASE WHEN ? THEN now() ELSE delivered_at END
                   WHERE kind = ? AND scope = ? AND day = ?""",
                [outcome[:2000], delivered, a.kind, a.scope, a.day],
            ).fetchall()


def raise_alerts(
    store: Store,
    *,
    as_of: datetime | None = None,
    model: str | None = None,
    rules: AlertRules | None = None,
    run_id: str | None = None,
) -> list[Alert]:
    """Detect, attach the top posts, and store; return the alerts that are new (the ones to send)."""
    rules = rules or AlertRules()
    if not rules.enabled:
        return []
    found = evaluate(store, as_of=as_of, model=model, rules=rules)
    for alert in found:
        alert.run_id = run_id
        alert.top_posts = top_posts(store, alert, model, rules.top_posts)
    return store_alerts(store, found, rules)


def scan(
    store: Store, start: date, end: date, *, model: str | None = None, rules: AlertRules | None = None
) -> list[Alert]:
    """Replay detection at the end of each UTC day from ``start`` to ``end`` (inclusive) and store what it
    finds: alerts for history collected before alerts existed (or for the demo data). Nothing is sent."""
    rules = rules or AlertRules()
    first = datetime.combine(start, datetime.min.time(), tzinfo=UTC) + timedelta(days=1)
    last = datetime.combine(end, datetime.min.time(), tzinfo=UTC) + timedelta(days=1)
    begin = first - _history_span(rules)
    series = build_series(load_hourly(store, begin, last, model), begin, last)
    coverage = load_coverage(store)
    new: list[Alert] = []
    as_of = first
    while as_of <= last:
        found = detect(series, coverage, as_of, rules, model=model)
        for alert in found:
            alert.run_id = "scan"
            alert.top_posts = top_posts(store, alert, model, rules.top_posts)
        new += store_alerts(store, found, rules)
        as_of += timedelta(days=1)
    return new


# --- reads for the dashboard and the CLI ---------------------------------------------------------------------


def alerts_frame(
    con: duckdb.DuckDBPyConnection,
    *,
    start: date | None = None,
    end: date | None = None,
    kinds: Sequence[str] = (),
    scopes: Sequence[str] = (),
    limit: int = 500,
) -> pd.DataFrame:
    """Stored alerts, newest first, over an open (read-only is enough) connection; an empty frame if the
    database predates alerts. For the dashboard and the CLI.

    Columns: kind, scope, day, window_start, window_end, observed, expected, low, high, score, direction,
    posts, model, message, top_posts (a list of dicts: source, post_id, created_at, author, url, text,
    engagement, label), run_id, created_at, delivered_at, delivery.
    """
    columns = [*_ALERT_COLUMNS, "created_at", "delivered_at", "delivery"]
    exists = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'alerts'").fetchall()[0][0]
    if not exists:
        return pd.DataFrame(columns=columns)
    clauses, params = ["TRUE"], []
    if start:
        clauses.append("day >= ?")
        params.append(start)
    if end:
        clauses.append("day <= ?")
        params.append(end)
    if kinds:
        clauses.append("list_contains(?, kind)")
        params.append(list(kinds))
    if scopes:
        clauses.append("list_contains(?, scope)")
        params.append(list(scopes))
    df = con.execute(
        f"""SELECT {", ".join(columns)} FROM alerts WHERE {" AND ".join(clauses)}
            ORDER BY window_end DESC, kind, scope LIMIT ?""",
        [*params, int(limit)],
    ).df()
    df["top_posts"] = [json.loads(v) if v else [] for v in df["top_posts"]]
    df["day"] = pd.to_datetime(df["day"]).dt.date  # a DATE arrives as a timestamp
    return df


def list_alerts(store: Store, **kwargs: Any) -> pd.DataFrame:
    """:func:`alerts_frame` over a short-lived connection of ``store``."""
    with store.connect() as con:
        return alerts_frame(con, **kwargs)


def undelivered(store: Store, *, within: timedelta = timedelta(days=1)) -> list[Alert]:
    """Alerts raised in the last ``within`` whose delivery was never attempted (e.g. a run that stopped
    between storing and sending), oldest first. Replayed alerts (``aimusic alerts --scan``) are excluded."""
    df = store.query(
        f"""SELECT {", ".join(_ALERT_COLUMNS)} FROM alerts
            WHERE delivery IS NULL AND created_at >= ? AND coalesce(run_id, '') <> 'scan'
            ORDER BY created_at, kind, scope""",
        [datetime.now(UTC) - within],
    )
    out = []
    for row in df.to_dict("records"):
        row["top_posts"] = json.loads(row["top_posts"]) if row["top_posts"] else []
        for key in ("window_start", "window_end"):
            row[key] = pd.Timestamp(row[key]).to_pydatetime().astimezone(UTC)
        row["day"] = pd.Timestamp(row["day"]).date()
        for key in ("low", "high", "expected"):
            if row[key] is not None and pd.isna(row[key]):
                row[key] = None
        row["posts"] = int(row["posts"] or 0)
        out.append(Alert(**row))
    return out

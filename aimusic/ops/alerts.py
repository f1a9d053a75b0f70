"""Alerts after each run: detect (:mod:`aimusic.ops.detection`), attach the top posts, store, replay, list.

Each alert is stored once per (kind, scope, UTC day) and not raised again for the same kind and scope while
its window overlaps the last one (a cooldown of ``window_hours``), so hourly runs do not repeat one spike.
The thresholds live in the ``[alerts]`` table of ``data/topics.toml`` (:mod:`aimusic.ops.alert_rules`); the
SQL is :mod:`aimusic.store.alerts`; delivery is :mod:`aimusic.ops.notify`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd

from aimusic.ops.alert_rules import AlertRules, load_rules
from aimusic.ops.detection import Alert, build_series, detect, floor_hour, scope_label
from aimusic.store import alerts as table
from aimusic.store.alerts import alerts_frame
from aimusic.store.db import Store

# the names the dashboard and the CLI use, from one place
__all__ = [
    "Alert", "AlertRules", "alerts_frame", "evaluate", "list_alerts", "load_rules", "mark_delivered",
    "raise_alerts", "scan", "scope_label", "store_alerts", "top_posts", "undelivered",
]


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
    series = build_series(table.hourly_counts(store, begin, end, model), begin, end)
    return detect(series, table.first_post_times(store), end, rules, model=model)


def top_posts(store: Store, alert: Alert, model: str | None, limit: int) -> list[dict[str, Any]]:
    """The most engaged posts behind an alert (for a sentiment shift: those with the shift's label)."""
    if limit <= 0:
        return []
    label = None
    if alert.kind == "sentiment_shift":
        label = "positive" if alert.direction == "up" else "negative"
    return table.top_posts(store, start=alert.window_start, end=alert.window_end, scope=alert.scope, model=model,
                           label=label, limit=limit)


def store_alerts(store: Store, alerts: Sequence[Alert], rules: AlertRules) -> list[Alert]:
    """Insert alerts that are new for their (kind, scope, day) and outside the cooldown; return those."""
    rows = [{c: getattr(a, c) for c in table.ALERT_COLUMNS} for a in alerts]
    inserted = table.insert_alerts(store, rows, timedelta(hours=rules.window_hours))
    return [a for a in alerts if (a.kind, a.scope, a.day) in inserted]


def mark_delivered(store: Store, alerts: Sequence[Alert], outcome: str, delivered: bool) -> None:
    """Record how the notification for these alerts went (never the URLs: they carry tokens)."""
    table.mark_delivered(store, [(a.kind, a.scope, a.day) for a in alerts], outcome, delivered)


def _with_top_posts(store: Store, found: list[Alert], model: str | None, rules: AlertRules, run_id: str | None
                    ) -> list[Alert]:
    return [
        dataclasses.replace(a, run_id=run_id, top_posts=top_posts(store, a, model, rules.top_posts)) for a in found
    ]


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
    return store_alerts(store, _with_top_posts(store, found, model, rules, run_id), rules)


def scan(
    store: Store, start: date, end: date, *, model: str | None = None, rules: AlertRules | None = None
) -> list[Alert]:
    """Replay detection at the end of each UTC day from ``start`` to ``end`` (inclusive) and store what it
    finds: alerts for history collected before alerts existed (or for the demo data). Nothing is sent."""
    rules = rules or AlertRules()
    first = datetime.combine(start, datetime.min.time(), tzinfo=UTC) + timedelta(days=1)
    last = datetime.combine(end, datetime.min.time(), tzinfo=UTC) + timedelta(days=1)
    begin = first - _history_span(rules)
    series = build_series(table.hourly_counts(store, begin, last, model), begin, last)
    coverage = table.first_post_times(store)
    new: list[Alert] = []
    as_of = first
    while as_of <= last:
        found = detect(series, coverage, as_of, rules, model=model)
        new += store_alerts(store, _with_top_posts(store, found, model, rules, "scan"), rules)
        as_of += timedelta(days=1)
    return new


def list_alerts(store: Store, **kwargs: Any) -> pd.DataFrame:
    """:func:`aimusic.store.alerts.alerts_frame` over a short-lived connection of ``store``."""
    with store.connect() as con:
        return alerts_frame(con, **kwargs)


def undelivered(store: Store, *, within: timedelta = timedelta(days=1)) -> list[Alert]:
    """Alerts raised in the last ``within`` whose delivery was never attempted (e.g. a run that stopped
    between storing and sending), oldest first. Replayed alerts (``aimusic alerts --scan``) are excluded."""
    return [Alert(**row) for row in table.undelivered_rows(store, datetime.now(UTC) - within)]

"""The monitoring pass as plain functions: plan, collect every source, score, debate signals, record, alerts.

Two drivers run the same pass (:func:`run_monitor`) with their own :class:`Steps`:

- :class:`LocalSteps` here: plain function calls, sources collected on threads. ``aimusic run`` and
  ``aimusic start`` use it when no Prefect server is configured: a temporary Prefect API would cost 10-20 s
  per command and keep nothing (its run history goes with it), while the ``runs`` table records every run
  either way.
- :class:`flows.monitor.PrefectSteps`: each step a Prefect task with retries, for schedules (``aimusic serve``),
  a configured ``PREFECT_API_URL`` or ``aimusic run --prefect``.

Each source fails alone; a failed scoring, signals or alerts step is a problem of the run (``Partially
failed``), not the end of it. The run holds the database's run lock (:mod:`aimusic.ops.runlock`) throughout.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from aimusic.core.config import Settings, get_settings, resolve_db
from aimusic.core.topics import load_topics
from aimusic.debate.relevance import RelevanceFilter
from aimusic.debate.signals import SignalsSummary, update_signals
from aimusic.ops import alerts as alert_ops
from aimusic.ops.alert_rules import load_rules
from aimusic.ops.notify import deliver, split_urls
from aimusic.ops.runlock import run_lock
from aimusic.ops.runreport import redact, run_markdown, run_outcome
from aimusic.pipeline.collect import SourceSummary, check_source, collect_source, reason_of
from aimusic.pipeline.rescore import choose_scorer, load_multilingual, score_store
from aimusic.sources import REGISTRY, get_source
from aimusic.sources.base import CollectContext, SourceUnavailable
from aimusic.store.db import Store
from aimusic.store.queries import new_post_sentiment

log = logging.getLogger(__name__)
Logger = logging.Logger | logging.LoggerAdapter


@dataclass
class RunPlan:
    db: Path
    run: list[str] = field(default_factory=list)
    skipped: list[SourceSummary] = field(default_factory=list)
    demo_fallback: bool = False


def unknown_sources(names: Sequence[str]) -> str | None:
    """The message for names that are not registered sources, or ``None`` when all are."""
    unknown = [n for n in names if n not in REGISTRY]
    if not unknown:
        return None
    return f"unknown source(s): {', '.join(unknown)}; known: {', '.join(REGISTRY)}"


def plan_run(sources: list[str] | None, db: str | None, topics_path: str | None) -> RunPlan:
    """Decide which sources run and where their posts go.

    Named sources run as asked. With none named, every enabled source that can run here runs; if none can,
    the demo source runs instead (into ``data/demo.duckdb`` unless ``--db`` is given) and the skipped
    sources say why.
    """
    topics = load_topics(topics_path)
    settings = get_settings()
    names = sources or [n for n in REGISTRY if n != "demo" and topics.source_enabled(n)]
    problem = unknown_sources(names)
    if problem:
        raise KeyError(problem)
    plan = RunPlan(db=Path())
    for name in names:
        try:
            reason = check_source(get_source(name), CollectContext(topics=topics, settings=settings))
        except SourceUnavailable as exc:
            reason = reason_of(name, exc)
        if reason:
            plan.skipped.append(SourceSummary(source=name, status="skipped", error=reason))
        else:
            plan.run.append(name)
    if not plan.run and not sources:
        plan.run, plan.demo_fallback = ["demo"], True
    synthetic_only = bool(plan.run) and all(get_source(n).synthetic for n in plan.run)
    plan.db = resolve_db(db, demo=synthetic_only)
    return plan


# --- the steps, as plain functions (the Prefect tasks of flows.monitor call these too) --------------------------


def collect_one(name: str, db: str, topics_path: str | None, logger: Logger = log) -> SourceSummary:
    """Collect one source into ``db`` (a database error raises: the caller decides whether to retry)."""
    topics = load_topics(topics_path)
    summary = collect_source(
        get_source(name), Store(db), topics, get_settings(), relevance=RelevanceFilter(topics), logger=logger
    )
    logger.info(summary.line())
    return summary


def score_db(db: str, model: str | None, logger: Logger = log) -> tuple[str, dict[str, int]]:
    """Score every post of ``db`` lacking a current score from the chosen model: (model id, posts per source)."""
    scorer = choose_scorer(model)
    store = Store(db)
    logger.info("scoring %d posts with %s", store.count_unscored(scorer.model_id), scorer.model_id)
    return scorer.model_id, dict(score_store(store, scorer, multilingual=load_multilingual()).per_source)


def signals_db(db: str, topics_path: str | None) -> SignalsSummary:
    """Entities, arguments and stance of the posts lacking them (:func:`aimusic.debate.signals.update_signals`)."""
    return update_signals(Store(db), load_topics(topics_path), stance_model=get_settings().stance_model)


def record_runs(db: str, rows: list[dict[str, Any]]) -> None:
    store = Store(db)
    for row in rows:  # one row per source: a handful, so one small write each
        store.record_run(row)


def alerts_db(db: str, model: str | None, run_id: str, topics_path: str | None, logger: Logger = log) -> list[str]:
    """Detect and store alerts, then send the new ones (and any left unsent) to AIMUSIC_ALERT_URLS."""
    settings = get_settings()
    store = Store(db)
    new = alert_ops.raise_alerts(store, model=model, rules=load_rules(load_topics(topics_path)), run_id=run_id)
    for alert in new:
        logger.warning("ALERT %s", alert.message)
    pending = alert_ops.undelivered(store)
    if pending:
        urls = split_urls(settings.alert_urls.get_secret_value() if settings.alert_urls else None)
        delivery = deliver(pending, urls)
        alert_ops.mark_delivered(store, pending, delivery.summary(), delivery.ok)
        logger.info("alert delivery: %s", delivery.summary())
    return [a.message for a in new]


class Steps(Protocol):
    """How a driver runs each step. ``collect`` never raises for a source (a failed source is a failed
    summary); the others raise when their step failed."""

    def collect(self, names: Sequence[str], db: str, topics_path: str | None) -> list[SourceSummary]: ...

    def score(self, db: str, model: str | None) -> tuple[str, dict[str, int]]: ...

    def signals(self, db: str, topics_path: str | None) -> SignalsSummary: ...

    def record(self, db: str, rows: list[dict[str, Any]]) -> None: ...

    def alerts(self, db: str, model: str | None, run_id: str, topics_path: str | None) -> list[str]: ...


def failed_summary(name: str, error: str) -> SourceSummary:
    return SourceSummary(source=name, status="failed", error=error, finished_at=datetime.now(UTC))


class StepFailed(RuntimeError):
    """A step failed in a way its driver already described (e.g. a Prefect task that ended Failed)."""


def describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, StepFailed) else f"{type(exc).__name__}: {exc}"


class LocalSteps:
    """Plain calls in this process; sources are collected on threads (writes take turns on the file)."""

    def __init__(self, settings: Settings, logger: Logger = log) -> None:
        self.settings, self.logger = settings, logger

    def collect(self, names: Sequence[str], db: str, topics_path: str | None) -> list[SourceSummary]:
        def one(name: str) -> SourceSummary:
            try:
                return collect_one(name, db, topics_path, self.logger)
            except Exception as exc:  # recorded as this source's failure; the other sources go on
                return failed_summary(name, redact(describe(exc), self.settings) or "")

        if not names:
            return []
        with ThreadPoolExecutor(max_workers=min(len(names), 8), thread_name_prefix="collect") as pool:
            return list(pool.map(one, names))

    def score(self, db: str, model: str | None) -> tuple[str, dict[str, int]]:
        return score_db(db, model, self.logger)

    def signals(self, db: str, topics_path: str | None) -> SignalsSummary:
        return signals_db(db, topics_path)

    def record(self, db: str, rows: list[dict[str, Any]]) -> None:
        record_runs(db, rows)

    def alerts(self, db: str, model: str | None, run_id: str, topics_path: str | None) -> list[str]:
        return alerts_db(db, model, run_id, topics_path, self.logger)


# --- the pass -------------------------------------------------------------------------------------------------


def run_monitor(
    plan: RunPlan,
    *,
    run_id: str,
    model: str | None,
    topics_path: str | None,
    settings: Settings,
    steps: Steps,
    logger: Logger = log,
    lock_wait: float | None = None,
) -> dict[str, Any]:
    """One monitoring pass under the database's run lock; returns the run summary with its ``state``
    (Completed, Partially failed, Failed or Skipped), ``message`` and the markdown ``report``."""
    wait = settings.run_lock_wait if lock_wait is None else float(lock_wait)
    started = datetime.now(UTC)
    with run_lock(plan.db, wait, what=f"monitor run {run_id[:8]}") as lock:
        if not lock.acquired:
            return _skipped_run(plan, run_id, lock.describe_holder(), lock.waited, steps, logger)
        result, problems = _monitor_pass(plan, run_id, model, topics_path, settings, steps, logger)
    outcome = run_outcome(result["summaries"], problems=problems)
    result.update(state=outcome.state, message=outcome.message)
    try:  # observability only: the run's data is recorded, a missing report must not fail it
        sentiment = new_post_sentiment(Store(plan.db), started, result["model"])
        result["report"] = run_markdown(
            run_id=run_id, db=result["db"], model=result["model"], outcome=outcome, rows=result["summaries"],
            sentiment=sentiment, alerts=result["alerts"], settings=settings,
        )
    except Exception as exc:
        logger.warning("could not build the run report: %s", describe(exc))
    return result


def _monitor_pass(
    plan: RunPlan, run_id: str, model: str | None, topics_path: str | None, settings: Settings, steps: Steps,
    logger: Logger,
) -> tuple[dict[str, Any], list[str]]:
    db = str(plan.db)
    problems: list[str] = []

    def problem(step: str, exc: BaseException) -> None:
        problems.append(f"{step} failed: {redact(describe(exc), settings)}")
        logger.error(problems[-1])

    if plan.demo_fallback:
        logger.warning("no real source can run here: using the demo source (synthetic posts) in %s", plan.db)
    summaries = steps.collect(plan.run, db, topics_path)
    model_id: str | None = None
    try:
        model_id, counts = steps.score(db, model)
        _assign_scored(summaries, counts)
    except Exception as exc:  # a problem of the run: it ends Partially failed and says why
        problem("scoring", exc)
    signals: str | None = None
    try:
        summary = steps.signals(db, topics_path)
        # entities are tagged as posts are stored (collect) and then by this step: one count for the run
        signals = dataclasses.replace(summary, entities=summary.entities + sum(s.entities for s in summaries)).line()
    except Exception as exc:
        problem("debate signals", exc)
    rows = [s.as_row(run_id, model_id) for s in [*summaries, *plan.skipped]]
    for row in rows:
        row["error"] = redact(row.get("error"), settings)
    steps.record(db, rows)
    alert_messages: list[str] = []
    try:
        alert_messages = steps.alerts(db, model_id, run_id, topics_path)
    except Exception as exc:
        problem("alerts", exc)
    result = {
        "run_id": run_id, "db": db, "model": model_id, "demo_fallback": plan.demo_fallback, "summaries": rows,
        "lines": [s.line() for s in [*summaries, *plan.skipped]], "alerts": alert_messages, "signals": signals,
    }
    return result, problems


def _skipped_run(plan: RunPlan, run_id: str, holder: str, waited: float, steps: Steps, logger: Logger
                 ) -> dict[str, Any]:
    reason = (
        f"skipped: another run held {plan.db.name} for all of the {waited:.0f}s this run waits "
        f"(AIMUSIC_RUN_LOCK_WAIT): {holder}"
    )
    logger.warning(reason)
    now = datetime.now(UTC)
    summaries = [
        SourceSummary(source=n, status="skipped", error=reason, started_at=now, finished_at=now) for n in plan.run
    ]
    rows = [s.as_row(run_id, None) for s in [*summaries, *plan.skipped]]
    steps.record(str(plan.db), rows)
    return {
        "run_id": run_id, "db": str(plan.db), "model": None, "demo_fallback": plan.demo_fallback,
        "summaries": rows, "lines": [s.line() for s in [*summaries, *plan.skipped]], "alerts": [],
        "signals": None, "state": "Skipped", "message": reason,
    }


def _assign_scored(summaries: list[SourceSummary], counts: dict[str, int]) -> None:
    """Scored counts are per post source (platform); a synthetic source gets what no collector claims."""
    left = dict(counts)
    for s in summaries:
        s.scored = left.pop(s.source, 0)
    rest = sum(left.values())
    if rest:
        target = next((s for s in summaries if get_source(s.source).synthetic), None)
        if target is not None:
            target.scored += rest

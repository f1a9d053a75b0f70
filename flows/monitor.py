"""The monitor flow (Prefect 3): one task per source, then scoring, then the run record, alerts and a report.

Thin on purpose: the work is in :mod:`aimusic.pipeline.collect`; this module adds Prefect's logging, task isolation,
retries and observability. Tasks take plain values (paths, names) so they can run in another process or worker.

A run holds the database's run lock (:mod:`aimusic.ops.runlock`) from collection to alerts, so runs of different
schedules never overlap; its Prefect state says how it went (see :func:`monitor_flow`), and it publishes a
markdown artifact with the per-source figures and the sentiment of the new posts (:mod:`aimusic.ops.runreport`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import get_run_context
from prefect.states import Completed, Failed, State
from prefect.tasks import exponential_backoff

from aimusic.core.config import Settings, get_settings, resolve_db
from aimusic.core.topics import load_topics
from aimusic.debate.relevance import RelevanceFilter
from aimusic.ops.alerts import load_rules, mark_delivered, raise_alerts, undelivered
from aimusic.ops.notify import deliver, split_urls
from aimusic.ops.runlock import run_lock
from aimusic.ops.runreport import artifact_key, new_post_sentiment, redact, run_markdown, run_outcome
from aimusic.pipeline.collect import SourceSummary, check_source, collect_source
from aimusic.pipeline.rescore import choose_scorer, load_multilingual, score_store
from aimusic.sources import REGISTRY, get_source
from aimusic.sources.base import CollectContext, SourceUnavailable
from aimusic.store.db import Store, StoreError
from flows.scoring import score_flow, task_runner, uses_dask
from flows.signals_task import run_signals
from sentiment import ScorerError


@dataclass
class RunPlan:
    db: Path
    run: list[str] = field(default_factory=list)
    skipped: list[SourceSummary] = field(default_factory=list)
    demo_fallback: bool = False


def plan_run(sources: list[str] | None, db: str | None, topics_path: str | None) -> RunPlan:
    """Decide which sources run and where their posts go.

    Named sources run as asked. With none named, every enabled source that can run here runs; if none can,
    the demo source runs instead (into ``data/demo.duckdb`` unless ``--db`` is given) and the skipped
    sources say why.
    """
    topics = load_topics(topics_path)
    settings = get_settings()
    names = sources or [n for n in REGISTRY if n != "demo" and topics.source_enabled(n)]
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise KeyError(f"unknown source(s): {', '.join(unknown)}; known: {', '.join(REGISTRY)}")
    plan = RunPlan(db=Path())
    for name in names:
        try:
            source = get_source(name)
            reason = check_source(source, CollectContext(topics=topics, settings=settings))
        except SourceUnavailable as exc:
            reason = str(exc)
        if reason:
            plan.skipped.append(SourceSummary(source=name, status="skipped", error=reason))
        else:
            plan.run.append(name)
    if not plan.run and not sources:
        plan.run, plan.demo_fallback = ["demo"], True
    synthetic_only = bool(plan.run) and all(get_source(n).synthetic for n in plan.run)
    plan.db = resolve_db(db, demo=synthetic_only)
    return plan


def _failed_with(*kinds: type[BaseException]):
    """A retry condition: retry only when the task failed with one of ``kinds``."""

    def condition(task: Any, task_run: Any, state: State) -> bool:
        return isinstance(state.result(raise_on_failure=False), kinds)

    return condition


def _not_failed_with(*kinds: type[BaseException]):
    def condition(task: Any, task_run: Any, state: State) -> bool:
        return not isinstance(state.result(raise_on_failure=False), kinds)

    return condition


# Retries: collect_source records source errors in its summary instead of raising (sources retry their own
# HTTP calls), so the collect task only retries when the database was busy or failed; a retry resumes from the
# committed cursors. Scoring is idempotent and resumable, so it retries anything but a model that cannot load.
@task(
    name="collect",
    task_run_name="collect-{source_name}",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=10),
    retry_jitter_factor=0.5,
    retry_condition_fn=_failed_with(StoreError),
)
def collect_task(source_name: str, db: str, topics_path: str | None) -> SourceSummary:
    logger = get_run_logger()
    topics = load_topics(topics_path)
    summary = collect_source(
        get_source(source_name), Store(db), topics, get_settings(), relevance=RelevanceFilter(topics), logger=logger
    )
    logger.info(summary.line())
    return summary


@task(
    name="score",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=10),
    retry_jitter_factor=0.5,
    retry_condition_fn=_not_failed_with(ScorerError),
)
def score_task(db: str, model: str | None) -> tuple[str, dict[str, int]]:
    logger = get_run_logger()
    scorer = choose_scorer(model)
    store = Store(db)
    pending = store.count_unscored(scorer.model_id)
    logger.info("scoring %d posts with %s", pending, scorer.model_id)
    counts = score_store(store, scorer, multilingual=load_multilingual()).per_source
    return scorer.model_id, dict(counts)


@task(
    name="record-run",
    cache_policy=NO_CACHE,
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=5),
    retry_jitter_factor=0.5,
)
def record_runs_task(db: str, rows: list[dict]) -> None:
    store = Store(db)
    for row in rows:  # one row per source: a handful, so one small write each
        store.record_run(row)


@task(
    name="alerts",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=5),
    retry_jitter_factor=0.5,
    retry_condition_fn=_failed_with(StoreError),
)
def alerts_task(db: str, model: str | None, run_id: str, topics_path: str | None) -> list[str]:
    """Detect and store alerts, then send the new ones (and any left unsent) to AIMUSIC_ALERT_URLS."""
    logger = get_run_logger()
    settings = get_settings()
    store = Store(db)
    rules = load_rules(load_topics(topics_path))
    new = raise_alerts(store, model=model, rules=rules, run_id=run_id)
    for alert in new:
        logger.warning("ALERT %s", alert.message)
    pending = undelivered(store)
    if pending:
        urls = split_urls(settings.alert_urls.get_secret_value() if settings.alert_urls else None)
        delivery = deliver(pending, urls)
        mark_delivered(store, pending, delivery.summary(), delivery.ok)
        logger.info("alert delivery: %s", delivery.summary())
    return [a.message for a in new]


class MonitorRunFailed(RuntimeError):
    """Every source that ran failed. ``result`` is the run summary (also recorded in ``runs``)."""

    def __init__(self, message: str, result: dict | None = None):
        super().__init__(message)
        self.result = result or {}

    def __reduce__(self) -> tuple:
        return (type(self), (str(self), self.result))


@flow(name="aimusic-monitor", log_prints=False)
def monitor_flow(
    sources: list[str] | None = None,
    db: str | None = None,
    model: str | None = None,
    topics_path: str | None = None,
    lock_wait: float | None = None,
) -> dict:
    """One monitoring pass: collect each source (each fails alone), score new posts, record the run, raise
    alerts, publish a report.

    Returns the run summary. The Prefect state says how the run went: ``Completed``; ``Partially failed`` (a
    Completed state: some sources failed, or scoring or alerts did); ``Failed`` (every source that ran failed;
    calling the flow then raises :class:`MonitorRunFailed`, which carries the summary); ``Skipped`` (another
    run held the database for longer than ``lock_wait`` seconds, default ``AIMUSIC_RUN_LOCK_WAIT``). Every
    case writes one ``runs`` row per source.
    """
    logger = get_run_logger()
    settings = get_settings()
    plan = plan_run(sources, db, topics_path)
    flow_run = get_run_context().flow_run
    run_id = str(flow_run.id) if flow_run else str(uuid.uuid4())
    wait = settings.run_lock_wait if lock_wait is None else float(lock_wait)
    with run_lock(plan.db, wait, what=f"monitor run {run_id[:8]}") as lock:
        if not lock.acquired:
            return _skipped_run(plan, run_id, lock.describe_holder(), lock.waited, logger)
        result, problems = _monitor_pass(plan, run_id, model, topics_path, settings, logger)
    outcome = run_outcome(result["summaries"], problems=problems)
    result.update(state=outcome.state, message=outcome.message)
    if outcome.state == "Failed":
        return Failed(message=outcome.message, data=MonitorRunFailed(outcome.message, result))
    return Completed(name=outcome.state, message=outcome.message, data=result)


def _monitor_pass(
    plan: RunPlan, run_id: str, model: str | None, topics_path: str | None, settings: Settings, logger: Any
) -> tuple[dict, list[str]]:
    started = datetime.now(UTC)
    store = Store(plan.db)
    problems: list[str] = []
    for skipped in plan.skipped:
        logger.warning("skipped %s: %s", skipped.source, skipped.error)
    if plan.demo_fallback:
        logger.warning("no real source can run here: using the demo source (synthetic posts) in %s", plan.db)
    futures = [collect_task.submit(name, str(plan.db), topics_path) for name in plan.run]
    for future in futures:
        future.wait()
    summaries = [_collected(name, f.state, settings) for name, f in zip(plan.run, futures, strict=True)]
    if uses_dask(settings.task_runner):
        score_state = score_flow.with_options(task_runner=task_runner(settings.task_runner))(
            db=str(plan.db), model=model, return_state=True
        )
    else:
        score_state = score_task(str(plan.db), model, return_state=True)
    model_id: str | None = None
    if score_state.is_completed():
        model_id, counts = score_state.result()
        _assign_scored(summaries, counts)
    else:
        problems.append(f"scoring failed: {redact(_state_error(score_state), settings)}")
        logger.error(problems[-1])
    problems.extend(run_signals(str(plan.db), topics_path, logger))  # entities, arguments, stance
    rows = [s.as_row(run_id, model_id) for s in [*summaries, *plan.skipped]]
    for row in rows:
        row["error"] = redact(row.get("error"), settings)
    record_runs_task(str(plan.db), rows)
    lines = [s.line() for s in [*summaries, *plan.skipped]]
    logger.info("run %s on %s:\n%s", run_id, plan.db, "\n".join(lines))
    alert_messages: list[str] = []
    alerts_state = alerts_task(str(plan.db), model_id, run_id, topics_path, return_state=True)
    if alerts_state.is_completed():
        alert_messages = alerts_state.result()
    else:
        problems.append(f"alerts failed: {redact(_state_error(alerts_state), settings)}")
        logger.error(problems[-1])
    result = {
        "run_id": run_id,
        "db": str(plan.db),
        "model": model_id,
        "demo_fallback": plan.demo_fallback,
        "summaries": rows,
        "lines": lines,
        "alerts": alert_messages,
    }
    _publish_report(store, result, started, problems, settings, logger)
    return result, problems


def _collected(name: str, state: State, settings: Settings) -> SourceSummary:
    """The task's summary, or a failed summary when the task itself failed (after its retries)."""
    if state.is_completed():
        return state.result()
    summary = SourceSummary(source=name, status="failed", error=redact(_state_error(state), settings))
    summary.finished_at = datetime.now(UTC)
    return summary


def _state_error(state: State) -> str:
    exc = state.result(raise_on_failure=False)
    if isinstance(exc, BaseException):
        return f"{type(exc).__name__}: {exc}"
    return state.message or state.name or "unknown error"


def _publish_report(
    store: Store, result: dict, started: datetime, problems: list[str], settings: Settings, logger: Any
) -> None:
    """The run's markdown artifact (one history per deployment). Observability only: a failure is logged."""
    from prefect import runtime
    from prefect.artifacts import create_markdown_artifact

    outcome = run_outcome(result["summaries"], problems=problems)
    try:
        sentiment = new_post_sentiment(store, started, result["model"])
        markdown = run_markdown(
            run_id=result["run_id"], db=result["db"], model=result["model"], outcome=outcome,
            rows=result["summaries"], sentiment=sentiment, alerts=result["alerts"], settings=settings,
        )
        result["report"] = markdown
        create_markdown_artifact(
            markdown=markdown, key=artifact_key(runtime.deployment.name), description=outcome.message[:500]
        )
    except Exception as exc:  # the run's data is recorded; a missing report must not fail it
        logger.warning("could not publish the run report: %s: %s", type(exc).__name__, exc)


def _skipped_run(plan: RunPlan, run_id: str, holder: str, waited: float, logger: Any) -> State:
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
    record_runs_task(str(plan.db), rows)
    result = {
        "run_id": run_id, "db": str(plan.db), "model": None, "demo_fallback": plan.demo_fallback,
        "summaries": rows, "lines": [s.line() for s in [*summaries, *plan.skipped]], "alerts": [],
        "state": "Skipped", "message": reason,
    }
    return Completed(name="Skipped", message=reason, data=result)


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

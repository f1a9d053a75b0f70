"""The monitor flow (Prefect 3): the monitoring pass of :mod:`aimusic.pipeline.monitor` with one task per step.

Thin on purpose: the pass (order, error handling, run lock, summary, report) is
:func:`aimusic.pipeline.monitor.run_monitor`; this module runs each step as a Prefect task, adding logging,
task isolation, retries and observability. Tasks take plain values (paths, names) so they can run in another
process or worker. The run's state says how it went (see :func:`monitor_flow`), and it publishes a markdown
artifact with the per-source figures and the sentiment of the new posts (:mod:`aimusic.ops.runreport`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from prefect import flow, get_run_logger
from prefect.context import get_run_context
from prefect.states import Completed, Failed, State

from aimusic.core.config import Settings, get_settings
from aimusic.debate.signals import SignalsSummary
from aimusic.ops.runreport import artifact_key, redact
from aimusic.pipeline.collect import SourceSummary
from aimusic.pipeline.monitor import (
    RunPlan,
    StepFailed,
    alerts_db,
    collect_one,
    failed_summary,
    plan_run,
    record_runs,
    run_monitor,
    score_db,
    signals_db,
)
from aimusic.store.db import StoreError
from flows.retry import failed_with, io_task, not_failed_with
from flows.scoring import score_flow, task_runner, uses_dask
from sentiment import ScorerError

__all__ = ["MonitorRunFailed", "PrefectSteps", "RunPlan", "monitor_flow", "plan_run", "score_task"]


# Retries: collect_source records source errors in its summary instead of raising (sources retry their own
# HTTP calls), so the collect task only retries when the database was busy or failed; a retry resumes from the
# committed cursors. Scoring is idempotent and resumable, so it retries anything but a model that cannot load.
@io_task("collect", task_run_name="collect-{source_name}", condition=failed_with(StoreError))
def collect_task(source_name: str, db: str, topics_path: str | None) -> SourceSummary:
    return collect_one(source_name, db, topics_path, get_run_logger())


@io_task("score", condition=not_failed_with(ScorerError))
def score_task(db: str, model: str | None) -> tuple[str, dict[str, int]]:
    return score_db(db, model, get_run_logger())


@io_task("debate-signals")
def signals_task(db: str, topics_path: str | None) -> SignalsSummary:
    """Entities, arguments and stance (idempotent and resumable; a model that cannot load is a note)."""
    return signals_db(db, topics_path)


@io_task("record-run", retries=3, backoff=5)
def record_runs_task(db: str, rows: list[dict]) -> None:
    record_runs(db, rows)


@io_task("alerts", backoff=5, condition=failed_with(StoreError))
def alerts_task(db: str, model: str | None, run_id: str, topics_path: str | None) -> list[str]:
    """Detect and store alerts, then send the new ones (and any left unsent) to AIMUSIC_ALERT_URLS."""
    return alerts_db(db, model, run_id, topics_path, get_run_logger())


def _result(state: State) -> Any:
    """The task's result, or :class:`StepFailed` naming the error it ended with (after its retries)."""
    if not state.is_completed():
        raise StepFailed(_state_error(state))
    return state.result()


def _state_error(state: State) -> str:
    exc = state.result(raise_on_failure=False)
    if isinstance(exc, BaseException):
        return f"{type(exc).__name__}: {exc}"
    return state.message or state.name or "unknown error"


class PrefectSteps:
    """The pass's steps as Prefect tasks: sources collected concurrently on the flow's task runner."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self, names: Sequence[str], db: str, topics_path: str | None) -> list[SourceSummary]:
        futures = [collect_task.submit(name, db, topics_path) for name in names]
        for future in futures:
            future.wait()
        return [
            f.state.result() if f.state.is_completed()
            else failed_summary(name, redact(_state_error(f.state), self.settings) or "")
            for name, f in zip(names, futures, strict=True)
        ]

    def score(self, db: str, model: str | None) -> tuple[str, dict[str, int]]:
        if uses_dask(self.settings.task_runner):
            runner = task_runner(self.settings.task_runner)
            return _result(score_flow.with_options(task_runner=runner)(db=db, model=model, return_state=True))
        return _result(score_task(db, model, return_state=True))

    def signals(self, db: str, topics_path: str | None) -> SignalsSummary:
        return _result(signals_task(db, topics_path, return_state=True))

    def record(self, db: str, rows: list[dict[str, Any]]) -> None:
        record_runs_task(db, rows)

    def alerts(self, db: str, model: str | None, run_id: str, topics_path: str | None) -> list[str]:
        return _result(alerts_task(db, model, run_id, topics_path, return_state=True))


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
    """One monitoring pass: collect each source (each fails alone), score new posts, debate signals, record
    the run, raise alerts, publish a report.

    Returns the run summary. The Prefect state says how the run went: ``Completed``; ``Partially failed`` (a
    Completed state: some sources failed, or scoring, signals or alerts did); ``Failed`` (every source that
    ran failed; calling the flow then raises :class:`MonitorRunFailed`, which carries the summary);
    ``Skipped`` (another run held the database for longer than ``lock_wait`` seconds, default
    ``AIMUSIC_RUN_LOCK_WAIT``). Every case writes one ``runs`` row per source.
    """
    logger = get_run_logger()
    settings = get_settings()
    plan = plan_run(sources, db, topics_path)
    for skipped in plan.skipped:
        logger.warning("skipped %s: %s", skipped.source, skipped.error)
    flow_run = get_run_context().flow_run
    run_id = str(flow_run.id) if flow_run else str(uuid.uuid4())
    result = run_monitor(plan, run_id=run_id, model=model, topics_path=topics_path, settings=settings,
                         steps=PrefectSteps(settings), logger=logger, lock_wait=lock_wait)
    if result["state"] == "Skipped":
        return Completed(name="Skipped", message=result["message"], data=result)
    logger.info("run %s on %s:\n%s", run_id, plan.db, "\n".join([*result["lines"], result["signals"] or ""]))
    _publish_report(result, logger)
    if result["state"] == "Failed":
        return Failed(message=result["message"], data=MonitorRunFailed(result["message"], result))
    return Completed(name=result["state"], message=result["message"], data=result)


def _publish_report(result: dict, logger: Any) -> None:
    """The run's markdown artifact (one history per deployment). Observability only: a failure is logged."""
    from prefect import runtime
    from prefect.artifacts import create_markdown_artifact

    if "report" not in result:
        return
    try:
        create_markdown_artifact(
            markdown=result["report"], key=artifact_key(runtime.deployment.name), description=result["message"][:500]
        )
    except Exception as exc:  # the run's data is recorded; a missing report must not fail it
        logger.warning("could not publish the run report: %s: %s", type(exc).__name__, exc)

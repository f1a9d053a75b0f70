"""The monitor flow's debate-signals step as a Prefect task (the work is :func:`aimusic.debate.signals.update_signals`).

Runs after sentiment scoring: entities, arguments and stance for the posts that lack them. Idempotent and
resumable, so it retries when the database was busy; a model that cannot load here is a note, not a failure.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from aimusic.core.config import get_settings
from aimusic.core.topics import load_topics
from aimusic.debate.signals import update_signals
from aimusic.store.db import Store


@task(
    name="debate-signals",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=10),
    retry_jitter_factor=0.5,
)
def signals_task(db: str, topics_path: str | None) -> str:
    logger = get_run_logger()
    summary = update_signals(Store(db), load_topics(topics_path), stance_model=get_settings().stance_model)
    logger.info(summary.line())
    return summary.line()


def run_signals(db: str, topics_path: str | None, logger: Any) -> list[str]:
    """Run :func:`signals_task`; return the problems to report (empty when it worked)."""
    state = signals_task(db, topics_path, return_state=True)
    if state.is_completed():
        return []
    exc = state.result(raise_on_failure=False)
    problem = f"debate signals failed: {type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else (
        f"debate signals failed: {state.message or state.name}"
    )
    logger.error(problem)
    return [problem]

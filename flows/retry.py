"""One way to declare the flows' I/O tasks: no result cache, retries with exponential backoff and jitter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.states import State
from prefect.tasks import exponential_backoff

RetryCondition = Callable[[Any, Any, State], bool]


def failed_with(*kinds: type[BaseException]) -> RetryCondition:
    """Retry only when the task failed with one of ``kinds``."""

    def condition(task: Any, task_run: Any, state: State) -> bool:
        return isinstance(state.result(raise_on_failure=False), kinds)

    return condition


def not_failed_with(*kinds: type[BaseException]) -> RetryCondition:
    """Retry unless the task failed with one of ``kinds`` (e.g. a model that cannot load will not load later)."""

    def condition(task: Any, task_run: Any, state: State) -> bool:
        return not isinstance(state.result(raise_on_failure=False), kinds)

    return condition


def io_task(
    name: str, *, retries: int = 2, backoff: float = 10, condition: RetryCondition | None = None, **options: Any
) -> Callable[[Callable[..., Any]], Any]:
    """``@task`` for a step that reads or writes the database or the network (see the module docstring)."""
    return task(
        name=name,
        cache_policy=NO_CACHE,
        retries=retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=backoff),
        retry_jitter_factor=0.5,
        retry_condition_fn=condition,
        **options,
    )

"""Scoring past one process: unscored posts in chunks, scored by parallel Prefect tasks on a chosen runner.

``AIMUSIC_TASK_RUNNER`` picks the task runner:

- ``threads`` (default) or ``threads:N``: Prefect's thread pool in the flow process;
- ``dask``: a temporary local Dask cluster (worker processes on this machine, ``dask:local:N`` for N workers);
- ``dask:tcp://host:8786``: an existing Dask cluster (``dask scheduler`` + ``dask worker`` on other machines;
  every worker needs this project installed and the model available).

Workers only compute: the flow process fills missing languages, reads each batch of unscored posts, ships
chunks (Arrow tables of id, title, text, lang) to the tasks, and writes the returned scores itself, because
DuckDB has a single writer. Each chunk is scored by :func:`aimusic.pipeline.collect.score_posts` over an in-memory
stand-in for the store, so the scores are exactly those of a local run (:func:`aimusic.pipeline.rescore.score_store`).
Posts the main model declines for their language go to ``AIMUSIC_MULTILINGUAL_MODEL`` afterwards, in the
flow process (usually a small share). A worker that loads a different model than the flow (say, the
transformer weights are missing there and it would fall back to VADER) fails the chunk instead of mixing
models.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from typing import Any

import pyarrow as pa
from prefect import flow, get_run_logger
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from aimusic.core.config import ConfigError, get_settings
from aimusic.pipeline.collect import score_posts
from aimusic.pipeline.languages import fill_languages
from aimusic.pipeline.rescore import load_multilingual, score_store
from aimusic.store.db import Store
from flows.retry import io_task, not_failed_with
from sentiment import Scorer, ScorerError, load_default, load_scorer

log = logging.getLogger(__name__)

DEFAULT_CHUNK = 1_000
CHUNKS_IN_FLIGHT = 8


def task_runner(spec: str | None) -> TaskRunner:
    """The task runner named by ``AIMUSIC_TASK_RUNNER`` (see the module docstring)."""
    spec = (spec or "threads").strip()
    kind, _, arg = spec.partition(":")
    kind = kind.lower()
    if kind == "threads":
        try:
            workers = int(arg) if arg else None
        except ValueError:
            raise ConfigError(f"AIMUSIC_TASK_RUNNER={spec!r}: threads:N needs a number") from None
        return ThreadPoolTaskRunner(max_workers=workers)
    if kind == "dask":
        from prefect_dask import DaskTaskRunner

        if arg.startswith("local"):
            _, _, n = arg.partition(":")
            try:
                workers = int(n) if n else 2
            except ValueError:
                raise ConfigError(f"AIMUSIC_TASK_RUNNER={spec!r}: dask:local:N needs a number") from None
            return DaskTaskRunner(
                cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "dashboard_address": None}
            )
        if arg:
            return DaskTaskRunner(address=arg)
        return DaskTaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "dashboard_address": None})
    raise ConfigError(
        f"AIMUSIC_TASK_RUNNER={spec!r}: use threads, threads:N, dask, dask:local:N or dask:tcp://host:port"
    )


def uses_dask(spec: str | None) -> bool:
    return (spec or "threads").strip().lower().startswith("dask")


class ChunkStore:
    """The two store methods :func:`score_posts` uses, over one in-memory chunk: it hands the chunk out once
    and keeps the scores written back."""

    def __init__(self, chunk: pa.Table):
        self._chunk: pa.Table | None = chunk
        self._schema = chunk.schema
        self.scores: list[pa.Table] = []

    def unscored(self, model: str, limit: int, **_: Any) -> pa.Table:
        chunk, self._chunk = self._chunk, None
        if chunk is None:
            return self._schema.empty_table()
        if chunk.num_rows > limit:
            raise ValueError("ChunkStore hands out whole chunks: use a batch_size >= the chunk size")
        return chunk

    def upsert_scores(self, scores: pa.Table) -> int:
        self.scores.append(scores)
        return scores.num_rows


@functools.lru_cache(maxsize=4)
def _scorer(model: str | None) -> Scorer:
    """One scorer per worker process and model name (loading a transformer takes seconds)."""
    return load_scorer(model) if model else load_default()


@io_task("score-chunk", backoff=2, condition=not_failed_with(ScorerError))
def score_chunk_task(chunk: pa.Table, model: str | None, expected_model_id: str) -> pa.Table:
    scorer = _scorer(model)
    if scorer.model_id != expected_model_id:
        raise ScorerError(
            f"this worker loaded {scorer.model_id} but the flow scores with {expected_model_id}: install the "
            "same model on every worker (scores from different models are never mixed)"
        )
    sink = ChunkStore(chunk)
    score_posts(sink, scorer, batch_size=max(chunk.num_rows, 1))  # type: ignore[arg-type]
    return pa.concat_tables(sink.scores) if sink.scores else pa.table({})


@flow(name="aimusic-score", log_prints=False)
def score_flow(
    db: str, model: str | None = None, chunk_size: int = DEFAULT_CHUNK, limit: int | None = None
) -> tuple[str, dict[str, int]]:
    """Score every post without a current score from the model, in parallel chunks on the flow's task runner
    (choose one with ``score_flow.with_options(task_runner=task_runner(spec))``). Returns (model id, scored
    posts per source)."""
    logger = get_run_logger()
    name = model or get_settings().model  # rescore.choose_scorer's pick, as a name workers load
    scorer = _scorer(name)
    model_id = scorer.model_id
    store = Store(db)
    fill_languages(store)
    per_source: Counter[str] = Counter()
    done = 0
    pending = store.count_unscored(model_id)
    logger.info("scoring %d posts with %s in chunks of %d", pending, model_id, chunk_size)
    while limit is None or done < limit:
        size = chunk_size * CHUNKS_IN_FLIGHT
        if limit is not None:
            size = min(size, limit - done)
        todo = store.unscored(model_id, size)
        if todo.num_rows == 0:
            break
        chunks = [todo.slice(i, chunk_size) for i in range(0, todo.num_rows, chunk_size)]
        futures = [score_chunk_task.submit(c, name, model_id) for c in chunks]
        written = 0
        for future in futures:
            scores = future.result()
            if scores.num_rows:
                written += store.upsert_scores(scores)  # writes stay in the flow process: DuckDB has one writer
                per_source.update(scores.column("source").to_pylist())
        if not written:
            logger.warning("%d posts came back without scores: stopping rather than looping", todo.num_rows)
            break
        done += todo.num_rows
    multilingual = load_multilingual()
    if multilingual is not None and (limit is None or done < limit):
        score_store(store, scorer, multilingual=multilingual)  # the main pass finds nothing left
    return model_id, dict(per_source)


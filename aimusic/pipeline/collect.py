"""The monitoring pass as plain functions: collect -> filter -> upsert -> score -> record.

No Prefect here: :mod:`flows.monitor` wraps these in tasks and a flow; tests and scripts call them directly.
Every function returns a summary instead of raising for expected problems, so one source failing never
stops the others.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import pyarrow as pa

from aimusic.core.config import Settings
from aimusic.core.languages import detect_missing, post_texts
from aimusic.core.records import posts_to_arrow
from aimusic.core.topics import Topics, TopicsError
from aimusic.debate.relevance import RelevanceFilter
from aimusic.debate.signals import record_read_stances, tag_entities
from aimusic.sources.base import CollectContext, Source, SourceStopped, SourceUnavailable
from aimusic.store.db import Store, StoreError
from sentiment import Scorer

log = logging.getLogger(__name__)

Progress = Callable[[int], None]


@dataclass
class SourceSummary:
    """What one source did in one run. ``status``: ok, partial (stopped early or some items bad),
    skipped (could not run: ``error`` says why) or failed (an error stopped it; committed data is kept)."""

    source: str
    status: str = "ok"
    fetched: int = 0
    new: int = 0
    updated: int = 0
    irrelevant: int = 0
    skipped: int = 0
    scored: int = 0
    entities: int = 0  # posts whose entities were tagged as they were stored
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def as_row(self, run_id: str, model: str | None) -> dict:
        row = asdict(self)
        row.pop("notes")
        row.update(run_id=run_id, model=model, failed=self.failed)
        if self.notes and not row["error"]:
            row["error"] = "; ".join(self.notes)[:2000]
        return row

    def line(self) -> str:
        counts = (
            f"fetched {self.fetched}, new {self.new}, updated {self.updated}, irrelevant {self.irrelevant}, "
            f"skipped {self.skipped}, scored {self.scored}"
        )
        reason = f" - {self.error}" if self.error else ""
        extra = f" ({'; '.join(self.notes)})" if self.notes else ""
        return f"{self.source:<12} {self.status:<8} {counts}{reason}{extra}"


def check_source(source: Source, ctx: CollectContext) -> str | None:
    """The reason ``source`` cannot run here, or ``None`` if it can."""
    try:
        source.config(ctx.topics)
        source.check(ctx)
    except (SourceUnavailable, TopicsError) as exc:
        return reason_of(source.name, exc)
    return None


def reason_of(name: str, exc: BaseException) -> str:
    """Why a source did not run, shown after its name: without the name when the source put it in front."""
    reason = str(exc)
    return reason[len(name) + 2 :] if reason.startswith(f"{name}: ") else reason


def collect_source(
    source: Source,
    store: Store,
    topics: Topics,
    settings: Settings,
    *,
    relevance: RelevanceFilter | None = None,
    logger: logging.Logger | logging.LoggerAdapter = log,
) -> SourceSummary:
    """Run one source to completion: each batch is filtered and committed with its cursors."""
    summary = SourceSummary(source=source.name)
    relevance = relevance or RelevanceFilter(topics)
    try:
        ctx = CollectContext(topics=topics, settings=settings, cursors=store.get_cursors(source.name), logger=logger)
        reason = check_source(source, ctx)
        if reason:
            summary.status, summary.error = "skipped", reason
            return summary
        for batch in source.collect(ctx):
            summary.fetched += batch.fetched
            summary.skipped += batch.skipped
            summary.notes.extend(batch.notes)
            if batch.table is not None:
                table, dropped = relevance.filter_table(batch.table)
            else:
                kept, dropped = relevance.apply(batch.posts)
                table = posts_to_arrow(kept)
            summary.irrelevant += dropped
            cursors = {(source.name, k): v for k, v in batch.cursors.items()}
            result = store.upsert_posts(table, cursors=cursors)
            summary.new += result.new
            summary.updated += result.updated
        summary.entities = tag_entities(store, topics)  # debate signals: entities of the posts just stored
        if summary.skipped:
            summary.status = "partial"
    except SourceStopped as exc:
        summary.status = "partial"
        summary.notes.append(str(exc))
    except SourceUnavailable as exc:
        summary.status, summary.error = "skipped", reason_of(source.name, exc)
    except StoreError:
        raise
    except Exception as exc:  # one source failing must not stop the others: record it and go on
        summary.status = "failed"
        summary.error = f"{type(exc).__name__}: {exc}"
        logger.error("source %s failed: %s\n%s", source.name, summary.error, traceback.format_exc(limit=5))
    finally:
        summary.finished_at = datetime.now(UTC)
    return summary


def _keep_read_stances(store: Store, scorer: Scorer, todo: pa.Table, texts: list[str]) -> None:
    """The stance the scorer read while scoring (``minilm-debate``), stored for the signals step; a failure
    here costs only time (the signals step reads those posts itself), so it is logged, never raised."""
    try:
        n = record_read_stances(store, scorer, todo, texts)
    except Exception as exc:  # an optimisation: the scores are already committed
        log.warning("could not store the stance read while scoring (the signals step will read it): %s", exc)
        return
    if n:
        log.debug("stored the stance of %d posts read while scoring", n)


def score_posts(
    store: Store,
    scorer: Scorer,
    *,
    batch_size: int = 2_000,
    limit: int | None = None,
    progress: Progress | None = None,
    select: Callable[[int], pa.Table] | None = None,
) -> Counter[str]:
    """Score every post that lacks a current score from ``scorer``; return counts per source.

    Incremental and resumable: each batch is committed before the next is read, and a post is picked up
    again only if it has no score from this model or its text changed since it was scored. ``select(n)``
    replaces the default choice of posts (``store.unscored``), e.g. for a forced re-score; it must stop
    returning a post once that post's score is written. Posts with no language yet (see
    :func:`aimusic.pipeline.languages.fill_languages`, run before scoring) are detected in memory, so an English-only
    model is never fed another language.
    """
    per_source: Counter[str] = Counter()
    done = 0
    while limit is None or done < limit:
        size = batch_size if limit is None else min(batch_size, limit - done)
        todo = select(size) if select else store.unscored(scorer.model_id, size)
        if todo.num_rows == 0:
            break
        texts = post_texts(todo.column("title").to_pylist(), todo.column("text").to_pylist())
        started = time.perf_counter()
        langs = todo.column("lang").to_pylist()
        if scorer.languages is not None:
            langs = detect_missing(texts, langs)
        result = scorer.score(texts, langs)
        log.debug("scored %d posts in %.2fs", len(texts), time.perf_counter() - started)
        n = todo.num_rows
        scores = pa.table(
            {
                "source": todo.column("source"),
                "post_id": todo.column("post_id"),
                "model": pa.array([scorer.model_id] * n, pa.string()),
                "label": pa.array(result.labels, pa.string()),
                "negative": pa.array(result.probs[:, 0], pa.float64(), from_pandas=True),
                "neutral": pa.array(result.probs[:, 1], pa.float64(), from_pandas=True),
                "positive": pa.array(result.probs[:, 2], pa.float64(), from_pandas=True),
                "status": pa.array(result.status, pa.string()),
                "text_md5": todo.column("text_md5"),
            }
        )
        store.upsert_scores(scores)
        _keep_read_stances(store, scorer, todo, texts)
        per_source.update(todo.column("source").to_pylist())
        done += n
        if progress:
            progress(n)
    return per_source

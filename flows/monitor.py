"""The monitor flow (Prefect 3): one task per source, then scoring, then the run record.

Thin on purpose: the work is in :mod:`flows.pipeline`; this module adds Prefect's logging, task isolation
and observability. Tasks take plain values (paths, names) so they can run in another process or worker.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import get_run_context

from flows.config import get_settings, resolve_db
from flows.pipeline import SourceSummary, check_source, collect_source, score_posts
from flows.relevance import RelevanceFilter
from flows.sources import REGISTRY, get_source
from flows.sources.base import CollectContext, SourceUnavailable
from flows.store import Store
from flows.topics import load_topics
from sentiment import load_default, load_scorer


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


@task(name="collect", task_run_name="collect-{source_name}", cache_policy=NO_CACHE)
def collect_task(source_name: str, db: str, topics_path: str | None) -> SourceSummary:
    logger = get_run_logger()
    topics = load_topics(topics_path)
    summary = collect_source(
        get_source(source_name), Store(db), topics, get_settings(), relevance=RelevanceFilter(topics), logger=logger
    )
    logger.info(summary.line())
    return summary


@task(name="score", cache_policy=NO_CACHE)
def score_task(db: str, model: str | None) -> tuple[str, dict[str, int]]:
    logger = get_run_logger()
    scorer = load_scorer(model) if model else load_default()
    store = Store(db)
    pending = store.count_unscored(scorer.model_id)
    logger.info("scoring %d posts with %s", pending, scorer.model_id)
    counts = score_posts(store, scorer)
    return scorer.model_id, dict(counts)


@flow(name="aimusic-monitor", log_prints=False)
def monitor_flow(
    sources: list[str] | None = None, db: str | None = None, model: str | None = None, topics_path: str | None = None
) -> dict:
    """One monitoring pass: collect each source (each fails alone), score new posts, record the run."""
    logger = get_run_logger()
    plan = plan_run(sources, db, topics_path)
    flow_run = get_run_context().flow_run
    run_id = str(flow_run.id) if flow_run else str(uuid.uuid4())
    store = Store(plan.db)
    for skipped in plan.skipped:
        logger.warning("skipped %s: %s", skipped.source, skipped.error)
    if plan.demo_fallback:
        logger.warning("no real source can run here: using the demo source (synthetic posts) in %s", plan.db)
    futures = [collect_task.submit(name, str(plan.db), topics_path) for name in plan.run]
    summaries: list[SourceSummary] = [f.result() for f in futures]
    model_id, counts = score_task(str(plan.db), model)
    _assign_scored(summaries, counts)
    for summary in [*summaries, *plan.skipped]:
        store.record_run(summary.as_row(run_id, model_id))
    lines = [s.line() for s in [*summaries, *plan.skipped]]
    logger.info("run %s on %s:\n%s", run_id, plan.db, "\n".join(lines))
    return {
        "run_id": run_id,
        "db": str(plan.db),
        "model": model_id,
        "demo_fallback": plan.demo_fallback,
        "summaries": [s.as_row(run_id, model_id) for s in [*summaries, *plan.skipped]],
        "lines": lines,
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

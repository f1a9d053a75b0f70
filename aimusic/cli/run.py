"""``aimusic run``, ``start``, ``demo`` and ``score``: the monitoring pass and the commands around it.

``run`` and ``start`` call the pass as plain functions (:mod:`aimusic.pipeline.monitor`) unless a Prefect
server is configured (``PREFECT_API_URL``) or ``--prefect`` asks for the flow: without a server, Prefect would
start a temporary API for 10-20 s and throw its run history away at exit, while the ``runs`` table records
every run either way. Scheduled runs (``aimusic serve``) always run the Prefect flow.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from aimusic.cli.common import (
    DbOpt,
    ModelOpt,
    TopicsOpt,
    check_db,
    check_sources,
    console,
    csv_list,
    expected_errors,
    fail,
    out,
    prefect_env,
    reported,
    setup_logging,
)
from aimusic.core.config import get_settings, resolve_db, resolve_read_db

COUNTS = ("fetched", "new", "updated", "irrelevant", "skipped", "scored")

SourcesOpt = Annotated[str | None, typer.Option(help="comma-separated sources (default: all enabled)")]
PrefectOpt = Annotated[
    bool,
    typer.Option("--prefect", help="run the Prefect flow (the default when PREFECT_API_URL is set); without a "
                 "server Prefect starts a temporary one"),
]


def monitor_pass(
    sources: list[str] | None, db: Path | None, model: str | None, topics: Path | None, *, prefect: bool = False,
    on_planned: Callable[[Path], None] | None = None,
) -> dict[str, Any]:
    """One monitoring pass, as the Prefect flow or as plain functions (see the module docstring).

    ``on_planned(db)`` is called once the pass knows its database, before collection (plain pass only)."""
    topics_path = str(topics) if topics else None
    with reported():
        if prefect or os.environ.get("PREFECT_API_URL"):
            prefect_env()
            from flows.monitor import MonitorRunFailed, monitor_flow

            try:
                return monitor_flow(sources=sources, db=str(db) if db else None, model=model, topics_path=topics_path)
            except MonitorRunFailed as exc:  # every source failed: the summary says why, and `run` exits 1
                return exc.result
        from aimusic.pipeline.monitor import LocalSteps, plan_run, run_monitor

        settings = get_settings()
        plan = plan_run(sources, str(db) if db else None, topics_path)
        if on_planned:
            on_planned(plan.db)
        return run_monitor(plan, run_id=str(uuid.uuid4()), model=model, topics_path=topics_path, settings=settings,
                           steps=LocalSteps(settings))


def print_summary(result: dict[str, Any]) -> None:
    """The run as a table, then each source's reason or error once, the debate signals and the outcome."""
    out.print(f"run {result['run_id'][:8]} into {result['db']} (sentiment model {result['model']})", highlight=False,
              soft_wrap=True)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for col in ("source", "status", *COUNTS):
        table.add_column(col, justify="left" if col in ("source", "status") else "right", no_wrap=True)
    for row in result["summaries"]:
        table.add_row(row["source"], row["status"], *(str(row[c]) for c in COUNTS))
    out.print(table)
    for row in result["summaries"]:
        if row.get("error"):
            colour = {"failed": "red", "skipped": "yellow"}.get(row["status"], "default")
            out.print(f"[{colour}]{row['source']} {row['status']}:[/] {row['error']}", highlight=False)
    if result.get("signals"):
        out.print(result["signals"], highlight=False)
    for alert in result.get("alerts") or []:
        out.print(f"[bold]alert:[/] {alert}", highlight=False)
    if result.get("demo_fallback"):
        out.print("[yellow]No real source could run, so the demo source filled a separate demo database "
                  "with synthetic posts. Add credentials to .env or allow network access for real data.[/]")
    if result.get("state") not in (None, "Completed"):
        out.print(f"{result['state']}: {result.get('message', '')}", highlight=False)


def run(
    sources: SourcesOpt = None,
    db: DbOpt = None,
    model: ModelOpt = None,
    topics: TopicsOpt = None,
    prefect: PrefectOpt = False,
) -> None:
    """One monitoring pass: collect, keep relevant posts, store, score, tag debate signals, record the run.

    Exits 1 when a source failed.
    """
    setup_logging()
    names = csv_list(sources)
    check_sources(names)
    check_db(db)
    result = monitor_pass(names, db, model, topics, prefect=prefect)
    print_summary(result)
    if any(r["status"] == "failed" for r in result["summaries"]):
        raise typer.Exit(1)


def start(
    db: DbOpt = None,
    host: Annotated[str, typer.Option(help="address the dashboard binds to")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="dashboard port")] = 8501,
    dashboard_only: Annotated[bool, typer.Option("--dashboard-only", help="skip the monitoring pass")] = False,
    prefect: PrefectOpt = False,
) -> None:
    """The quickstart: the dashboard, and a monitoring pass with every source that can run (demo if none).

    The dashboard starts as soon as the pass knows its database, so it answers within seconds while the pass
    collects, scores and tags in this terminal; its pages show the new posts and scores as they land."""
    from aimusic.cli.serve import dashboard_process, serve_dashboard, wait_dashboard

    setup_logging()
    check_db(db)
    target = db
    if not dashboard_only:
        started: list[subprocess.Popen] = []

        def open_dashboard(planned: Path) -> None:
            from aimusic.store.db import Store

            Store(planned)  # create (and migrate) the file first, so the dashboard never meets a missing one
            started.append(dashboard_process(planned, host=host, port=port))

        try:
            result = monitor_pass(None, db, None, None, prefect=prefect, on_planned=open_dashboard)
        except BaseException:
            for proc in started:
                proc.terminate()
            raise
        print_summary(result)
        if started:
            out.print("the pass is done; the dashboard keeps running (Ctrl-C to stop)", highlight=False)
            wait_dashboard(started[0])
            return
        target = Path(result["db"])
    if target is None:
        target, note = resolve_read_db(None)
        if note:
            out.print(note, highlight=False)
    serve_dashboard(target, host=host, port=port)


def demo(
    posts: Annotated[int, typer.Option(help="number of synthetic posts")] = 6000,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same posts)")] = 42,
    days: Annotated[int, typer.Option(help="days covered, ending at --end")] = 180,
    end: Annotated[str, typer.Option(help="last day (YYYY-MM-DD)")] = "2026-02-28",
    db: DbOpt = None,
    model: ModelOpt = None,
    score: Annotated[bool, typer.Option(help="score the posts after writing them")] = True,
    topics: TopicsOpt = None,
) -> None:
    """Write synthetic, clearly labelled posts (default into data/demo.duckdb): try the tool, or benchmark it."""
    setup_logging()
    check_db(db)
    from rich.progress import Progress

    from aimusic.core.topics import load_topics
    from aimusic.debate.relevance import RelevanceFilter
    from aimusic.sources.demo import event_dates, generate_table
    from aimusic.store.db import Store

    with reported(ValueError):
        topic_cfg = load_topics(topics)
        target = resolve_db(db, demo=True)
        store = Store(target)
        store.set_meta("contains_demo", "true")
        relevance = RelevanceFilter(topic_cfg)
        events = event_dates(topic_cfg)
        end_day = date.fromisoformat(end)
    chunk = 100_000
    new = updated = dropped = 0
    started = time.perf_counter()
    with Progress(console=console) as bar:
        task = bar.add_task("demo posts", total=posts)
        table = generate_table(posts, seed=seed, end=end_day, days=days, events=events)
        for offset in range(0, posts, chunk):
            part, gone = relevance.filter_table(table.slice(offset, chunk))
            try:
                result = store.upsert_posts(part)
            except expected_errors() as exc:
                bar.stop()
                fail(f"{exc} ({new} demo posts were committed before this)")
            new, updated, dropped = new + result.new, updated + result.updated, dropped + gone
            bar.advance(task, min(chunk, posts - offset))
    out.print(f"{posts} demo posts in {target}: {new} new, {updated} updated, {dropped} off-topic dropped "
              f"({time.perf_counter() - started:.1f}s)", soft_wrap=True)
    if score:
        score_db(target, model)


def score_db(target: Path, model: str | None, limit: int | None = None) -> None:
    """Score what lacks a current score from the chosen model, with a progress bar (resumable)."""
    from rich.progress import Progress

    from aimusic.pipeline.rescore import choose_scorer, load_multilingual, score_store
    from aimusic.store.db import Store

    with reported():
        scorer = choose_scorer(model)
        multilingual = load_multilingual()
        store = Store(target)
        pending = store.count_unscored(scorer.model_id)
    if limit is not None:
        pending = min(pending, limit)
    started = time.perf_counter()
    with reported(after=" (scores written so far are kept; run again to resume)"), Progress(console=console) as bar:
        task = bar.add_task(f"scoring with {scorer.model_id}", total=pending)
        counts = score_store(
            store, scorer, multilingual=multilingual, limit=limit, progress=lambda n: bar.advance(task, n)
        ).per_source
    total = sum(counts.values())
    elapsed = time.perf_counter() - started
    out.print(f"scored {total} posts with {scorer.model_id} in {elapsed:.1f}s ({total / max(elapsed, 1e-9):,.0f}/s)")


def score(
    db: DbOpt = None,
    model: ModelOpt = None,
    limit: Annotated[int | None, typer.Option(help="score at most this many posts")] = None,
) -> None:
    """Score posts that lack a score from the chosen model (resumable: interrupted work is picked up)."""
    setup_logging()
    check_db(db)
    score_db(resolve_db(db), model, limit)

"""The ``aimusic`` command line (Typer). Heavy imports (Prefect, Streamlit, models) happen inside commands."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from aimusic.core.config import PROJECT_ROOT, ConfigError, resolve_db

app = typer.Typer(
    help="aimusic-monitor: collect, score and chart the public debate about AI-generated music.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
out = Console(width=max(Console().width, 110))  # run summaries stay readable when piped to a log

DbOpt = Annotated[
    Path | None, typer.Option("--db", help="DuckDB file (default: $AIMUSIC_DB, else data/aimusic.duckdb)")
]
TopicsOpt = Annotated[Path | None, typer.Option("--topics", help="topics file (default: data/topics.toml)")]
ModelOpt = Annotated[
    str | None, typer.Option("--model", help="sentiment model name, e.g. vader (default: best that loads here)")
]


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "urllib3", "prawcore", "filelock", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _prefect_env() -> None:
    """Settings Prefect needs here: no telemetry (no network), no empty API URL (it breaks the events worker)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LOG_PRINTS", "false")
    if os.environ.get("PREFECT_API_URL", None) == "":
        del os.environ["PREFECT_API_URL"]


def _expected_errors() -> tuple[type[BaseException], ...]:
    from aimusic.core.topics import TopicsError
    from aimusic.store.db import StoreError
    from sentiment import ScorerError

    return (ConfigError, TopicsError, StoreError, ScorerError, KeyError, FileNotFoundError)


def _print_summary(result: dict) -> None:
    table = Table(title=f"run {result['run_id'][:8]} -> {result['db']} (model {result['model']})")
    counts = ("fetched", "new", "updated", "irrelevant", "skipped", "scored")
    for col in ("source", "status", *counts):
        table.add_column(col, justify="left" if col in ("source", "status") else "right", no_wrap=True)
    for row in result["summaries"]:
        table.add_row(row["source"], row["status"], *(str(row[c]) for c in counts))
    out.print(table)
    for row in result["summaries"]:
        if row.get("error"):
            colour = {"failed": "red", "skipped": "yellow"}.get(row["status"], "default")
            out.print(f"[{colour}]{row['source']} {row['status']}:[/] {row['error']}", soft_wrap=True, highlight=False)
    if result["demo_fallback"]:
        out.print("[yellow]No real source could run, so the demo source filled a separate demo database "
                  "with synthetic posts. Add credentials to .env or allow network access for real data.[/]")


def _run(sources: str | None, db: Path | None, model: str | None, topics: Path | None) -> dict:
    _prefect_env()
    from flows.monitor import MonitorRunFailed, monitor_flow

    try:
        return monitor_flow(
            sources=_csv(sources), db=str(db) if db else None, model=model, topics_path=str(topics) if topics else None
        )
    except MonitorRunFailed as exc:  # every source failed: the summary says why, and `run` exits 1
        return exc.result


@app.command()
def run(
    sources: Annotated[str | None, typer.Option(help="comma-separated sources (default: all enabled)")] = None,
    db: DbOpt = None,
    model: ModelOpt = None,
    topics: TopicsOpt = None,
) -> None:
    """One monitoring pass: collect, keep relevant posts, store, score, record the run."""
    _setup_logging()
    try:
        result = _run(sources, db, model, topics)
    except _expected_errors() as exc:
        _fail(str(exc).strip("'\""))
    _print_summary(result)
    if any(r["status"] == "failed" for r in result["summaries"]):
        raise typer.Exit(1)


@app.command()
def start(
    db: DbOpt = None,
    host: Annotated[str, typer.Option(help="address the dashboard binds to")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="dashboard port")] = 8501,
    dashboard_only: Annotated[bool, typer.Option("--dashboard-only", help="skip the monitoring pass")] = False,
) -> None:
    """The quickstart: a monitoring pass with every source that can run (demo if none), then the dashboard."""
    _setup_logging()
    target = db
    if not dashboard_only:
        try:
            result = _run(None, db, None, None)
        except _expected_errors() as exc:
            _fail(str(exc).strip("'\""))
        _print_summary(result)
        target = Path(result["db"])
    dashboard(db=target or resolve_db(None), host=host, port=port)


@app.command()
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
    _setup_logging()
    from rich.progress import Progress

    from aimusic.core.topics import load_topics
    from aimusic.debate.relevance import RelevanceFilter
    from aimusic.sources.demo import event_dates, generate_table
    from aimusic.store.db import Store

    try:
        topic_cfg = load_topics(topics)
        target = resolve_db(db, demo=True)
        store = Store(target)
        store.set_meta("contains_demo", "true")
        relevance = RelevanceFilter(topic_cfg)
        events = event_dates(topic_cfg)
        end_day = date.fromisoformat(end)
    except (*_expected_errors(), ValueError) as exc:
        _fail(str(exc))
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
            except _expected_errors() as exc:
                bar.stop()
                _fail(f"{exc} ({new} demo posts were committed before this)")
            new, updated, dropped = new + result.new, updated + result.updated, dropped + gone
            bar.advance(task, min(chunk, posts - offset))
    out.print(f"{posts} demo posts in {target}: {new} new, {updated} updated, {dropped} off-topic dropped "
              f"({time.perf_counter() - started:.1f}s)")
    if score:
        _score(target, model)


def _score(target: Path, model: str | None, limit: int | None = None) -> None:
    from rich.progress import Progress

    from aimusic.pipeline.rescore import choose_scorer, load_multilingual, score_store
    from aimusic.store.db import Store

    try:
        scorer = choose_scorer(model)
        multilingual = load_multilingual()
        store = Store(target)
        pending = store.count_unscored(scorer.model_id)
    except _expected_errors() as exc:
        _fail(str(exc))
    if limit is not None:
        pending = min(pending, limit)
    started = time.perf_counter()
    with Progress(console=console) as bar:
        task = bar.add_task(f"scoring with {scorer.model_id}", total=pending)
        try:
            counts = score_store(
                store, scorer, multilingual=multilingual, limit=limit, progress=lambda n: bar.advance(task, n)
            ).per_source
        except _expected_errors() as exc:
            bar.stop()
            _fail(f"{exc} (scores written so far are kept; run again to resume)")
    total = sum(counts.values())
    elapsed = time.perf_counter() - started
    out.print(f"scored {total} posts with {scorer.model_id} in {elapsed:.1f}s ({total / max(elapsed, 1e-9):,.0f}/s)")


@app.command()
def score(
    db: DbOpt = None,
    model: ModelOpt = None,
    limit: Annotated[int | None, typer.Option(help="score at most this many posts")] = None,
) -> None:
    """Score posts that lack a score from the chosen model (resumable: interrupted work is picked up)."""
    _setup_logging()
    _score(resolve_db(db), model, limit)


@app.command()
def dashboard(
    db: DbOpt = None,
    host: Annotated[str, typer.Option(help="address to bind; keep 127.0.0.1 unless behind a proxy")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8501,
) -> None:
    """Start the Streamlit dashboard (app.py) on the database."""
    target = resolve_db(db)
    env = {**os.environ, "AIMUSIC_DB": str(target)}
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(PROJECT_ROOT / "app.py"),
        "--server.headless", "true", "--server.address", host, "--server.port", str(port),
        "--browser.gatherUsageStats", "false",
    ]
    out.print(f"dashboard on http://{host}:{port} reading {target} (Ctrl-C to stop)")
    try:
        raise typer.Exit(subprocess.call(cmd, env=env))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


@app.command()
def export(
    what: Annotated[str, typer.Argument(help="posts or daily")],
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet")] = "csv",
    output: Annotated[Path | None, typer.Option("--out", help="file to write (default: data/exports/...)")] = None,
    since: Annotated[str | None, typer.Option(help="first day, YYYY-MM-DD (UTC)")] = None,
    until: Annotated[str | None, typer.Option(help="last day, YYYY-MM-DD (UTC), inclusive")] = None,
    sources: Annotated[str | None, typer.Option(help="comma-separated sources")] = None,
    model: ModelOpt = None,
    raw: Annotated[bool, typer.Option(help="CSV without the spreadsheet formula guard")] = False,
    db: DbOpt = None,
) -> None:
    """Export posts (with their scores) or daily aggregates to CSV or Parquet, written by DuckDB's COPY."""
    from aimusic.core.config import EXPORTS_DIR
    from aimusic.store.db import Store
    from aimusic.store.privacy import record_export
    from aimusic.store.queries import Filters
    from aimusic.store.queries import export as do_export

    try:
        filters = Filters(
            start=date.fromisoformat(since) if since else None,
            end=date.fromisoformat(until) if until else None,
            sources=tuple(_csv(sources) or ()),
            model=model,
        )
        target = output or EXPORTS_DIR / f"{what}.{fmt}"
        rows = do_export(Store(resolve_db(db), read_only=True), what, target, filters=filters, fmt=fmt, raw=raw)
        # the exports index lets `aimusic forget` find and clean files that hold a removed post
        record_export(Store(resolve_db(db)), target, what, fmt, rows,
                      {"since": since, "until": until, "sources": sources, "model": model, "raw": raw})
    except (*_expected_errors(), ValueError, OSError) as exc:
        _fail(str(exc))
    out.print(f"wrote {rows} rows to {target}")


@app.command()
def status(db: DbOpt = None) -> None:
    """Last run per source, row counts and database size."""
    from aimusic.store.db import Store

    target = resolve_db(db)
    try:
        store = Store(target, read_only=True)
        runs = store.query(
            """SELECT source, status, started_at, finished_at, fetched, new, updated, irrelevant, skipped, scored,
                      coalesce(error, '') AS note
               FROM runs QUALIFY row_number() OVER (PARTITION BY source ORDER BY started_at DESC) = 1
               ORDER BY source"""
        )
        counts = {t: store.count(t) for t in ("posts", "scores", "runs", "cursors", "events")}
        models = store.query("SELECT model, count(*) AS n FROM scores GROUP BY model ORDER BY n DESC")
    except _expected_errors() as exc:
        _fail(str(exc))
    size = target.stat().st_size + (target.with_name(target.name + ".wal").stat().st_size
                                    if target.with_name(target.name + ".wal").exists() else 0)
    out.print(f"database {target} ({size / 1e6:.1f} MB)")
    out.print("rows: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    if not models.empty:
        out.print("scores by model: " + ", ".join(f"{m} {n:,}" for m, n in models.itertuples(index=False)))
    table = Table(title="last run per source")
    for col in runs.columns:
        table.add_column(col)
    for row in runs.itertuples(index=False):
        table.add_row(*("" if v is None else str(v) for v in row))
    out.print(table)


@app.command()
def forget(
    author: Annotated[str | None, typer.Option(help="remove every post of this author handle")] = None,
    post: Annotated[str | None, typer.Option(help="remove one post, given as SOURCE:POST_ID")] = None,
    source: Annotated[str | None, typer.Option(help="with --author: only on this source")] = None,
    keep_exports: Annotated[bool, typer.Option(help="do not rewrite export files that contain the data")] = False,
    db: DbOpt = None,
) -> None:
    """Takedown request: delete an author's or a post's data everywhere (posts, scores, signals, indexed
    export files) and keep it from being collected or imported again."""
    from aimusic.core.config import get_settings
    from aimusic.store.db import Store
    from aimusic.store.privacy import forget as do_forget

    if (author is None) == (post is None):
        _fail("give exactly one of --author NAME or --post SOURCE:POST_ID")
    key = None
    parsed = None
    if post is not None:
        src, sep, pid = post.partition(":")
        if not sep or not src or not pid:
            _fail(f"--post must look like SOURCE:POST_ID (e.g. reddit:1abcde), got {post!r}")
        parsed = (src, pid)
    try:
        secret = get_settings().pseudonymize_key
        key = secret.get_secret_value() if secret else None
        result = do_forget(Store(resolve_db(db)), author=author, post=parsed, source=source,
                           pseudonymize_key=key, rewrite_exports=not keep_exports)
    except _expected_errors() as exc:
        _fail(str(exc))
    removed = ", ".join(f"{t} {n}" for t, n in result.rows_by_table.items() if n) or "nothing stored"
    out.print(f"removed: {removed}; future runs and imports will skip it")
    for path in result.exports_rewritten:
        out.print(f"rewrote export without it: {path}")
    for path in result.exports_missing:
        out.print(f"[yellow]indexed export no longer exists (check copies elsewhere): {path}[/]")


SERVE_HELP = """Run the monitor by itself: start (or reuse) a Prefect server on 127.0.0.1 and serve the scheduled
deployments until Ctrl-C (or SIGTERM); the runs in progress and a server started here are stopped too,
within about AIMUSIC_SERVE_GRACE + 30 seconds.

\b
Default schedules (cron, UTC; change them in \\[schedules] of data/topics.toml):
  monitor-reddit      20 * * * *     hourly (100 requests/min per OAuth client)
  monitor-free        5 */2 * * *    every 2 h: hackernews, mastodon, bluesky
  monitor-x           40 */6 * * *   every 6 h (reads are billed; per-run cap in \\[sources.x])
  monitor-archive     10 */6 * * *   every 6 h: arcticshift
  monitor-demo        off            synthetic posts, only with --demo
  monitor-<source>    its default    a registered source in no group
  export-daily        15 0 * * *     daily aggregates + yesterday's posts to data/exports/
  maintenance-weekly  30 3 * * 0     re-score with the default model, compact the database

\b
Settings (.env or environment):
  PREFECT_API_URL        use this Prefect server instead of starting one
  AIMUSIC_RUN_LOCK_WAIT  seconds a run waits for another run on the same database, then skips (600)
  AIMUSIC_SERVE_GRACE    seconds runs in progress get to finish after Ctrl-C before they are ended (10)
  AIMUSIC_ALERT_URLS     webhook (http/https) or Apprise URLs for alerts, comma-separated
  AIMUSIC_TASK_RUNNER    threads (default), dask, dask:local:N or dask:tcp://host:port for scoring
  AIMUSIC_DB, AIMUSIC_MODEL, AIMUSIC_TOPICS as for `aimusic run`

Each deployment allows one run at a time (a newcomer is cancelled while one runs); the runs and
their artifacts are in the Prefect UI (the URL is printed at start).
"""


@app.command(help=SERVE_HELP)
def serve(
    db: DbOpt = None,
    topics: TopicsOpt = None,
    model: ModelOpt = None,
    groups: Annotated[str | None, typer.Option(help="comma-separated monitor groups to serve (default: all)")] = None,
    demo: Annotated[bool, typer.Option("--demo", help="also serve the demo group (synthetic posts)")] = False,
    interval: Annotated[
        float | None, typer.Option(help="run every monitor group every N seconds instead of its cron (to try out)")
    ] = None,
    export: Annotated[bool, typer.Option(help="serve the daily export")] = True,
    maintenance: Annotated[bool, typer.Option(help="serve the weekly maintenance")] = True,
    host: Annotated[str, typer.Option(help="address of the Prefect server started here")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port of the Prefect server started here")] = 4200,
    limit: Annotated[int | None, typer.Option(help="most flow runs at once in this process (default: no limit)")]
    = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the deployments and exit")] = False,
) -> None:
    _setup_logging()
    _prefect_env()
    from aimusic.core.topics import load_topics
    from aimusic.sources import REGISTRY, get_source
    from flows.deploy import plan
    from flows.deploy import serve as do_serve
    from flows.prefect_server import ServerError

    try:
        topic_cfg = load_topics(topics)
        served = plan(
            topic_cfg, list(REGISTRY), groups=_csv(groups), demo=demo, interval=interval, export=export,
            maintenance=maintenance, db=str(db.resolve()) if db else None,
            topics_path=str(Path(topic_cfg.path).resolve()) if topic_cfg.path else None, model=model,
            default_cron=lambda name: get_source(name).default_cron,
        )
    except (*_expected_errors(), ValueError) as exc:
        _fail(str(exc))
    table = Table(title="deployments")
    for col in ("deployment", "schedule", "sources / parameters", "what"):
        table.add_column(col)
    for spec in served.specs:
        params = ", ".join(spec.parameters.get("sources") or []) or ", ".join(
            f"{k}={v}" for k, v in spec.parameters.items() if v is not None
        )
        table.add_row(spec.name, spec.when, params, spec.description)
    out.print(table)
    for note in served.notes:
        out.print(f"[dim]{note}[/]", highlight=False)
    if not served.specs:
        _fail("nothing to serve: every group is off or has no source that runs here")
    if dry_run:
        return

    def ready(server: object) -> None:
        out.print(f"serving {len(served.specs)} deployment(s); Prefect UI: {server.ui_url} (Ctrl-C to stop)")

    try:
        do_serve(served.specs, host=host, port=port, limit=limit, on_ready=ready)
    except ServerError as exc:
        _fail(str(exc))
    out.print("stopped")


@app.command()
def alerts(
    db: DbOpt = None,
    days: Annotated[int, typer.Option(help="show alerts of the last N days")] = 30,
    scan_from: Annotated[
        str | None, typer.Option(help="replay detection for each day from YYYY-MM-DD (stored, not sent)")
    ] = None,
    scan_to: Annotated[str | None, typer.Option(help="last day to replay (default: yesterday, UTC)")] = None,
    test: Annotated[bool, typer.Option("--test", help="send a sample alert to AIMUSIC_ALERT_URLS and report")] = False,
    topics: TopicsOpt = None,
) -> None:
    """List stored alerts (volume spikes, sentiment shifts); replay detection over history; test delivery."""
    _setup_logging()
    from datetime import UTC, datetime, timedelta

    from aimusic.core.config import get_settings
    from aimusic.core.topics import load_topics
    from aimusic.ops.alerts import list_alerts, load_rules, scan
    from aimusic.store.db import Store
    from aimusic.store.queries import pick_model

    if test:
        from aimusic.ops.notify import deliver, sample_alert, split_urls

        secret = get_settings().alert_urls
        urls = split_urls(secret.get_secret_value() if secret else None)
        if not urls:
            _fail("AIMUSIC_ALERT_URLS is not set (in .env or the environment)")
        result = deliver([sample_alert()], urls)
        out.print(result.summary())
        raise typer.Exit(0 if result.ok else 1)
    target = resolve_db(db)
    try:
        if scan_from:
            store = Store(target)
            start = date.fromisoformat(scan_from)
            end = date.fromisoformat(scan_to) if scan_to else datetime.now(UTC).date() - timedelta(days=1)
            found = scan(store, start, end, model=pick_model(store), rules=load_rules(load_topics(topics)))
            out.print(f"replayed {start} to {end}: {len(found)} new alert(s) stored (none sent)")
            since = start
        else:
            store = Store(target, read_only=True)
            since = datetime.now(UTC).date() - timedelta(days=days)
        df = list_alerts(store, start=since)
    except (*_expected_errors(), ValueError) as exc:
        _fail(str(exc))
    if df.empty:
        out.print(f"no alerts since {since}")
        return
    table = Table(title=f"{len(df)} alert(s) since {since} ({target})")
    for col in ("day", "kind", "scope", "alert", "sent"):
        table.add_column(col)
    for row in df.itertuples(index=False):
        table.add_row(f"{row.day:%Y-%m-%d}", row.kind, row.scope, row.message, row.delivery or "")
    out.print(table)


@app.command()
def rescore(
    model: Annotated[str, typer.Option("--model", help="the model to score everything with, e.g. minilm, vader, "
                                       "transformer:<hub id or path>")],
    force: Annotated[bool, typer.Option("--force", help="also redo posts that already have a current score from "
                                        "this model (resumable too)")] = False,
    limit: Annotated[int | None, typer.Option(help="score at most this many posts in this run")] = None,
    db: DbOpt = None,
) -> None:
    """Score every post with another model, incrementally and resumably; other models' rows stay as they are."""
    _setup_logging()
    from aimusic.cli.sentiment import rescore_command

    raise typer.Exit(rescore_command(resolve_db(db), model, force=force, limit=limit, console=console, out=out))


@app.command("eval")
def evaluate(
    data: Annotated[Path, typer.Option("--data", help="TSV with label and text columns, e.g. val.tsv")],
    model: ModelOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the figures as one JSON object")] = False,
    task: Annotated[str, typer.Option("--task", help="sentiment, stance (--model minilm or nli:<hub id>; data "
                                      "e.g. tests/data/stance_eval.tsv) or relevance (tests/data/relevance.tsv)")]
    = "sentiment",
) -> None:
    """Evaluate a sentiment model on labelled posts: macro recall, accuracy, macro F1, confusion matrix, posts/s."""
    _setup_logging()
    if task != "sentiment":  # debate signals (aimusic.cli.debate)
        from aimusic.cli.debate import eval_task_command

        raise typer.Exit(eval_task_command(task, data, model, as_json=as_json, console=console, out=out))
    from aimusic.cli.sentiment import eval_command

    raise typer.Exit(eval_command(data, model, as_json=as_json, console=console, out=out))


@app.command("train-head")
def train_head(
    data: Annotated[Path, typer.Option("--data", help="labelled TSV to train on, e.g. ../shared/data/sentiment/"
                                       "train.tsv")],
    head_out: Annotated[Path | None, typer.Option("--out", help="head file (default sentiment/weights/"
                                                  "minilm_head.npz)")] = None,
    cache: Annotated[bool, typer.Option(help="cache the training embeddings under ~/.cache")] = True,
) -> None:
    """Train the offline default's classification head on MiniLM embeddings (reproduces the committed one)."""
    _setup_logging()
    from aimusic.cli.sentiment import train_head_command

    raise typer.Exit(train_head_command(data, head_out, cache=cache, console=console, out=out))


@app.command()
def backfill(
    paths: Annotated[list[Path], typer.Argument(help="dump or export files (.zst, .gz, .bz2, .xz or plain)")],
    fmt: Annotated[str, typer.Option("--format", help="auto, reddit, x, csv or jsonl")] = "auto",
    mapping: Annotated[
        list[str] | None, typer.Option("--map", help="COLUMN=FIELD for csv/jsonl, repeatable (e.g. body=text)")
    ] = None,
    source_name: Annotated[
        str | None, typer.Option("--source-name", help="source of csv/jsonl rows without a source column")
    ] = None,
    db: DbOpt = None,
    model: ModelOpt = None,
    score: Annotated[bool, typer.Option("--score/--no-score", help="score the imported posts afterwards")] = True,
    force: Annotated[bool, typer.Option("--force", help="read files already imported again")] = False,
    topics: TopicsOpt = None,
) -> None:
    """Import history (Reddit dumps, saved X API responses, CSV/JSONL): relevant posts only, resumable."""
    _setup_logging()
    from aimusic.cli.backfill import backfill_command
    from aimusic.core.topics import load_topics
    from aimusic.store.db import Store

    try:
        target = resolve_db(db)
        code, _ = backfill_command(
            paths, store=Store(target), topics=load_topics(topics), fmt=fmt, mapping=mapping,
            source_name=source_name, force=force, console=console, out=out,
        )
    except _expected_errors() as exc:
        _fail(str(exc))
    if code in (0, 1) and score:
        _score(target, model)
    if code:
        raise typer.Exit(code)


@app.command()
def signals(
    db: DbOpt = None,
    topics: TopicsOpt = None,
    stance_model: Annotated[str | None, typer.Option("--stance-model", help="minilm (default), nli:<hub id or dir>, "
                                                     "or none (no encoder: arguments by keywords only)")] = None,
    limit: Annotated[int | None, typer.Option(help="process at most this many posts in this run")] = None,
) -> None:
    """Debate signals for stored posts lacking them: entities, arguments, stance (resumable; the monitor run does
    this for new posts after scoring)."""
    _setup_logging()
    from aimusic.cli.debate import signals_command

    raise typer.Exit(signals_command(resolve_db(db), topics, stance_model, limit=limit, console=console, out=out))


def main() -> None:
    app()


if __name__ == "__main__":
    main()

"""``aimusic serve`` (the scheduled deployments on a Prefect server) and ``aimusic dashboard`` (Streamlit)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from aimusic.cli.common import DbOpt, ModelOpt, TopicsOpt, csv_list, fail, out, prefect_env, reported, setup_logging
from aimusic.core.config import PROJECT_ROOT, resolve_read_db

SERVE_HELP = """Run the monitor by itself: start (or reuse) a Prefect server on 127.0.0.1 and serve the scheduled
deployments until Ctrl-C (or SIGTERM). The runs in progress and a server started here are stopped too,
within about AIMUSIC_SERVE_GRACE + 30 seconds.

\b
Default schedules (cron, UTC; change them in [schedules] of data/topics.toml):
  monitor-reddit      20 * * * *   hourly (100 requests/min per OAuth client)
  monitor-free        5 */2 * * *  every 2 h: hackernews, mastodon, bluesky
  monitor-x           40 */6 * * * every 6 h (billed reads: see [sources.x])
  monitor-archive     10 */6 * * * every 6 h: arcticshift
  monitor-demo        off          synthetic posts, only with --demo
  monitor-<source>    its default  a registered source in no group
  export-daily        15 0 * * *   daily aggregates + yesterday's posts
  maintenance-weekly  30 3 * * 0   re-score with the default model, compact

\b
Settings (.env or environment):
  PREFECT_API_URL        use this Prefect server instead of starting one
  AIMUSIC_RUN_LOCK_WAIT  seconds a run waits for another on the same
                         database, then skips (600)
  AIMUSIC_SERVE_GRACE    seconds runs in progress get after Ctrl-C (10)
  AIMUSIC_ALERT_URLS     webhook or Apprise URLs for alerts, comma-separated
  AIMUSIC_TASK_RUNNER    threads (default), dask, dask:local:N or
                         dask:tcp://host:port for scoring
  AIMUSIC_DB, AIMUSIC_MODEL, AIMUSIC_TOPICS as for `aimusic run`

Each deployment allows one run at a time (a newcomer is cancelled while one runs); the runs and their
artifacts are in the Prefect UI (the URL is printed at start).
"""


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
    setup_logging()
    prefect_env()
    from aimusic.core.topics import load_topics
    from aimusic.sources import REGISTRY, get_source
    from flows.deploy import plan
    from flows.deploy import serve as do_serve
    from flows.prefect_server import ServerError

    with reported(ValueError):
        topic_cfg = load_topics(topics)
        served = plan(
            topic_cfg, list(REGISTRY), groups=csv_list(groups), demo=demo, interval=interval, export=export,
            maintenance=maintenance, db=str(db.resolve()) if db else None,
            topics_path=str(Path(topic_cfg.path).resolve()) if topic_cfg.path else None, model=model,
            default_cron=lambda name: get_source(name).default_cron,
        )
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
        fail("nothing to serve: every group is off or has no source that runs here")
    if dry_run:
        return

    def ready(server: object) -> None:
        out.print(f"serving {len(served.specs)} deployment(s); Prefect UI: {server.ui_url} (Ctrl-C to stop)")

    from aimusic.core.config import get_settings

    with reported(ServerError):
        do_serve(served.specs, host=host, port=port, limit=limit, on_ready=ready, grace=get_settings().serve_grace)
    out.print("stopped")


def dashboard_process(target: Path, *, host: str, port: int) -> subprocess.Popen:
    """Start Streamlit on ``target`` in the background and say where it is."""
    env = {**os.environ, "AIMUSIC_DB": str(target)}
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(PROJECT_ROOT / "app.py"),
        "--server.headless", "true", "--server.address", host, "--server.port", str(port),
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]
    out.print(f"dashboard on http://{host}:{port} reading {target} (Ctrl-C to stop)", soft_wrap=True)
    return subprocess.Popen(cmd, env=env)


def wait_dashboard(proc: subprocess.Popen) -> None:
    """Wait for the dashboard until Ctrl-C; exits with Streamlit's code."""
    try:
        raise typer.Exit(proc.wait())
    except KeyboardInterrupt:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)  # Ctrl-C reached Streamlit too (same process group)
        if proc.poll() is None:
            proc.terminate()
        raise typer.Exit(0) from None


def serve_dashboard(target: Path, *, host: str, port: int) -> None:
    """Run Streamlit on ``target`` until Ctrl-C; exits with Streamlit's code."""
    wait_dashboard(dashboard_process(target, host=host, port=port))


def dashboard(
    db: DbOpt = None,
    host: Annotated[str, typer.Option(help="address to bind; keep 127.0.0.1 unless behind a proxy")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8501,
) -> None:
    """Start the Streamlit dashboard (app.py) on the database."""
    target, note = resolve_read_db(db)
    if note:
        out.print(note, highlight=False, soft_wrap=True)
    serve_dashboard(target, host=host, port=port)

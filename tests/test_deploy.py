"""Deployments and schedules: the plan from config, and a real Prefect server that runs a served deployment."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests
from typer.testing import CliRunner

from aimusic.core.topics import TopicsError, load_topics
from aimusic.store.db import Store, StoreError
from flows.deploy import DEFAULT_GROUPS, Schedules, load_schedules, plan
from flows.prefect_server import api_healthy, free_port

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ["demo", "reddit", "x", "hackernews", "mastodon", "bluesky", "arcticshift", "lemmy"]


def topics_with(tmp_path: Path, extra: str) -> Path:
    """A small topics file with a section per source in REGISTRY (all enabled) plus ``extra``."""
    path = tmp_path / "topics.toml"
    sources = "".join(f"[sources.{name}]\nenabled = true\n" for name in REGISTRY)
    path.write_text(f'[tracking]\nterms = ["AI music"]\n{sources}\n{extra}')
    return path


def by_name(p):
    return {s.name: s for s in p.specs}


def test_default_plan_serves_each_group_export_and_maintenance(tmp_path: Path):
    shipped, builtin = load_schedules(load_topics()), Schedules()  # data/topics.toml spells out the defaults
    assert (shipped.export, shipped.maintenance, shipped.timezone) == (builtin.export, builtin.maintenance, "UTC")
    assert {k: (g.sources, g.cron, g.enabled) for k, g in shipped.monitor.items()} == {
        k: (g.sources, g.cron, g.enabled) for k, g in builtin.monitor.items()}
    topics = load_topics(topics_with(tmp_path, ""))
    p = plan(topics, REGISTRY, default_cron=lambda name: "0 */3 * * *")
    specs = by_name(p)
    assert specs["monitor-reddit"].cron == DEFAULT_GROUPS["reddit"].cron == "20 * * * *"
    assert specs["monitor-free"].parameters["sources"] == ["hackernews", "mastodon", "bluesky"]
    assert specs["monitor-x"].cron == "40 */6 * * *"
    assert specs["monitor-lemmy"].cron == "0 */3 * * *"  # in no group: its own default_cron
    assert specs["export-daily"].flow == "export" and specs["maintenance-weekly"].flow == "maintenance"
    assert "monitor-demo" not in specs and any("monitor-demo: off (use --demo)" in n for n in p.notes)
    every_source = [s for spec in p.specs if spec.flow == "monitor" for s in spec.parameters["sources"]]
    assert sorted(every_source) == sorted(set(every_source))  # no source scheduled twice


def test_plan_options():
    topics = load_topics()
    p = plan(topics, ["demo", "reddit"], groups=["demo"], interval=30, export=False, maintenance=False,
             db="/data/x.duckdb")
    assert [s.name for s in p.specs] == ["monitor-demo"]
    (demo,) = p.specs
    assert demo.interval == 30 and demo.cron is None and demo.when == "every 30 s"
    assert demo.parameters == {"sources": ["demo"], "db": "/data/x.duckdb", "model": None, "topics_path": None}
    missing = plan(topics, ["demo", "reddit"], demo=True)
    assert "monitor-demo" in by_name(missing) and "monitor-free" not in by_name(missing)
    assert any("hackernews is not a known source" in n for n in missing.notes)
    with pytest.raises(TopicsError, match="unknown schedule group"):
        plan(topics, REGISTRY, groups=["nope"])


def test_schedules_from_topics(tmp_path: Path):
    path = topics_with(tmp_path, """
[schedules]
timezone = "Europe/Berlin"
export = "off"

[schedules.monitor.everything]
sources = ["reddit", "hackernews", "x"]
cron = "*/30 * * * *"
""")
    p = plan(load_topics(path), REGISTRY, default_cron=lambda name: "0 1 * * *")
    specs = by_name(p)
    everything = specs["monitor-everything"]
    assert everything.cron == "*/30 * * * *" and everything.timezone == "Europe/Berlin"
    assert "monitor-reddit" not in specs  # a [schedules.monitor] table replaces the default groups
    assert "monitor-mastodon" in specs  # sources in no group keep their own schedule
    assert "export-daily" not in specs and "export-daily: off in [schedules]" in p.notes


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ('[schedules.monitor.a]\nsources = ["reddit"]\ncron = "61 * * * *"\n', "Bad minute"),
        ('[schedules.monitor.a]\nsources = ["reddit"]\ncron = "* * *"\n', "5 fields"),
        ('[schedules]\ntimezone = "Mars/Olympus"\n', "unknown time zone"),
        ('[schedules]\nmaintenance = "daily"\n', "5 fields"),
        ('[schedules.monitor.a]\nsources = ["x"]\ncron = "0 * * * *"\n[schedules.monitor.b]\nsources = ["x"]\n'
         'cron = "0 * * * *"\n', "two enabled groups"),
        ('[schedules]\nexports = "0 1 * * *"\n', "schedules.exports"),
    ],
)
def test_bad_schedules_are_clear_errors(tmp_path: Path, section: str, message: str):
    with pytest.raises(TopicsError, match=message):
        plan(load_topics(topics_with(tmp_path, section)), REGISTRY)


def test_serve_help_and_dry_run_describe_every_schedule(tmp_path: Path):
    from aimusic.cli.main import app

    runner = CliRunner()
    help_text = runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "160"}).output
    for name in ("monitor-reddit", "monitor-free", "monitor-x", "monitor-archive", "monitor-demo", "export-daily",
                 "maintenance-weekly", "AIMUSIC_RUN_LOCK_WAIT", "AIMUSIC_ALERT_URLS", "AIMUSIC_TASK_RUNNER",
                 "PREFECT_API_URL", "--interval", "--dry-run", "[schedules]"):
        assert name in help_text, name
    result = runner.invoke(app, ["serve", "--demo", "--dry-run", "--db", str(tmp_path / "x.duckdb")],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "monitor-demo" in result.output and "export-daily" in result.output and "0 * * * *" in result.output


# --- a real server ----------------------------------------------------------------------------------------------


def _runs(db: Path) -> list[tuple]:
    try:
        return Store(db, read_only=True, lock_wait=2).query("SELECT source, status, new FROM runs").to_records(
            index=False).tolist()
    except StoreError:
        return []


def _ignored_signals(pid: int) -> list[str]:
    """The signals a process ignores (Linux: its /proc status), for the failure message."""
    try:
        line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("SigIgn:"))
    except (OSError, StopIteration):
        return []
    mask = int(line.split()[1], 16)
    return [signal.Signals(n).name for n in range(1, 32) if mask >> (n - 1) & 1 and n in signal.valid_signals()]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
def test_served_deployment_runs_on_schedule_and_records_itself(tmp_path: Path):
    """`aimusic serve` starts a real Prefect server on loopback, serves the demo group on a 5 s interval, and
    a scheduled run completes and writes its `runs` row; Ctrl-C stops serving and the server."""
    topics = tmp_path / "topics.toml"  # small: a scheduled run's cost is the flow's, not what is tested here
    topics.write_text('[tracking]\nterms = ["AI music", "Suno", "Udio", "AI song"]\n'
                      '[relevance]\nambiguous_terms = ["Suno", "Udio"]\ncontext_terms = ["music", "song", "AI"]\n'
                      "[sources.demo]\nposts = 150\ndays = 30\n")
    db = tmp_path / "served.duckdb"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AIMUSIC_"))}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_RUNNER_POLL_FREQUENCY="2",
        PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="5",
        PYTHONPATH=str(ROOT),
    )
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 (closed in finally)
    proc = subprocess.Popen(
        [sys.executable, "-m", "aimusic.cli.main", "serve", "--demo", "--groups", "demo", "--interval", "5",
         "--no-export", "--no-maintenance", "--db", str(db), "--topics", str(topics), "--port", str(port)],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 150
        runs: list[tuple] = []
        while time.monotonic() < deadline and not runs:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(1)
            runs = _runs(db)
        assert runs, "no scheduled run recorded itself within 150 s:\n" + (tmp_path / "serve.log").read_text()[-3000:]
        source, status, new = runs[0]
        assert (source, status) == ("demo", "ok") and new > 0
        api = f"http://127.0.0.1:{port}/api"
        assert api_healthy(api)
        completed: list[dict] = []
        while time.monotonic() < deadline + 60 and not completed:  # the run still raises alerts and reports
            body = {"flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}}
            completed = requests.post(f"{api}/flow_runs/filter", json=body, timeout=5).json()
            time.sleep(1)
        assert completed, "the scheduled run never reached Completed"
        assert completed[0]["auto_scheduled"] and completed[0]["deployment_id"]
    finally:
        # every process aimusic serve started: the server, the runner and the flow runs in progress (a run
        # starts every 5 s, so one is usually running now); none may outlive it
        tree = psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []
        ignored = _ignored_signals(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches the whole foreground group
        stopping = time.monotonic()
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            print(f"aimusic serve ignored {ignored} at Ctrl-C; log:\n{(tmp_path / 'serve.log').read_text()[-2000:]}")
            for p in [psutil.Process(proc.pid), *tree]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    p.kill()
            raise
        finally:
            log.close()
    took = time.monotonic() - stopping
    text = (tmp_path / "serve.log").read_text()
    assert code == 0, text[-3000:]
    assert took < 45, f"aimusic serve took {took:.0f}s to stop (bound: grace 10 s + 30 s)"
    assert "Prefect server stopped" in text and "deployment runner stopped" in text, text[-3000:]
    left = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, f"processes outlived aimusic serve: {[(p.pid, p.cmdline()[:4]) for p in left]}"
    deadline = time.monotonic() + 15
    while _port_open(port) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _port_open(port), "the Prefect server outlived aimusic serve"

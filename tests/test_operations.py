"""Operations around the monitor flow: the run lock (no overlapping runs), partial failures visible in Prefect
and in ``runs``, the run artifact, secrets kept out of reports, and alerts sent by a real run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

import aimusic.pipeline.monitor as monitor
from aimusic.core.config import Settings
from aimusic.debate.signals import SignalsSummary
from aimusic.ops.runlock import lock_path, run_lock
from aimusic.ops.runreport import artifact_key, redact, run_markdown, run_outcome
from aimusic.sources.base import Batch, CollectContext, Source
from aimusic.store.db import Store
from flows.monitor import MonitorRunFailed, PrefectSteps, monitor_flow

SMALL = """
[tracking]
terms = ["AI music", "AI song", "Suno", "Udio", "Breaking Rust", "AI-generated music"]

[relevance]
ambiguous_terms = ["Suno", "Udio", "Breaking Rust"]
context_terms = ["music", "song", "AI"]

[sources.demo]
posts = 300
days = 60
end = 2025-06-30
"""


@pytest.fixture(autouse=True)
def _no_debate_signals(monkeypatch):
    """The debate-signals step (entities, arguments, stance; tested in its own files) is the slowest part of
    a run and not what these tests are about."""
    monkeypatch.setattr(PrefectSteps, "signals", lambda self, db, topics_path: SignalsSummary())


@pytest.fixture
def topics_file(tmp_path: Path) -> Path:
    path = tmp_path / "topics.toml"
    path.write_text(SMALL)
    return path


# --- the run lock ---------------------------------------------------------------------------------------------


def test_lock_makes_a_second_holder_wait_then_give_up(tmp_path: Path):
    db = tmp_path / "x.duckdb"
    with run_lock(db, 0, what="first run") as first:
        assert first.acquired
        started = time.monotonic()
        with run_lock(db, 0.3) as second:
            assert not second.acquired
            assert 0.3 <= time.monotonic() - started < 2
            assert "first run" in second.describe_holder() and "pid" in second.describe_holder()
    with run_lock(db, 0) as third:
        assert third.acquired
    assert lock_path(db).name == "x.duckdb.lock"


def test_lock_waits_for_a_holder_that_finishes(tmp_path: Path):
    db = tmp_path / "x.duckdb"
    held = threading.Event()

    def hold() -> None:
        with run_lock(db, 0):
            held.set()
            time.sleep(0.8)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(5)
    with run_lock(db, 10) as waiting:
        assert waiting.acquired and waiting.waited >= 0.5
    thread.join()


def test_lock_held_by_another_process_and_released_when_it_dies(tmp_path: Path):
    db = tmp_path / "x.duckdb"
    code = textwrap.dedent(f"""
        import sys, time
        from aimusic.ops.runlock import run_lock
        with run_lock({str(db)!r}, 0, what="other process"):
            print("held", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    try:
        assert proc.stdout.readline().strip() == "held"
        with run_lock(db, 0.2) as lock:
            assert not lock.acquired and "other process" in lock.describe_holder()
        proc.kill()  # a crash: the kernel releases the lock with the process
        proc.wait(10)
        with run_lock(db, 5) as lock:
            assert lock.acquired
    finally:
        proc.kill()
        proc.wait(10)


def test_second_run_skips_while_the_database_is_held(prefect_harness, tmp_path: Path, topics_file: Path):
    db = tmp_path / "x.duckdb"
    with run_lock(db, 0, what="slow run"):
        state = monitor_flow(sources=["demo"], db=str(db), topics_path=str(topics_file), lock_wait=0.5,
                             return_state=True)
    assert state.name == "Skipped" and state.is_completed()
    assert "slow run" in state.message
    runs = Store(db, read_only=True).query("SELECT source, status, error, new FROM runs")
    assert list(runs["status"]) == ["skipped"] and "slow run" in runs["error"][0]
    assert Store(db, read_only=True).count("posts") == 0  # it touched nothing


def test_run_waits_for_a_run_in_progress(prefect_harness, tmp_path: Path, topics_file: Path):
    db = tmp_path / "x.duckdb"
    held = threading.Event()

    def hold() -> None:
        with run_lock(db, 0, what="slow run"):
            held.set()
            time.sleep(1.5)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(5)
    started = time.monotonic()
    state = monitor_flow(sources=["demo"], db=str(db), topics_path=str(topics_file), lock_wait=60,
                         return_state=True)
    thread.join()
    assert state.name == "Completed", state.message
    assert time.monotonic() - started >= 1.0
    assert state.result()["summaries"][0]["new"] > 0


# --- partial and total failures -------------------------------------------------------------------------------


class BrokenSource(Source):
    name = "broken"

    def collect(self, ctx: CollectContext) -> Iterator[Batch]:
        raise RuntimeError("upstream said 503 to token=s3cr3t-t0ken-value")
        yield  # pragma: no cover


@pytest.fixture
def with_broken_source(monkeypatch):
    real = monitor.get_source
    monkeypatch.setattr(monitor, "REGISTRY", {**monitor.REGISTRY, "broken": "tests:BrokenSource"})
    monkeypatch.setattr(monitor, "get_source", lambda name: BrokenSource() if name == "broken" else real(name))
    monkeypatch.setenv("X_BEARER_TOKEN", "s3cr3t-t0ken-value")


def test_partly_failed_run_is_visible_in_prefect_and_runs(prefect_harness, with_broken_source, tmp_path, topics_file):
    db = tmp_path / "x.duckdb"
    state = monitor_flow(sources=["demo", "broken"], db=str(db), topics_path=str(topics_file), return_state=True)
    assert state.name == "Partially failed" and state.is_completed()
    assert "broken" in state.message and "s3cr3t" not in state.message
    result = state.result()
    runs = Store(db, read_only=True).query("SELECT source, status, failed, error FROM runs ORDER BY source")
    assert list(runs["source"]) == ["broken", "demo"]
    assert list(runs["status"]) == ["failed", "ok"] and list(runs["failed"]) == [True, False]
    assert "503" in runs["error"][0] and "s3cr3t" not in runs["error"][0]
    assert "s3cr3t" not in result["report"] and "| broken | failed |" in result["report"]


def test_run_where_every_source_failed_is_failed(prefect_harness, with_broken_source, tmp_path, topics_file):
    db = tmp_path / "x.duckdb"
    state = monitor_flow(sources=["broken"], db=str(db), topics_path=str(topics_file), return_state=True)
    assert state.is_failed()
    with pytest.raises(MonitorRunFailed) as info:
        monitor_flow(sources=["broken"], db=str(db), topics_path=str(topics_file))
    assert info.value.result["summaries"][0]["status"] == "failed"
    runs = Store(db, read_only=True).query("SELECT status FROM runs")
    assert list(runs["status"]) == ["failed", "failed"]  # both runs recorded themselves


def test_outcome_rules():
    ok = {"source": "a", "status": "ok", "new": 3}
    bad = {"source": "b", "status": "failed", "error": "HTTP 500", "new": 0}
    skipped = {"source": "c", "status": "skipped", "error": "no credentials"}
    assert run_outcome([ok, skipped]).state == "Completed"
    assert run_outcome([ok, bad]).state == "Partially failed"
    assert run_outcome([bad, skipped]).state == "Failed"
    assert run_outcome([ok], problems=["scoring failed: boom"]).state == "Partially failed"
    assert "b (HTTP 500)" in run_outcome([ok, bad]).message and "not run: c" in run_outcome([ok, skipped]).message


# --- the run report -------------------------------------------------------------------------------------------


def test_run_markdown_has_counts_sentiment_and_no_secrets():
    settings = Settings(X_BEARER_TOKEN="tok-ABCDEF123456", AIMUSIC_ALERT_URLS="https://hooks.example/T/B/abcdef123")
    rows = [
        {"source": "demo", "status": "ok", "fetched": 300, "new": 280, "updated": 0, "irrelevant": 20,
         "skipped": 0, "scored": 280, "error": None},
        {"source": "x", "status": "failed", "fetched": 0, "new": 0, "updated": 0, "irrelevant": 0, "skipped": 0,
         "scored": 0, "error": "401 for Bearer tok-ABCDEF123456 | see logs"},
    ]
    sentiment = pd.DataFrame(
        [("reddit", 200, 190, 80, 50, 60, -0.1), ("x", 80, 80, 20, 20, 40, 0.25)],
        columns=["source", "new", "scored", "negative", "neutral", "positive", "net"],
    )
    md = run_markdown(run_id="0123456789", db="/d/x.duckdb", model="vader-3.3.2", outcome=run_outcome(rows),
                      rows=rows, sentiment=sentiment, alerts=["Volume spike in reddit"], settings=settings)
    assert "## aimusic-monitor run `01234567`: Partially failed" in md
    assert "| demo | ok | 300 | 280 | 0 | 20 | 0 |  | 280 |  |" in md
    assert "| x | failed |" in md and "| yes |" in md
    assert "| reddit | 200 | 190 | 80 | 50 | 60 | -0.10 |" in md
    assert "| **all** | 280 | 270 | 100 | 70 | 100 | +0.00 |" in md
    assert "- Volume spike in reddit" in md
    assert "tok-ABCDEF" not in md and "\\|" in md  # secret gone, a pipe in a message escaped
    assert redact("url https://hooks.example/T/B/abcdef123 failed", settings) == "url *** failed"
    assert artifact_key("monitor-free") == "aimusic-run-monitor-free" and artifact_key(None) == "aimusic-run-adhoc"


def test_run_publishes_its_artifact(prefect_harness, tmp_path: Path, topics_file: Path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    db = tmp_path / "x.duckdb"
    state = monitor_flow(sources=["demo"], db=str(db), topics_path=str(topics_file), return_state=True)
    result = state.result()
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
    (artifact,) = artifacts
    assert artifact.key == "aimusic-run-adhoc" and artifact.type == "markdown"
    new = result["summaries"][0]["new"]
    assert f"| demo | ok | 300 | {new} |" in artifact.data
    assert "### Sentiment of the new posts" in artifact.data
    sentiment_total = next(line for line in artifact.data.splitlines() if line.startswith("| **all**"))
    assert sentiment_total.split("|")[2].strip() == str(new)


# --- alerts from a real run -----------------------------------------------------------------------------------


def test_run_raises_alerts_and_sends_them(prefect_harness, monkeypatch, tmp_path: Path, topics_file: Path):
    from test_alerts import Receiver, seed_spike

    db = tmp_path / "x.duckdb"
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    store = Store(db)
    seed_spike(store, end)
    with Receiver() as hook:
        monkeypatch.setenv("AIMUSIC_ALERT_URLS", f"http://127.0.0.1:{hook.port}/hook/abcdef-secret")
        result = monitor_flow(sources=["demo"], db=str(db), topics_path=str(topics_file), model="vader")
    assert any("Volume spike in reddit" in m for m in result["alerts"])
    assert "Volume spike in reddit" in result["report"]
    ((_path, payload),) = hook.requests
    assert {a["scope"] for a in payload["alerts"] if a["kind"] == "volume_spike"} >= {"reddit"}
    stored = store.query("SELECT kind, scope, delivery, delivered_at FROM alerts")
    assert stored["delivery"].str.startswith("sent to 1 of 1").all() and stored["delivered_at"].notna().all()
    assert "abcdef-secret" not in result["report"]

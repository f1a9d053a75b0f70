"""``aimusic run --sources reddit,x`` end to end on recorded responses: through aimusic.pipeline.collect, then
through the real CLI (Prefect flow, scoring, the run summary and the runs table).

Reddit is a local HTTP server (praw's URL settings); X is ``responses`` (loopback passes through to the server).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import responses
from reddit_x_testkit import NOW, TOPICS_TOML, FakeReddit, XApi, standard_routes, x_standard_routes
from source_testkit import patch_clock
from typer.testing import CliRunner

from aimusic.core.config import get_settings
from aimusic.core.topics import load_topics
from aimusic.pipeline.collect import collect_source
from aimusic.sources import get_source
from aimusic.store.db import Store
from flows.monitor import plan_run


@pytest.fixture
def services(monkeypatch: pytest.MonkeyPatch):
    patch_clock(monkeypatch, NOW)  # the one clock of every source: frozen, waits recorded, not slept
    server = FakeReddit()
    standard_routes(server)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add_passthru(server.url)
        api = XApi(rsps)
        x_standard_routes(api)
        yield server, api
    server.close()


@pytest.fixture
def topics_file(tmp_path: Path, services) -> Path:
    server, _ = services
    path = tmp_path / "topics.toml"
    path.write_text(
        TOPICS_TOML
        + f"""
[sources.reddit]
subreddits = ["WeAreTheMusicMakers", "country"]
on_topic_subreddits = ["SunoAI"]
page_size = 5
replace_more_limit = 2
oauth_url = "{server.url}"
reddit_url = "{server.url}"

[sources.x]
terms = ["AI music", "Suno", "Breaking Rust"]
page_size = 10
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDDIT_CLIENT_ID", "test-client-id")
    monkeypatch.setenv("REDDIT_CLIENT_SECRET", "test-client-secret")
    monkeypatch.setenv("REDDIT_USER_AGENT", "linux:aimusic-monitor-tests:0.1 (by /u/tester)")
    monkeypatch.setenv("X_BEARER_TOKEN", "AAAAAAAAAAAAAAAAAAAAAtest%2Btoken")


def test_pipeline_runs_both_sources_and_reports_each(tmp_path, topics_file, credentials):
    plan = plan_run(["reddit", "x"], str(tmp_path / "run.duckdb"), str(topics_file))
    assert plan.run == ["reddit", "x"] and plan.skipped == []
    store, topics = Store(plan.db), load_topics(topics_file)
    summaries = {n: collect_source(get_source(n), store, topics, get_settings()) for n in plan.run}
    lines = [s.line() for s in summaries.values()]
    assert lines[0].startswith("reddit") and lines[1].startswith("x")
    r, t = summaries["reddit"], summaries["x"]
    assert (r.status, r.new, r.skipped, r.irrelevant) == ("partial", 16, 2, 1)
    assert (t.status, t.fetched, t.new, t.skipped) == ("partial", 10, 7, 1)
    assert all("fetched" in line and "skipped" in line for line in lines)
    again = {n: collect_source(get_source(n), store, topics, get_settings()) for n in plan.run}
    assert [(s.new, s.updated, s.skipped) for s in again.values()] == [(0, 0, 0), (0, 0, 0)]


def test_without_credentials_both_are_skipped_with_a_reason(tmp_path, topics_file):
    plan = plan_run(["reddit", "x"], str(tmp_path / "run.duckdb"), str(topics_file))
    assert plan.run == []
    reasons = {s.source: s.error for s in plan.skipped}
    assert "REDDIT_CLIENT_ID" in reasons["reddit"] and "X_BEARER_TOKEN" in reasons["x"]


@pytest.mark.slow
def test_aimusic_run_cli(prefect_harness, tmp_path, topics_file, credentials):
    from aimusic.cli.main import app

    db = tmp_path / "cli.duckdb"
    result = CliRunner().invoke(
        app, ["run", "--sources", "reddit,x", "--db", str(db), "--topics", str(topics_file), "--model", "vader"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    table = {m.group(1): m.group(0) for m in re.finditer(r"(?m)^\s*(reddit|x)\s+partial\s.*", result.output)}
    assert set(table) == {"reddit", "x"}, result.output  # columns: source status fetched new ...
    assert re.match(r"\s*reddit\s+partial\s+\d+\s+16\s", table["reddit"]), result.output
    assert re.match(r"\s*x\s+partial\s+10\s+7\s", table["x"]), result.output
    runs = Store(db, read_only=True).query("SELECT source, status, fetched, new, skipped, failed FROM runs")
    got = {r.source: (r.status, r.new, r.skipped, r.failed) for r in runs.itertuples()}
    assert got == {"reddit": ("partial", 16, 2, False), "x": ("partial", 7, 1, False)}

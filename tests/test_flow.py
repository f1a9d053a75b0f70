"""The monitor flow end to end on the demo source, under Prefect's test harness."""

from pathlib import Path

import pytest

from aimusic.store.db import Store
from flows.monitor import monitor_flow, plan_run

SMALL = """
[tracking]
terms = ["AI music", "AI song", "AI artist", "Suno", "Udio", "Breaking Rust", "Velvet Sundown", "Xania Monet",
         "Walk My Walk", "AI country", "AI-generated music"]

[relevance]
ambiguous_terms = ["Suno", "Udio", "Breaking Rust", "Walk My Walk"]
context_terms = ["music", "song", "songs", "artist", "chart", "AI", "songwriter", "listener"]

[[events]]
date = 2025-11-11
title = "Breaking Rust tops a Billboard chart"

[sources.demo]
posts = 400
days = 100
"""


@pytest.fixture
def topics_file(tmp_path: Path) -> Path:
    path = tmp_path / "topics.toml"
    path.write_text(SMALL)
    return path


def table_counts(db: Path) -> dict[str, int]:
    store = Store(db, read_only=True)
    return {t: store.count(t) for t in ("posts", "scores", "runs", "cursors", "events")}


def test_demo_twice_adds_nothing_but_runs(prefect_harness, tmp_path, topics_file):
    db = tmp_path / "x.duckdb"
    first = monitor_flow(sources=["demo"], db=str(db), topics_path=str(topics_file))
    after_first = table_counts(db)
    summary = first["summaries"][0]
    assert summary["status"] == "ok" and summary["new"] > 200
    assert summary["new"] + summary["irrelevant"] == 400
    assert after_first["posts"] == summary["new"] == after_first["scores"] == summary["scored"]

    second = monitor_flow(sources=["demo"], db=str(db), topics_path=str(topics_file))
    after_second = table_counts(db)
    assert second["summaries"][0]["new"] == 0 and second["summaries"][0]["updated"] == 0
    assert after_second == {**after_first, "runs": after_first["runs"] + 1}
    store = Store(db, read_only=True)
    missing = store.query(
        "SELECT count(*) AS n FROM posts p ANTI JOIN scores s ON s.source = p.source AND s.post_id = p.post_id"
    )
    assert int(missing["n"][0]) == 0
    runs = store.query("SELECT source, status, new, scored, model FROM runs ORDER BY started_at")
    assert list(runs["source"]) == ["demo", "demo"]
    assert runs["model"].notna().all()


def test_named_unknown_source_is_a_clear_error(tmp_path, topics_file):
    with pytest.raises(KeyError, match="unknown source"):
        plan_run(["nope"], str(tmp_path / "x.duckdb"), str(topics_file))


def test_no_source_available_falls_back_to_demo(monkeypatch, tmp_path, topics_file):
    import aimusic.pipeline.monitor as monitor

    monkeypatch.setattr(monitor, "REGISTRY", {"demo": "aimusic.sources.demo:DemoSource"})
    monkeypatch.chdir(tmp_path)
    plan = plan_run(None, None, str(topics_file))
    assert plan.demo_fallback and plan.run == ["demo"]
    assert plan.db.name == "demo.duckdb"
    explicit = plan_run(None, str(tmp_path / "mine.duckdb"), str(topics_file))
    assert explicit.db == tmp_path / "mine.duckdb"

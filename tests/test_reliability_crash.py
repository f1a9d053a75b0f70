"""Crash mid-run: SIGKILL in the middle of an upsert and in the middle of scoring loses nothing committed,
duplicates nothing, and cursors never run ahead of committed data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from aimusic.core.config import PROJECT_ROOT
from aimusic.pipeline.collect import score_posts
from aimusic.sources.demo import generate_table
from aimusic.store.db import Store
from sentiment import load_scorer


def worker(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.Popen([sys.executable, "-m", "tests.workers.writer", *args], cwd=PROJECT_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_during_upsert_is_all_or_nothing(tmp_path: Path):
    db = tmp_path / "crash.duckdb"
    Store(db)
    rows = 300_000
    proc = worker(str(db), "upsert", str(rows))
    assert proc.stdout.readline().strip() == "upserting"
    time.sleep(0.4)  # well inside the upsert, which takes seconds for this many rows
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    store = Store(db)
    posts, cursors = store.count("posts"), store.get_cursors("crash")
    assert posts in (0, rows)  # one transaction: nothing half-written
    assert (cursors == {"cursor": "done"}) == (posts == rows)  # the cursor never runs ahead of the data
    result = store.upsert_posts(generate_table(rows, seed=7), cursors={("crash", "cursor"): "done"})
    assert store.count("posts") == rows and result.new == rows - posts
    dupes = store.query("SELECT count(*) - count(DISTINCT (source, post_id)) AS d FROM posts")["d"][0]
    assert dupes == 0


def test_sigkill_during_scoring_resumes_without_gaps_or_duplicates(tmp_path: Path):
    db = tmp_path / "score.duckdb"
    store = Store(db)
    store.upsert_posts(generate_table(12_000, seed=3))
    total = store.count("posts")
    progress = tmp_path / "progress.txt"
    proc = worker(str(db), "score", "0", str(progress))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not progress.exists() or len(progress.read_text().split()) < 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    scored_before = Store(db).count("scores")
    assert 0 < scored_before < total, "the kill should land mid-scoring"
    vader = load_scorer("vader")
    assert Store(db).count_unscored(vader.model_id) == total - scored_before
    resumed = sum(score_posts(Store(db), vader).values())
    assert resumed == total - scored_before
    final = Store(db)
    assert final.count("scores") == total
    assert final.count_unscored(vader.model_id) == 0

"""Concurrent use: the dashboard's queries run in a loop while a monitor run writes.

Kept short in the suite (5 s of writing); set AIMUSIC_SOAK_SECONDS=120 (or more) for the long local soak.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from aimusic.core.config import PROJECT_ROOT
from aimusic.store.db import Store
from aimusic.store.queries import Filters, daily_sql, pick_model, posts_sql

SOAK_SECONDS = float(os.environ.get("AIMUSIC_SOAK_SECONDS", "5"))


def dashboard_queries(store: Store) -> int:
    model = pick_model(store)
    sql, params = daily_sql(Filters(), model)
    daily = store.query(sql, params)
    sql, params = posts_sql(Filters(sources=("reddit", "x")), model)
    store.query(sql + " LIMIT 200", params)
    return int(daily["posts"].sum()) if not daily.empty else 0


def test_dashboard_reads_while_a_run_writes(tmp_path: Path):
    db = tmp_path / "soak.duckdb"
    Store(db)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    writer = subprocess.Popen(
        [sys.executable, "-m", "tests.workers.writer", str(db), "soak", str(SOAK_SECONDS)],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    reader = Store(db, read_only=True, lock_wait=60)
    reads, errors, seen = 0, [], []
    while writer.poll() is None:
        try:
            seen.append(dashboard_queries(reader))
            reads += 1
        except Exception as exc:  # any error here would reach a dashboard user
            errors.append(f"{type(exc).__name__}: {exc}")
        time.sleep(0.05)
    out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err[-2000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert errors == []
    assert reads >= 5, f"only {reads} dashboard reads got through in {SOAK_SECONDS}s"
    assert seen == sorted(seen), "a reader saw the post count go down"
    final = Store(db, read_only=True)
    assert result["status"] == "ok" and result["error"] is None
    assert final.count("posts") == result["new"] > 0  # nothing lost
    assert final.count("scores") == result["scored"] == result["new"]
    assert final.get_cursors("soak")  # cursor committed with the last page

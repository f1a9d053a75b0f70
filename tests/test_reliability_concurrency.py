"""Concurrent use: the dashboard's queries run in a loop while a monitor run writes.

Kept short in the suite (5 s of writing); set AIMUSIC_SOAK_SECONDS=120 (or more) for the long local soak.
"""

from __future__ import annotations

import os
from pathlib import Path

from writer_testkit import read_while_running, spawn

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
    writer = spawn(["-m", "tests.workers.writer", str(db), "soak", str(SOAK_SECONDS)])
    reader = Store(db, read_only=True, lock_wait=60)
    seen, errors, result = read_while_running(writer, lambda: dashboard_queries(reader), 0.05)
    assert errors == []
    assert len(seen) >= 5, f"only {len(seen)} dashboard reads got through in {SOAK_SECONDS}s"
    assert seen == sorted(seen), "a reader saw the post count go down"
    final = Store(db, read_only=True)
    assert result["status"] == "ok" and result["error"] is None
    assert final.count("posts") == result["new"] > 0  # nothing lost
    assert final.count("scores") == result["scored"] == result["new"]
    assert final.get_cursors("soak")  # cursor committed with the last page

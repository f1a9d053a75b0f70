"""The daily export and the weekly maintenance: exports written atomically, re-scoring, DuckDB compaction."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from aimusic.core.topics import load_topics
from aimusic.debate.relevance import RelevanceFilter
from aimusic.ops.compact import compact
from aimusic.ops.runlock import run_lock
from aimusic.sources.demo import generate_table
from aimusic.store.db import Store
from flows.housekeeping import export_flow, maintenance_flow, write_exports


def filled(path: Path, n: int = 3000, seed: int = 3) -> Store:
    store = Store(path)
    table, _ = RelevanceFilter(load_topics()).filter_table(
        generate_table(n, seed=seed, end=date(2026, 2, 28), days=30)
    )
    store.upsert_posts(table)
    return store


def test_compact_rewrites_a_file_with_much_free_space(tmp_path: Path):
    db = tmp_path / "x.duckdb"
    store = filled(db, n=40_000)
    before = {t: store.count(t) for t in ("posts", "scores")}
    with store.connect() as con:
        con.execute("DELETE FROM posts WHERE NOT ends_with(post_id, '0')")
        kept = con.execute("SELECT count(*) FROM posts").fetchall()[0][0]
    size_before = db.stat().st_size
    result = compact(db, min_free_bytes=0)
    assert result.rewritten and result.after_bytes < result.before_bytes * 0.6, result.line()
    assert db.stat().st_size < size_before
    assert store.count("posts") == kept < before["posts"]
    assert (tmp_path / "x.duckdb.bak").exists() and not (tmp_path / "x.duckdb.compact-tmp").exists()
    with store.connect() as con:  # schema, keys and indexes survive
        versions = [v for (v,) in con.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()]
        indexes = [n for (n,) in con.execute("SELECT index_name FROM duckdb_indexes()").fetchall()]
        pk = con.execute("SELECT post_id FROM posts LIMIT 1").fetchall()[0][0]
        with pytest.raises(duckdb.ConstraintException):
            con.execute("INSERT INTO posts SELECT * FROM posts WHERE post_id = ?", [pk])
    assert 1 in versions and 3 in versions and "posts_created" in indexes
    assert store.upsert_posts(generate_table(10, seed=99)).new > 0  # still writable


def test_compact_only_checkpoints_a_tight_file(tmp_path: Path):
    db = tmp_path / "x.duckdb"
    filled(db, n=2000)
    result = compact(db)
    assert not result.rewritten and "below the rewrite threshold" in result.reason
    forced = compact(db, force=True, keep_backup=False)
    assert forced.rewritten and not (tmp_path / "x.duckdb.bak").exists()
    assert Store(db, read_only=True).count("posts") > 0


def test_write_exports(tmp_path: Path):
    store = filled(tmp_path / "x.duckdb")
    out = tmp_path / "exports"
    written = write_exports(store, out, day=date(2026, 2, 20))
    daily = pd.read_csv(out / "daily.csv")
    assert int(daily["posts"].sum()) == store.count("posts")
    assert pd.read_parquet(out / "daily.parquet").shape[0] == daily.shape[0]
    day_posts = pd.read_parquet(out / "posts" / "posts-2026-02-20.parquet")
    expected = store.query(
        "SELECT count(*) AS n FROM posts WHERE created_at >= '2026-02-20 00:00:00+00' "
        "AND created_at < '2026-02-21 00:00:00+00'"
    )["n"][0]
    assert len(day_posts) == expected > 0 and written[str(out / "posts" / "posts-2026-02-20.parquet")] == expected
    assert sorted(p.name for p in out.iterdir()) == ["daily.csv", "daily.parquet", "posts"]  # no temp files left


def test_export_flow_skips_while_a_run_holds_the_database(prefect_harness, tmp_path: Path):
    db = tmp_path / "x.duckdb"
    filled(db)
    with run_lock(db, 0, what="monitor run abc"):
        state = export_flow(db=str(db), out_dir=str(tmp_path / "out"), lock_wait=0.2, return_state=True)
    assert state.name == "Skipped" and "monitor run abc" in state.message
    assert not (tmp_path / "out").exists()
    written = export_flow(db=str(db), out_dir=str(tmp_path / "out"), day=date(2026, 2, 27))
    assert (tmp_path / "out" / "daily.csv").exists() and len(written) == 3


def test_maintenance_rescores_and_compacts(prefect_harness, tmp_path: Path):
    db = tmp_path / "x.duckdb"
    store = filled(db)
    posts = store.count("posts")
    result = maintenance_flow(db=str(db), model="vader", force_compact=True)
    assert result["rescored"] == posts and result["model"] == store.query("SELECT DISTINCT model FROM scores")[
        "model"][0]
    assert result["compact"]["rewritten"] and store.count("scores") == posts
    again = maintenance_flow(db=str(db), model="vader")
    assert again["rescored"] == 0 and not again["compact"]["rewritten"]

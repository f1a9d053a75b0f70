"""Scoring on a Dask cluster through prefect-dask gives the same scores as the default runner."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from prefect.task_runners import ThreadPoolTaskRunner

from aimusic.core.config import ConfigError
from aimusic.core.topics import load_topics
from aimusic.debate.relevance import RelevanceFilter
from aimusic.sources.demo import generate_table
from aimusic.store.db import Store
from flows.monitor import score_task
from flows.scoring import ChunkStore, score_flow, task_runner, uses_dask

SCORE_COLUMNS = "source, post_id, model, label, negative, neutral, positive, status, text_md5"


def demo_db(path: Path, n: int = 700) -> Path:
    store = Store(path)
    table, _ = RelevanceFilter(load_topics()).filter_table(generate_table(n, seed=7, days=30))
    store.upsert_posts(table)
    return path


def scores(db: Path):
    return Store(db, read_only=True).query(f"SELECT {SCORE_COLUMNS} FROM scores ORDER BY source, post_id")


def test_task_runner_setting():
    assert isinstance(task_runner(None), ThreadPoolTaskRunner)
    assert task_runner("threads:3")._max_workers == 3
    from prefect_dask import DaskTaskRunner

    remote = task_runner("dask:tcp://10.0.0.5:8786")
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://10.0.0.5:8786"
    local = task_runner("dask:local:3")
    assert local.cluster_kwargs["n_workers"] == 3
    assert uses_dask("dask") and not uses_dask("threads") and not uses_dask(None)
    for bad in ("ray", "threads:x", "dask:local:x"):
        with pytest.raises(ConfigError, match="AIMUSIC_TASK_RUNNER"):
            task_runner(bad)


def test_dask_cluster_scores_like_the_default_runner(prefect_harness, tmp_path: Path):
    from prefect_dask import DaskTaskRunner

    base = demo_db(tmp_path / "base.duckdb")
    default_db, threads_db, dask_db = (tmp_path / f"{n}.duckdb" for n in ("default", "threads", "dask"))
    for target in (default_db, threads_db, dask_db):
        shutil.copy(base, target)

    # the monitor's own scoring step (aimusic.pipeline.rescore.score_store under a Prefect task)
    model_id, counts = score_task(str(default_db), "vader")
    assert sum(counts.values()) == Store(base, read_only=True).count("posts")

    threads = score_flow.with_options(task_runner=ThreadPoolTaskRunner(max_workers=2))
    assert threads(db=str(threads_db), model="vader", chunk_size=150)[0] == model_id

    cluster = DaskTaskRunner(
        cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "processes": False, "dashboard_address": None}
    )
    dask_model, dask_counts = score_flow.with_options(task_runner=cluster)(db=str(dask_db), model="vader",
                                                                           chunk_size=150)
    assert dask_model == model_id and dask_counts == counts

    expected = scores(default_db)
    assert len(expected) == sum(counts.values()) and expected["label"].notna().sum() > 0
    for other in (threads_db, dask_db):
        got = scores(other)
        assert got.equals(expected), f"{other.name} differs from the default runner"
    assert Store(dask_db, read_only=True).count_unscored(model_id) == 0


def test_chunk_store_hands_out_its_chunk_once():
    table = generate_table(5, seed=1).select(["source", "post_id", "title", "text", "lang"])
    sink = ChunkStore(table)
    assert sink.unscored("m", 10).num_rows == 5
    assert sink.unscored("m", 10).num_rows == 0
    with pytest.raises(ValueError, match="whole chunks"):
        ChunkStore(table).unscored("m", 2)

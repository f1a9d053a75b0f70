import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pyarrow as pa
import pytest

from aimusic.core.records import Post, posts_to_arrow
from aimusic.store.db import SCHEMA_VERSION, Store, StoreError
from aimusic.store.queries import Filters, export

T0 = datetime(2025, 11, 11, 12, tzinfo=UTC)


def posts(n, *, start=0, text="AI music is {i}", fetched=T0, **kw):
    return posts_to_arrow(
        Post(source="x", post_id=str(i), created_at=T0 + timedelta(hours=i), text=text.format(i=i),
             fetched_at=fetched, **kw)
        for i in range(start, start + n)
    )


def rows(store, sql):
    with store.connect() as con:
        return con.execute(sql).fetchall()


def test_migrations_run_once_and_are_recorded(db_path):
    Store(db_path)
    store = Store(db_path)  # second open: nothing to do
    versions = rows(store, "SELECT version FROM schema_migrations ORDER BY version")
    assert [v for (v,) in versions][-1] == SCHEMA_VERSION
    assert len(versions) == len(set(versions))
    tables = {t for (t,) in rows(store, "SELECT table_name FROM information_schema.tables")}
    assert {"posts", "scores", "runs", "cursors", "events", "meta"} <= tables


def test_upsert_is_idempotent(store):
    first = store.upsert_posts(posts(100))
    second = store.upsert_posts(posts(100))
    assert (first.new, first.updated) == (100, 0)
    assert (second.new, second.updated, second.unchanged) == (0, 0, 100)
    assert store.count("posts") == 100


def test_duplicates_inside_a_batch_collapse_to_the_latest_fetch(store):
    old = posts(1, text="old text about AI music", fetched=T0)
    new = posts(1, text="new text about AI music", fetched=T0 + timedelta(minutes=5))
    result = store.upsert_posts(pa.concat_tables([new, old]))
    assert result.new == 1
    assert rows(store, "SELECT text FROM posts") == [("new text about AI music",)]


def test_edited_post_updates_row_and_needs_rescoring(store):
    store.upsert_posts(posts(3))
    scores = pa.table({
        "source": ["x"] * 3, "post_id": ["0", "1", "2"], "model": ["m"] * 3, "label": ["neutral"] * 3,
        "negative": [0.1] * 3, "neutral": [0.8] * 3, "positive": [0.1] * 3, "status": ["scored"] * 3,
        "text_md5": [r[0] for r in rows(store, "SELECT text_md5 FROM posts ORDER BY post_id")],
    })
    store.upsert_scores(scores)
    assert store.count_unscored("m") == 0
    edited = posts(1, start=1, text="edited: AI music is great {i}")
    result = store.upsert_posts(edited)
    assert (result.new, result.updated) == (0, 1)
    assert rows(store, "SELECT text FROM posts WHERE post_id = '1'") == [("edited: AI music is great 1",)]
    assert store.unscored("m", 10).column("post_id").to_pylist() == ["1"]
    assert store.count("posts") == 3


def test_engagement_change_is_an_update_not_a_new_row(store):
    store.upsert_posts(posts(2, score=1))
    result = store.upsert_posts(posts(2, score=5))
    assert (result.new, result.updated) == (0, 2)
    assert rows(store, "SELECT DISTINCT score FROM posts") == [(5,)]


def test_cursors_commit_with_posts_and_roll_back_with_them(store):
    store.upsert_posts(posts(2), cursors={("x", "q1"): "100"})
    assert store.get_cursors("x") == {"q1": "100"}
    bad = posts(1, start=10).set_column(1, "post_id", pa.array([None], pa.string()))
    with pytest.raises(Exception):  # noqa: B017 - NOT NULL violation from DuckDB
        store.upsert_posts(bad, cursors={("x", "q1"): "999"})
    assert store.get_cursors("x") == {"q1": "100"}
    assert store.count("posts") == 2


def test_scores_replace_per_model_and_keep_other_models(store):
    store.upsert_posts(posts(1))
    md5 = rows(store, "SELECT text_md5 FROM posts")[0][0]

    def score(model, label):
        return pa.table({"source": ["x"], "post_id": ["0"], "model": [model], "label": [label], "negative": [0.0],
                         "neutral": [0.0], "positive": [1.0], "status": ["scored"], "text_md5": [md5]})

    store.upsert_scores(score("a", "positive"))
    store.upsert_scores(score("b", "negative"))
    store.upsert_scores(score("a", "neutral"))
    assert sorted(rows(store, "SELECT model, label FROM scores")) == [("a", "neutral"), ("b", "negative")]


def test_events_and_meta(store):
    store.add_event(date(2025, 11, 11), "Breaking Rust tops a chart")
    store.add_event(date(2025, 11, 11), "Breaking Rust tops a chart")
    assert store.count("events") == 1
    store.set_meta("contains_demo", "true")
    assert store.get_meta("contains_demo") == "true"
    assert store.get_meta("missing") is None


def test_reader_waits_for_a_writer_in_another_process(db_path):
    Store(db_path).upsert_posts(posts(5))
    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"import duckdb, time; c = duckdb.connect({str(db_path)!r}); print('locked', flush=True); time.sleep(1.5)"],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    started = time.monotonic()
    reader = Store(db_path, read_only=True)
    assert reader.count("posts") == 5
    assert time.monotonic() - started > 0.5  # it had to wait, and did not fail
    holder.wait(10)


def test_lock_timeout_is_a_clear_error(db_path):
    Store(db_path)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"import duckdb, time; c = duckdb.connect({str(db_path)!r}); print('locked', flush=True); time.sleep(5)"],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    try:
        with pytest.raises(StoreError, match="busy"):
            Store(db_path, read_only=True, lock_wait=0.3).count("posts")
    finally:
        holder.kill()
        holder.wait()


def test_foreign_file_and_missing_db_are_clear_errors(tmp_path):
    foreign = tmp_path / "notes.duckdb"
    foreign.write_text("this is not a database\n" * 100)
    with pytest.raises(StoreError, match=str(foreign)):
        Store(foreign)
    with pytest.raises(StoreError, match="does not exist yet"):
        Store(tmp_path / "missing.duckdb", read_only=True).count("posts")


def test_export_posts_csv_round_trips_with_filters(store, tmp_path):
    store.upsert_posts(posts(48))
    formula = Post(source="reddit", post_id="r1", created_at=T0, text='=HYPERLINK("x") AI music')
    store.upsert_posts(posts_to_arrow([formula]))
    out = tmp_path / "posts.csv"
    n = export(store, "posts", out, filters=Filters(sources=("x",), start=date(2025, 11, 12)))
    df = pd.read_csv(out)
    expected = rows(store, "SELECT count(*) FROM posts WHERE source = 'x' AND created_at >= '2025-11-12 00:00:00+00'")
    assert n == len(df) == expected[0][0] > 0
    guarded = export(store, "posts", tmp_path / "r.csv", filters=Filters(sources=("reddit",)))
    assert guarded == 1
    assert pd.read_csv(tmp_path / "r.csv")["text"][0].startswith("'=HYPERLINK")
    export(store, "posts", tmp_path / "raw.csv", filters=Filters(sources=("reddit",)), raw=True)
    assert pd.read_csv(tmp_path / "raw.csv")["text"][0].startswith("=HYPERLINK")
    export(store, "posts", tmp_path / "p.parquet", fmt="parquet")
    assert len(pd.read_parquet(tmp_path / "p.parquet")) == 49


def test_list_columns_are_joined_in_csv_and_kept_as_lists_in_parquet(store, tmp_path):
    store.upsert_posts(posts(2, terms=["suno", "udio"]))
    export(store, "posts", tmp_path / "p.csv")
    export(store, "posts", tmp_path / "p.parquet", fmt="parquet")
    csv = pd.read_csv(tmp_path / "p.csv")
    assert list(csv["terms"]) == ["suno; udio", "suno; udio"]
    assert [list(t) for t in pd.read_parquet(tmp_path / "p.parquet")["terms"]] == [["suno", "udio"]] * 2

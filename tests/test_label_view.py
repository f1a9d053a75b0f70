"""The Label view (issue 13) through Streamlit's AppTest: a click stores a label, the counters move, a reload shows
it, undo removes it; the measured-accuracy panel appears only above the minimum number of random-sample labels;
Overview then offers adjusted shares."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from aimusic.core.config import PROJECT_ROOT
from aimusic.debate.correction import MIN_RANDOM_LABELS
from aimusic.pipeline.collect import score_posts
from aimusic.sources.demo import generate_table
from aimusic.store import label_queries as lq
from aimusic.store import labels as lab
from aimusic.store.db import Store
from sentiment import load_scorer

APP = str(PROJECT_ROOT / "app.py")
PANEL = "Macro recall (measured)"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("label") / "label.duckdb"
    store = Store(path)
    store.upsert_posts(generate_table(400, seed=21, days=60))
    score_posts(store, load_scorer("vader"))
    return path


@pytest.fixture
def db(seeded: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy.duckdb"
    target.write_bytes(seeded.read_bytes())
    return target


@pytest.fixture(autouse=True)
def _fresh_caches() -> None:
    st.cache_data.clear()
    st.cache_resource.clear()


def open_label_view(monkeypatch: pytest.MonkeyPatch, db: Path) -> AppTest:
    monkeypatch.setenv("AIMUSIC_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    at.segmented_control(key="view").set_value("Label").run()
    assert not at.exception, at.exception
    return at


def progress_text(at: AppTest) -> str:
    texts = [str(e.proto.text) for e in at.get("progress")]
    assert texts, "no progress bar"
    return texts[0]


def shown_post(at: AppTest) -> str:
    ids = [c.value for c in at.caption if " · demo" in str(c.value)]
    assert ids, [c.value for c in at.caption]
    return ids[0]


def stored(db: Path) -> list[tuple]:
    sql = "SELECT source, post_id, task, label, labeller, picked FROM labels ORDER BY ALL"
    return Store(db).query(sql).values.tolist()


def test_label_click_stores_counts_and_survives_reload(monkeypatch: pytest.MonkeyPatch, db: Path) -> None:
    at = open_label_view(monkeypatch, db)
    assert "Random sample: 0 of 200" in progress_text(at)
    first = shown_post(at)
    at.button(key="label-negative").click().run()
    assert not at.exception, at.exception
    rows = stored(db)
    assert len(rows) == 1
    _, post_id, task, label, labeller, picked = rows[0]
    assert (task, label, labeller, picked) == ("sentiment", "negative", "me", "random")
    assert post_id.replace("-", "\\-") in first  # the post shown is the one labelled
    assert "Random sample: 1 of 200" in progress_text(at)
    assert shown_post(at) != first  # the next post of the random order

    st.cache_data.clear()
    reloaded = open_label_view(monkeypatch, db)  # a new session: the label is read back from the database
    assert "Random sample: 1 of 200" in progress_text(reloaded)
    assert shown_post(reloaded) != first

    # skip moves on without storing; undo (same session as the click) removes the label again
    at.button(key="label-skip").click().run()
    assert len(stored(db)) == 1
    at.button(key="label-undo").click().run()
    assert not at.exception, at.exception
    assert stored(db) == []
    assert "Random sample: 0 of 200" in progress_text(at)


def test_stance_and_active_queue(monkeypatch: pytest.MonkeyPatch, db: Path) -> None:
    at = open_label_view(monkeypatch, db)
    at.segmented_control(key="label_queue").set_value("active").run()
    assert not at.exception, at.exception
    at.button(key="label-positive").click().run()
    (row,) = stored(db)
    assert row[2:] == ["sentiment", "positive", "me", "active"]
    at.segmented_control(key="label_task").set_value("stance").run()
    assert not at.exception, at.exception
    assert "No stance model has scored posts yet" in " ".join(str(i.value) for i in at.info)
    at.segmented_control(key="label_queue").set_value("random").run()
    assert [b.key for b in at.button if b.key and b.key.startswith("label-")][:3] == [
        "label-against", "label-neutral", "label-for"]


def add_random_labels(db: Path, n: int) -> None:
    """``n`` random-sample labels: the model's own label on the first n posts of the random order (agreeing
    labels, except every fifth, which is called neutral)."""
    store = Store(db)
    with store.connect() as con:
        order = lq.random_order(con, 4 * n)
        scored = con.execute("SELECT source, post_id, label FROM scores WHERE label IS NOT NULL").df()
    merged = order.merge(scored, on=["source", "post_id"]).head(n)
    labels = [("neutral" if i % 5 == 0 else v) for i, v in enumerate(merged["label"])]
    table = pa.table({"source": merged["source"].tolist(), "post_id": merged["post_id"].tolist(),
                      "task": ["sentiment"] * n, "label": labels, "labeller": ["me"] * n, "picked": ["random"] * n,
                      "labelled_at": pa.array([None] * n, pa.timestamp("us", tz="UTC"))})
    with store.connect() as con:
        lab._upsert(con, table)


def test_accuracy_panel_only_above_minimum(monkeypatch: pytest.MonkeyPatch, db: Path) -> None:
    add_random_labels(db, MIN_RANDOM_LABELS - 1)
    at = open_label_view(monkeypatch, db)
    assert PANEL not in [m.label for m in at.metric]
    notes = " ".join(str(i.value) for i in at.info)
    assert f"{MIN_RANDOM_LABELS - 1} random-sample label(s)" in notes and f"{MIN_RANDOM_LABELS} needed" in notes

    add_random_labels(db, MIN_RANDOM_LABELS)
    at = open_label_view(monkeypatch, db)
    assert PANEL in [m.label for m in at.metric]
    assert [m.value for m in at.metric if m.label == "Random-sample labels"] == [str(MIN_RANDOM_LABELS)]

    # Overview: adjusted shares are the default now, the chart says so, and Raw switches back
    at.segmented_control(key="view").set_value("Overview").run()
    assert not at.exception, at.exception
    assert at.segmented_control(key="shares-sentiment").value.startswith("Adjusted")
    assert "Showing ADJUSTED shares" in " ".join(str(c.value) for c in at.caption)
    at.segmented_control(key="shares-sentiment").set_value("Raw (classify and count)").run()
    assert not at.exception, at.exception
    captions = " ".join(str(c.value) for c in at.caption)
    assert "Showing RAW shares" in captions and "Showing ADJUSTED" not in captions


def test_overview_says_raw_below_minimum(monkeypatch: pytest.MonkeyPatch, db: Path) -> None:
    add_random_labels(db, 10)
    at = open_label_view(monkeypatch, db)
    at.segmented_control(key="view").set_value("Overview").run()
    assert not at.exception, at.exception
    assert not [s for s in at.segmented_control if s.key == "shares-sentiment"]
    captions = " ".join(str(c.value) for c in at.caption)
    assert "Showing RAW shares" in captions and f"once {MIN_RANDOM_LABELS} random-sample labels" in captions
    assert "Sentiment model `vader-3.3.2`: no held-out figure ships with it" in captions  # never a bare accuracy
    assert PANEL not in [m.label for m in at.metric]


def test_debate_view_adjusts_stance(monkeypatch: pytest.MonkeyPatch, db: Path) -> None:
    """Stance predictions from a stand-in model and 60 random-sample stance labels: Debate shows adjusted shares."""
    store = Store(db)
    mapping = {"negative": "anti", "neutral": "neutral", "positive": "pro"}
    with store.connect() as con:
        scores = con.execute("SELECT source, post_id, label, negative, neutral, positive, status, text_md5 "
                             "FROM scores WHERE model = 'vader-3.3.2'").df()
        order = lq.random_order(con, 200)
    stances = pa.table({
        "source": scores["source"].tolist(), "post_id": scores["post_id"].tolist(),
        "model": ["stance-test"] * len(scores), "label": [mapping.get(v) for v in scores["label"]],
        "anti": scores["negative"].tolist(), "neutral": scores["neutral"].tolist(), "pro": scores["positive"].tolist(),
        "status": scores["status"].tolist(), "text_md5": scores["text_md5"].tolist()})
    with store.connect() as con:
        con.register("_st", stances)
        con.execute("INSERT INTO stances BY NAME SELECT *, now() AS scored_at FROM _st")
    merged = order.merge(scores[scores["label"].notna()], on=["source", "post_id"]).head(60)
    truth = {"anti": "against", "neutral": "neutral", "pro": "for"}
    labels = [truth[mapping[v]] if i % 4 else "neutral" for i, v in enumerate(merged["label"])]
    table = pa.table({"source": merged["source"].tolist(), "post_id": merged["post_id"].tolist(),
                      "task": ["stance"] * 60, "label": labels, "labeller": ["me"] * 60, "picked": ["random"] * 60,
                      "labelled_at": pa.array([None] * 60, pa.timestamp("us", tz="UTC"))})
    with store.connect() as con:
        lab._upsert(con, table)
    at = open_label_view(monkeypatch, db)
    at.segmented_control(key="view").set_value("Debate").run()
    assert not at.exception, at.exception
    assert at.segmented_control(key="shares-stance").value.startswith("Adjusted")
    captions = " ".join(str(c.value) for c in at.caption)
    assert "Showing ADJUSTED shares" in captions and "`stance-test`" in captions
    assert PANEL in [m.label for m in at.metric]

"""Custom models (issue 13): `aimusic train` on the user's labels, then `aimusic rescore --model <id>` gives every
post a score from the new model and leaves other models' rows untouched; versions, provenance, the registry and
honest measurement (a model's own training labels count by their cross-validated predictions)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from aimusic.cli.main import app
from aimusic.debate.correction import measure
from aimusic.pipeline.collect import score_posts
from aimusic.sources.demo import generate_table
from aimusic.store import label_queries as lq
from aimusic.store import labels as lab
from aimusic.store.db import Store
from sentiment import ScorerError, load_scorer
from sentiment.custom import CustomHead, find, list_models, load_custom, models_dir

runner = CliRunner()
STANCE_OF = {"negative": "against", "neutral": "neutral", "positive": "for"}


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 demo posts scored by VADER; 150 random-sample and 30 active sentiment and stance labels (VADER's
    label, as a stand-in for a person's), so there is something learnable."""
    path = tmp_path_factory.mktemp("custom") / "custom.duckdb"
    store = Store(path)
    store.upsert_posts(generate_table(300, seed=31, days=90))
    score_posts(store, load_scorer("vader"))
    with store.connect() as con:
        order = lq.random_order(con, 300)
        scored = con.execute("SELECT source, post_id, label FROM scores WHERE label IS NOT NULL").df()
    rows = order.merge(scored, on=["source", "post_id"]).head(180)
    picked = ["random"] * 150 + ["active"] * 30
    for task, labels in (("sentiment", rows["label"].tolist()),
                         ("stance", [STANCE_OF[v] for v in rows["label"]])):
        table = pa.table({"source": rows["source"].tolist(), "post_id": rows["post_id"].tolist(),
                          "task": [task] * len(rows), "label": labels, "labeller": ["me"] * len(rows),
                          "picked": picked, "labelled_at": pa.array([None] * len(rows), pa.timestamp("us", tz="UTC"))})
        with store.connect() as con:
            lab._upsert(con, table)
    return path


@pytest.fixture
def db(labelled: Path, tmp_path: Path) -> Path:
    target = tmp_path / "db" / "aimusic.duckdb"
    target.parent.mkdir()
    target.write_bytes(labelled.read_bytes())
    return target


def rows_of(db: Path, table: str, model: str | None = None) -> pd.DataFrame:
    where = "WHERE model = ?" if model else ""
    return Store(db).query(f"SELECT * FROM {table} {where} ORDER BY ALL", [model] if model else [])


def test_train_then_rescore_sentiment(db: Path) -> None:
    vader_before = rows_of(db, "scores", "vader-3.3.2")
    result = runner.invoke(app, ["train", "--task", "sentiment", "--db", str(db)])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "trained custom:sentiment-v1 on 180 labels (150 random, 30 active)" in out
    assert "cross-validated on all sentiment labels: macro recall" in out and "n=180" in out
    assert "random-sample labels only" in out and "n=150" in out
    assert "confusion matrix" in out
    weights, provenance = find("custom:sentiment-v1", models_dir(db))
    assert weights.parent == db.parent / "models"
    assert provenance["training_labels"]["n"] == 180 and len(provenance["training_labels"]["post_digests"]) == 180
    assert provenance["cv"]["random"]["n"] == 150 and sum(map(sum, provenance["cv"]["random"]["confusion"])) == 150
    assert provenance["file_sha256"] == CustomHead.load(weights).sha256

    result = runner.invoke(app, ["rescore", "--model", "custom:sentiment-v1", "--db", str(db)])
    assert result.exit_code == 0, result.output
    posts = Store(db).query("SELECT count(*) FROM posts").iloc[0, 0]
    scored = Store(db).query(
        """SELECT count(*) AS n, count(*) FILTER (WHERE s.status = 'scored' AND s.label IS NOT NULL) AS labelled,
                  count(*) FILTER (WHERE p.lang = 'en') AS english
           FROM posts p JOIN scores s ON s.source = p.source AND s.post_id = p.post_id
           WHERE s.model = 'custom:sentiment-v1'""").iloc[0]
    assert scored["n"] == posts  # every post has a row from the new model
    assert scored["labelled"] == scored["english"]  # and every English post a label (others: status language)
    assert rows_of(db, "scores", "vader-3.3.2").equals(vader_before)  # other models untouched (scored_at too)

    # measured honestly: its 150 random training labels count by their out-of-fold predictions
    with Store(db).connect() as con:
        m = measure(con, "sentiment", "custom:sentiment-v1", models_dir(db))
    assert (m.held_out, m.cross_validated, m.n) == (0, 150, 150)
    assert m.enough and m.accuracy is not None

    # a second training is a new version; the registry loads both; the sentiment registry knows the family
    again = runner.invoke(app, ["train", "--task", "sentiment", "--db", str(db)])
    assert again.exit_code == 0 and "custom:sentiment-v2" in again.output
    assert [r["model"] for r in list_models(models_dir(db))] == ["custom:sentiment-v1", "custom:sentiment-v2"]


def test_registry_loads_and_guards(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert runner.invoke(app, ["train", "--task", "sentiment", "--db", str(db)]).exit_code == 0
    monkeypatch.setenv("AIMUSIC_DB", str(db))
    scorer = load_scorer("custom:sentiment-v1")
    assert scorer.model_id == "custom:sentiment-v1"
    batch = scorer.score(["This AI track is wonderful, I love it", "awful soulless AI slop"])
    assert batch.probs.shape == (2, 3) and all(batch.labels)
    with pytest.raises(ScorerError, match="not a sentiment model"):
        load_scorer("custom:stance-v1")
    with pytest.raises(ScorerError, match="not found"):
        load_scorer("custom:sentiment-v9")
    weights, _ = find("custom:sentiment-v1", models_dir(db))
    raw = bytearray(weights.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # a changed weights file no longer matches its provenance
    weights.write_bytes(bytes(raw))
    with pytest.raises(ScorerError):
        load_custom("custom:sentiment-v1", models_dir(db))


def test_train_then_rescore_stance_writes_stances(db: Path, tmp_path: Path) -> None:
    scores_before = rows_of(db, "scores")
    base = tmp_path / "base.tsv"
    base.write_text("label\ttext\n" + "".join(
        f"{label}\t{text}\n" for label, text in [
            ("anti", "AI music is theft from real artists"), ("pro", "AI tools let anyone make songs, great"),
            ("neutral", "A label released an AI-assisted album today"), ("against", "ban AI slop from streaming"),
            ("for", "I love what Suno can do for bedroom producers"), ("neutral", "How does Udio train its model?"),
        ]), encoding="utf-8")
    result = runner.invoke(app, ["train", "--task", "stance", "--db", str(db), "--base", str(base)])
    assert result.exit_code == 0, result.output
    assert "custom:stance-v1" in result.output and "+ 6 base rows" in " ".join(result.output.split())
    result = runner.invoke(app, ["rescore", "--model", "custom:stance-v1", "--db", str(db)])
    assert result.exit_code == 0, result.output
    posts = Store(db).query("SELECT count(*) FROM posts").iloc[0, 0]
    stances = Store(db).query("SELECT label, status FROM stances WHERE model = 'custom:stance-v1'")
    assert len(stances) == posts
    assert set(stances["label"].dropna()) <= {"anti", "neutral", "pro"}
    assert rows_of(db, "scores").equals(scores_before)  # the sentiment scores are not touched by a stance model

    bad = tmp_path / "bad.tsv"
    bad.write_text("label\ttext\nmaybe\tsomething\n", encoding="utf-8")
    result = runner.invoke(app, ["train", "--task", "stance", "--db", str(db), "--base", str(bad)])
    assert result.exit_code == 2 and "line 2" in result.output


def test_train_needs_labels_of_every_class(db_path: Path) -> None:
    store = Store(db_path)
    store.upsert_posts(generate_table(40, seed=2, days=30))
    result = runner.invoke(app, ["train", "--task", "relevance", "--db", str(db_path)])
    assert result.exit_code == 2
    assert "too few relevance labels" in " ".join(result.output.split())

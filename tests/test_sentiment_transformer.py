"""The transformer scorer, through the same code users run, on tiny models built and saved by the tests."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest

from sentiment import LABELS, ScorerError, load_default, load_scorer
from sentiment.preprocess import head_tail, normalize_social
from sentiment.synthetic import build_tiny_classifier
from sentiment.transformer import map_labels, parse_name

HUB_ID = "cardiffnlp/twitter-roberta-base-sentiment-latest"



@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_classifier(tmp_path_factory.mktemp("tiny") / "model", max_length=64)


@pytest.fixture(scope="module")
def scorer(tiny: Path):
    return load_scorer(f"transformer:{tiny}")


def _biased_model(path: Path, id2label: dict[int, str], favoured: int) -> Path:
    """A tiny model whose classifier always prefers output ``favoured`` (a large bias on that logit)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    build_tiny_classifier(path, id2label=id2label)
    model = AutoModelForSequenceClassification.from_pretrained(path)
    with torch.no_grad():
        bias = torch.full((len(id2label),), -10.0)
        bias[favoured] = 10.0
        model.classifier.out_proj.bias.copy_(bias)
    model.save_pretrained(path)
    return path


def test_loads_a_local_model_and_names_it_with_a_content_hash(scorer, tiny):
    assert scorer.model_id.startswith("transformer:model@sha-")
    result = scorer.score(["i love this song", "awful bad sad boring noise"])
    assert result.status == ["scored", "scored"]
    assert set(result.labels) <= set(LABELS)
    np.testing.assert_allclose(result.probs.sum(axis=1), 1.0, rtol=1e-6)


def test_different_weights_or_settings_never_share_a_model_id(tmp_path, scorer, tiny):
    other = load_scorer(f"transformer:{build_tiny_classifier(tmp_path / 'model', seed=1)}")
    assert other.model_id != scorer.model_id
    fp32 = load_scorer(f"transformer:{tiny}?precision=fp32")
    assert "+" not in fp32.model_id
    int8 = load_scorer(f"transformer:{tiny}?precision=int8")  # ONNX Runtime's int8 (torch's when it is unusable)
    assert int8.model_id == fp32.model_id + ("+onnx-int8" if int8.runtime == "onnx" else "+int8")
    assert load_scorer(f"transformer:{tiny}?precision=int8").model_id == int8.model_id
    assert load_scorer(f"transformer:{tiny}?precision=bf16").model_id == fp32.model_id + "+bf16"
    assert load_scorer(f"transformer:{tiny}?precision=fp32&max_length=16").model_id == fp32.model_id + "+len16"
    # auto: bf16 where the hardware has it natively, else fp32; the id always says which
    assert scorer.model_id == fp32.model_id + ("+bf16" if scorer.precision == "bf16" else "")


def test_reduced_precisions_stay_close_to_fp32(tiny):
    texts = ["i love this song", "awful bad sad boring noise", "the track was released on friday"]
    ref = load_scorer(f"transformer:{tiny}?precision=fp32").predict_proba(texts)
    for precision in ("bf16", "int8"):
        probs = load_scorer(f"transformer:{tiny}?precision={precision}").predict_proba(texts)
        np.testing.assert_allclose(probs, ref, atol=0.02)


def test_labels_are_mapped_by_name_not_position(tmp_path):
    # outputs ordered positive, negative, neutral; the model always picks output 0 (= positive)
    path = _biased_model(tmp_path / "m", {0: "Positive", 1: "NEGATIVE", 2: "neutral"}, favoured=0)
    result = load_scorer(f"transformer:{path}").score(["anything at all", "the track was released on friday"])
    assert result.labels == ["positive", "positive"]
    assert result.probs[0, 2] > 0.99  # column order is always negative, neutral, positive


@pytest.mark.parametrize(
    ("id2label", "expected"),
    [
        ({0: "negative", 1: "neutral", 2: "positive"}, [0, 1, 2]),
        ({0: "POS", 1: "neg", 2: "Neu"}, [1, 2, 0]),
        ({0: " Neutral ", 1: "Positive", 2: "Negative"}, [2, 0, 1]),
    ],
)
def test_map_labels_accepts_names_and_short_forms(id2label, expected):
    assert map_labels(id2label, "some/model") == expected


@pytest.mark.parametrize(
    ("id2label", "message"),
    [
        ({0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}, "?labels=negative,neutral,positive"),
        ({0: "negative", 1: "positive"}, "do not map"),
        ({0: "1 star", 1: "2 stars", 2: "3 stars", 3: "4 stars", 4: "5 stars"}, "do not map"),
        ({0: "joy", 1: "anger", 2: "sadness"}, "do not map"),
        ({0: "negative", 1: "negative", 2: "positive"}, "do not map"),
    ],
)
def test_map_labels_refuses_what_does_not_map(id2label, message):
    with pytest.raises(ScorerError, match=message.replace("?", r"\?")):
        map_labels(id2label, "some/model")


def test_label_n_style_only_by_documented_convention_or_explicit_order():
    generic = {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
    assert map_labels(generic, "cardiffnlp/twitter-roberta-base-sentiment") == [0, 1, 2]
    assert map_labels(generic, "x/y", ["positive", "negative", "neutral"]) == [1, 2, 0]


def test_a_model_whose_labels_do_not_map_fails_clearly_at_load(tmp_path):
    path = build_tiny_classifier(tmp_path / "emotions", id2label={0: "joy", 1: "anger", 2: "fear"})
    with pytest.raises(ScorerError, match=r"labels \['joy', 'anger', 'fear'\].*do not map"):
        load_scorer(f"transformer:{path}")


def test_label_n_model_loads_with_an_explicit_order(tmp_path):
    path = _biased_model(tmp_path / "generic", {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}, favoured=2)
    with pytest.raises(ScorerError, match="cannot be told"):
        load_scorer(f"transformer:{path}")
    scorer = load_scorer(f"transformer:{path}?labels=positive,neutral,negative")
    assert scorer.score(["whatever"]).labels == ["negative"]


def test_a_100kb_post_is_cut_to_head_and_tail_within_the_limit(scorer):
    text = "love " + "song " * 20_000 + "awful"
    assert len(text) > 100_000
    [ids] = scorer.encode([text])
    assert len(ids) == 64  # the model's limit, special tokens included
    vocab = scorer.tokenizer.get_vocab()
    assert ids[1] == vocab["love"] and ids[-2] == vocab["awful"]  # the start and the end both survive
    started = time.perf_counter()
    result = scorer.score([text, "short one"])
    assert result.status == ["scored", "scored"] and time.perf_counter() - started < 5


def test_empty_and_emoji_only_posts(scorer):
    result = scorer.score(["", "   \n", "😂😂🔥", "🎵"])
    assert result.status == ["empty", "empty", "scored", "scored"]
    assert result.labels[:2] == [None, None] and all(label in LABELS for label in result.labels[2:])
    assert np.isnan(result.probs[0]).all()


def test_batches_by_length_give_the_same_scores_as_one_at_a_time(tiny):
    scorer = load_scorer(f"transformer:{tiny}?precision=fp32")
    texts = ["i love this song so much " * k for k in (1, 7, 2, 5)] + ["awful", "what a great beautiful happy day"]
    together = scorer.predict_proba(texts)
    alone = np.vstack([scorer.predict_proba([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    groups = scorer.batches([len(x) for x in scorer.encode(texts)])
    assert sorted(i for g in groups for i in g) == list(range(len(texts)))


def test_batches_respect_the_token_budget(scorer):
    old = scorer.batch_size, scorer.max_batch_tokens
    scorer.batch_size, scorer.max_batch_tokens = 4, 100
    try:
        groups = scorer.batches([10, 60, 30, 5, 50, 40, 8, 9, 7])
    finally:
        scorer.batch_size, scorer.max_batch_tokens = old
    lengths = [10, 60, 30, 5, 50, 40, 8, 9, 7]
    assert all(len(g) <= 4 and len(g) * max(lengths[i] for i in g) <= 100 for g in groups)


def test_preprocessing_follows_the_model_card():
    assert normalize_social("@bob: see http://x.co/a and https://y.org @ now") == "@user see http and http @ now"
    assert normalize_social("[link](https://reddit.com/r/x) www.site.com") == "[link](http http"
    assert head_tail(list(range(10)), 4) == [0, 7, 8, 9]
    assert head_tail([1, 2], 4) == [1, 2]


def test_parse_name_options_and_revision():
    assert parse_name("org/model@abc123?precision=bf16&labels=a,b,c") == (
        "org/model", "abc123", {"precision": "bf16", "labels": "a,b,c"},
    )


def test_unknown_names_and_options_fail_clearly(tiny):
    with pytest.raises(ScorerError, match=r"unknown sentiment model 'bert'.*known: .*minilm.*transformer.*vader"):
        load_scorer("bert")
    with pytest.raises(ScorerError, match="unknown transformer option"):
        load_scorer(f"transformer:{tiny}?fast=yes")
    with pytest.raises(ScorerError, match="unknown precision"):
        load_scorer(f"transformer:{tiny}?precision=fp8")
    with pytest.raises(ScorerError, match="does not exist"):
        load_scorer("transformer:/no/such/model/dir")


def test_hub_id_not_cached_fails_fast_offline():
    started = time.perf_counter()
    with pytest.raises(ScorerError, match=r"not in the local Hugging Face cache.*HF_HUB_OFFLINE"):
        load_scorer(f"transformer:{HUB_ID}")
    assert time.perf_counter() - started < 5


def test_hub_unreachable_fails_fast_and_switches_offline(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    started = time.perf_counter()
    with pytest.raises(ScorerError, match="hub cannot be reached"):
        load_scorer(f"transformer:{HUB_ID}")
    assert time.perf_counter() - started < 5
    import os

    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # later Hugging Face calls in the process skip the network


def test_default_falls_back_with_one_clear_line_and_does_not_hang(caplog):
    caplog.set_level(logging.INFO)
    started = time.perf_counter()
    scorer = load_default([f"transformer:{HUB_ID}", "vader"])
    elapsed = time.perf_counter() - started
    assert scorer.model_id.startswith("vader")
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    line = warnings[0].getMessage()
    assert "\n" not in line and HUB_ID in line and scorer.model_id in line and "AIMUSIC_MODEL" in line
    assert elapsed < 5


def test_default_raises_when_nothing_loads():
    with pytest.raises(ScorerError, match=r"no sentiment model could load"):
        load_default(["transformer:/no/such/dir", "nonsense"])

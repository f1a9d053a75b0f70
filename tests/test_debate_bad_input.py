"""Bad input through the new debate stages with the real models: relevance (both stages), stance with ``unclear``,
and the signals step that stores them. Every text gets a status; nothing crashes."""

from __future__ import annotations

import numpy as np
import pytest

from aimusic.core.records import Post, posts_to_arrow
from aimusic.debate.relevance import RelevanceFilter
from aimusic.debate.signals import update_signals
from sentiment.stance import STANCE_VOCABULARY, load_stance

NASTY = [
    "",
    "   \t\n ",
    "🎵🤖🎶🔥",
    "x" * 100_000 + " the AI generated songs",
    "machine songs " * 20_000,
    "La música generada por IA no tiene alma, es puro algoritmo",
    "KI-Musik ist Diebstahl an echten Künstlern",
    "AI音楽は本物の音楽じゃない",
    "موسيقى الذكاء الاصطناعي AI music",
    "suno yaar, ye gaana AI ne banaya?",
    "lone surrogate \ud83d AI song",
    "\u202eAI music\u202c zero\u200bwidth",
]
STATUSES = {"scored", "unclear", "empty", "language"}


@pytest.fixture(scope="module")
def stance():
    return load_stance()


@pytest.mark.parametrize("text", NASTY)
def test_relevance_both_stages(topics, text):
    decision = RelevanceFilter(topics).decide(text)
    assert isinstance(decision.relevant, bool)
    assert decision.stage in ("rules", "semantic", "unavailable", "empty")
    assert decision.probability is None or 0.0 <= decision.probability <= 1.0


def test_stance_statuses(stance):
    langs = [None, None, None, "en", "en", "es", "de", "ja", "ar", "hi", "en", None]
    batch = stance.score(NASTY, langs)
    for text, label, status, probs in zip(NASTY, batch.labels, batch.status, batch.probs, strict=True):
        assert status in STATUSES, (text[:30], status)
        if status in ("scored", "unclear"):
            assert label in STANCE_VOCABULARY and np.isclose(probs.sum(), 1.0)
        else:
            assert label is None and np.isnan(probs).all()
    assert batch.status[:2] == ["empty", "empty"] and batch.status[2] in ("scored", "unclear")  # emoji: scored
    assert batch.status[5:8] == ["language", "language", "language"]


def test_signals_store_every_post_with_a_status(store, topics):
    posts = [Post(source="x", post_id=str(i), created_at="2025-11-11T12:00:00Z", text=t)
             for i, t in enumerate(NASTY)]
    store.upsert_posts(posts_to_arrow(posts))
    summary = update_signals(store, topics)
    assert summary.stances == len(NASTY)
    rows = store.query("SELECT status, label FROM stances")
    assert set(rows["status"]) <= STATUSES
    assert set(rows["label"].dropna()) <= set(STANCE_VOCABULARY)


@pytest.mark.parametrize("name", ["minilm-ft", "minilm-debate"])
def test_offline_sentiment_models_give_every_nasty_text_a_status(name):
    """The offline default (minilm-debate: its relevance check and stance head too) and its sentiment model
    minilm-ft on the same texts: a lone surrogate once crashed the tokenizer."""
    from sentiment import load_scorer

    scorer = load_scorer(name)
    langs = [None, None, None, "en", "en", "es", "de", "ja", "ar", "hi", "en", None]
    batch = scorer.score(NASTY, langs)
    assert batch.status[:2] == ["empty", "empty"] and batch.status[5:10] == ["language"] * 5
    for label, status, probs in zip(batch.labels, batch.status, batch.probs, strict=True):
        assert (status == "scored") == (label is not None)
        assert np.isclose(probs.sum(), 1.0) if status == "scored" else np.isnan(probs).all()

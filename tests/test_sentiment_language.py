"""Languages: detection where the platform gives no tag, storing it, gating English-only models, routing
other languages to a multilingual model under its own id."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pytest

from aimusic.core.records import Post, posts_to_arrow
from aimusic.pipeline.languages import fill_languages, update_langs
from aimusic.pipeline.rescore import load_multilingual, score_store
from sentiment import Scorer, load_scorer
from sentiment.language import UNDETERMINED, detect

GERMAN = "KI-Musik wie Suno ist Diebstahl an echten Künstlern, das finde ich wirklich schlimm."
SPANISH = "La música generada por inteligencia artificial no tiene alma, es muy triste."
FRENCH = "La musique faite par une intelligence artificielle vole le travail des artistes."
ENGLISH = "AI music is killing real artists and I really hate what it does to songwriting."


class FakeMultilingual(Scorer):
    """Any language; always positive (so its rows are easy to tell apart)."""

    model_id = "fake-multilingual@1"
    languages = None

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return np.tile([0.1, 0.2, 0.7], (len(texts), 1))


def _post(i: int, text: str, lang: str | None = None) -> Post:
    return Post(source="fake", post_id=str(i), created_at=datetime(2026, 1, 1, tzinfo=UTC), text=text, lang=lang)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None  # pandas reads SQL NULL as NaN


def _langs(store) -> dict[str, str | None]:
    df = store.query("SELECT post_id, lang FROM posts ORDER BY post_id")
    return {p: _str(lang) for p, lang in zip(df.post_id, df.lang, strict=True)}


def _scores(store) -> dict[tuple[str, str], tuple]:
    df = store.query("SELECT post_id, model, label, status FROM scores")
    return {(r.post_id, r.model): (_str(r.label), r.status) for r in df.itertuples()}


def test_detect_common_languages_and_refuse_to_guess_on_little_text():
    assert detect([ENGLISH, GERMAN, SPANISH, FRENCH]) == ["en", "de", "es", "fr"]
    # too short, no letters, or lingua unsure: undetermined, never a random language
    assert detect(["", "ok", "😂😂🔥", "post 1", "@someone http://x.y #tag"]) == [UNDETERMINED] * 5


def test_supports_treats_unknown_tags_as_unknown():
    vader = load_scorer("vader")
    assert vader.supports(None) and vader.supports("und") and vader.supports("qme") and vader.supports("en-GB")
    assert not vader.supports("de") and not vader.supports("qu")  # Quechua is a language, not a placeholder


def test_fill_languages_detects_only_missing_tags(store):
    store.upsert_posts(posts_to_arrow([_post(1, ENGLISH), _post(2, GERMAN), _post(3, ENGLISH, lang="fr")]))
    counts = fill_languages(store)
    assert counts == {"en": 1, "de": 1}
    assert _langs(store) == {"1": "en", "2": "de", "3": "fr"}  # the platform's tag is never overwritten
    assert fill_languages(store) == {}  # nothing twice


def test_update_langs_writes_only_null_langs(store):
    store.upsert_posts(posts_to_arrow([_post(1, ENGLISH), _post(2, GERMAN, lang="de")]))
    import pyarrow as pa

    n = update_langs(store, pa.table({"source": ["fake", "fake"], "post_id": ["1", "2"], "lang": ["en", "xx"]}))
    assert n == 1 and _langs(store) == {"1": "en", "2": "de"}


def test_detected_language_survives_refetch_until_the_text_changes(store):
    store.upsert_posts(posts_to_arrow([_post(1, GERMAN)]))
    fill_languages(store)
    again = store.upsert_posts(posts_to_arrow([_post(1, GERMAN)]))  # re-fetched, still no platform tag
    assert (again.new, again.updated) == (0, 0) and _langs(store) == {"1": "de"}
    changed = store.upsert_posts(posts_to_arrow([_post(1, ENGLISH)]))
    assert changed.updated == 1 and _langs(store) == {"1": None}  # detected again at the next scoring step
    fill_languages(store)
    assert _langs(store) == {"1": "en"}


def test_english_model_marks_other_languages_and_stores_them(store):
    store.upsert_posts(posts_to_arrow([_post(1, ENGLISH), _post(2, GERMAN), _post(3, "😂😂")]))
    vader = load_scorer("vader")
    summary = score_store(store, vader)
    assert summary.scored == 3 and summary.languages == {"en": 1, "de": 1, "und": 1}
    scores = _scores(store)
    assert scores[("2", vader.model_id)] == (None, "language")
    assert scores[("1", vader.model_id)][1] == "scored" and scores[("3", vader.model_id)][1] == "scored"
    assert _langs(store) == {"1": "en", "2": "de", "3": "und"}


def test_other_languages_go_to_the_multilingual_model_under_its_own_id(store):
    store.upsert_posts(posts_to_arrow([_post(1, ENGLISH), _post(2, GERMAN), _post(3, SPANISH, lang="es")]))
    vader, multi = load_scorer("vader"), FakeMultilingual()
    score_store(store, vader)  # first without a multilingual model: two posts gated
    assert sum(1 for (_, m), v in _scores(store).items() if m == vader.model_id and v[1] == "language") == 2
    summary = score_store(store, vader, multilingual=multi)  # configured later: the gated posts catch up
    assert summary.scored == 0 and summary.multilingual == 2 and summary.multilingual_model == multi.model_id
    scores = _scores(store)
    assert scores[("2", multi.model_id)] == ("positive", "scored")
    assert scores[("3", multi.model_id)] == ("positive", "scored")
    assert ("1", multi.model_id) not in scores  # English stays with the English model
    assert scores[("2", vader.model_id)] == (None, "language")  # the English model's row is not relabelled
    assert score_store(store, vader, multilingual=multi).multilingual == 0  # nothing twice


def test_score_posts_detects_in_memory_when_lang_is_missing(store):
    from aimusic.pipeline.collect import score_posts

    store.upsert_posts(posts_to_arrow([_post(1, GERMAN)]))
    vader = load_scorer("vader")
    score_posts(store, vader)  # called directly, without fill_languages first
    assert _scores(store)[("1", vader.model_id)] == (None, "language")


def test_load_multilingual_from_settings(monkeypatch, tmp_path, caplog):
    from sentiment.synthetic import build_tiny_classifier

    assert load_multilingual() is None
    path = build_tiny_classifier(tmp_path / "xlm")
    monkeypatch.setenv("AIMUSIC_MULTILINGUAL_MODEL", f"transformer:{path}")
    scorer = load_multilingual()
    assert scorer is not None and scorer.languages is None and scorer.model_id.startswith("transformer:xlm@")
    caplog.set_level(logging.WARNING)
    monkeypatch.setenv("AIMUSIC_MULTILINGUAL_MODEL", "transformer:cardiffnlp/twitter-xlm-roberta-base-sentiment")
    assert load_multilingual() is None
    [record] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "status 'language'" in record.getMessage()


@pytest.mark.parametrize("name", ["vader", "minilm"])
def test_english_only_models_cannot_be_the_multilingual_one(monkeypatch, name):
    monkeypatch.setenv("AIMUSIC_MULTILINGUAL_MODEL", name)
    assert load_multilingual() is None

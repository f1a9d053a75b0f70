"""The second relevance stage: when it runs, what it decides, the reason stored with each kept post, the
pre-check that keeps bulk imports fast, the fallback without an encoder, and bad input.

Most tests use a fake encoder (no model): texts with a "prompt" point one way, everything else the
other, so decisions are predictable. The shipped head's quality is measured with the real encoder at the end.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from aimusic.core.records import Post, posts_to_arrow
from aimusic.debate.labelled import DATA_DIR, load_labelled
from aimusic.debate.quickfilter import QuickRelevance
from aimusic.debate.relevance import RelevanceFilter
from aimusic.debate.semantic import (
    BROAD_MIN,
    BROAD_MIN_AI,
    HEAD_FILE,
    MAX_CHARS,
    RelevanceHead,
    SemanticRelevance,
    stems,
)
from sentiment.base import ScorerError

T0 = "2025-11-11T12:00:00Z"
ON, OFF = np.eye(384)[0], np.eye(384)[1]


def fake_encode(texts):
    return np.stack([ON if "prompt" in t.lower() else OFF for t in texts])


@pytest.fixture
def head_file(tmp_path: Path) -> Path:
    coef = np.zeros(384)
    coef[0], coef[1] = 6.0, -6.0
    path = tmp_path / "relevance_head.npz"
    RelevanceHead(coef=coef, bias=0.0, threshold=0.7, threshold_named=0.6).save(path)
    return path


@pytest.fixture
def semantic(head_file: Path) -> SemanticRelevance:
    return SemanticRelevance(head_file, encode=fake_encode)


@pytest.fixture
def both(topics, semantic) -> RelevanceFilter:
    return RelevanceFilter(topics, semantic=semantic)


def test_the_second_stage_keeps_what_the_rules_miss(both, semantic):
    decision = both.decide("I typed a prompt and got a whole song, what are we doing")  # no tracked term at all
    assert decision.relevant and decision.reason == "semantic" and decision.stage == "semantic"
    assert decision.probability is not None and decision.probability >= semantic.threshold
    assert not both.decide("a song my band wrote about the sea").relevant  # music, nothing AI-ish: not asked
    assert semantic.embedded == 1


def test_rules_decide_first_and_give_their_reason(both, semantic):
    assert both.decide("The AI song on Billboard is everywhere").reason == "terms"
    assert both.decide("anything at all", "r/SunoAI").reason == "community"
    assert not both.decide("prompt song in rust code, cargo build fails").relevant  # exclusion wins
    assert not both.decide("Breaking Rust prompt song", "rust").relevant  # an off-topic community wins
    assert semantic.embedded == 0


def test_a_name_alone_is_not_worth_embedding_without_the_broad_class(both, semantic):
    assert not both.broad_on  # the head file has no broad threshold
    assert not both.decide("lunch with Suno tomorrow").relevant
    assert semantic.embedded == 0
    # one music word against one word of another sense: the rules cannot confirm the name, the classifier reads it
    decision = both.decide("Suno is no Lennon and McCartney, more a happy birthday banner set to a song")
    assert decision.stage == "semantic" and not decision.relevant


def test_bare_ai_needs_an_unambiguous_music_word(topics):
    rules = RelevanceFilter(topics, semantic=None)
    assert not rules.check("Starfield's AI and its asset streaming are a mess, the sync is off")[0]
    assert not rules.check("our AI team fixed the data labels")[0]
    for text in ("A.I. music is everywhere now", "90% of these mixes are A.I. generated", "an AI worship artist",
                 "AI songwriting tools are getting good", "AI stem separation saved my remix",
                 "she trained a voice model for her vocals"):
        assert rules.check(text)[0], text


def test_apply_stores_the_reason_and_comments_inherit_it(both):
    posts = [
        Post(source="reddit", post_id="1", created_at=T0, title="one prompt, one song", text="thoughts?"),
        Post(source="reddit", post_id="2", kind="comment", thread_id="1", created_at=T0, text="agreed, awful"),
        Post(source="x", post_id="3", created_at=T0, text="AI music is theft"),
        Post(source="reddit", post_id="4", created_at=T0, text="hello", community="SunoAI"),
        Post(source="x", post_id="5", created_at=T0, text="lunch with Suno"),
    ]
    kept, dropped = both.apply(posts)
    assert dropped == 1
    assert {p.post_id: p.relevance for p in kept} == {"1": "semantic", "2": "thread", "3": "terms", "4": "community"}


def test_filter_table_writes_the_relevance_column_to_the_store_and_export(both, store, tmp_path):
    from aimusic.store.queries import export

    table = posts_to_arrow([
        Post(source="x", post_id="1", created_at=T0, text="AI music is theft"),
        Post(source="x", post_id="2", created_at=T0, text="a prompt wrote the songs on my radio"),
        Post(source="x", post_id="3", created_at=T0, text="my cat"),
    ])
    kept, dropped = both.filter_table(table)
    assert dropped == 1 and kept.column("relevance").to_pylist() == ["terms", "semantic"]
    store.upsert_posts(kept)
    rows = store.query("SELECT post_id, relevance FROM posts ORDER BY post_id")
    assert rows["relevance"].tolist() == ["terms", "semantic"]
    store.upsert_posts(kept.drop_columns(["relevance"]))  # a writer that knows no reason keeps the stored one
    assert store.query("SELECT relevance FROM posts ORDER BY post_id")["relevance"].tolist() == ["terms", "semantic"]
    out = tmp_path / "posts.csv"
    assert export(store, "posts", out, fmt="csv") == 2
    assert "relevance" in out.read_text(encoding="utf-8").splitlines()[0].split(",")


def test_without_an_encoder_the_rules_decide_alone(topics, head_file, caplog):
    calls = []

    def broken(texts):
        calls.append(len(texts))
        raise ScorerError("the offline encoder is not installed")

    sem = SemanticRelevance(head_file, encode=broken)
    rf = RelevanceFilter(topics, semantic=sem)
    with caplog.at_level(logging.WARNING):
        first = rf.decide("one prompt and the songs are everywhere")
        second = rf.decide("more prompt songs")
    assert not first.relevant and first.stage == "unavailable" and second.stage == "unavailable"
    assert calls == [1] and not sem.available and "rules only" in (sem.note or "")
    assert sum("rules only" in r.message for r in caplog.records) == 1
    assert rf.decide("AI music is theft").relevant  # the rules still work


def test_a_missing_head_means_rules_only(topics, tmp_path):
    from aimusic.debate.semantic import load_semantic

    assert load_semantic(tmp_path / "nope.npz") is None
    assert RelevanceFilter(topics, semantic=None).stage_two is None


@pytest.mark.parametrize(
    "text",
    ["", "   \n\t ", "🎵🤖🎶🔥", "x" * 100_000 + " prompt songs", "ماشین موسیقی prompt song",
     "KI-generierte Musik überall", "音楽 prompt song 機械", "\x00 prompt song"],
)
def test_bad_input_gets_a_status_never_a_crash(both, semantic, text):
    decision = both.decide(text)
    assert isinstance(decision.relevant, bool) and decision.stage in ("rules", "semantic", "unavailable", "empty")
    if decision.stage == "semantic":
        assert 0.0 <= decision.probability <= 1.0
    assert semantic.probabilities([text])[0] is None or len(text.strip()) > 0


def test_long_texts_are_cut_before_embedding(head_file):
    seen = []

    def spy(texts):
        seen.extend(texts)
        return fake_encode(texts)

    SemanticRelevance(head_file, encode=spy).probabilities(["prompt " + "song " * 50_000])
    assert len(seen[0]) <= MAX_CHARS


def test_quick_precheck_stays_exact_with_the_second_stage(both):
    quick = QuickRelevance(both)
    for text in ("prompt songs", "The A.I. songs are here", "a song about the sea", "lunch with Suno",
                 "Suno prompt song", "AI music", ""):
        full = both.decide(text)
        got = quick.decide(None, text)
        assert (got is not None) == full.relevant and (got.reason if got else None) == full.reason, text
    assert not quick.could_match("a song about the sea") and quick.could_match("prompt songs")


def test_stems_precheck():
    assert stems("machine-made songs") == (True, True)
    assert stems("said again, the song") == (False, False)  # "ai" inside words is not AI
    assert stems("bots and songs") == (True, True) and stems("both songs") == (False, False)
    assert stems("our ai team") == (True, False)


# --- the broad class: one stem (AI-ish or music-ish, not both), no tracked name --------------------------------------

MIDDLE = 0.231 * ON  # sigmoid(6 * 0.231) ~ 0.80: above the other thresholds (0.7, 0.6), below the broad one (0.9)


def broad_encode(texts):
    return np.stack([ON if "conjure" in t.lower() else MIDDLE if "halfway" in t.lower() else OFF for t in texts])


@pytest.fixture
def broad_head(tmp_path: Path) -> Path:
    coef = np.zeros(384)
    coef[0], coef[1] = 6.0, -6.0
    path = tmp_path / "relevance_head_broad.npz"
    RelevanceHead(coef=coef, bias=0.0, threshold=0.7, threshold_named=0.6, threshold_broad=0.9).save(path)
    return path


def test_the_broad_class_keeps_a_one_stem_text_above_its_own_threshold_only(topics, broad_head):
    assert SemanticRelevance(broad_head, encode=broad_encode).threshold_broad == BROAD_MIN  # 0.9 raised to 0.99
    sem = SemanticRelevance(broad_head, encode=broad_encode, broad_min=0.0)  # the file's own threshold
    assert RelevanceFilter(topics, semantic=sem).broad_on  # on by default (AIMUSIC_RELEVANCE_BROAD unset)
    rf = RelevanceFilter(topics, semantic=sem, broad=True)
    assert rf.broad_on and sem.threshold_broad == 0.9
    kept = rf.decide("so I can conjure up songs from nothing now?")  # a music word, nothing AI-ish
    assert kept.relevant and kept.reason == "semantic" and kept.probability >= 0.9
    assert rf.decide("conjure a whole new model from one line").relevant  # an AI word, nothing musical
    below = rf.decide("a halfway decent song")  # ~0.80: enough for the other classes, not for this one
    assert not below.relevant and below.stage == "semantic" and 0.7 < below.probability < 0.9
    assert rf.decide("a halfway decent machine song").relevant  # both stems: the unnamed threshold (0.7)
    assert not rf.decide("conjure the weather for tomorrow").relevant  # no stem at all: never asked
    assert sem.embedded == 4
    quick = QuickRelevance(rf)  # the pre-check stays exact: one stem is enough with the broad class on
    assert quick.could_match("so I can conjure up songs from nothing now?")
    assert quick.decide(None, "so I can conjure up songs from nothing now?").reason == "semantic"


def test_broad_false_never_asks_about_a_one_stem_text(topics, broad_head, head_file):
    sem = SemanticRelevance(broad_head, encode=broad_encode, broad_min=0.0)
    rf = RelevanceFilter(topics, semantic=sem, broad=False)
    for text in ("so I can conjure up songs from nothing now?", "conjure a whole new model from one line"):
        decision = rf.decide(text)
        assert not decision.relevant and decision.stage == "rules" and not rf.rules(text).unsure, text
    assert sem.embedded == 0 and not rf.broad_on
    assert rf.decide("conjure a machine song").relevant  # the two-stem class still runs
    quick = QuickRelevance(rf)
    assert not quick.could_match("so I can conjure up songs from nothing now?")
    # the bulk reader's patterns are those of a head without the class: backfills read exactly as before
    old = QuickRelevance(RelevanceFilter(topics, semantic=SemanticRelevance(head_file, encode=broad_encode)))
    assert quick.bulk_patterns() == old.bulk_patterns()
    assert QuickRelevance(RelevanceFilter(topics, semantic=sem, broad=True)).bulk_patterns() != old.bulk_patterns()


def test_a_tracked_name_alone_is_in_the_broad_class(topics, broad_head):
    """A name with no AI-ish or music-ish word around it is one piece of evidence: read only with the broad class on,
    and kept only at its near certainty (a name next to one of those words keeps the lower named threshold)."""
    sem = SemanticRelevance(broad_head, encode=broad_encode, broad_min=0.0)
    rf = RelevanceFilter(topics, semantic=sem, broad=True)
    alone = "whatever the court rules will conjure trouble for Udio"
    ruled = rf.rules(alone)
    assert ruled.unsure and ruled.broad and not ruled.named and not ruled.relevant
    kept = rf.decide(alone)
    assert kept.relevant and kept.reason == "semantic" and "Udio" in kept.terms and kept.probability >= 0.9
    below = rf.decide("a halfway decent lunch with Suno")  # ~0.80: not near certainty
    assert not below.relevant and below.stage == "semantic" and 0.6 < below.probability < 0.9
    named = rf.decide("a halfway decent machine from Suno")  # an AI-ish word next to the name: threshold_named (0.6)
    assert named.relevant and named.reason == "semantic" and rf.rules("a halfway decent machine from Suno").named
    assert QuickRelevance(rf).decide(None, alone).reason == "semantic"
    for other in ("suno yaar, conjure some chai", "Suno!", "  Udio?!  "):  # the name's other sense; nothing else
        assert not rf.rules(other).unsure, other
    off = RelevanceFilter(topics, semantic=sem, broad=False)
    assert not off.rules(alone).unsure and not off.decide(alone).relevant


NEARLY = 0.597 * ON  # sigmoid(6 * 0.597) ~ 0.973: between the two floors, BROAD_MIN_AI (0.97) and BROAD_MIN (0.99)


def test_an_ai_word_alone_has_a_lower_floor_than_a_music_word_alone(topics, broad_head):
    sem = SemanticRelevance(broad_head, encode=lambda texts: np.stack([NEARLY for _ in texts]))
    assert (sem.threshold_broad, sem.threshold_broad_ai) == (BROAD_MIN, BROAD_MIN_AI) and BROAD_MIN_AI < BROAD_MIN
    rf = RelevanceFilter(topics, semantic=sem, broad=True)
    ai_alone = "nearly every chatbot answer reads the same now"
    assert rf.rules(ai_alone).broad_ai and rf.rules(ai_alone).broad
    kept = rf.decide(ai_alone)
    assert kept.relevant and kept.reason == "semantic" and BROAD_MIN_AI <= kept.probability < BROAD_MIN
    music_alone = "nearly every guitar solo reads the same now"
    assert rf.rules(music_alone).broad and not rf.rules(music_alone).broad_ai
    assert not rf.decide(music_alone).relevant  # the same probability: below a music word's floor
    name_alone = "whatever the court rules will hit Udio"
    assert rf.rules(name_alone).broad and not rf.rules(name_alone).broad_ai
    assert not rf.decide(name_alone).relevant  # a name alone keeps BROAD_MIN: 0.973 is not enough
    loose = SemanticRelevance(broad_head, encode=broad_encode, broad_min=0.0)  # the file's own threshold for both
    assert loose.threshold_broad == loose.threshold_broad_ai == 0.9


def test_the_setting_turns_the_broad_class_off(monkeypatch, topics, broad_head):
    monkeypatch.setenv("AIMUSIC_RELEVANCE_BROAD", "0")
    assert not RelevanceFilter(topics, semantic=SemanticRelevance(broad_head, encode=broad_encode)).broad_on
    monkeypatch.setenv("AIMUSIC_RELEVANCE_BROAD", "1")
    assert RelevanceFilter(topics, semantic=SemanticRelevance(broad_head, encode=broad_encode)).broad_on


def test_backfill_builds_its_filter_without_the_broad_class(monkeypatch, topics, tmp_path):
    from aimusic.pipeline import backfill

    seen = []
    monkeypatch.setattr(backfill, "QuickRelevance", lambda relevance: seen.append(relevance))
    backfill.backfill_paths([], None, topics, backfill.BackfillOptions(quarantine_dir=tmp_path / "q"))
    assert len(seen) == 1 and seen[0].broad is False and not seen[0].broad_on


def test_an_old_head_file_without_threshold_broad_loads_with_the_class_off(topics, tmp_path):
    coef = np.zeros(384, np.float32)
    coef[0], coef[1] = 6.0, -6.0
    path = tmp_path / "old_head.npz"
    np.savez(path, coef=coef, bias=np.array([0.0]), threshold=np.array([0.7]), threshold_named=np.array([0.6]))
    sem = SemanticRelevance(path, encode=broad_encode)
    assert sem.head.threshold_broad is None and sem.threshold_broad is None and sem.threshold == 0.7
    rf = RelevanceFilter(topics, semantic=sem, broad=True)
    assert rf.broad and not rf.broad_on
    assert not rf.decide("so I can conjure up songs from nothing now?").relevant and sem.embedded == 0
    assert rf.decide("conjure a machine song").relevant


def test_the_rules_decisions_stand_with_the_broad_class(topics, broad_head):
    sem = SemanticRelevance(broad_head, encode=broad_encode)
    rf = RelevanceFilter(topics, semantic=sem, broad=True)
    assert rf.decide("The AI song on Billboard is everywhere").reason == "terms"
    assert rf.decide("conjure songs", "r/SunoAI").reason == "community"
    assert not rf.decide("conjure songs in rust code, cargo build fails").relevant  # an exclusion term wins
    assert not rf.decide("Breaking Rust conjure songs", "rust").relevant  # an off-topic community wins
    assert sem.embedded == 0


# --- the shipped head, with the real encoder ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> SemanticRelevance:
    return SemanticRelevance()


def test_shipped_head_measured_on_its_held_out_set(topics, shipped):
    """Both stages on relevance_heldout.tsv (written after and apart from the training file): a real quality gate,
    and the figures recorded in the head's provenance are reproduced."""
    from sentiment.evaluate import binary_metrics

    rows = load_labelled(DATA_DIR / "relevance_heldout.tsv", "relevance")
    rf = RelevanceFilter(topics, semantic=shipped, broad=False)  # "rules+semantic" in the provenance
    predicted = [d.relevant for d in rf.decide_many([e.text for e in rows], [e.community for e in rows])]
    truth = [e.label == "relevant" for e in rows]
    both = binary_metrics(truth, predicted)
    rules = binary_metrics(truth, [rf.rules(e.text, e.community).relevant for e in rows])
    assert both["precision"] >= 0.93 and both["recall"] >= 0.60, both  # measured: 0.963 and 0.642
    assert both["recall"] >= rules["recall"] + 0.3
    recorded = next(v for k, v in shipped.measured()["heldout"].items() if k.startswith("relevance_heldout.tsv"))
    assert abs(recorded["rules+semantic"]["recall"] - both["recall"]) < 0.02
    assert shipped.measured()["head_sha256"] == shipped.head.sha256 and HEAD_FILE.exists()


def test_shipped_head_keeps_classic_near_misses_out(topics, shipped):
    rf = RelevanceFilter(topics, semantic=shipped)
    for text in ("Happy birthday Suno! see you at dinner", "A new AI model beats the benchmark on math problems",
                 "The AI track at the conference had great talks on evaluation",
                 "Spotify pays artists almost nothing per stream", "my band's new song is out on Friday",
                 "Breaking Bad is the best show ever made"):
        assert not rf.check(text)[0], text


def test_backfill_batches_the_second_stage_and_stores_the_reason(tmp_path, store, topics, head_file):
    """A bulk import leaves second-stage texts pending and decides them in one batch per commit."""
    from test_backfill import comment, options, write_zst

    from aimusic.pipeline.backfill import backfill_file

    calls = []

    def counting(texts):
        calls.append(len(texts))
        return fake_encode(texts)

    quick = QuickRelevance(RelevanceFilter(topics, semantic=SemanticRelevance(head_file, encode=counting)))
    lines = [comment("c1", "AI music is theft"), comment("c2", "I typed a prompt and got a whole song"),
             comment("c3", "the machine wrote a song, no prompt needed? no: a band"), comment("c4", "my dog"),
             comment("c5", "a prompt made this album and the album is bad")]
    report = backfill_file(write_zst(tmp_path / "RC.zst", lines), store, quick, options(tmp_path, batch_lines=100))
    assert report.completed and report.relevant == 4 and calls == [3]  # three pending texts, one batch
    rows = store.query("SELECT post_id, relevance FROM posts ORDER BY post_id")
    assert dict(zip(rows["post_id"], rows["relevance"], strict=True)) == {
        "c1": "terms", "c2": "semantic", "c3": "semantic", "c5": "semantic"}


# --- the fine-tuned second stage (relevance-ft), on a tiny BERT built by the test ----------------------------------


def test_finetuned_stage_trains_writes_thresholds_and_decides(topics, tmp_path, monkeypatch):
    """The training script on a tiny encoder: out-of-fold thresholds land in the file, the stage loads from it,
    keeps what the rules miss above its threshold and reports its figures; a foreign file is refused."""
    pytest.importorskip("peft")

    from aimusic.debate import train_relevance, train_relevance_ft
    from aimusic.debate.semantic import FinetunedRelevance, load_semantic
    from sentiment.lora_training import Recipe

    encoder = _tiny_encoder(tmp_path / "enc")
    on = [f"a prompt made this song number {i}" for i in range(16)]
    near = [f"my band's song number {i} is out" for i in range(16)]
    off = [f"the day of month number {i} was good" for i in range(16)]
    texts = on + near + off
    y = np.array([True] * 16 + [False] * 32)
    monkeypatch.setattr(train_relevance, "training_rows",
                        lambda negatives, sample, broad_sample=0: (texts, [None] * 48, y, y))
    monkeypatch.setattr(train_relevance, "measure_heldout", lambda sem, dev=None: {"n": len(sem.probabilities(on))})
    recipe = Recipe(epochs=2, batch_size=8, max_tokens=32, rank=4, alpha=8, lr=5e-3, head_lr=1e-2, holdout=0.25)
    record = train_relevance_ft.train(tmp_path, folds=2, recipe=recipe, device="cpu", threads=1,
                                      encoder_dir=encoder)
    npz = tmp_path / "relevance_ft.npz"
    assert record["train"] == {**record["train"], "n": 48, "relevant": 16, "near_miss": 16, "off_topic": 16}
    assert record["heldout"] == {"n": 16} and len(record["out_of_fold"]["per_fold"]) == 2
    stage = FinetunedRelevance(npz, encoder_dir=encoder)
    assert stage.model_id.startswith("relevance-ft@") and stage.threshold == (record["threshold"] or 0.99)
    broad = record["threshold_broad"]  # the file's, floored at load: 0.99, and 0.97 for an AI-ish word alone
    assert (stage.threshold_broad, stage.threshold_broad_ai) == (
        (None, None) if broad is None else (max(broad, BROAD_MIN), max(broad, BROAD_MIN_AI)))
    assert stage.measured()["file_sha256"] == stage.sha256
    probs = stage.probabilities(["a prompt made this song", "", "   "])
    assert 0.0 <= probs[0] <= 1.0 and probs[1:] == [None, None]
    from aimusic.debate import semantic

    again = FinetunedRelevance(npz, encoder_dir=encoder)  # e.g. one filter per source: one model in the process
    assert again.probabilities(["a prompt made this song"]) == probs[:1]
    assert [k for k in semantic._MODELS if k[0] == stage.sha256] == [(stage.sha256, str(encoder))]
    rf = RelevanceFilter(topics, semantic=stage)
    decision = rf.decide("a prompt made this song")  # AI-ish and music-ish words, no tracked term: unsure
    assert decision.stage == "semantic" and decision.relevant == (decision.probability >= stage.threshold)
    assert isinstance(load_semantic(npz), FinetunedRelevance) and type(load_semantic(HEAD_FILE)) is SemanticRelevance
    with pytest.raises(ScorerError, match="not a relevance model"):
        FinetunedRelevance(_stance_like(npz, tmp_path))


def _tiny_encoder(out: Path) -> Path:
    pytest.importorskip("torch")
    from test_sentiment_finetune import build_tiny_bert

    out.mkdir(parents=True)
    sentence = "a prompt made this song number my band's is out the day of month was good music ai http user"
    return build_tiny_bert(out, sorted(set(sentence.split(" "))))


def _stance_like(npz: Path, tmp_path: Path) -> Path:
    from sentiment.finetuned import Adapter

    adapter = Adapter.load(npz)
    adapter.meta["task"] = "stance"
    other = tmp_path / "other.npz"
    adapter.save(other)
    return other


def test_shipped_finetuned_stage_is_the_default_and_reproduces_its_figures(topics):
    """The shipped relevance-ft on relevance_heldout.tsv (never trained or tuned on): a quality gate above the
    head's, and the figures in its provenance are what it gives here."""
    from aimusic.debate.semantic import FT_FILE, FinetunedRelevance, load_semantic
    from sentiment.evaluate import binary_metrics

    if not FT_FILE.exists():
        pytest.skip("relevance_ft.npz is not shipped in this checkout")
    stage = load_semantic()
    assert isinstance(stage, FinetunedRelevance) and stage.measured()["file_sha256"] == stage.sha256
    rows = load_labelled(DATA_DIR / "relevance_heldout.tsv", "relevance")
    rf = RelevanceFilter(topics, semantic=stage)
    predicted = [d.relevant for d in rf.decide_many([e.text for e in rows], [e.community for e in rows])]
    both = binary_metrics([e.label == "relevant" for e in rows], predicted)
    assert both["precision"] >= 0.95 and both["recall"] >= 0.72, both  # measured: 0.984 and 0.765 (head: 0.617)
    recorded = next(v for k, v in stage.measured()["heldout"].items() if k.startswith("relevance_heldout.tsv"))
    assert abs(recorded["rules+semantic"]["recall"] - both["recall"]) < 0.02
    for text in ("A new AI model beats the benchmark on math problems", "Spotify pays artists almost nothing",
                 "my band's new song is out on Friday", "Breaking Bad is the best show ever made"):
        assert not rf.check(text)[0], text


def test_a_damaged_finetuned_file_falls_back_to_the_head_with_one_note(tmp_path, monkeypatch, caplog):
    from aimusic.debate import semantic
    from sentiment.finetuned import FORMAT, Adapter

    bad = tmp_path / "relevance_ft.npz"
    bad.write_bytes(b"version https://git-lfs.github.com/spec/v1\n")  # a Git LFS pointer, not the weights
    monkeypatch.setattr(semantic, "FT_FILE", bad)
    with caplog.at_level(logging.WARNING):
        stage = semantic.load_semantic()
    assert type(stage) is SemanticRelevance and stage.head_file == HEAD_FILE
    assert "fine-tuned relevance model cannot be used" in caplog.text
    bad.write_bytes(bad.read_bytes()[:10])  # truncated
    assert type(semantic.load_semantic()) is SemanticRelevance
    with pytest.raises(ScorerError, match="unreadable"):
        semantic.FinetunedRelevance(bad)
    # a relevance model file without its thresholds is refused with a clear message
    meta = {"format": FORMAT, "task": "relevance", "classes": list(semantic.RELEVANCE_CLASSES)}
    Adapter({}, {}, np.zeros((3, 4), np.float32), np.zeros(3, np.float32), meta).save(bad)
    with pytest.raises(ScorerError, match="lacks its thresholds"):
        semantic.FinetunedRelevance(bad)
    assert type(semantic.load_semantic()) is SemanticRelevance

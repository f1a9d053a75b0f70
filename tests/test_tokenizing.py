"""The MiniLM scorers' own tokenizer (sentiment.tokenizing): transformers' ids without transformers, and scoring on
ONNX Runtime without importing torch."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tokenizers")
transformers = pytest.importorskip("transformers")

from sentiment import runtime as rt  # noqa: E402
from sentiment.tokenizing import FastTokenizer, load_tokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EDGE = ["", " ", "🎵🎶🔥", "x" * 5000, "AI-generated music [SEP] the vocals are synthetic",
        "Musik von KI ist schrecklich", "音楽 AI 生成", "ＡＩ　ｍｕｓｉｃ", "a\u0301b", "\x00\x01 control",
        "café naïve Ünïcödé", "[CLS] [PAD] [UNK]", "suno!!! ... ?? 100% A.I. generated mixes #aimusic @someone http://x.y/z"]


def _texts() -> list[str]:
    texts = list(EDGE)
    for path in sorted((ROOT / "tests" / "data").glob("*.tsv")):
        with path.open(encoding="utf-8", newline="") as handle:
            texts += [row["text"] for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)]
    texts += [" ".join(texts[i:i + 9]) for i in range(0, 2000, 9)]  # long posts, cut by truncation
    return texts


@pytest.fixture(scope="module")
def packaged() -> Path:
    from sentiment.finetuned import default_encoder_dir

    try:
        return default_encoder_dir()
    except Exception as exc:  # the packaged encoder is a dependency; say so rather than error
        pytest.skip(f"the packaged encoder is not installed: {exc}")


def test_the_same_ids_and_text_as_transformers_on_every_labelled_text(packaged: Path) -> None:
    ours, theirs = FastTokenizer(packaged), transformers.AutoTokenizer.from_pretrained(packaged)
    texts = _texts()
    assert len(texts) > 4500 and ours.pad_token_id == theirs.pad_token_id == 0
    for kwargs in ({"truncation": True, "max_length": 128}, {"truncation": True, "max_length": 256},
                   {"add_special_tokens": False, "truncation": False}, {"truncation": True, "max_length": 3}):
        assert ours(texts, **kwargs)["input_ids"] == theirs(texts, **kwargs)["input_ids"], kwargs
    for text in EDGE:  # one string in, one list of ids out
        assert ours(text, add_special_tokens=False)["input_ids"] == theirs(text, add_special_tokens=False)["input_ids"]
    pieces = theirs(texts, add_special_tokens=False)["input_ids"]
    for ids in pieces:  # head+tail cuts are decoded back to text (sentiment.head.prepare)
        assert ours.decode(ids[:40]) == theirs.decode(ids[:40])
        assert ours.decode(ids[-20:]) == theirs.decode(ids[-20:])


def test_a_directory_without_tokenizer_json_gets_transformers_tokenizer(tmp_path: Path) -> None:
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "ai", "music"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    transformers.BertTokenizer(vocab_file=str(tmp_path / "vocab.txt")).save_pretrained(tmp_path)
    (tmp_path / "tokenizer.json").unlink(missing_ok=True)
    tok = load_tokenizer(tmp_path)
    assert not isinstance(tok, FastTokenizer)
    assert tok(["ai music"], truncation=True, max_length=8)["input_ids"] == [[2, 5, 6, 3]]


def test_torch_cuda_imports_no_torch_without_a_gpu_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch")
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(rt.os.path, "exists", lambda path: False)
    assert rt.torch_cuda() is False and "torch" not in sys.modules


def test_scoring_on_onnx_runtime_imports_neither_torch_nor_transformers(packaged: Path, tmp_path: Path) -> None:
    """The offline sentiment model in a fresh process, its graph already cached (a first run exports it, which
    needs torch): no torch, no transformers in that process."""
    env = {**os.environ, "AIMUSIC_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(ROOT)}
    env.pop("AIMUSIC_RUNTIME", None)
    script = (
        "import sys\n"
        "from sentiment import load_scorer\n"
        "scorer = load_scorer('minilm-ft')\n"
        "result = scorer.score(['AI music is soulless', 'I love this new Suno track'])\n"
        "assert scorer.runtime == 'onnx', scorer.runtime\n"
        "print(sys.argv[1], 'torch' in sys.modules, 'transformers' in sys.modules, result.labels)\n"
    )
    first = subprocess.run([sys.executable, "-c", script, "first"], env=env, capture_output=True, text=True,
                           timeout=300, check=True)
    assert first.stdout.split()[0] == "first"  # exported the graph (torch allowed here)
    second = subprocess.run([sys.executable, "-c", script, "second"], env=env, capture_output=True, text=True,
                            timeout=300, check=True)
    name, torch_loaded, transformers_loaded, *labels = second.stdout.split(maxsplit=3)
    assert (name, torch_loaded, transformers_loaded) == ("second", "False", "False"), second.stdout
    assert labels == first.stdout.split(maxsplit=3)[3:]  # the same labels either way


def test_tokenizer_files_it_cannot_reproduce_go_to_transformers(packaged: Path, tmp_path: Path) -> None:
    import json
    import shutil

    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(packaged / name, tmp_path / name)
    assert isinstance(load_tokenizer(tmp_path), FastTokenizer)
    spec = json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))
    (tmp_path / "tokenizer.json").write_text(json.dumps({**spec, "post_processor": None}), encoding="utf-8")
    assert not isinstance(load_tokenizer(tmp_path), FastTokenizer)  # transformers adds [CLS]/[SEP] itself there
    (tmp_path / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="cannot be read"):
        FastTokenizer(tmp_path)

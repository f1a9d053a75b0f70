"""Randomly initialised sequence classifiers built offline, for tests and benchmarks.

Cost does not depend on weight values, so a random model with roberta-base's configuration measures the
throughput of twitter-roberta-base-sentiment-latest without downloading it; a tiny one exercises the
transformer scorer's whole loading and scoring path in tests. Both are saved with ``save_pretrained`` and
loaded back through :class:`sentiment.transformer.TransformerScorer`, exactly like a user's model.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

DEFAULT_LABELS: dict[int, str] = {0: "negative", 1: "neutral", 2: "positive"}

_TINY_CORPUS = [
    "i love this song so much",
    "this ai music is terrible and soulless",
    "the track was released on friday",
    "artists are angry about generated music",
    "what a great beautiful happy day",
    "awful bad sad boring noise",
    "@user http the new model writes songs",
]


def build_tiny_classifier(
    out_dir: str | Path,
    *,
    id2label: Mapping[int, str] | None = None,
    max_length: int = 64,
    corpus: Iterable[str] = (),
    seed: int = 0,
) -> Path:
    """A ~30k-parameter RoBERTa classifier with a WordLevel tokenizer (the recipe in STACK.md), in ~1 s."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, RobertaConfig, RobertaForSequenceClassification

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    backend = Tokenizer(models.WordLevel(unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.train_from_iterator([*_TINY_CORPUS, *corpus], trainers.WordLevelTrainer(special_tokens=specials))
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[(t, backend.token_to_id(t)) for t in ("<s>", "</s>")],
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        mask_token="<mask>", model_max_length=max_length,
    )
    labels = dict(id2label or DEFAULT_LABELS)
    torch.manual_seed(seed)
    config = RobertaConfig(
        vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=max_length + 2, num_labels=len(labels), id2label=labels,
        label2id={v: k for k, v in labels.items()}, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    RobertaForSequenceClassification(config).eval().save_pretrained(out)
    tok.save_pretrained(out)
    return out


def build_base_classifier(out_dir: str | Path, *, id2label: Mapping[int, str] | None = None, seed: int = 0) -> Path:
    """roberta-base's architecture and size (125M parameters, 512 tokens), random weights, with the WordPiece
    tokenizer of the packaged all-MiniLM-L6-v2 (30,522 tokens; ids fit roberta's 50,265-row embedding)."""
    import torch
    from transformers import AutoTokenizer, RobertaConfig, RobertaForSequenceClassification

    from sentiment.embedding import model_path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    src = model_path()
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (src / name).exists():
            shutil.copy(src / name, out / name)
    tok = AutoTokenizer.from_pretrained(out)
    labels = dict(id2label or DEFAULT_LABELS)
    torch.manual_seed(seed)
    config = RobertaConfig(  # the defaults are roberta-base: 12 layers, 768 hidden, 12 heads, 3072 FFN
        num_labels=len(labels), id2label=labels, label2id={v: k for k, v in labels.items()},
        pad_token_id=tok.pad_token_id, bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
        max_position_embeddings=514,
    )
    RobertaForSequenceClassification(config).eval().save_pretrained(out)
    tok.model_max_length = 512
    tok.save_pretrained(out)
    return out

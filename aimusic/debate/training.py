"""Shared pieces of the debate trainers (:mod:`aimusic.debate.train_relevance`, :mod:`sentiment.train_stance`):
embeddings cached on disk per text, Platt and temperature calibration, and file provenance.

Embeddings are cached outside the repository (``~/.cache/aimusic-monitor/debate-embeddings.npz``, keyed by a
hash of the exact string the encoder read and the encoder version), so re-training after a data edit only
embeds the new sentences.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

CHUNK = 256


def cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aimusic-monitor" / "debate-embeddings.npz"


def _key(text: str, version: str) -> str:
    return hashlib.sha1(f"{version}\x00{text}".encode()).hexdigest()


def embed_cached(texts: Sequence[str], *, cache: Path | None = None) -> np.ndarray:
    """Embeddings (shared encoder, L2-normalised) of ``texts`` exactly as given; cached per text on disk."""
    from sentiment.embedding import DIM, encode, encoder_version

    version = encoder_version()
    path = cache or cache_file()
    known: dict[str, np.ndarray] = {}
    if path.exists():
        with np.load(path, allow_pickle=False) as data:
            known = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))
    keys = [_key(t, version) for t in texts]
    todo = list(dict.fromkeys(t for t, k in zip(texts, keys, strict=True) if k not in known))
    started = time.perf_counter()
    for i in range(0, len(todo), CHUNK):
        part = todo[i : i + CHUNK]
        for text, vector in zip(part, encode(part), strict=True):
            known[_key(text, version)] = vector
        done = i + len(part)
        log.info("embedded %d/%d new texts (%.0f/s)", done, len(todo), done / (time.perf_counter() - started))
    if todo:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, keys=np.array(list(known)), vectors=np.stack(list(known.values())).astype(np.float32))
        tmp.replace(path)
    return np.stack([known[k] for k in keys]).astype(np.float64) if keys else np.zeros((0, DIM))


def platt(scores: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling: (a, b) with P(y=1) = sigmoid(a * score + b), fitted on held-out scores (sklearn)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1e6, max_iter=1000).fit(np.asarray(scores).reshape(-1, 1), np.asarray(y))
    return float(model.coef_[0, 0]), float(model.intercept_[0])


def temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature scaling: the T > 0 minimising the log-loss of softmax(logits / T) on held-out rows."""
    from scipy.optimize import minimize_scalar
    from sklearn.metrics import log_loss

    logits = np.asarray(logits, dtype=float)
    labels = list(range(logits.shape[1]))

    def loss(log_t: float) -> float:
        z = logits / np.exp(log_t)
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return float(log_loss(y, p / p.sum(axis=1, keepdims=True), labels=labels))

    return float(np.exp(minimize_scalar(loss, bounds=(-3.0, 3.0), method="bounded").x))


def softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=float)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def file_record(path: Path, root: Path | None = None, **extra: object) -> dict[str, object]:
    """Path (relative to ``root`` when inside it), sha256 and any extra fields, for a provenance file."""
    from sentiment.common import sha256_file

    shown = str(path)
    if root is not None:
        resolved = Path(path).resolve()
        for base, prefix in ((root.resolve(), ""), (root.resolve().parent, "../")):
            if resolved.is_relative_to(base):
                shown = prefix + str(resolved.relative_to(base))
                break
    return {"path": shown, "sha256": sha256_file(Path(path)), **extra}

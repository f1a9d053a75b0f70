"""The evaluation harness: read a labelled TSV, score it, and report TweetEval's metrics.

The TSV has a header with ``label`` and ``text`` columns (any order, other columns ignored; when ``text``
is the last column it may itself contain tabs). Labels are ``negative``, ``neutral``, ``positive``
(case-insensitive). Rows with another label or an empty text are skipped and counted, never guessed.

Metrics: macro-averaged recall (TweetEval's official sentiment metric), accuracy, macro F1, per-class
recall, precision and F1, the confusion matrix (rows: true label, columns: predicted) and throughput.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sentiment.base import LABELS, Scorer, ScorerError

log = logging.getLogger(__name__)


@dataclass
class LabelledData:
    texts: list[str]
    labels: list[str]
    path: str = ""
    sha256: str = ""
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)


def read_tsv(path: str | Path) -> LabelledData:
    """Read ``label``/``text`` rows; bad rows are skipped and counted in ``skipped`` (reason -> count)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ScorerError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ScorerError(f"{path} is not UTF-8 text ({exc})") from None
    lines = content.splitlines()
    if not lines:
        raise ScorerError(f"{path} is empty: expected a header with 'label' and 'text' columns")
    header = [h.strip().lower() for h in lines[0].split("\t")]
    if "label" not in header or "text" not in header:
        raise ScorerError(f"{path}: the header must name 'label' and 'text' columns (tab-separated), got {header}")
    li, ti = header.index("label"), header.index("text")
    text_last = ti == len(header) - 1
    texts: list[str] = []
    labels: list[str] = []
    skipped: dict[str, int] = {}
    for line in lines[1:]:
        if not line.strip():
            continue
        parts = line.split("\t", len(header) - 1) if text_last else line.split("\t")
        if len(parts) < len(header):
            skipped["missing column"] = skipped.get("missing column", 0) + 1
            continue
        label, text = parts[li].strip().lower(), parts[ti]
        if label not in LABELS:
            skipped["unknown label"] = skipped.get("unknown label", 0) + 1
            continue
        if not text.strip():
            skipped["empty text"] = skipped.get("empty text", 0) + 1
            continue
        texts.append(text)
        labels.append(label)
    for reason, n in skipped.items():
        log.warning("%s: skipped %d row(s): %s", path, n, reason)
    if not texts:
        raise ScorerError(f"{path} has no usable rows (label in {', '.join(LABELS)} and a non-empty text)")
    return LabelledData(texts, labels, str(path), hashlib.sha256(raw).hexdigest(), skipped)


def metrics(true: Sequence[str], pred: Sequence[str]) -> dict[str, Any]:
    """Macro recall, accuracy, macro F1, per-class recall/precision/F1 and the confusion matrix."""
    index = {label: i for i, label in enumerate(LABELS)}
    t = np.array([index[x] for x in true], dtype=int)
    p = np.array([index[x] for x in pred], dtype=int)
    k = len(LABELS)
    cm = np.bincount(t * k + p, minlength=k * k).reshape(k, k)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    tp = np.diag(cm).astype(float)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=(precision + recall) > 0)
    return {
        "n": len(t),
        "macro_recall": float(recall.mean()),
        "accuracy": float(tp.sum() / max(len(t), 1)),
        "macro_f1": float(f1.mean()),
        "recall": {label: float(recall[i]) for i, label in enumerate(LABELS)},
        "precision": {label: float(precision[i]) for i, label in enumerate(LABELS)},
        "f1": {label: float(f1[i]) for i, label in enumerate(LABELS)},
        "support": {label: int(support[i]) for i, label in enumerate(LABELS)},
        "labels": list(LABELS),
        "confusion": cm.tolist(),
    }


def evaluate(scorer: Scorer, data: LabelledData, *, batch_size: int = 2_000) -> dict[str, Any]:
    """Score ``data`` with ``scorer`` (in batches, as the pipeline does) and return the metrics and speed.

    Texts the scorer declines (``status`` other than ``scored``) are left out of the metrics and counted in
    ``not_scored``; the TSV's language is not detected (the data sets are English).
    """
    preds: list[str | None] = []
    started = time.perf_counter()
    for i in range(0, len(data), batch_size):
        preds.extend(scorer.score(data.texts[i : i + batch_size]).labels)
    elapsed = time.perf_counter() - started
    keep = [i for i, p in enumerate(preds) if p is not None]
    if not keep:
        raise ScorerError(f"{scorer.model_id} scored none of the {len(data)} texts")
    result = metrics([data.labels[i] for i in keep], [preds[i] for i in keep])  # type: ignore[misc]
    result.update(
        model=scorer.model_id,
        data=data.path,
        data_sha256=data.sha256,
        rows_skipped=sum(data.skipped.values()),
        not_scored=len(data) - len(keep),
        seconds=round(elapsed, 3),
        posts_per_s=round(len(data) / elapsed, 1) if elapsed > 0 else None,
    )
    return result

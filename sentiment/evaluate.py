"""The one labelled-TSV reader and the one metrics module, for every task (sentiment, stance, relevance).

**Reading** (:func:`read_tsv`): a header row naming a label column and a ``text`` column (any order; ``source``
and ``community`` are kept when present; other columns ignored; when ``text`` is the last column it may itself
contain tabs). The label column is ``--label-column`` if given, else ``label``, else the task's own column
(``sentiment``, ``stance``, ``relevant``), so ``realistic_dev.tsv`` reads for all three tasks. Labels are
mapped to the task's vocabulary (stance ``against``/``for``/``favor``/``none``; relevance ``1``/``0``); rows
with another label or an empty text are skipped and counted, never guessed. A literal ``\\n`` in a text is a
line break (the project's files write titles as ``title\\n\\nbody``). ``quoted=True`` reads files written by
Python's csv module with quoting (SemEval's).

**Metrics** (:func:`metrics`, scikit-learn underneath): macro-averaged recall **over all classes of the task**
(TweetEval's official sentiment metric; a class absent from the data counts as recall 0 and is listed under
``absent``), accuracy, macro F1, per-class recall/precision/F1, the confusion matrix (rows: true label) and,
given probabilities, the expected calibration error (:func:`expected_calibration_error`). Binary relevance
uses :func:`binary_metrics` (precision and recall of "relevant").
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sentiment.base import LABELS, Scorer, ScorerError

log = logging.getLogger(__name__)

#: each task's classes, in the column order of its probabilities
TASK_LABELS: dict[str, tuple[str, ...]] = {
    "sentiment": LABELS,
    "stance": ("anti", "neutral", "pro"),
    "relevance": ("off_topic", "relevant"),
}
#: other spellings accepted in a label column (realistic_dev.tsv, SemEval)
ALIASES: dict[str, dict[str, str]] = {
    "sentiment": {},
    "stance": {"against": "anti", "for": "pro", "favor": "pro", "favour": "pro", "none": "neutral"},
    "relevance": {"1": "relevant", "0": "off_topic", "true": "relevant", "false": "off_topic", "yes": "relevant",
                  "no": "off_topic", "off-topic": "off_topic", "irrelevant": "off_topic"},
}
#: label columns tried in order when none is named
LABEL_COLUMNS: dict[str, tuple[str, ...]] = {
    "sentiment": ("label", "sentiment"), "stance": ("label", "stance"), "relevance": ("label", "relevant", "relevance"),
}


@dataclass
class LabelledData:
    texts: list[str]
    labels: list[str]
    path: str = ""
    sha256: str = ""
    skipped: dict[str, int] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    communities: list[str | None] = field(default_factory=list)
    label_column: str = "label"

    def __len__(self) -> int:
        return len(self.texts)


def normalize_label(task: str | None, raw: str) -> str | None:
    """``raw`` in the task's vocabulary, or ``None`` when it is not one of its labels (any label for no task)."""
    value = raw.strip()
    if task is None:
        return value or None
    low = value.lower()
    low = ALIASES[task].get(low, low)
    return low if low in TASK_LABELS[task] else None


def read_tsv(path: str | Path, task: str | None = "sentiment", *, label_column: str | None = None,
             quoted: bool = False) -> LabelledData:
    """Read labelled rows for ``task`` (``None``: keep any label as written, e.g. argument names)."""
    path = Path(path)
    if task is not None and task not in TASK_LABELS:
        raise ScorerError(f"unknown task {task!r}; known: {', '.join(TASK_LABELS)}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ScorerError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ScorerError(f"{path} is not UTF-8 text ({exc})") from None
    rows = csv.reader(io.StringIO(content), delimiter="\t", quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE)
    header = [h.strip().lower() for h in next(rows, [])]
    candidates = (label_column.strip().lower(),) if label_column else LABEL_COLUMNS.get(task or "", ("label",))
    column = next((c for c in candidates if c in header), None)
    if column is None or "text" not in header:
        if label_column:
            want = f"'{label_column}' and 'text' columns"
        else:
            others = [c for c in candidates if c != "label"]
            want = "'label' and 'text' columns" + (f" (or {' / '.join(repr(c) for c in others)} as the label)"
                                                    if others else "")
        raise ScorerError(f"{path}: the header must name {want}, tab-separated; got {header}")
    li, ti = header.index(column), header.index("text")
    si = header.index("source") if "source" in header else None
    ci = header.index("community") if "community" in header else None
    data = LabelledData([], [], str(path), hashlib.sha256(raw).hexdigest(), label_column=column)
    for parts in rows:
        if not parts or not any(p.strip() for p in parts):
            continue
        if len(parts) > len(header) and ti == len(header) - 1:  # tabs inside a last-column text
            parts = [*parts[:ti], "\t".join(parts[ti:])]
        if len(parts) < len(header):
            data.skipped["missing column"] = data.skipped.get("missing column", 0) + 1
            continue
        label, text = normalize_label(task, parts[li]), parts[ti].replace("\\n", "\n")
        if label is None:
            reason = "no label" if not parts[li].strip() else "unknown label"
            data.skipped[reason] = data.skipped.get(reason, 0) + 1
            continue
        if not text.strip():
            data.skipped["empty text"] = data.skipped.get("empty text", 0) + 1
            continue
        data.texts.append(text)
        data.labels.append(label)
        data.sources.append(parts[si].strip() if si is not None else "")
        data.communities.append((parts[ci].strip() or None) if ci is not None else None)
    for reason, n in data.skipped.items():
        log.info("%s: skipped %d row(s): %s", path, n, reason)
    if not data.texts:
        known = f" (label in {', '.join(TASK_LABELS[task])})" if task else ""
        raise ScorerError(f"{path} has no usable rows{known} and a non-empty text in column {column!r}")
    return data


def metrics(true: Sequence[str], pred: Sequence[str], labels: Sequence[str] = LABELS) -> dict[str, Any]:
    """Macro recall (over all ``labels``), accuracy, macro F1, per-class figures and the confusion matrix."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    labels = list(labels)
    unknown = sorted((set(true) | set(pred)) - set(labels))
    if unknown:
        raise ValueError(f"unknown label(s) {unknown}; expected one of {labels}")
    precision, recall, f1, support = precision_recall_fscore_support(
        list(true), list(pred), labels=labels, zero_division=0
    )
    return {
        "n": len(true),
        "macro_recall": float(np.mean(recall)),
        "accuracy": float(accuracy_score(true, pred)) if len(true) else 0.0,
        "macro_f1": float(np.mean(f1)),
        "recall": {lab: float(recall[i]) for i, lab in enumerate(labels)},
        "precision": {lab: float(precision[i]) for i, lab in enumerate(labels)},
        "f1": {lab: float(f1[i]) for i, lab in enumerate(labels)},
        "support": {lab: int(support[i]) for i, lab in enumerate(labels)},
        "absent": [lab for i, lab in enumerate(labels) if support[i] == 0],
        "labels": labels,
        "confusion": confusion_matrix(list(true), list(pred), labels=labels).tolist() if len(true) else
        [[0] * len(labels) for _ in labels],
    }


def binary_metrics(truth: Sequence[bool], predicted: Sequence[bool]) -> dict[str, Any]:
    """Precision, recall and F1 of the positive class, and the four counts."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    t, p = [bool(x) for x in truth], [bool(x) for x in predicted]
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(t, p, labels=[False, True]).ravel()) if t else (0, 0, 0, 0)
    precision, recall, f1, _ = precision_recall_fscore_support(t, p, labels=[True], zero_division=0) if t else (
        [0.0], [0.0], [0.0], None)
    return {"n": len(t), "precision": float(precision[0]), "recall": float(recall[0]), "f1": float(f1[0]),
            "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def expected_calibration_error(probs: np.ndarray, true_index: Sequence[int], bins: int = 10) -> float:
    """Top-label expected calibration error: the mean |accuracy - confidence| over ``bins`` equal-width confidence
    bins, weighted by how many predictions fall in each (Guo et al., 2017). ``probs``: (n, classes)."""
    probs = np.asarray(probs, dtype=float)
    if probs.size == 0:
        return 0.0
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == np.asarray(true_index)).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def evaluate(scorer: Scorer, data: LabelledData, *, batch_size: int = 2_000) -> dict[str, Any]:
    """Score ``data`` with ``scorer`` (in batches, as the pipeline does) and return the metrics, the expected
    calibration error of its probabilities, and its speed.

    Texts the scorer declines (``status`` other than ``scored``) are left out of the metrics and counted in
    ``not_scored``; the TSV's language is not detected (the data sets are English).
    """
    preds: list[str | None] = []
    probs: list[np.ndarray] = []
    started = time.perf_counter()
    for i in range(0, len(data), batch_size):
        batch = scorer.score(data.texts[i : i + batch_size])
        preds.extend(batch.labels)
        probs.append(np.asarray(batch.probs, dtype=float))
    elapsed = time.perf_counter() - started
    keep = [i for i, p in enumerate(preds) if p is not None]
    if not keep:
        raise ScorerError(f"{scorer.model_id} scored none of the {len(data)} texts")
    result = metrics([data.labels[i] for i in keep], [preds[i] for i in keep])  # type: ignore[misc]
    matrix = np.concatenate(probs)[keep]
    if matrix.ndim == 2 and matrix.shape[1] == len(LABELS) and np.isfinite(matrix).all():
        result["ece"] = expected_calibration_error(matrix, [LABELS.index(data.labels[i]) for i in keep])
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

"""Labelled sets written for the project (``tests/data/*.tsv``) and the quality figures computed on them.

Read with the one labelled-TSV reader (:func:`sentiment.evaluate.read_tsv`) and measured with its metrics
(scikit-learn underneath; macro recall averages over all classes of the task). Format: tab-separated, a
header line, one post per line; a literal ``\\n`` in a text stands for a line break (a Reddit title and its
body are written ``title\\n\\nbody``). Columns: ``label``, ``text``, optionally ``source`` and ``community``.

``relevance.tsv`` is split deterministically (by an MD5 of the text) into a ``dev`` part that the rules were
tuned on and a ``heldout`` part that was only measured. The larger sets written for the second relevance stage
and for stance are split by file instead: ``*_train.tsv`` was written first and trained on;
``*_heldout.tsv`` was written afterwards, separately, and is only measured.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aimusic.core.config import PROJECT_ROOT

DATA_DIR = PROJECT_ROOT / "tests" / "data"
RELEVANCE_SET = DATA_DIR / "relevance.tsv"
HELDOUT_SHARE = 3  # one post in three (by text hash) is held out


@dataclass(frozen=True)
class Example:
    label: str
    source: str
    community: str | None
    text: str

    @property
    def split(self) -> str:
        return split_of(self.text)


def split_of(text: str) -> str:
    """``heldout`` for about a third of the texts, ``dev`` for the rest; stable across runs and machines."""
    digest = hashlib.md5(text.encode("utf-8")).hexdigest()
    return "heldout" if int(digest[:8], 16) % HELDOUT_SHARE == 0 else "dev"


def load_labelled(path: str | Path, task: str | None = None, *, label_column: str | None = None) -> list[Example]:
    """Read a labelled TSV (labels as written, or mapped to ``task``'s vocabulary); a malformed file raises
    ``ValueError`` naming the file."""
    from sentiment.base import ScorerError
    from sentiment.evaluate import read_tsv

    try:
        data = read_tsv(path, task, label_column=label_column)
    except ScorerError as exc:
        raise ValueError(str(exc)) from None
    return [
        Example(label, source, community, text)
        for label, source, community, text in zip(data.labels, data.sources, data.communities, data.texts, strict=True)
    ]


@dataclass(frozen=True)
class BinaryReport:
    """Precision and recall of a yes/no decision against labels."""

    n: int
    tp: int
    fp: int
    fn: int
    tn: int
    precision: float
    recall: float
    f1: float

    def line(self) -> str:
        return (
            f"n={self.n} precision={self.precision:.3f} recall={self.recall:.3f} f1={self.f1:.3f} "
            f"(tp={self.tp} fp={self.fp} fn={self.fn} tn={self.tn})"
        )

    def as_dict(self) -> dict[str, float | int]:
        return {"n": self.n, "precision": round(self.precision, 4), "recall": round(self.recall, 4),
                "f1": round(self.f1, 4), "tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn}


def binary_report(truth: Sequence[bool], predicted: Sequence[bool]) -> BinaryReport:
    from sentiment.evaluate import binary_metrics

    m = binary_metrics(truth, predicted)
    return BinaryReport(m["n"], m["tp"], m["fp"], m["fn"], m["tn"], m["precision"], m["recall"], m["f1"])


@dataclass(frozen=True)
class MultiReport:
    """Per-class recall, macro-averaged recall (over all classes), accuracy and the confusion matrix."""

    labels: tuple[str, ...]
    matrix: tuple[tuple[int, ...], ...]
    figures: dict

    @property
    def n(self) -> int:
        return int(self.figures["n"])

    def recall(self, label: str) -> float:
        return float(self.figures["recall"][label])

    def precision(self, label: str) -> float:
        return float(self.figures["precision"][label])

    @property
    def macro_recall(self) -> float:
        return float(self.figures["macro_recall"])

    @property
    def accuracy(self) -> float:
        return float(self.figures["accuracy"])

    def table(self) -> str:
        """The confusion matrix as a Markdown table (rows: true label, columns: predicted)."""
        head = "| true \\ predicted | " + " | ".join(self.labels) + " | recall |"
        sep = "|---" * (len(self.labels) + 2) + "|"
        rows = [
            f"| {lab} | " + " | ".join(str(v) for v in self.matrix[i]) + f" | {self.recall(lab):.2f} |"
            for i, lab in enumerate(self.labels)
        ]
        return "\n".join([head, sep, *rows])


def multi_report(truth: Iterable[str], predicted: Iterable[str], labels: Sequence[str]) -> MultiReport:
    from sentiment.evaluate import metrics

    figures = metrics(list(truth), list(predicted), labels)
    return MultiReport(tuple(labels), tuple(tuple(r) for r in figures["confusion"]), figures)


def evaluate_relevance(check: object, examples: Sequence[Example]) -> dict[str, BinaryReport]:
    """Precision/recall of ``check(text, community) -> (relevant, terms)`` on all, dev and heldout rows."""
    predicted = [bool(check(e.text, e.community)[0]) for e in examples]  # type: ignore[operator]
    truth = [e.label == "relevant" for e in examples]
    out = {"all": binary_report(truth, predicted)}
    for split in ("dev", "heldout"):
        idx = [i for i, e in enumerate(examples) if e.split == split]
        out[split] = binary_report([truth[i] for i in idx], [predicted[i] for i in idx])
    return out

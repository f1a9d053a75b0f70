"""Labelled sets written for the project (``tests/data/*.tsv``) and the quality figures computed on them.

Format: tab-separated, a header line, one post per line; a literal ``\\n`` in a text stands for a line break
(a Reddit title and its body are written ``title\\n\\nbody``). Columns: ``label``, ``source``, ``community``,
``text``. The relevance set is split deterministically (by an MD5 of the text) into a ``dev`` part that the
rules were tuned on and a ``heldout`` part that was only measured, so both figures can be reported.
"""

from __future__ import annotations

import csv
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


def load_labelled(path: str | Path) -> list[Example]:
    """Read a labelled TSV; a malformed line raises ``ValueError`` naming the file and line."""
    file = Path(path)
    rows: list[Example] = []
    with file.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:4]] != ["label", "source", "community", "text"]:
            raise ValueError(f"{file}: the first line must be: label<TAB>source<TAB>community<TAB>text")
        for line_no, row in enumerate(reader, start=2):
            if not row or not any(cell.strip() for cell in row):
                continue
            if len(row) != 4:
                raise ValueError(f"{file}:{line_no}: expected 4 tab-separated columns, found {len(row)}")
            label, source, community, text = (cell.strip() for cell in row)
            rows.append(Example(label, source, community or None, text.replace("\\n", "\n")))
    return rows


@dataclass(frozen=True)
class BinaryReport:
    """Precision and recall of a yes/no decision against labels."""

    n: int
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def line(self) -> str:
        return (
            f"n={self.n} precision={self.precision:.3f} recall={self.recall:.3f} f1={self.f1:.3f} "
            f"(tp={self.tp} fp={self.fp} fn={self.fn} tn={self.tn})"
        )


def binary_report(truth: Sequence[bool], predicted: Sequence[bool]) -> BinaryReport:
    pairs = list(zip(truth, predicted, strict=True))
    return BinaryReport(
        n=len(pairs),
        tp=sum(t and p for t, p in pairs),
        fp=sum(p and not t for t, p in pairs),
        fn=sum(t and not p for t, p in pairs),
        tn=sum(not t and not p for t, p in pairs),
    )


@dataclass(frozen=True)
class MultiReport:
    """Per-class recall, macro-averaged recall, accuracy and the confusion matrix (rows: truth)."""

    labels: tuple[str, ...]
    matrix: tuple[tuple[int, ...], ...]

    @property
    def n(self) -> int:
        return sum(sum(r) for r in self.matrix)

    def recall(self, label: str) -> float:
        i = self.labels.index(label)
        row = self.matrix[i]
        return row[i] / sum(row) if sum(row) else 0.0

    def precision(self, label: str) -> float:
        i = self.labels.index(label)
        col = sum(r[i] for r in self.matrix)
        return self.matrix[i][i] / col if col else 0.0

    @property
    def macro_recall(self) -> float:
        present = [lab for i, lab in enumerate(self.labels) if sum(self.matrix[i])]
        return sum(self.recall(lab) for lab in present) / len(present) if present else 0.0

    @property
    def accuracy(self) -> float:
        return sum(self.matrix[i][i] for i in range(len(self.labels))) / self.n if self.n else 0.0

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
    index = {lab: i for i, lab in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for t, p in zip(truth, predicted, strict=True):
        if t not in index or p not in index:
            raise ValueError(f"unknown label {t if t not in index else p!r}; expected one of {list(labels)}")
        matrix[index[t]][index[p]] += 1
    return MultiReport(tuple(labels), tuple(tuple(r) for r in matrix))


def evaluate_relevance(check: object, examples: Sequence[Example]) -> dict[str, BinaryReport]:
    """Precision/recall of ``check(text, community) -> (relevant, terms)`` on all, dev and heldout rows."""
    predicted = [bool(check(e.text, e.community)[0]) for e in examples]  # type: ignore[operator]
    truth = [e.label == "relevant" for e in examples]
    out = {"all": binary_report(truth, predicted)}
    for split in ("dev", "heldout"):
        idx = [i for i, e in enumerate(examples) if e.split == split]
        out[split] = binary_report([truth[i] for i in idx], [predicted[i] for i in idx])
    return out

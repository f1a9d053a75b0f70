"""The default stance model ``stance-ens``: the mean of the two offline stance models' probabilities.

Members, both trained on the same project files (:data:`sentiment.train_stance.TRAIN_SETS`):

- ``stance-ft`` (:mod:`sentiment.stance_ft`): all-MiniLM-L6-v2 fine-tuned end to end on target/text pairs;
- ``stance-minilm`` (:class:`sentiment.stance.MinilmStanceScorer`): a logistic-regression head on the frozen
  shared encoder's embeddings.

Why both: the fine-tuned model is the better single model on sentences written like its training files; the
head on frozen embeddings loses less on posts unlike them (reworded real posts, the harder written sets). Their
mean, with equal weights (nothing tuned), beat either alone on most held-out sets (figures and the data they
were measured on: ``stance_ens.json`` and docs/debate.md). Both members are temperature-calibrated; a post whose
highest mean probability is below ``unclear_below`` (the fine-tuned member's, chosen on its out-of-fold
predictions) is stored as ``unclear``.

In the signals pipeline the head reads the embeddings computed once per batch for the argument matcher, so the
ensemble costs one matrix product more than ``stance-ft`` alone. ``model_id`` is
``stance-ens@<12 hex of the members' ids>``: retraining either member gives a new id.

Measure it (held-out sets, and ``--dev`` files such as realistic_dev.tsv) and write ``stance_ens.json``::

    python -m sentiment.stance_ens --dev ../shared/data/debate/realistic_dev.tsv
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from sentiment.base import ScorerError
from sentiment.stance import WEIGHTS_DIR, MinilmStanceScorer, StanceScorer, measured_for

log = logging.getLogger(__name__)

PROVENANCE_FILE = WEIGHTS_DIR / "stance_ens.json"


class EnsembleStanceScorer(StanceScorer):
    """Mean of ``stance-ft`` and ``stance-minilm``; English only (both members are)."""

    languages = frozenset({"en"})
    uses_embeddings = True

    def __init__(self, ft_weights: Path | str | None = None, head_file: Path | str | None = None) -> None:
        from sentiment.stance_ft import FinetunedStanceScorer

        self.finetuned = FinetunedStanceScorer(ft_weights)
        self.head = MinilmStanceScorer(Path(head_file) if head_file else None)
        self.unclear_below = self.finetuned.unclear_below
        members = f"{self.finetuned.model_id}|{self.head.model_id}"
        self.model_id = f"stance-ens@{hashlib.sha256(members.encode()).hexdigest()[:12]}"

    @classmethod
    def from_argument(cls, arg: str | None) -> EnsembleStanceScorer:
        """``ensemble`` or ``ensemble:<stance_ft.npz>,<stance_head.npz>`` (either part may be left empty)."""
        if not arg:
            return cls()
        ft, sep, head = arg.partition(",")
        if not sep:
            raise ScorerError(f"ensemble:{arg}: name both files, ensemble:<stance_ft.npz>,<stance_head.npz> "
                              "(leave a part empty for the shipped one)")
        return cls(ft.strip() or None, head.strip() or None)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 3))
        return (self.finetuned.predict_proba(texts) + self.head.predict_proba(texts)) / 2.0

    def predict_with_embeddings(self, texts: Sequence[str], embeddings: np.ndarray) -> np.ndarray:
        if not texts:
            return np.zeros((0, 3))
        return (self.finetuned.predict_proba(texts) + self.head.predict_embeddings(embeddings)) / 2.0

    def measured(self) -> dict[str, Any]:
        return measured_for(self.model_id)


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
        "unclear_rule": "the fine-tuned member's threshold (chosen on its out-of-fold predictions)",
        "heldout": {**combined, "sets": sets},
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "reproduce": "python -m sentiment.stance_ens" + "".join(f" --dev {p}" for p in dev),
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

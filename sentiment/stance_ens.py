"""The default stance model ``stance-ens``: the mean of the two offline stance models' probabilities.

Members, both trained on the same project files (:data:`sentiment.train_stance.TRAIN_SETS`):

- ``stance-ft`` (:mod:`sentiment.stance_ft`): all-MiniLM-L6-v2 fine-tuned end to end on target/text pairs;
- ``stance-minilm`` (:class:`sentiment.stance.MinilmStanceScorer`): a logistic-regression head on the frozen
  shared encoder's embeddings.

Why both: the fine-tuned model is the better single model on sentences written like its training files; the
head on frozen embeddings loses less on posts unlike them (reworded real posts, the harder written sets). Their
mean, with equal weights (nothing tuned), beat both on all held-out sentences together and on the hardest
written set, and lost a little to the fine-tuned model on two sets (figures and the data they were measured
on: ``stance_ens.json`` and docs/debate.md). Both members are temperature-calibrated; a post whose
highest mean probability is below ``unclear_below`` (the fine-tuned member's, chosen on its
training hold-out) is stored as ``unclear``.

In the signals pipeline the head reads the embeddings computed once per batch for the argument matcher, so the
ensemble costs one matrix product more than ``stance-ft`` alone. ``model_id`` is
``stance-ens@<12 hex of the members' ids>``: retraining either member gives a new id.

Measured (held-out sets, and ``--dev`` files such as realistic_dev.tsv) by :mod:`sentiment.stance_ens_figures`,
which writes ``stance_ens.json``::

    python -m sentiment.stance_ens_figures --dev ../shared/data/debate/realistic_dev.tsv
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sentiment.base import ScorerError
from sentiment.stance import WEIGHTS_DIR, MinilmStanceScorer, StanceScorer, measured_for

PROVENANCE_FILE = WEIGHTS_DIR / "stance_ens.json"


class EnsembleStanceScorer(StanceScorer):
    """Mean of ``stance-ft`` and ``stance-minilm``; English only (both members are)."""

    languages = frozenset({"en"})
    uses_embeddings = True

    def __init__(self, ft_weights: Path | str | None = None, head_file: Path | str | None = None) -> None:
        from sentiment.stance_ft import FinetunedStanceScorer

        self.finetuned = FinetunedStanceScorer(ft_weights)
        self.head = MinilmStanceScorer(Path(head_file) if head_file else None, eager=False)
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
        if len(texts) == 0:
            return np.zeros((0, 3))
        return (self.finetuned.predict_proba(texts) + self.head.predict_proba(texts)) / 2.0

    def predict_with_embeddings(self, texts: Sequence[str], embeddings: np.ndarray) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, 3))
        return (self.finetuned.predict_proba(texts) + self.head.predict_embeddings(embeddings)) / 2.0

    def measured(self) -> dict[str, Any]:
        return measured_for(self.model_id)

"""The fine-tuned stance model ``stance-ft``: all-MiniLM-L6-v2 trained end to end on target/text pairs.

Built by :mod:`sentiment.finetune_stance` (``sentiment/weights/stance_ft.npz``: LoRA factors, LayerNorms and
a temperature-scaled head, merged into the packaged encoder at load, like ``minilm-ft``); it reads
``AI-generated music [SEP] <post>`` and returns the probabilities of (anti, neutral, pro). A post whose highest
probability is below the calibrated ``unclear_below`` stored in the file is labelled ``unclear``. Runs on ONNX
Runtime or PyTorch as ``AIMUSIC_RUNTIME`` chooses, like the sentiment model it shares its code with.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sentiment.head import WEIGHTS_DIR
from sentiment.stance import StanceScorer, measured_for, prepare

WEIGHTS_FILE = WEIGHTS_DIR / "stance_ft.npz"
BUILD_COMMAND = "python -m sentiment.finetune_stance --semeval ../shared/data/stance/semeval2016_stance.tsv"


class FinetunedStanceScorer(StanceScorer):
    """``stance-ft@<12 hex of the weights file>``; English only."""

    languages = frozenset({"en"})

    def __init__(self, weights: Path | str | None = None, *, encoder_dir: Path | None = None) -> None:
        from sentiment.base import ScorerError
        from sentiment.finetuned import MinilmFinetunedScorer

        path = Path(weights) if weights else WEIGHTS_FILE
        if not path.exists():
            raise ScorerError(f"the fine-tuned stance weights {path} are missing; build them with `{BUILD_COMMAND}`")
        self.inner = MinilmFinetunedScorer(path, encoder_dir=encoder_dir, task="stance")
        meta = self.inner.adapter.meta
        self.target = str(meta.get("target", "AI-generated music"))
        self.separator = str(meta.get("separator", "[SEP]"))
        self.unclear_below = float(meta.get("unclear_below", 0.0))
        suffix = "" if self.inner.precision == "fp32" else f"+{self.inner.precision}"
        self.model_id = f"stance-ft@{self.inner.adapter.sha256[:12]}{suffix}"

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 3))
        return self.inner.predict_proba([f"{self.target} {self.separator} {prepare(t)}" for t in texts])

    def measured(self) -> dict[str, Any]:
        return measured_for(self.model_id, self.inner.adapter_path.with_suffix(".json"))

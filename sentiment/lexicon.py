"""VADER, the lexicon baseline: no model download, ~30,000 short texts/s on one core."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from sentiment.base import Scorer

THRESHOLD = 0.05  # VADER's documented cut-offs on the compound score


class VaderScorer(Scorer):
    """Label from VADER's compound score (>= 0.05 positive, <= -0.05 negative, else neutral).

    VADER has no class probabilities; the stored ones are a calibrated mapping of the compound score
    (``p_pos = max(c, 0)``, ``p_neg = max(-c, 0)`` scaled so the label's class is the largest), so the
    label always equals the argmax and the confidence grows with the strength of the compound score.
    """

    model_id = "vader-3.3.2"
    languages = frozenset({"en"})

    def __init__(self) -> None:
        self._analyzer = SentimentIntensityAnalyzer()

    def compound(self, texts: Sequence[str]) -> np.ndarray:
        return np.array([self._analyzer.polarity_scores(t)["compound"] for t in texts], dtype=float)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return compound_to_probs(self.compound(texts))


def compound_to_probs(c: np.ndarray) -> np.ndarray:
    """Map compound scores in [-1, 1] to (neg, neu, pos) probabilities consistent with the thresholds."""
    c = np.clip(np.asarray(c, dtype=float), -1.0, 1.0)
    strength = np.abs(c)
    # neutral mass falls linearly from 1 at c=0 to 0 at |c|=1, crossing 0.5 at the threshold
    neutral = np.where(strength < THRESHOLD, 1.0 - strength, np.clip(0.5 - (strength - THRESHOLD), 0.0, 0.5))
    polar = 1.0 - neutral
    out = np.zeros((len(c), 3))
    out[:, 0] = np.where(c < 0, polar, 0.0)
    out[:, 2] = np.where(c > 0, polar, 0.0)
    out[:, 1] = neutral
    # at exactly the threshold the polar side must win
    tie = (strength >= THRESHOLD) & (np.isclose(neutral, polar))
    out[tie, 1] -= 1e-6
    out[tie & (c > 0), 2] += 1e-6
    out[tie & (c < 0), 0] += 1e-6
    return out

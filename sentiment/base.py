"""The scorer interface every sentiment model implements, and the shared output shape."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LABELS: tuple[str, str, str] = ("negative", "neutral", "positive")
#: language tags that name no language: undetermined, no linguistic content, multiple
UNKNOWN_LANGS: frozenset[str] = frozenset({"und", "zxx", "mul", ""})


class ScorerError(RuntimeError):
    """A scorer cannot be created or used; the message says why and what to do."""


@dataclass
class ScoreBatch:
    """Scores for a list of texts, aligned with the input.

    ``probs`` has one row per text: P(negative), P(neutral), P(positive). ``labels`` is ``None`` where the
    text was not scored (``status`` says why: ``empty`` text, or ``language`` not supported by the model).
    """

    labels: list[str | None]
    probs: np.ndarray
    status: list[str]


class Scorer(ABC):
    """A sentiment model. ``model_id`` is stored with every score, so it must name the model and version."""

    model_id: str = ""
    #: ISO 639-1 codes the model is meant for; ``None`` means any language
    languages: frozenset[str] | None = frozenset({"en"})

    @abstractmethod
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities (negative, neutral, positive) for non-empty texts."""

    def supports(self, lang: str | None) -> bool:
        """Unknown language counts as supported (the caller decides whether to detect it first).

        Unknown: no tag, or a tag that names no language (``und``, ``zxx``, ``mul``, and the private-use
        ``qaa``-``qtz`` codes X uses, such as ``qme`` for media-only posts).
        """
        if self.languages is None or not lang:
            return True
        code = lang.split("-")[0].split("_")[0].strip().lower()
        return code in UNKNOWN_LANGS or (len(code) == 3 and code.startswith("q")) or code in self.languages

    def score(self, texts: Sequence[str], langs: Sequence[str | None] | None = None) -> ScoreBatch:
        """Score texts; empty texts and unsupported languages are marked, never fed to the model."""
        n = len(texts)
        langs = list(langs) if langs is not None else [None] * n
        probs = np.full((n, 3), np.nan)
        status = ["scored"] * n
        todo: list[int] = []
        for i, (text, lang) in enumerate(zip(texts, langs, strict=True)):
            if not text or not text.strip():
                status[i] = "empty"
            elif not self.supports(lang):
                status[i] = "language"
            else:
                todo.append(i)
        if todo:
            probs[todo] = self.predict_proba([texts[i] for i in todo])
        labels: list[str | None] = [
            LABELS[int(np.argmax(probs[i]))] if status[i] == "scored" else None for i in range(n)
        ]
        return ScoreBatch(labels=labels, probs=probs, status=status)

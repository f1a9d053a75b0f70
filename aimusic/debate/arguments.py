"""Which of the debate's recurring arguments a post makes (the taxonomy is ``[[arguments]]`` in topics.toml).

Two ways to find an argument, both recorded per post (``matched_by``):

- ``keyword``: one of the argument's ``keywords`` occurs (matched like tracking terms: case, spacing and
  hashtags ignored, word boundaries respected);
- ``embedding``: the argument whose ``description`` is the most similar to the post (cosine similarity of
  their all-MiniLM-L6-v2 embeddings), when that similarity is at least :data:`SIMILARITY_THRESHOLD`.

A post gets at most :data:`MAX_ARGUMENTS` arguments, the keyword matches first and then by similarity. The
model id (stored with every row) names the method and fingerprints the taxonomy and the threshold, so an
edited taxonomy tags posts again under a new id instead of mixing old and new assignments.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aimusic.core.topics import Argument, Topics
from aimusic.debate.terms import TermMatcher

#: cosine similarity to the closest argument's description needed for an embedding match. Chosen on the dev
#: part of tests/data/arguments.tsv (best F1 of "the labelled argument is among the assigned ones" over
#: 0.25/0.30/0.35/0.40, and over also admitting runners-up within 0.03/0.06 of the best: they cost more
#: precision than they gained recall); the held-out figures are in the README.
SIMILARITY_THRESHOLD = 0.25
MAX_ARGUMENTS = 3


@dataclass(frozen=True)
class Assignment:
    """The arguments of one post, with how each was found and its similarity to the description."""

    arguments: tuple[str, ...] = ()
    matched_by: tuple[str, ...] = ()  # keyword | embedding | keyword+embedding
    similarity: tuple[float, ...] = ()


class ArgumentTagger:
    """Assign arguments to texts by keywords and (optionally) description similarity."""

    def __init__(
        self,
        arguments: Sequence[Argument],
        *,
        use_embeddings: bool = True,
        threshold: float = SIMILARITY_THRESHOLD,
        max_arguments: int = MAX_ARGUMENTS,
    ) -> None:
        self.arguments = list(arguments)
        self.names = [a.name for a in self.arguments]
        self.matchers = [TermMatcher(a.keywords) for a in self.arguments]
        self.use_embeddings = use_embeddings
        self.threshold = threshold
        self.max_arguments = max_arguments
        self._descriptions: np.ndarray | None = None
        payload = json.dumps(
            [[a.name, a.description, sorted(a.keywords)] for a in self.arguments] + [threshold, max_arguments]
        )
        digest = hashlib.md5(payload.encode("utf-8")).hexdigest()[:10]
        method = "kw+minilm" if use_embeddings else "kw"
        self.model_id = f"arguments-{method}@{digest}"

    @classmethod
    def from_topics(cls, topics: Topics, **kwargs: object) -> ArgumentTagger:
        return cls(topics.arguments, **kwargs)  # type: ignore[arg-type]

    def description_embeddings(self) -> np.ndarray:
        if self._descriptions is None:
            from sentiment.embedding import encode

            self._descriptions = encode([a.description for a in self.arguments])
        return self._descriptions

    def similarities(self, embeddings: np.ndarray) -> np.ndarray:
        """Cosine similarity of each (L2-normalised) post embedding to each description: (n posts, n args)."""
        if not self.arguments:
            return np.zeros((len(embeddings), 0))
        return np.asarray(embeddings, dtype=np.float32) @ self.description_embeddings().T

    def assign(self, texts: Sequence[str], embeddings: np.ndarray | None = None) -> list[Assignment]:
        """Arguments for each text. ``embeddings`` (the shared encoder's, one row per text) are computed here
        when the tagger uses embeddings and none are given."""
        if self.use_embeddings and embeddings is None and texts:
            from sentiment.stance import embed

            embeddings = embed(texts)
        sims = self.similarities(embeddings) if self.use_embeddings and embeddings is not None else None
        out: list[Assignment] = []
        for i, text in enumerate(texts):
            keyword = [bool(m.search(text)) for m in self.matchers]
            row = sims[i] if sims is not None else np.zeros(len(self.arguments))
            best = int(np.argmax(row)) if sims is not None and len(row) else -1
            by_embedding = [j == best and float(row[j]) >= self.threshold for j in range(len(self.arguments))]
            chosen = [j for j in range(len(self.arguments)) if keyword[j] or by_embedding[j]]
            chosen.sort(key=lambda j: (not keyword[j], -float(row[j])))
            chosen = chosen[: self.max_arguments]
            out.append(
                Assignment(
                    arguments=tuple(self.names[j] for j in chosen),
                    matched_by=tuple(_how(keyword[j], by_embedding[j]) for j in chosen),
                    similarity=tuple(round(float(row[j]), 4) for j in chosen),
                )
            )
        return out


def _how(keyword: bool, embedding: bool) -> str:
    return "keyword+embedding" if keyword and embedding else "keyword" if keyword else "embedding"

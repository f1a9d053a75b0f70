"""Sentiment scorers behind one interface, chosen by name.

Names: ``vader`` (lexicon baseline). Further families register themselves in :data:`REGISTRY`;
a name of the form ``family:argument`` (e.g. ``transformer:<hub id or path>``) passes the argument on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sentiment.base import LABELS, ScoreBatch, Scorer, ScorerError

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_CHAIN", "LABELS", "REGISTRY", "ScoreBatch", "Scorer", "ScorerError", "load_default", "load_scorer"]


def _vader(arg: str | None) -> Scorer:
    from sentiment.lexicon import VaderScorer

    return VaderScorer()


#: family name -> factory(argument or None)
REGISTRY: dict[str, Callable[[str | None], Scorer]] = {"vader": _vader}

#: what ``aimusic run`` tries when no model is named, best first; the first that loads is used
DEFAULT_CHAIN: list[str] = ["vader"]


def load_scorer(name: str) -> Scorer:
    """Create the scorer called ``name`` (``family`` or ``family:argument``); unknown names fail clearly."""
    family, _, arg = name.partition(":")
    factory = REGISTRY.get(family.strip().lower())
    if factory is None:
        known = ", ".join(sorted(REGISTRY))
        raise ScorerError(f"unknown sentiment model {name!r}; known: {known} (or transformer:<hub id or path>)")
    return factory(arg or None)


def load_default(chain: list[str] | None = None) -> Scorer:
    """The first scorer of the default chain that loads here; logs one line for each fallback."""
    errors = []
    for name in chain or DEFAULT_CHAIN:
        try:
            return load_scorer(name)
        except ScorerError as exc:
            log.warning("sentiment model %s cannot load here (%s); falling back", name, exc)
            errors.append(f"{name}: {exc}")
    raise ScorerError("no sentiment model could load: " + "; ".join(errors))

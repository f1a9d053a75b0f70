"""Sentiment scorers behind one interface, chosen by name.

Names (``--model`` or ``AIMUSIC_MODEL``):

- ``transformer:<hub id or local dir>[@revision][?labels=...&precision=auto|fp32|bf16|int8&max_length=N&languages=any]``
  (``transformer`` alone: :data:`~sentiment.transformer.DEFAULT_MODEL`);
- ``minilm`` (also ``minilm-head``): all-MiniLM-L6-v2 embeddings + the project's logistic head (the offline
  default before ``minilm-ft``, which fine-tunes the encoder itself);
- ``minilm-ft[:<npz>]``: all-MiniLM-L6-v2 fine-tuned on tweets (LoRA merged at load), :mod:`sentiment.finetuned`;
- ``minilm-debate[:<json>]`` (offline default): ``minilm-ft`` read together with the post's stance for posts
  about AI music, :mod:`sentiment.debate_context`;
- ``vader``: the lexicon baseline, fastest, for huge backfills;
- ``custom:<task>-v<N>``: a head trained on the user's own labels by ``aimusic train`` (:mod:`sentiment.custom`).

Further families register themselves in :data:`REGISTRY`; a name of the form ``family:argument`` passes the
argument on. :func:`load_default` walks :data:`DEFAULT_CHAIN` and returns the first scorer that loads here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sentiment.base import LABELS, ScoreBatch, Scorer, ScorerError

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_CHAIN", "LABELS", "REGISTRY", "ScoreBatch", "Scorer", "ScorerError", "load_default", "load_scorer",
]


def _vader(arg: str | None) -> Scorer:
    from sentiment.lexicon import VaderScorer

    return VaderScorer()


def _minilm(arg: str | None) -> Scorer:
    from pathlib import Path

    from sentiment.head import MinilmHeadScorer

    return MinilmHeadScorer(Path(arg) if arg else None)


def _minilm_ft(arg: str | None) -> Scorer:
    from sentiment.finetuned import MinilmFinetunedScorer

    return MinilmFinetunedScorer(arg or None)


def _minilm_debate(arg: str | None) -> Scorer:
    from sentiment.debate_context import DebateContextScorer

    return DebateContextScorer(arg or None)


def _transformer(arg: str | None) -> Scorer:
    from sentiment.transformer import DEFAULT_MODEL, MULTILINGUAL_MODELS, TransformerScorer, parse_name

    model, revision, options = parse_name(arg or DEFAULT_MODEL)
    known = {"labels", "precision", "max_length", "languages"}
    unknown = set(options) - known
    if unknown:
        raise ScorerError(
            f"unknown transformer option(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
        )
    labels = [x for x in options.get("labels", "").split(",") if x.strip()] or None
    try:
        max_length = int(options["max_length"]) if options.get("max_length") else None
    except ValueError:
        raise ScorerError(f"max_length must be a whole number, got {options['max_length']!r}") from None
    langs = options.get("languages", "any" if model in MULTILINGUAL_MODELS else "en").strip().lower()
    languages = None if langs in ("any", "all", "*") else frozenset(x.strip() for x in langs.split(",") if x.strip())
    return TransformerScorer(
        model or DEFAULT_MODEL, revision=revision, labels=labels, precision=options.get("precision") or "auto",
        max_length=max_length, languages=languages,
    )


def _custom(arg: str | None) -> Scorer:
    from sentiment.custom import parse_name

    if not arg or parse_name(arg)[0] != "sentiment":
        raise ScorerError(f"custom:{arg or ''} is not a sentiment model (custom:sentiment-v<N>); stance models are "
                          "applied with `aimusic rescore --model custom:stance-v<N>` (it writes the stances table)")
    from sentiment.custom import load_custom

    return load_custom(arg)


#: family name -> factory(argument or None)
REGISTRY: dict[str, Callable[[str | None], Scorer]] = {
    "vader": _vader,
    "minilm": _minilm,
    "minilm-head": _minilm,
    "minilm-ft": _minilm_ft,
    "minilm-debate": _minilm_debate,
    "transformer": _transformer,
    "custom": _custom,
}

#: what ``aimusic run`` tries when no model is named, best first; the first that loads is used
DEFAULT_CHAIN: list[str] = [
    "transformer:cardiffnlp/twitter-roberta-base-sentiment-latest",
    "minilm-debate",
    "minilm-ft",
    "minilm",
    "vader",
]


def load_scorer(name: str) -> Scorer:
    """Create the scorer called ``name`` (``family`` or ``family:argument``); unknown names fail clearly."""
    family, _, arg = name.strip().partition(":")
    factory = REGISTRY.get(family.strip().lower())
    if factory is None:
        known = ", ".join(sorted(REGISTRY))
        raise ScorerError(f"unknown sentiment model {name!r}; known: {known} (or transformer:<hub id or path>)")
    return factory(arg.strip() or None)


def load_default(chain: list[str] | None = None) -> Scorer:
    """The first scorer of the default chain that loads here.

    When it is not the chain's first, ONE warning line names the scorer used and why each better one could
    not load.
    """
    failures: list[str] = []
    started = time.perf_counter()
    for name in chain or DEFAULT_CHAIN:
        try:
            scorer = load_scorer(name)
        except ScorerError as exc:
            failures.append(f"{name} cannot load ({' '.join(str(exc).split())})")
            continue
        if failures:
            log.warning(
                "sentiment model: using %s, because %s [%.1fs]; choose one with --model or AIMUSIC_MODEL",
                scorer.model_id, "; ".join(failures), time.perf_counter() - started,
            )
        return scorer
    raise ScorerError("no sentiment model could load: " + "; ".join(failures))

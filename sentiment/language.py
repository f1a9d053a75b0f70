"""Language detection for posts whose platform gives no language tag (lingua-language-detector).

lingua is restricted to :data:`LANGUAGES` (the languages the debate is likely to use; fewer candidates are
both faster and more accurate) and runs in its high-accuracy mode: on the 2,000 English tweets of
``val.tsv`` it called 2 non-English (both really Indonesian/Tagalog) at ~3,000 texts/s on 2 cores, while the
low-accuracy mode, ~13,000/s, called 20 of them non-English, and every such miss would keep an English post
from being scored. A non-English verdict also needs a confidence of at least :data:`MIN_CONFIDENCE`. Text it
cannot decide (too short, emoji only, fewer than 3 letters, low confidence) gets :data:`UNDETERMINED`, which
scorers treat as "unknown" (scored, not gated). The detector holds ~300 MB of n-gram models while loaded:
:func:`release` frees them.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

#: ISO 639-1 codes lingua chooses from
LANGUAGES: tuple[str, ...] = (
    "en", "es", "pt", "fr", "de", "it", "nl", "sv", "pl", "ru", "uk", "tr", "ar", "hi", "id", "vi", "th", "ja",
    "ko", "zh",
)
#: stored for posts whose language could not be determined (ISO 639-2 "undetermined")
UNDETERMINED = "und"
MAX_CHARS = 1_000  # the start of a post says which language it is in
#: below this confidence a non-English verdict becomes "und" ("ok" -> Polish 0.21, "post 1" -> Italian 0.18;
#: real German/Spanish/French sentences score 0.45-1.0)
MIN_CONFIDENCE = 0.3
_NOISE = re.compile(r"https?://\S+|(?<!\S)www\.\S+|(?<!\S)[@#]\w+|\bu/\w+|\br/\w+")
_LETTER = re.compile(r"[^\W\d_]")


@functools.lru_cache(maxsize=1)
def detector() -> Any:
    """The shared lingua detector (built once per process, ~5 s: it loads its n-gram models)."""
    from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

    langs = [Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper())) for code in LANGUAGES]
    return LanguageDetectorBuilder.from_languages(*langs).with_preloaded_language_models().build()


def release() -> None:
    """Drop the detector and its language models (about 300 MB)."""
    detector.cache_clear()


def clean_for_detection(text: str) -> str:
    """Links, mentions, hashtags and subreddit/user names say nothing about the language: drop them."""
    return _NOISE.sub(" ", text[:MAX_CHARS]).strip()


def detect(texts: Sequence[str]) -> list[str]:
    """ISO 639-1 code per text (``und`` when undetermined)."""
    cleaned = [clean_for_detection(t or "") for t in texts]
    todo = [i for i, t in enumerate(cleaned) if len(_LETTER.findall(t)) >= 3]
    out = [UNDETERMINED] * len(texts)
    if not todo:
        return out
    found = detector().detect_languages_in_parallel_of([cleaned[i] for i in todo])
    for i, lang in zip(todo, found, strict=True):
        if lang is not None:
            out[i] = lang.iso_code_639_1.name.lower()
    # a non-English verdict gates the post out of English models: require lingua to be reasonably sure
    unsure = [i for i in todo if out[i] not in ("en", UNDETERMINED)]
    if unsure:
        values = detector().compute_language_confidence_values_in_parallel([cleaned[i] for i in unsure])
        for i, confidences in zip(unsure, values, strict=True):
            if not confidences or confidences[0].value < MIN_CONFIDENCE:
                out[i] = UNDETERMINED
    return out

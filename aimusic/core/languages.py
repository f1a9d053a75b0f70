"""The language of every post: the platform's tag where it has one, else detected (``sentiment.language``).

Pure helpers, no database: the stored languages are filled by :func:`aimusic.pipeline.languages.fill_languages`.
"""

from __future__ import annotations

from collections.abc import Sequence

from aimusic.core.text import join_many


def post_texts(titles: Sequence[str | None], texts: Sequence[str | None]) -> list[str]:
    """Title and body as one text, the way the scoring step composes them (:func:`aimusic.core.text.join_many`)."""
    return join_many(titles, texts)


def detect_missing(texts: Sequence[str], langs: Sequence[str | None]) -> list[str | None]:
    """``langs`` with any missing entry detected from its text (in memory, nothing written)."""
    missing = [i for i, lang in enumerate(langs) if not lang]
    if not missing:
        return list(langs)
    from sentiment.language import detect

    out = list(langs)
    for i, lang in zip(missing, detect([texts[i] for i in missing]), strict=True):
        out[i] = lang
    return out

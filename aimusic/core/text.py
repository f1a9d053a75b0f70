"""Text helpers shared by every stage: the one title + body join, the one term key, the "A.I." spelling.

- :func:`join_title_body` is what relevance, scoring, language detection and the debate signals read for a
  post (``Post.full_text`` is this join); :func:`join_many` is its column form.
- :func:`term_key` is how a matched term is compared with a configured one ("AI-generated music",
  "#AIGeneratedMusic" and "ai_generated music" are one key).
- :func:`normalize_ai_spelling` writes "A.I." / "a. i." as "AI", so term matching sees one spelling.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["join_many", "join_title_body", "normalize_ai_spelling", "term_key"]

_NON_KEY = re.compile(r"[\W_]+")
# "A.I." / "a.i" / "A. I." as a word of its own; not "A.I.M." or "a.i.d" (the next character is no letter)
_DOTTED_AI = re.compile(r"(?<![\w.])[Aa]\. ?[Ii](?:\.|(?![\w.]))(?![A-Za-z])")


def join_title_body(title: str | None, text: str | None) -> str:
    """Title and body as one text: ``"title\\n\\nbody"``; the title alone when there is no body; the body
    alone when there is no title or the body already starts with it (as some platforms repeat it)."""
    body = text or ""
    if title and not body.startswith(title):
        return f"{title}\n\n{body}" if body else title
    return body


def join_many(titles: Sequence[str | None], texts: Sequence[str | None]) -> list[str]:
    """:func:`join_title_body` over two columns of the same length."""
    return [join_title_body(t, x) for t, x in zip(titles, texts, strict=True)]


def term_key(text: str) -> str:
    """Lowercase letters and digits only: "AI-generated music" and "#AIGeneratedMusic" compare equal."""
    return _NON_KEY.sub("", text.casefold())


def normalize_ai_spelling(text: str) -> str:
    """``text`` with "A.I." (dotted, any case, one optional space) written "AI"; other text unchanged.

    Cheap when there is nothing to do: the regular expression only runs on texts holding ``.`` after an "a".
    """
    if "." not in text or ("a." not in text and "A." not in text):
        return text
    return _DOTTED_AI.sub("AI", text)

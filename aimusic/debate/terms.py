"""Find which of a list of terms occur in a text: the matcher behind relevance, entities and arguments.

Case-, spacing- and hashtag-aware: "AI-generated music" matches "AI generated music", "ai_generated  music" and
"#AIGeneratedMusic"; word boundaries are respected ("Suno" does not match "Sunoco"); a term also matches its
plural in -s/-es. Terms are compared through :func:`aimusic.core.text.term_key`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from aimusic.core.text import term_key

_WORD = re.compile(r"\w+")


def tokens_of(text: str) -> set[str]:
    """The distinct lower-case words of ``text`` (what :class:`TermMatcher` looks single words up in)."""
    return set(_WORD.findall(text.casefold()))


@functools.lru_cache(maxsize=65_536)
def _match_key(text: str) -> str:
    return term_key(text)


class TermMatcher:
    """Find which of a list of terms occur in a text.

    "AI-generated music" matches "AI generated music", "ai_generated  music" and "#AIGeneratedMusic".
    Word boundaries are respected ("Suno" does not match "Sunoco"); a term also matches its plural in -s/-es.

    Single-word terms are looked up in a dictionary of the text's words (one ``\\w+`` scan per text); only
    phrases and terms with punctuation go through one compiled regular expression. A long list of single
    words (context terms) therefore costs about as much as a short one.
    """

    def __init__(self, terms: Iterable[str]) -> None:
        self.terms: dict[str, str] = {}
        parts: list[str] = []
        firsts: set[str] = set()  # first characters of the regex phrases, for a fast pre-check
        self._words: dict[str, tuple[str, ...]] = {}  # a lower-case word (or its plural) -> term keys
        for term in terms:
            key = term_key(term)
            if not key or key in self.terms:
                continue
            self.terms[key] = term
            raw = [w for w in re.split(r"[\s\-_]+", term.strip()) if w]
            plural = term[-1:].isalpha()  # "AI song" also matches "AI songs"
            if len(raw) == 1 and _WORD.fullmatch(raw[0]):
                word = raw[0].casefold()
                for form in (word, word + "s", word + "es") if plural else (word,):
                    self._words[form] = (*self._words.get(form, ()), key)
                continue
            words = [re.escape(w) for w in raw]
            suffix = "(?:s|es)?" if plural else ""
            parts.append(r"[\s\-_]*".join(words) + suffix)
            firsts.update((raw[0][0].lower(), raw[0][0].upper()))
            if len(words) > 1:
                parts.append("#" + "".join(words) + suffix)
                firsts.add("#")
        parts.sort(key=len, reverse=True)
        self._order = {key: i for i, key in enumerate(self.terms)}
        # a key matched by the regex -> the terms it stands for: itself, and the singular of a plural
        self._owners: dict[str, tuple[str, ...]] = {}
        for key in self.terms:
            for form in (key, key + "s", key + "es"):
                self._owners[form] = (*self._owners.get(form, ()), key)
        # the look-ahead on first characters lets the engine skip most positions (2-3x faster than without)
        first = "".join(sorted(re.escape(c) for c in firsts))
        self._regex = (
            re.compile(rf"(?=[{first}])(?<![\w])(?:{'|'.join(parts)})(?![\w])", re.IGNORECASE) if parts else None
        )

    def _keys(self, text: str, tokens: set[str] | None = None) -> set[str]:
        keys: set[str] = set()
        if self._words:
            words = self._words
            for token in tokens_of(text) if tokens is None else tokens:
                owners = words.get(token)
                if owners:
                    keys.update(owners)
        if self._regex is not None:
            for m in self._regex.finditer(text):
                keys.update(self._owners.get(_match_key(m.group(0)), ()))
        return keys

    def find(self, text: str, tokens: set[str] | None = None) -> list[str]:
        """The terms (as written in the config) found in ``text``, in config order, no repeats.

        ``tokens`` (:func:`tokens_of` the same text) saves scanning the text again when several matchers read it.
        """
        if not text:
            return []
        keys = self._keys(text, tokens)
        return [self.terms[k] for k in sorted(keys, key=self._order.__getitem__)] if keys else []

    def count(self, text: str, tokens: set[str] | None = None) -> int:
        """How many distinct terms occur in ``text``."""
        return len(self._keys(text, tokens)) if text else 0

    def search(self, text: str, tokens: set[str] | None = None) -> bool:
        return bool(text) and bool(self._keys(text, tokens))


@functools.lru_cache(maxsize=1024)
def _term_pattern(term: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in re.split(r"[\s\-_]+", term) if w]
    return re.compile(r"#?" + r"[\s\-_]*".join(words), re.IGNORECASE)


def without_terms(text: str, terms: list[str]) -> str:
    """The text with matched terms removed, so "Breaking Rust" cannot be its own context."""
    out = text
    for term in terms:
        out = _term_pattern(term).sub(" ", out)
    return out

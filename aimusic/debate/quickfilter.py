"""A cheap pre-check in front of :class:`~aimusic.debate.relevance.RelevanceFilter`, for bulk imports.

Most lines of a Reddit dump mention none of the tracked terms. The relevance filter's term regex tries every
alternative at every position (tens of microseconds a text); a million lines would spend most of the import
there. This pre-check answers "can this text possibly match a tracked term?" with a few substring tests on the
lower-cased text, and only texts that pass go to the real filter.

It is exact in one direction, which is all that matters: whenever the filter's term matcher finds a term, the
pre-check passes (so the import keeps exactly the posts collection would keep). A term matches only when each
of its words occurs in the text, so requiring every word as a substring (words under three letters as whole
words) is a superset. Texts containing one of the few characters that Python's case-insensitive matching
treats as an ASCII letter although ``str.lower`` does not (``İ ı ſ K``) skip the pre-check, and so does
everything when a tracked term has a non-ASCII word. Posts from an on-topic community always get the full
check (they are relevant without a term).

When the filter has a usable second stage (:mod:`aimusic.debate.semantic`), a text without a tracked term can
still be relevant; the pre-check then also passes texts holding an AI-ish and a music-ish word stem
(:func:`aimusic.debate.semantic.stems`, the second stage's own pre-check), so it stays exact; with the filter's
broad class on (:attr:`RelevanceFilter.broad_on`: monitoring, not ``aimusic backfill``), texts with either stem.

:meth:`QuickRelevance.bulk_patterns` gives the same pre-check in a coarser, vectorised form (RE2 patterns for
DuckDB's ``regexp_matches``) for bulk imports: a superset again, so the exact check that follows in Python loses
nothing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from aimusic.core.text import join_title_body
from aimusic.debate.relevance import Decision, RelevanceFilter
from aimusic.debate.semantic import AI_STEMS, MUSIC_STEMS, ai_stem, music_stem, stems

#: characters that ``re.IGNORECASE`` equates with an ASCII letter while ``str.lower`` does not map them to it
CASE_SPECIALS = frozenset("\u0130\u0131\u017f\u212a")
_SPECIALS = re.compile("[" + "".join(sorted(CASE_SPECIALS)) + "]")
_SPLIT = re.compile(r"[\s\-_]+")
_RE2_META = frozenset("\\.+*?()|[]{}^$-#&~")
#: at a word start (RE2, case-insensitive): what ``_starts_word`` asks of the lower-cased text, loosened (any
#: character that is not an ASCII letter counts as a word boundary)
_WORD_START = "(?:^|[^a-z])"


def _re2_alternatives(words: Iterable[str]) -> str:
    """RE2 alternation of ``words``, longest first, metacharacters escaped."""
    unique = sorted(set(words), key=lambda w: (-len(w), w))
    return "|".join("".join("\\" + c if c in _RE2_META else c for c in w) for w in unique)


@dataclass(frozen=True)
class BulkPatterns:
    """RE2 patterns over a post's text (title, body, ... joined by newlines) whose combination is a superset of
    :meth:`QuickRelevance.could_match`: a text can match only if ``any_of`` matches, or ``words`` and ``keys``
    both do, or (second stage on) ``ai`` and ``music`` both do. Case-insensitive, on the original (not lower-cased)
    text; a text holding "a.i." / "a. i." or one of :data:`CASE_SPECIALS` always matches ``any_of``. Texts of an
    on-topic community (:meth:`on_topic`) skip the pre-check, as in :meth:`QuickRelevance.decide`."""

    any_of: str
    words: str | None
    keys: str | None
    ai: str | None
    music: str | None
    communities: frozenset[str]

    def on_topic(self, community: str | None) -> bool:
        return bool(community) and _community_key(str(community)) in self.communities


@functools.lru_cache(maxsize=4096)
def _community_key(name: str) -> str:
    return name.strip().casefold().lstrip("#").removeprefix("r/")


def _starts_word(low: str, word: str) -> bool:
    """``word`` occurs in ``low`` not right after a letter (a find loop: much faster than a lookbehind regex)."""
    i = low.find(word)
    while i >= 0:
        if i == 0 or not low[i - 1].isalpha():
            return True
        i = low.find(word, i + 1)
    return False


def _overlaps(a: str, b: str) -> bool:
    """``b`` lies inside ``a``, or starts inside ``a`` and runs past its end (a suffix of ``a`` begins ``b``)."""
    return b in a or any(a.endswith(b[:k]) for k in range(1, min(len(a), len(b))))


@dataclass
class QuickRelevance:
    """``check(title, text, community)`` -> the matched terms when relevant, else ``None``; same answers as
    ``RelevanceFilter.check``, faster on the (many) texts that cannot match."""

    relevance: RelevanceFilter
    checked: int = 0  # texts that went to the full filter
    _by_key: dict[str, list[tuple[tuple[str, ...], str]]] = field(default_factory=dict, init=False)
    _closure: dict[str, tuple[str, ...]] = field(default_factory=dict, init=False)
    _communities: set[str] | None = field(default=None, init=False)
    _enabled: bool = field(default=True, init=False)
    _any_key: re.Pattern[str] | None = field(default=None, init=False)
    _short: list[tuple[str, tuple[str, ...]]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        # every term that can make a post relevant (tracking, ambiguous, generic music-only terms)
        matcher = getattr(self.relevance, "candidates", None)
        terms = list(getattr(matcher, "terms", {}).values()) if matcher is not None else []
        communities = getattr(self.relevance, "communities", None)
        self._communities = set(communities) if isinstance(communities, set | frozenset) else None
        if not terms or self._communities is None:
            self._enabled = False
            return
        for term in terms:
            words = [w.lower() for w in _SPLIT.split(term.strip()) if w]
            if not words or not all(w.isascii() for w in words):
                self._enabled = False
                return
            # every word must occur, and the first must not follow a letter, as the matcher wants no word
            # character before a term ("udio" in "studio" is not Udio); later words may be glued ("walkmywalk")
            first = words[0]
            key = max(words, key=len)
            others = tuple(dict.fromkeys(w for w in words if w not in (key, first)))
            if len(key) < 3:  # only short words ("AI"): looked for on their own, "ai" is in "said" and "again"
                self._short.append((first, others + ((key,) if key != first else ())))
            else:
                self._by_key.setdefault(key, []).append((others, first))
        # One C-level scan finds the key words present. A key hidden by the scan (it skips over each match) lies
        # inside that match or overlaps its end, so each match also stands for the keys it can hide.
        keys = sorted(self._by_key, key=len, reverse=True)
        self._any_key = re.compile("|".join(re.escape(k) for k in keys)) if keys else None
        self._closure = {a: tuple(b for b in keys if b == a or _overlaps(a, b)) for a in keys}

    def could_match(self, text: str) -> bool:
        """``False`` only when no tracked term can occur in ``text``."""
        if not self._enabled:
            return True
        if not text.isascii() and _SPECIALS.search(text):
            return True
        low = text.lower()
        if "a." in low:  # "A.I." is read as "AI"
            low = low.replace("a.i.", "ai ").replace("a. i.", "ai ")
        if self.relevance.stage_two is not None:
            if self.relevance.broad_on:  # one stem is enough for the broad class
                if ai_stem(low) or music_stem(low):
                    return True
            elif all(stems(low)):
                return True
        for first, others in self._short:
            if _starts_word(low, first) and all(w in low for w in others):
                return True
        if self._any_key is None:
            return False
        found = self._any_key.findall(low)
        if not found:
            return False
        keys = {k for m in set(found) for k in self._closure[m]}
        for key in keys:
            if key in low:
                for others, first in self._by_key[key]:
                    if all(w in low for w in others) and _starts_word(low, first):
                        return True
        return False

    def bulk_patterns(self) -> BulkPatterns | None:
        """The pre-check as RE2 patterns for a vectorised first pass (see :class:`BulkPatterns`); ``None`` when
        the pre-check is off (every text must go to the filter)."""
        if not self._enabled or self._communities is None:
            return None
        specials = "".join(f"\\x{{{ord(c):x}}}" for c in sorted(CASE_SPECIALS))
        any_of = f"[{specials}]|(?i:a\\. ?i\\."
        if self._short:
            any_of += f"|{_WORD_START}(?:{_re2_alternatives(first for first, _ in self._short)})"
        if self.relevance.stage_two is not None and self.relevance.broad_on:  # one stem is enough (not in backfill)
            any_of += f"|{_WORD_START}(?:{_re2_alternatives((*AI_STEMS, *MUSIC_STEMS))})"
        any_of += ")"
        # a term whose first word is also a one-word short term ("AI song" and "AI") needs nothing more
        bare = {first for first, others in self._short if not others}
        pairs = [(key, first) for key, entries in self._by_key.items() for _, first in entries if first not in bare]
        words = f"(?i){_WORD_START}(?:{_re2_alternatives(f for _, f in pairs)})" if pairs else None
        keys = f"(?i)(?:{_re2_alternatives(k for k, _ in pairs)})" if pairs else None
        ai = music = None
        if self.relevance.stage_two is not None:
            ai = f"(?i){_WORD_START}(?:{_re2_alternatives(AI_STEMS)})"
            music = f"(?i){_WORD_START}(?:{_re2_alternatives(MUSIC_STEMS)})"
        return BulkPatterns(any_of, words, keys, ai, music, frozenset(self._communities))

    def decide(self, title: str | None, text: str | None, community: str | None = None, *,
               defer: bool = False) -> Decision | None:
        """The filter's decision when the text is relevant (terms and reason), else ``None``.

        ``defer=True``: a text only the second stage can decide comes back as a ``stage="pending"`` decision
        instead of being embedded now; pass such texts to :meth:`resolve` in one batch (bulk imports do, once
        per committed batch: embedding many texts at once is several times faster than one by one).
        """
        full = join_title_body(title, text)
        on_topic = bool(community) and self._communities is not None and _community_key(community) in self._communities
        if not on_topic and not self.could_match(full):
            return None
        self.checked += 1
        if defer:
            ruled = self.relevance.rules(full, community)
            if ruled.unsure and self.relevance.stage_two is not None:
                return Decision(False, ruled.terms, None, "pending")
            return Decision(True, ruled.terms, ruled.reason) if ruled.relevant else None
        decision = self.relevance.decide(full, community)
        return decision if decision.relevant else None

    def resolve(self, texts: list[str], communities: list[str | None]) -> list[Decision]:
        """Both stages' decisions for texts :meth:`decide` left ``pending`` (their second stage in one batch)."""
        return self.relevance.decide_many(texts, communities)

    def check(self, title: str | None, text: str | None, community: str | None = None) -> list[str] | None:
        """The matched terms when relevant, else ``None`` (see :meth:`decide`)."""
        decision = self.decide(title, text, community)
        return decision.terms if decision is not None else None

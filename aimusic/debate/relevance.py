"""Is a post about AI music? Term matching (case-, spacing- and hashtag-aware) plus the rules in topics.toml.

One compiled regular expression per term list, so a million posts are checked in seconds. Rules, in order:
1. a post containing an exclusion term is not relevant;
2. a post from an on-topic community is relevant;
3. a post matching an unambiguous tracking term is relevant;
4. a post matching only ambiguous terms (``ambiguous_terms``: names such as "Suno" or "Breaking Rust";
   ``music_only_terms``: generic AI phrases such as "AI artist" or "generative AI") is weighed: in an
   off-topic community it is not relevant; otherwise it is relevant when the rest of the text holds more
   distinct context terms than ``off_context_terms`` (words of another sense: programming, the Hindi verb
   "suno", visual art, ...). Ambiguous names are confirmed by ``context_terms`` (music or AI words), generic
   AI phrases only by ``music_context_terms``; a generic AI phrase next to a name, or two different names,
   count as context for the name.
5. in a batch of records (:meth:`RelevanceFilter.apply`), a comment or reply whose thread's opening post is in
   the same batch and relevant is relevant too, unless rule 1 applies (comments inherit their thread).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa

from aimusic.core.records import Post
from aimusic.core.topics import Topics

_WORD = re.compile(r"\w+")


def tokens_of(text: str) -> set[str]:
    """The distinct lower-case words of ``text`` (what :class:`TermMatcher` looks single words up in)."""
    return set(_WORD.findall(text.casefold()))


def _key(text: str) -> str:
    """Compact form used to compare matches with terms: lowercase letters and digits only."""
    return re.sub(r"[\W_]+", "", text.casefold())


@functools.lru_cache(maxsize=65_536)
def _match_key(text: str) -> str:
    return _key(text)


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
            key = _key(term)
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


@dataclass
class RelevanceFilter:
    """The rules of ``[tracking]`` and ``[relevance]`` in topics.toml, compiled once."""

    topics: Topics
    terms: TermMatcher = field(init=False)
    generic: TermMatcher = field(init=False)
    context: TermMatcher = field(init=False)
    music_context: TermMatcher = field(init=False)
    off_context: TermMatcher = field(init=False)
    exclude: TermMatcher = field(init=False)
    ambiguous: set[str] = field(init=False)
    music_only: set[str] = field(init=False)
    communities: set[str] = field(init=False)
    off_communities: set[str] = field(init=False)

    def __post_init__(self) -> None:
        rel = self.topics.relevance
        self.terms = TermMatcher(self.topics.tracking.terms + rel.ambiguous_terms)
        tracked = set(self.terms.terms)
        # generic phrases that are not tracking terms are matched separately and never reported as terms
        self.generic = TermMatcher([t for t in rel.music_only_terms if _key(t) not in tracked])
        self.context = TermMatcher(rel.context_terms)
        self.music_context = TermMatcher(rel.music_context_terms or rel.context_terms)
        self.off_context = TermMatcher(rel.off_context_terms)
        self.exclude = TermMatcher(rel.exclude_terms)
        self.ambiguous = {_key(t) for t in rel.ambiguous_terms}
        self.music_only = {_key(t) for t in rel.music_only_terms} - self.ambiguous
        self.communities = {_community(c) for c in rel.on_topic_communities}
        self.off_communities = {_community(c) for c in rel.off_topic_communities}

    @property
    def candidates(self) -> TermMatcher:
        """Every term that can make a post (outside an on-topic community) relevant: tracking, ambiguous and
        generic music-only terms. A pre-filter that skips texts matching none of these skips no relevant post."""
        return TermMatcher([*self.terms.terms.values(), *self.generic.terms.values()])

    def check(self, text: str, community: str | None = None) -> tuple[bool, list[str]]:
        """Return (relevant, matched tracking terms) for one text."""
        tokens = tokens_of(text)
        matched = self.terms.find(text, tokens)
        if self.exclude.search(text, tokens):
            return False, matched
        where = _community(community) if community else ""
        if where and where in self.communities:
            return True, matched
        names = [t for t in matched if _key(t) in self.ambiguous]
        generic = [t for t in matched if _key(t) in self.music_only]
        if len(names) + len(generic) < len(matched):  # an unambiguous tracking term
            return True, matched
        extra = self.generic.find(text, tokens)
        if not (names or generic or extra):
            return False, matched
        if where and where in self.off_communities:
            return False, matched
        return self._weigh(_without(text, matched + extra), names, generic + extra), matched

    def _weigh(self, rest: str, names: list[str], generic: list[str]) -> bool:
        """Context against other-sense evidence, for a post that matched only ambiguous terms."""
        tokens = tokens_of(rest)
        off: int | None = None  # counted only when some context was found
        if names:
            support = self.context.count(rest, tokens) + len(generic) + (1 if len(names) > 1 else 0)
            if support:
                off = self.off_context.count(rest, tokens)
                if support > off:
                    return True
        if not generic:
            return False
        musical = self.music_context.count(rest, tokens)
        if not musical:
            return False
        if off is None:
            off = self.off_context.count(rest, tokens)
        return musical > off

    def apply(self, posts: Iterable[Post]) -> tuple[list[Post], int]:
        """Keep relevant posts (their ``terms`` filled in); return them and the count dropped.

        Comments inherit their thread's relevance: a comment or reply handed in the same batch as its thread's
        opening post (``thread_id`` = that post's ``post_id``) is kept when the post is, unless it contains an
        exclusion term. Collectors that fetch threads (Reddit) hand each thread as one batch.
        """
        posts = list(posts)
        checked = [self.check(post.full_text, post.community) for post in posts]
        roots = {(p.source, p.post_id) for p, (ok, _) in zip(posts, checked, strict=True) if ok and p.kind == "post"}
        kept: list[Post] = []
        for post, (relevant, matched) in zip(posts, checked, strict=True):
            if not relevant and roots and post.kind != "post" and (post.source, post.thread_id) in roots:
                relevant = not self.exclude.search(post.full_text)
            if relevant:
                post.terms = matched
                kept.append(post)
        return kept, len(posts) - len(kept)

    def filter_table(self, table: pa.Table) -> tuple[pa.Table, int]:
        """The Arrow form of :meth:`apply`: keep relevant rows, fill ``terms``; return (table, dropped)."""
        titles = table.column("title").to_pylist()
        texts = table.column("text").to_pylist()
        communities = table.column("community").to_pylist()
        keep: list[bool] = []
        terms: list[list[str]] = []
        for title, text, community in zip(titles, texts, communities, strict=True):
            full = f"{title}\n\n{text}" if title else (text or "")
            relevant, matched = self.check(full, community)
            keep.append(relevant)
            terms.append(matched)
        index = table.schema.get_field_index("terms")
        table = table.set_column(index, "terms", pa.array(terms, pa.list_(pa.string())))
        mask = pa.array(keep, pa.bool_())
        kept = table.filter(mask)
        return kept, table.num_rows - kept.num_rows


def _community(name: str) -> str:
    return name.strip().casefold().lstrip("#").removeprefix("r/")


@functools.lru_cache(maxsize=1024)
def _term_pattern(term: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in re.split(r"[\s\-_]+", term) if w]
    return re.compile(r"#?" + r"[\s\-_]*".join(words), re.IGNORECASE)


def _without(text: str, terms: list[str]) -> str:
    """The text with matched terms removed, so "Breaking Rust" cannot be its own context."""
    out = text
    for term in terms:
        out = _term_pattern(term).sub(" ", out)
    return out

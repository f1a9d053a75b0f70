"""Is a post about AI music? Term matching (case-, spacing- and hashtag-aware) plus the rules in topics.toml.

One compiled regular expression per term list, so a million posts are checked in seconds. Rules, in order:
1. a post containing an exclusion term is not relevant;
2. a post from an on-topic community is relevant;
3. a post matching an unambiguous tracking term is relevant;
4. a post matching only ambiguous terms is relevant when it also contains a context term.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa

from flows.records import Post
from flows.topics import Topics


def _key(text: str) -> str:
    """Compact form used to compare matches with terms: lowercase letters and digits only."""
    return re.sub(r"[\W_]+", "", text.casefold())


class TermMatcher:
    """Find which of a list of terms occur in a text.

    "AI-generated music" matches "AI generated music", "ai_generated  music" and "#AIGeneratedMusic".
    Word boundaries are respected ("Suno" does not match "Sunoco").
    """

    def __init__(self, terms: Iterable[str]) -> None:
        self.terms: dict[str, str] = {}
        parts: list[str] = []
        for term in terms:
            key = _key(term)
            if not key or key in self.terms:
                continue
            self.terms[key] = term
            words = [re.escape(w) for w in re.split(r"[\s\-_]+", term.strip()) if w]
            plural = "(?:s|es)?" if term[-1:].isalpha() else ""  # "AI song" also matches "AI songs"
            parts.append(r"[\s\-_]*".join(words) + plural)
            if len(words) > 1:
                parts.append("#" + "".join(words) + plural)
        parts.sort(key=len, reverse=True)
        body = "|".join(parts) if parts else r"(?!x)x"
        self._regex = re.compile(rf"(?<![\w])(?:{body})(?![\w])", re.IGNORECASE)

    def find(self, text: str) -> list[str]:
        """The tracked terms (as written in the config) found in ``text``, in config order, no repeats."""
        if not text:
            return []
        found = {_key(m.group(0)) for m in self._regex.finditer(text)}
        return [term for key, term in self.terms.items() if key in found or key + "s" in found or key + "es" in found]

    def search(self, text: str) -> bool:
        return bool(text) and self._regex.search(text) is not None


@dataclass
class RelevanceFilter:
    """The rules of ``[tracking]`` and ``[relevance]`` in topics.toml, compiled once."""

    topics: Topics
    terms: TermMatcher = field(init=False)
    context: TermMatcher = field(init=False)
    exclude: TermMatcher = field(init=False)
    ambiguous: set[str] = field(init=False)
    communities: set[str] = field(init=False)

    def __post_init__(self) -> None:
        rel = self.topics.relevance
        self.terms = TermMatcher(self.topics.tracking.terms + rel.ambiguous_terms)
        self.context = TermMatcher(rel.context_terms)
        self.exclude = TermMatcher(rel.exclude_terms)
        self.ambiguous = {_key(t) for t in rel.ambiguous_terms}
        self.communities = {c.casefold().lstrip("#").removeprefix("r/") for c in rel.on_topic_communities}

    def check(self, text: str, community: str | None = None) -> tuple[bool, list[str]]:
        """Return (relevant, matched terms) for one text."""
        matched = self.terms.find(text)
        if self.exclude.search(text):
            return False, matched
        if community and community.casefold().lstrip("#").removeprefix("r/") in self.communities:
            return True, matched
        if not matched:
            return False, matched
        if any(_key(t) not in self.ambiguous for t in matched):
            return True, matched
        return self.context.search(_without(text, matched)), matched

    def apply(self, posts: Iterable[Post]) -> tuple[list[Post], int]:
        """Keep relevant posts (their ``terms`` filled in); return them and the count dropped."""
        kept: list[Post] = []
        dropped = 0
        for post in posts:
            relevant, matched = self.check(post.full_text, post.community)
            if relevant:
                post.terms = matched
                kept.append(post)
            else:
                dropped += 1
        return kept, dropped


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


def _without(text: str, terms: list[str]) -> str:
    """The text with matched ambiguous terms removed, so "Breaking Rust" cannot be its own context."""
    out = text
    for term in terms:
        words = [re.escape(w) for w in re.split(r"[\s\-_]+", term) if w]
        out = re.sub(r"#?" + r"[\s\-_]*".join(words), " ", out, flags=re.IGNORECASE)
    return out

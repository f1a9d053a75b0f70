"""Which tracked entities (artists, tools, platforms, institutions) a post mentions.

Aliases come from ``[[entities]]`` in topics.toml and are matched like tracking terms (:class:`TermMatcher`):
case-insensitive, spaces/hyphens/underscores inside a name ignored, hashtags matched ("#BreakingRust",
"#breaking_rust", "BREAKING RUST" all tag "Breaking Rust"), word boundaries respected ("Sunoco" is not
"Suno"). An entity is listed once, under its configured ``name``, in the order of the config.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from aimusic.core.text import term_key as _key
from aimusic.core.topics import Entity, Topics
from aimusic.debate.terms import TermMatcher


class EntityTagger:
    """Tag texts with entity names; ``fingerprint`` changes whenever the entity config does."""

    def __init__(self, entities: Sequence[Entity]) -> None:
        self.names: list[str] = [e.name for e in entities]
        self._by_key: dict[str, list[str]] = {}
        aliases: list[str] = []
        for entity in entities:
            for alias in [entity.name, *entity.aliases]:
                key = _key(alias)
                if not key:
                    continue
                owners = self._by_key.setdefault(key, [])
                if entity.name not in owners:
                    owners.append(entity.name)
                aliases.append(alias)
        self._matcher = TermMatcher(aliases)
        payload = json.dumps([[e.name, sorted(_key(a) for a in [e.name, *e.aliases])] for e in entities])
        self.fingerprint = hashlib.md5(payload.encode("utf-8")).hexdigest()[:8]

    @classmethod
    def from_topics(cls, topics: Topics) -> EntityTagger:
        return cls(topics.entities)

    def tag(self, text: str) -> list[str]:
        """Entity names mentioned in ``text``, in config order, each once."""
        found: set[str] = set()
        for alias in self._matcher.find(text):
            found.update(self._by_key.get(_key(alias), ()))
        return [name for name in self.names if name in found]

    def tag_many(self, texts: Sequence[str]) -> list[list[str]]:
        return [self.tag(t) for t in texts]

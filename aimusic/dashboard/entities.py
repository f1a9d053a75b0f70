"""Tracked entities (Suno, Udio, Breaking Rust, ...) and which posts mention them.

For now a post mentions an entity when one of the tracked terms it matched (the ``terms`` list column that
the relevance filter fills) equals one of the entity's aliases in ``data/topics.toml`` (compared the way the
term matcher compares: case, spaces, hyphens and underscores ignored). So an entity is only seen through
aliases that are also ``[tracking].terms``; :attr:`EntityMap.untracked` names the entities that no tracked
term reaches, and the dashboard says so.

Switching to a real per-post entities column (the debate-signals work) means changing :func:`with_entities_sql`
(which fills the dashboard's ``facts.entities`` column) and :meth:`EntityMap.terms_for` (which turns the entity
filter into a condition on posts); Compare and the filters only go through those two.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aimusic.core.topics import Entity


def term_key(text: str) -> str:
    """Lowercase letters and digits only: "AI-generated music" and "#AIGeneratedMusic" compare equal."""
    return re.sub(r"[\W_]+", "", text.casefold())


@dataclass(frozen=True)
class EntityMap:
    """Entity name -> the tracked terms that stand for it."""

    pairs: tuple[tuple[str, str], ...] = ()  # (term, entity)
    names: tuple[str, ...] = ()  # every configured entity, in config order
    untracked: tuple[str, ...] = ()  # entities none of whose aliases is a tracked term

    @property
    def tracked(self) -> tuple[str, ...]:
        return tuple(n for n in self.names if n not in self.untracked)

    def terms_for(self, entities: Iterable[str]) -> tuple[str, ...]:
        wanted = set(entities)
        return tuple(dict.fromkeys(term for term, entity in self.pairs if entity in wanted))

    def params(self) -> list[list[str]]:
        return [[t for t, _ in self.pairs], [e for _, e in self.pairs]]


def build_entity_map(entities: Sequence[Entity], terms: Iterable[str]) -> EntityMap:
    """Match each entity's aliases against the known tracked terms (config terms and terms seen in posts)."""
    by_key: dict[str, list[str]] = {}
    for term in terms:
        if term:
            by_key.setdefault(term_key(term), []).append(term)
    pairs: list[tuple[str, str]] = []
    untracked: list[str] = []
    for entity in entities:
        keys = {term_key(a) for a in [entity.name, *entity.aliases]}
        matched = sorted({t for k in keys for t in by_key.get(k, [])})
        pairs.extend((t, entity.name) for t in matched)
        if not matched:
            untracked.append(entity.name)
    return EntityMap(
        pairs=tuple(pairs), names=tuple(e.name for e in entities), untracked=tuple(untracked)
    )


def with_entities_sql(table: str) -> str:
    """SQL selecting every row of ``table`` (posts-shaped, with a ``terms`` column) plus ``entities``: the sorted,
    distinct entities the post mentions. Parameters: :func:`entity_params`. The mapping is computed once per
    distinct ``terms`` list (a few dozen, told apart by their 64-bit hash: a collision among so few lists is
    vanishingly unlikely), then joined back on that hash, so it costs little over a million rows.

    This is the one place that decides which entities a post mentions: when posts get a real entities column,
    select it here instead."""
    return f"""
        WITH d AS (SELECT hash(terms) AS h, any_value(terms) AS terms FROM {table} GROUP BY h),
             m AS (SELECT h, list_sort(list_distinct(flatten(list_transform(coalesce(terms, []),
                     lambda t: coalesce(MAP(?::VARCHAR[], ?::VARCHAR[][])[t], []))))) AS entities FROM d)
        SELECT i.*, coalesce(m.entities, []::VARCHAR[]) AS entities
        FROM {table} i LEFT JOIN m ON m.h = hash(i.terms)"""


def entity_params(emap: EntityMap) -> list[list]:
    """The parameters of :func:`with_entities_sql`: the tracked terms and, for each, its entities."""
    by_term: dict[str, list[str]] = {}
    for term, entity in emap.pairs:
        by_term.setdefault(term, []).append(entity)
    return [list(by_term), list(by_term.values())]


def entity_rows_sql(where: str, where_params: list[Any], alias: str = "f") -> tuple[str, list[Any]]:
    """One row per (filtered post, entity it mentions) over the ``facts`` table: every facts column plus ``grp``
    (the entity name). ``where`` is a condition on ``alias``."""
    return f"SELECT {alias}.*, unnest({alias}.entities) AS grp FROM facts {alias} WHERE {where}", where_params

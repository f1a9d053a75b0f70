"""Search queries from the tracked terms, and each query's cursors (``since_id`` and an unread gap)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from aimusic.sources.querybuild import hashtag, or_queries, quote, terms_for
from aimusic.sources.x.config import XConfig

log = logging.getLogger(__name__)


def build_queries(cfg: XConfig, tracked_terms: list[str]) -> tuple[list[str], list[str]]:
    """Search queries for the configured terms (each within ``max_query_length``) and notes on terms that do
    not fit."""
    clauses: list[str] = []
    for term in terms_for(cfg.terms, tracked_terms):
        clauses.append(quote(term))
        tag = hashtag(term) if cfg.hashtags else None
        if tag:
            clauses.append(tag)
    suffix = " -is:retweet"
    if cfg.exclude_replies:
        suffix += " -is:reply"
    if cfg.languages:
        langs = [f"lang:{code.strip()}" for code in cfg.languages if code.strip()]
        suffix += " " + (langs[0] if len(langs) == 1 else "(" + " OR ".join(langs) + ")")
    if cfg.extra_query.strip():
        suffix += " " + cfg.extra_query.strip()
    plan = or_queries(clauses, max_length=cfg.max_query_length, prefix="(", suffix=")" + suffix)
    notes = [f"x: terms too long for max_query_length={cfg.max_query_length}: {', '.join(plan.too_long)}"] * bool(
        plan.too_long
    )
    return plan.queries, notes


@dataclass
class QueryState:
    """A query's cursors: ``since_id`` (everything newer than it up to the last run is read) and an optional
    gap (a stretch a stopped run left unread: from ``gap_since`` id or ``gap_start`` time to ``gap_until`` id)."""

    key: str
    since_id: str | None = None
    gap: dict[str, str] | None = None

    @classmethod
    def load(cls, key: str, cursors: Mapping[str, str]) -> QueryState:
        since = cursors.get(f"since_id:{key}") or None
        raw = cursors.get(f"gap:{key}")
        gap = None
        if raw:
            try:
                value = json.loads(raw)
                if isinstance(value, dict) and value.get("until_id"):
                    gap = {k: str(v) for k, v in value.items() if v}
            except ValueError:
                log.warning("x: unreadable gap cursor for query %s, ignoring it", key)
        if since and not since.isdigit():
            since = None
        return cls(key, since, gap)

    def cursors(self) -> dict[str, str]:
        """Both cursors; an empty value clears one (the cursors table keeps keys)."""
        return {
            f"since_id:{self.key}": self.since_id or "",
            f"gap:{self.key}": json.dumps(self.gap, sort_keys=True) if self.gap else "",
        }

    def staleness(self) -> int:
        """Sort key: queries never run, or furthest behind, go first (fairness when the cap stops a run)."""
        return int(self.since_id) if self.since_id else -1

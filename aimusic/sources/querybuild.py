"""Search queries from tracked terms: quoted where needed, OR-joined, split to fit a platform's length limit.

Reddit and X both cap the query length (512 characters by default on both), and the tracked terms together
may not fit in one query. :func:`or_queries` packs terms greedily, in config order, into as few queries as
fit, each wrapped in the platform's prefix/suffix (``(`` ... ``) -is:retweet`` on X). A term that cannot fit
even alone is reported, never silently dropped. :func:`query_key` gives a short stable name for a query, used
in cursor keys so each query keeps its own position.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

_PLAIN = re.compile(r"^[\w]+$", re.UNICODE)


def quote(term: str) -> str:
    """A term as a search clause: a single word stays bare, anything else becomes a quoted phrase."""
    term = " ".join(term.replace('"', " ").split())
    return term if _PLAIN.match(term) else f'"{term}"'


def hashtag(term: str) -> str | None:
    """``#AIMusic`` for "AI music" (multi-word terms only; single words already match their hashtag)."""
    words = [w for w in re.split(r"[\s\-_]+", term.strip()) if w]
    if len(words) < 2:
        return None
    tag = "".join(w[:1].upper() + w[1:] for w in words)
    return f"#{tag}" if _PLAIN.match(tag) else None


@dataclass
class QueryPlan:
    queries: list[str] = field(default_factory=list)
    too_long: list[str] = field(default_factory=list)  # clauses that cannot fit even alone


def or_queries(
    clauses: Iterable[str], *, max_length: int, prefix: str = "", suffix: str = "", joiner: str = " OR "
) -> QueryPlan:
    """Pack ``clauses`` into queries ``prefix + c1 OR c2 ... + suffix`` of at most ``max_length`` characters."""
    plan = QueryPlan()
    overhead = len(prefix) + len(suffix)
    current: list[str] = []
    size = overhead
    for clause in dict.fromkeys(c for c in clauses if c):  # keep order, drop repeats
        if overhead + len(clause) > max_length:
            plan.too_long.append(clause)
            continue
        extra = len(clause) + (len(joiner) if current else 0)
        if current and size + extra > max_length:
            plan.queries.append(prefix + joiner.join(current) + suffix)
            current, size = [], overhead
            extra = len(clause)
        current.append(clause)
        size += extra
    if current:
        plan.queries.append(prefix + joiner.join(current) + suffix)
    return plan


def query_key(query: str) -> str:
    """A short, stable name for a query (for cursor keys): the first 12 hex digits of its SHA-1."""
    return hashlib.sha1(query.encode("utf-8")).hexdigest()[:12]


def terms_for(configured: Sequence[str], tracked: Sequence[str]) -> list[str]:
    """The source's own ``terms`` if configured, else the ``[tracking]`` terms."""
    return [t for t in (configured or tracked) if t and t.strip()]

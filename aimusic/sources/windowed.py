"""The collect loop shared by keyword-search sources that page through time windows (Hacker News, Bluesky).

One query per tracked term (``queries`` overrides), each with its own cursor ``query:<q>`` holding the end of
the last committed window. The time since the cursor (``overlap`` earlier, to catch items indexed late; or
``initial_days`` back on the first run) is cut into windows, oldest first. Each window becomes one
:class:`Batch` whose cursor moves only if the window was read completely; a request budget is shared by all
queries of a run, and items already seen in this run (by ``item_key``) are not normalised twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from aimusic.core.records import Post
from aimusic.sources.base import Batch, CollectContext, normalize_items
from aimusic.sources.errors import SourceStopped
from aimusic.sources.ratelimit import RateLimited, describe_error, now_epoch

#: pages of raw items for (query, start, end, budget); ``budget`` is a one-item list of requests left
FetchWindow = Callable[[str, int, int, list[int]], Iterable[list[Any]]]


class WindowedConfig(Protocol):
    """The config keys the loop reads (the sources' own config models have them)."""

    queries: list[str] | None
    initial_days: float
    overlap_minutes: float
    max_requests: int


class RepeatedPage(RuntimeError):
    """The service returned the same page again: the window is kept as read so far and its cursor moves on."""


def search_queries(configured: list[str] | None, terms: list[str]) -> list[str]:
    """The queries to run: ``configured`` or else the tracking terms, stripped, blanks and repeats dropped."""
    return list(dict.fromkeys(q.strip() for q in (configured or terms) if q.strip()))


def windows(start: int, end: int, size: int) -> list[tuple[int, int]]:
    """``[start, end)`` cut into consecutive slices of at most ``size`` seconds, oldest first."""
    out = []
    lo = start
    while lo < end:
        hi = min(lo + size, end)
        out.append((lo, hi))
        lo = hi
    return out


def collect_windows(
    ctx: CollectContext,
    cfg: WindowedConfig,
    *,
    source: str,
    window_seconds: int,
    fetch: FetchWindow,
    normalize: Callable[[Any], Post | None],
    item_key: Callable[[dict[str, Any]], Any],
    failures: tuple[type[BaseException], ...],
) -> Iterator[Batch]:
    """Batches, one per (query, window), up to the sources' clock's now (:func:`~aimusic.sources.ratelimit.now_epoch`).

    ``failures`` are the errors (after retries) that stop the run at the current query; a
    :class:`RateLimited` or :class:`SourceStopped` stops it too. A stopped window's batch keeps the posts read
    so far but not its cursor, so the next run reads that window again."""
    now = int(now_epoch())
    budget = [cfg.max_requests]
    seen: set[Any] = set()
    overlap = int(cfg.overlap_minutes * 60)
    for query in search_queries(cfg.queries, ctx.topics.tracking.terms):
        key = f"query:{query}"
        committed = ctx.cursors.get(key)
        start = int(float(committed)) - overlap if committed else now - int(cfg.initial_days * 86_400)
        for lo, hi in windows(start, now, max(window_seconds, 60)):
            batch = Batch(cursors={key: str(hi)})
            try:
                for page in fetch(query, lo, hi, budget):
                    fresh = [i for i in page if not (isinstance(i, dict) and item_key(i) in seen)]
                    seen.update(item_key(i) for i in page if isinstance(i, dict))
                    posts, skipped, problems = normalize_items(fresh, normalize, source=source)
                    batch.posts.extend(posts)
                    batch.fetched += len(page)
                    batch.skipped += skipped
                    batch.notes.extend(problems)
            except RepeatedPage as exc:
                batch.notes.append(str(exc))
            except RateLimited as exc:
                batch.cursors.clear()  # the window is incomplete: keep what we have, do not move the cursor
                yield batch
                raise SourceStopped(f"{exc}; resumes from the cursor next run") from None
            except failures as exc:
                batch.cursors.clear()
                yield batch
                raise SourceStopped(f"stopped at {query!r}: {describe_error(exc)}") from None
            except SourceStopped:
                batch.cursors.clear()
                yield batch
                raise
            yield batch

"""Reddit history without API keys, through Arctic Shift's public API (``arctic-shift.photon-reddit.com``).

Arctic Shift archives Reddit as it is posted and serves it back by search: ``/api/posts/search`` and
``/api/comments/search``, at most 100 items a request, filtered by ``subreddit`` and an ``after``/``before``
time window, sorted by ``created_utc``. Its full-text parameters (``query`` for posts, searching title and
self-text; ``body`` for comments) work only together with a subreddit (or author) filter, and accept
PostgreSQL ``websearch_to_tsquery`` syntax, so all tracked terms go into one query joined by ``OR``.

Streams, each with its own cursor (the newest ``created_utc`` committed):
- ``subreddits``: posts and comments matching the tracked terms;
- ``whole_subreddits``: everything (for communities that are entirely on topic).

Pages are read oldest first (``sort=asc``) so the cursor advances with every committed page. The service is
free and run by one person: the client sends an identifying user agent, keeps to ``requests_per_second``,
waits out ``X-RateLimit-Reset`` when told to, and stops at ``max_requests`` per run. Scores and comment
counts are a snapshot: Arctic Shift refreshes them about 36 hours after an item is posted.

Items are stored as ``source = "reddit"`` through the same field mapping as the praw collector
(:mod:`aimusic.sources.reddit_json`), so a post seen here and through the Reddit API or a dump file is one row.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import Any, Literal

import requests
from pydantic import Field, field_validator

from aimusic.core.records import Post, utcnow
from aimusic.sources import reddit_json
from aimusic.sources.base import Batch, CollectContext, Source, SourceConfig, normalize_items, require_reachable
from aimusic.sources.errors import SourceStopped, SourceUnavailable
from aimusic.sources.http import ApiClient, HttpError, LoopGuard, ServerError
from aimusic.sources.ratelimit import RateLimited, describe_error, now_epoch

NAME = "arcticshift"
PAGE_SIZE = 100  # the API's maximum per request


class ArcticShiftConfig(SourceConfig):
    base_url: str = "https://arctic-shift.photon-reddit.com"
    subreddits: list[str] = Field(default_factory=list, description="searched for the tracked terms")
    whole_subreddits: list[str] = Field(default_factory=list, description="every post/comment is fetched")
    kinds: list[Literal["posts", "comments"]] = Field(default_factory=lambda: ["posts", "comments"], min_length=1)
    query: str | None = Field(default=None, description="full-text query; default: tracked terms joined by OR")
    initial_days: float = Field(default=30, gt=0)
    overlap_minutes: float = Field(default=60, ge=0)
    max_requests: int = Field(default=300, ge=1)
    requests_per_second: float = Field(default=1.0, gt=0)
    max_wait_seconds: float = Field(default=120, ge=0)

    @field_validator("subreddits", "whole_subreddits")
    @classmethod
    def _names(cls, values: list[str]) -> list[str]:
        out = []
        for value in values:
            name = value.strip().removeprefix("/").removeprefix("r/")
            if not re.fullmatch(r"[A-Za-z0-9_]{2,32}", name):
                raise ValueError(f"not a subreddit name: {value!r}")
            out.append(name)
        return list(dict.fromkeys(out))


def build_query(terms: list[str]) -> str:
    """Tracked terms as one ``websearch_to_tsquery`` expression: phrases quoted, joined by ``OR``."""
    parts = []
    for term in dict.fromkeys(t.strip() for t in terms if t.strip()):
        clean = term.replace('"', " ").strip()
        parts.append(f'"{clean}"' if re.search(r"[\s\-]", clean) else clean)
    return " OR ".join(parts)


def make_client(cfg: ArcticShiftConfig, user_agent: str) -> ApiClient:
    return ApiClient(
        cfg.base_url, user_agent=user_agent, min_interval=1.0 / cfg.requests_per_second, max_wait=cfg.max_wait_seconds
    )


def stream_key(kind: str, subreddit: str, query: str) -> str:
    """Cursor key of one (kind, subreddit, query) stream; long queries are hashed to keep keys short."""
    digest = hashlib.sha1(query.encode("utf-8")).hexdigest()[:12] if query else "all"
    return f"{kind}:{subreddit.lower()}:{digest}"


class _StreamError(RuntimeError):
    pass


def fetch_stream(
    client: ApiClient, kind: str, subreddit: str, query: str, after: int, before: int, budget: list[int]
) -> Iterator[list[dict[str, Any]]]:
    """Pages of raw items of one stream in ``(after, before)``, oldest first.

    The next page starts one second before the last item's time, so items sharing that second are not lost
    (the caller drops repeats). A page that brings nothing new ends the stream (loop guard).
    """
    guard = LoopGuard()
    cursor = after
    seen: set[str] = set()
    while True:
        if budget[0] <= 0:
            raise SourceStopped("arcticshift: request budget for this run used up (max_requests); resumes next run")
        budget[0] -= 1
        params: dict[str, Any] = {
            "subreddit": subreddit,
            "after": cursor,
            "before": before,
            "limit": PAGE_SIZE,
            "sort": "asc",
        }
        if query:
            params["query" if kind == "posts" else "body"] = query
        try:
            data, _ = client.get_json(f"api/{kind}/search", params)
        except ServerError:
            raise
        except HttpError as exc:
            raise _StreamError(describe_error(exc)) from None
        if isinstance(data, dict) and data.get("error"):
            raise _StreamError(f"{client.host}: {' '.join(str(data['error']).split())[:160]}")
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise _StreamError(f"{client.host} answered without a 'data' list")
        if not items:
            return
        ids = tuple(str(i.get("id")) for i in items if isinstance(i, dict))
        fresh = [i for i in items if not (isinstance(i, dict) and str(i.get("id")) in seen)]
        if guard.repeated(ids) or not fresh:
            return
        seen.update(ids)
        yield fresh
        if len(items) < PAGE_SIZE:
            return
        last = _newest(items)
        if last is None:
            return
        cursor = max(last - 1, cursor)


def normalize_item(item: dict[str, Any]) -> Post | None:
    """One Arctic Shift item (a Reddit submission or comment) -> Post (fetched now)."""
    fields = reddit_json.item_fields(item)
    return None if fields is None else reddit_json.to_post(fields, fetched_at=utcnow())


class ArcticShiftSource(Source[ArcticShiftConfig]):
    """Reddit posts and comments from Arctic Shift (``[sources.arcticshift]``), no Reddit account needed."""

    name = NAME
    default_cron = "40 */6 * * *"

    def check(self, ctx: CollectContext) -> None:
        cfg = self.config(ctx.topics)
        if not cfg.subreddits and not cfg.whole_subreddits:
            raise SourceUnavailable("no subreddits configured ([sources.arcticshift] subreddits)")
        require_reachable(cfg.base_url, ctx.settings.user_agent)

    def streams(self, cfg: ArcticShiftConfig, terms: list[str]) -> list[tuple[str, str, str]]:
        query = cfg.query or build_query(terms)
        out = [(kind, sub, query) for sub in cfg.subreddits for kind in cfg.kinds]
        out += [(kind, sub, "") for sub in cfg.whole_subreddits for kind in cfg.kinds]
        return out

    def collect(self, ctx: CollectContext) -> Iterator[Batch]:
        cfg = self.config(ctx.topics)
        client = make_client(cfg, ctx.settings.user_agent)
        now = int(now_epoch())
        budget = [cfg.max_requests]
        overlap = int(cfg.overlap_minutes * 60)
        server_failures = 0
        for kind, sub, query in self.streams(cfg, ctx.topics.tracking.terms):
            key = stream_key(kind, sub, query)
            committed = ctx.cursors.get(key)
            after = int(float(committed)) - overlap if committed else now - int(cfg.initial_days * 86_400)
            label = f"r/{sub} {kind}" + (" (search)" if query else "")
            newest = int(float(committed)) if committed else None
            try:
                for items in fetch_stream(client, kind, sub, query, after, now, budget):
                    posts, skipped, problems = normalize_items(items, normalize_item, source=NAME)
                    stamp = _newest(items)
                    if stamp is not None:
                        newest = min(stamp, now) if newest is None else max(newest, min(stamp, now))
                    cursors = {key: str(newest)} if newest is not None else {}
                    yield Batch(posts=posts, fetched=len(items), skipped=skipped, cursors=cursors, notes=problems)
            except _StreamError as exc:
                yield Batch(notes=[f"{label}: {exc}"])
            except ServerError as exc:
                server_failures += 1
                if server_failures >= 2:
                    raise SourceStopped(f"{client.host} keeps failing ({describe_error(exc)}); stopped") from None
                yield Batch(notes=[f"{label}: {describe_error(exc)} after retries; skipped"])
            except RateLimited as exc:
                raise SourceStopped(f"{exc}; resumes from the cursor next run") from None
            except requests.RequestException as exc:
                raise SourceStopped(f"{client.host} failed at {label}: {describe_error(exc)}") from None
        ctx.logger.info("arcticshift: %d requests", client.requests)


def _newest(items: list[dict[str, Any]]) -> int | None:
    stamps = []
    for item in items:
        try:
            stamps.append(int(reddit_json.epoch(item.get("created_utc"))))
        except (AttributeError, ValueError, TypeError, OverflowError):
            continue
    return max(stamps) if stamps else None

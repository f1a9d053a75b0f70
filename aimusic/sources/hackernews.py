"""Hacker News through the Algolia search API (``hn.algolia.com/api/v1``): no account, no key.

One query per tracked term against ``search_by_date`` (newest first), stories and comments. Algolia returns
at most 1,000 hits per query, so the time since the cursor is cut into windows (``window_days``), oldest
first, and a window holding more than a page is walked downward: the next request covers only what is older
than the oldest hit received. A window's end becomes the term's cursor once its posts are committed; the
next run starts ``overlap_minutes`` before it, to catch items Algolia indexed late.

Algolia matches words, not phrases, and tolerates typos, so hits are a superset: the relevance filter
(``[tracking]`` / ``[relevance]``) decides what is kept, exactly as for every other source.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Literal

import requests
from pydantic import Field

from aimusic.core.records import Post
from aimusic.sources.base import Batch, CollectContext, Source, SourceConfig, require_reachable
from aimusic.sources.errors import SourceStopped
from aimusic.sources.htmltext import html_to_text
from aimusic.sources.http import ApiClient, HttpError, LoopGuard, ServerError
from aimusic.sources.windowed import RepeatedPage, collect_windows

SOURCE = "hackernews"
ITEM_URL = "https://news.ycombinator.com/item?id={}"
_LITERAL_NEWLINE = re.compile(r"(?:\\r)?\\n")  # the two characters backslash + n (optionally after backslash + r)


class HackerNewsConfig(SourceConfig):
    base_url: str = "https://hn.algolia.com/api/v1"
    queries: list[str] | None = Field(default=None, description="search queries; default: the tracking terms")
    kinds: list[Literal["story", "comment"]] = Field(default_factory=lambda: ["story", "comment"], min_length=1)
    initial_days: float = Field(default=30, gt=0, description="how far back the first run goes")
    window_days: float = Field(default=7, gt=0, description="time slice per query (oldest first)")
    overlap_minutes: float = Field(default=30, ge=0, description="re-read before the cursor (late indexing)")
    hits_per_page: int = Field(default=1000, ge=1, le=1000)
    max_requests: int = Field(default=600, ge=1, description="per run; the rest is picked up next run")
    requests_per_second: float = Field(default=4.0, gt=0)
    max_wait_seconds: float = Field(default=120, ge=0, description="longest rate-limit wait slept through")


# --- client and fetch --------------------------------------------------------------------------------------


def make_client(cfg: HackerNewsConfig, user_agent: str) -> ApiClient:
    return ApiClient(
        cfg.base_url,
        user_agent=user_agent,
        min_interval=1.0 / cfg.requests_per_second,
        max_wait=cfg.max_wait_seconds,
    )


def _tags(kinds: list[str]) -> str:
    unique = list(dict.fromkeys(kinds))
    return unique[0] if len(unique) == 1 else "(" + ",".join(unique) + ")"


def fetch_window(
    client: ApiClient, query: str, start: int, end: int, *, kinds: list[str], hits_per_page: int, budget: list[int]
) -> Iterator[list[dict[str, Any]]]:
    """Pages of raw hits for ``query`` created in ``[start, end)``, newest first, past the 1,000-hit cap.

    Each request asks for everything older than the oldest hit seen so far (inclusive of that second, so
    hits sharing it are not lost; repeats are removed by the caller). ``budget`` is a one-item list holding
    the requests left for this run; it raises :class:`SourceStopped` when it reaches zero.
    """
    upper = end
    guard = LoopGuard()
    while upper > start:
        if budget[0] <= 0:
            raise SourceStopped("hackernews: request budget for this run used up (max_requests); resumes next run")
        budget[0] -= 1
        params = {
            "query": query,
            "tags": _tags(kinds),
            "numericFilters": f"created_at_i>={start},created_at_i<{upper}",
            "hitsPerPage": hits_per_page,
            "page": 0,
        }
        data, _ = client.get_json("search_by_date", params)
        if not isinstance(data, dict) or not isinstance(data.get("hits"), list):
            raise HttpError(f"{client.host} answered without a 'hits' list")
        hits: list[dict[str, Any]] = data["hits"]
        if not hits:
            return
        signature = tuple(str(h.get("objectID")) for h in hits if isinstance(h, dict))
        if guard.repeated(signature):
            raise RepeatedPage(f"{client.host} returned the same page again for {query!r}; stopped paging this window")
        yield hits
        total = data.get("nbHits")
        if len(hits) < hits_per_page or (isinstance(total, int) and total <= len(hits)):
            return
        stamps = [h.get("created_at_i") for h in hits if isinstance(h, dict)]
        stamps = [s for s in stamps if isinstance(s, int)]
        if not stamps:
            return
        oldest = min(stamps)
        # everything newer than ``oldest`` is in hand: ask again up to and including that second
        upper = oldest + 1 if oldest + 1 < upper else oldest


# --- normalize -----------------------------------------------------------------------------------------------


def hn_text(value: Any) -> str:
    """Plain text of a story's or comment's HTML; the literal ``\\n`` (backslash, n) some items carry instead of
    a line break becomes one."""
    return html_to_text(_LITERAL_NEWLINE.sub("\n", value) if isinstance(value, str) else value)


def normalize_hit(hit: dict[str, Any]) -> Post | None:
    """One Algolia hit (story or comment) -> Post; ``None`` for hits without any text (deleted, job ads)."""
    tags = hit.get("_tags") or []
    object_id = hit["objectID"]
    created = hit.get("created_at_i")
    if created is None:
        created = hit["created_at"]
    is_comment = "comment" in tags or (hit.get("comment_text") is not None and not hit.get("title"))
    if is_comment:
        text = hn_text(hit.get("comment_text"))
        if not text:
            return None
        story_id = hit.get("story_id")
        return Post(
            source=SOURCE,
            post_id=object_id,
            kind="comment",
            parent_id=hit.get("parent_id"),
            thread_id=story_id,
            created_at=created,
            author=hit.get("author"),
            text=text,
            url=ITEM_URL.format(object_id),
            score=hit.get("points"),
            community="news.ycombinator.com",
        )
    title = hit.get("title")
    text = hn_text(hit.get("story_text"))
    if not title and not text:
        return None
    return Post(
        source=SOURCE,
        post_id=object_id,
        kind="post",
        thread_id=object_id,
        created_at=created,
        author=hit.get("author"),
        title=title,
        text=text,
        url=ITEM_URL.format(object_id),
        score=hit.get("points"),
        replies=hit.get("num_comments"),
        community="news.ycombinator.com",
    )


# --- the source ------------------------------------------------------------------------------------------------


class HackerNewsSource(Source[HackerNewsConfig]):
    """Stories and comments from Hacker News matching the tracked terms (``[sources.hackernews]``)."""

    name = SOURCE
    default_cron = "15 */3 * * *"

    def check(self, ctx: CollectContext) -> None:
        require_reachable(self.config(ctx.topics).base_url, ctx.settings.user_agent)

    def collect(self, ctx: CollectContext) -> Iterator[Batch]:
        cfg = self.config(ctx.topics)
        client = make_client(cfg, ctx.settings.user_agent)
        yield from collect_windows(
            ctx,
            cfg,
            source=SOURCE,
            window_seconds=int(cfg.window_days * 86_400),
            fetch=lambda query, lo, hi, budget: fetch_window(
                client, query, lo, hi, kinds=cfg.kinds, hits_per_page=cfg.hits_per_page, budget=budget
            ),
            normalize=normalize_hit,
            item_key=lambda hit: str(hit.get("objectID")),
            failures=(ServerError, HttpError, requests.RequestException),
        )
        ctx.logger.info("hackernews: %d requests", client.requests)

"""Comment threads: fetching a post with its comments ("load more" within a budget), and the list of threads
whose comments are fetched and refreshed while they are young."""

from __future__ import annotations

import heapq
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import praw

from aimusic.core.records import Post
from aimusic.sources.reddit.client import MalformedResponse, describe, get_json
from aimusic.sources.reddit.config import MORECHILDREN_BATCH, WATCH_MAX
from aimusic.sources.reddit.listings import parse_listing

log = logging.getLogger(__name__)


@dataclass
class Thread:
    post: Any | None  # the raw t3 thing
    comments: list[Any] = field(default_factory=list)  # raw t1 things, flattened
    more_left: int = 0  # comments behind "more" stubs not expanded (budget or threshold)
    requests: int = 1


def flatten_comments(children: Iterable[Any]) -> tuple[list[Any], list[dict]]:
    """Flatten a comment tree: (t1 things in pre-order, "more" stubs' data). Non-dict children are kept in the
    comment list so the normaliser counts them as malformed."""
    comments: list[Any] = []
    stubs: list[dict] = []
    stack = list(reversed(list(children)))
    while stack:
        thing = stack.pop()
        kind = thing.get("kind") if isinstance(thing, dict) else None
        data = thing.get("data") if isinstance(thing, dict) else None
        if kind == "more" and isinstance(data, dict):
            stubs.append(data)
            continue
        comments.append(thing)
        replies = data.get("replies") if isinstance(data, dict) else None
        if isinstance(replies, dict):
            try:
                kids, _ = parse_listing(replies)
            except MalformedResponse:
                continue
            stack.extend(reversed(kids))
    return comments, stubs


def fetch_thread(
    reddit: praw.Reddit,
    post_id: str,
    *,
    sort: str = "confidence",
    depth: int = 10,
    limit: int = 500,
    replace_more_limit: int = 5,
    replace_more_threshold: int = 0,
    rate_limit_max_wait: float = 60,
) -> Thread:
    """A post and its comments, with at most ``replace_more_limit`` "load more comments" requests.

    Like praw's ``replace_more(limit, threshold)``: the largest hidden branches are expanded first, stubs
    hiding fewer than ``threshold`` comments are left alone, and "continue this thread" links (beyond
    ``depth``) are not followed.
    """
    payload = get_json(
        reddit, f"comments/{post_id}/", {"sort": sort, "depth": depth, "limit": limit},
        rate_limit_max_wait=rate_limit_max_wait,
    )
    if not isinstance(payload, list) or len(payload) != 2:
        raise MalformedResponse(f"a thread should be a list of two Listings, got {describe(payload)}")
    posts, _ = parse_listing(payload[0])
    roots, _ = parse_listing(payload[1])
    comments, stubs = flatten_comments(roots)
    thread = Thread(post=posts[0] if posts else None)
    queue: list[tuple[int, int, list[str]]] = []
    tie = 0

    def push(found: list[dict]) -> None:
        nonlocal tie
        for stub in found:
            ids = [c for c in stub.get("children") or [] if isinstance(c, str)]
            count = _int(stub.get("count")) or len(ids)
            if ids and count >= replace_more_threshold:
                tie += 1
                heapq.heappush(queue, (-count, tie, ids))

    push(stubs)
    budget = replace_more_limit
    while queue and budget > 0:
        neg_count, _, ids = heapq.heappop(queue)
        chunk, rest = ids[:MORECHILDREN_BATCH], ids[MORECHILDREN_BATCH:]
        if rest:
            tie += 1
            heapq.heappush(queue, (neg_count + len(chunk), tie, rest))
        more = get_json(
            reddit,
            "api/morechildren/",
            {"api_type": "json", "link_id": f"t3_{post_id}", "children": ",".join(chunk), "sort": sort},
            rate_limit_max_wait=rate_limit_max_wait,
        )
        thread.requests += 1
        budget -= 1
        things = ((more or {}).get("json") or {}).get("data", {}).get("things") if isinstance(more, dict) else None
        if not isinstance(things, list):
            raise MalformedResponse(f"morechildren: expected json.data.things, got {describe(more)}")
        found, new_stubs = flatten_comments(things)
        comments.extend(c for c in found if _depth(c) < depth)
        push([s for s in new_stubs if _int(s.get("depth")) is None or _int(s.get("depth")) < depth])
    thread.more_left = sum(-c for c, _, _ in queue)
    seen: set[str] = set()
    for comment in comments:
        cid = comment.get("data", {}).get("id") if isinstance(comment, dict) else None
        if isinstance(cid, str):
            if cid in seen:
                continue
            seen.add(cid)
        thread.comments.append(comment)
    return thread


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def _depth(thing: Any) -> int:
    data = thing.get("data") if isinstance(thing, dict) else None
    return (_int(data.get("depth")) or 0) if isinstance(data, dict) else 0




@dataclass
class Watchlist:
    """Threads whose comments are fetched: id -> [created_utc, last fetched (0 = never), comments seen].

    Kept as JSON in the ``watch`` cursor, committed with the posts that added them, so a thread found by a
    run that then stops is still fetched by the next one.
    """

    entries: dict[str, list[float]] = field(default_factory=dict)

    @classmethod
    def load(cls, raw: str | None) -> Watchlist:
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            log.warning("reddit: unreadable watch cursor, starting a new thread list")
            data = {}
        entries = {}
        for key, value in data.items() if isinstance(data, dict) else ():
            if isinstance(key, str) and isinstance(value, list) and len(value) == 3:
                try:
                    entries[key] = [float(v) for v in value]
                except (TypeError, ValueError):
                    continue
        return cls(entries)

    def dump(self) -> str:
        return json.dumps(self.entries, separators=(",", ":"), sort_keys=True)

    def add(self, post: Post) -> None:
        entry = self.entries.get(post.post_id)
        comments = float(post.replies or 0)
        if entry is None:
            self.entries[post.post_id] = [post.created_at.timestamp(), 0.0, comments]
        else:
            entry[2] = comments

    def mark(self, post_id: str, when: datetime, comments: int | None) -> None:
        entry = self.entries.get(post_id)
        if entry is not None:
            entry[1] = when.timestamp()
            if comments is not None:
                entry[2] = float(comments)

    def drop(self, post_id: str) -> None:
        self.entries.pop(post_id, None)

    def due(self, now: datetime, refresh_hours: float, every_hours: float) -> list[str]:
        """Threads to fetch now, most urgent first; prunes those past their refresh window."""
        t = now.timestamp()
        window, every = refresh_hours * 3600, every_hours * 3600
        first: list[tuple[float, str]] = []
        refresh: list[tuple[float, str]] = []
        for post_id, (created, fetched, comments) in list(self.entries.items()):
            young = t - created < window
            if fetched == 0 and comments > 0:
                first.append((-created, post_id))
            elif young and t - max(fetched, created) >= every:
                refresh.append((fetched, post_id))
            elif not young:
                del self.entries[post_id]
        if len(self.entries) > WATCH_MAX:
            for post_id in sorted(self.entries, key=lambda k: self.entries[k][0])[: len(self.entries) - WATCH_MAX]:
                del self.entries[post_id]
        return [p for _, p in sorted(first)] + [p for _, p in sorted(refresh) if p in self.entries]

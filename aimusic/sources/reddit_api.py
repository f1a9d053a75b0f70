"""Reddit's JSON API through praw: requests, listings, comment threads. No normalisation here.

praw (prawcore) authenticates, throttles on Reddit's ``x-ratelimit-*`` headers and retries 5xx answers and
timeouts twice; :func:`get_json` adds the policy for a 429 that still gets through (wait when the reset is
short, otherwise :class:`RateLimited`) and turns rejected credentials into
:class:`~aimusic.sources.base.SourceUnavailable`. Everything returned is Reddit's own JSON (``raw_json=1``),
so the pure normalisers in :mod:`aimusic.sources.reddit` and the test fixtures share one format.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import praw
import prawcore
import requests

from aimusic.sources.base import SourceUnavailable

log = logging.getLogger(__name__)

MORECHILDREN_BATCH = 100  # ids per /api/morechildren request


def _sleep(seconds: float) -> None:  # patched in tests
    time.sleep(seconds)


class MalformedResponse(ValueError):
    """Reddit answered with JSON of an unexpected shape."""


class RateLimited(RuntimeError):
    """A 429 whose reset is too far away to wait for; ``wait`` is the reset in seconds (None if unknown)."""

    def __init__(self, wait: float | None) -> None:
        self.wait = wait
        super().__init__("rate limited (429)" + (f", reset in {wait:.0f}s" if wait is not None else ""))


def _reset_seconds(response: requests.Response | None) -> float | None:
    if response is None:
        return None
    for header in ("x-ratelimit-reset", "retry-after"):
        value = response.headers.get(header)
        if value:
            try:
                return max(float(value), 0.0)
            except ValueError:
                continue
    return None


def get_json(reddit: praw.Reddit, path: str, params: dict[str, Any], *, rate_limit_max_wait: float = 60) -> Any:
    """GET ``path`` through praw (auth, rate limiter, retries) and return Reddit's JSON.

    A 429 with a reset of at most ``rate_limit_max_wait`` seconds is waited out (twice at most); a longer one
    raises :class:`RateLimited`. Rejected credentials raise :class:`SourceUnavailable`.
    """
    for attempt in range(3):
        try:
            return reddit.request(method="GET", path=path, params=params)
        except prawcore.TooManyRequests as exc:
            wait = _reset_seconds(exc.response)
            if wait is None or wait > rate_limit_max_wait or attempt == 2:
                raise RateLimited(wait) from None
            log.warning("reddit: rate limited (429) on %s, waiting %.0fs for the reset", path, wait)
            _sleep(wait + 1)
        except prawcore.OAuthException as exc:
            raise SourceUnavailable(
                f"reddit: Reddit rejected the login ({exc.error}): check REDDIT_USERNAME and REDDIT_PASSWORD"
            ) from None
        except (prawcore.InvalidToken, KeyError) as exc:
            # prawcore maps a 401 without a www-authenticate header to a KeyError
            if isinstance(exc, KeyError) and exc.args != (401,):
                raise
            raise SourceUnavailable(
                "reddit: Reddit rejected the credentials (401): check REDDIT_CLIENT_ID and REDDIT_CLIENT_SECRET"
            ) from None
        except prawcore.ResponseException as exc:
            if exc.response is not None and exc.response.status_code == 401:
                raise SourceUnavailable(
                    "reddit: Reddit rejected the credentials (401): check REDDIT_CLIENT_ID and REDDIT_CLIENT_SECRET"
                ) from None
            raise
    raise AssertionError("unreachable")


def parse_listing(payload: Any) -> tuple[list[Any], str | None]:
    """The children and ``after`` token of a Listing; :class:`MalformedResponse` if it is not one."""
    if not isinstance(payload, dict) or payload.get("kind") != "Listing" or not isinstance(payload.get("data"), dict):
        raise MalformedResponse(f"expected a Listing, got {_describe(payload)}")
    children = payload["data"].get("children")
    if not isinstance(children, list):
        raise MalformedResponse("a Listing without a list of children")
    after = payload["data"].get("after")
    return children, after if isinstance(after, str) and after else None


def _describe(payload: Any) -> str:
    if isinstance(payload, dict):
        return f"an object with keys {sorted(payload)[:5]}"
    return type(payload).__name__


@dataclass
class ListingPage:
    items: list[Any]
    after: str | None


def fetch_listing(
    reddit: praw.Reddit,
    path: str,
    params: dict[str, Any],
    *,
    page_size: int = 100,
    max_pages: int = 10,
    rate_limit_max_wait: float = 60,
) -> Iterator[ListingPage]:
    """Page through one listing (``after`` tokens), yielding each page's raw children."""
    after: str | None = None
    seen = 0
    for _ in range(max_pages):
        page_params = {**params, "limit": page_size}
        if after:
            page_params.update(after=after, count=seen)
        payload = get_json(reddit, path, page_params, rate_limit_max_wait=rate_limit_max_wait)
        items, after = parse_listing(payload)
        seen += len(items)
        yield ListingPage(items, after)
        if not after or not items:
            return


def created_utc(item: Any) -> float | None:
    """``data.created_utc`` of a raw thing, or None if absent or not a number."""
    data = item.get("data") if isinstance(item, dict) else None
    value = data.get("created_utc") if isinstance(data, dict) else None
    if isinstance(value, bool):
        return None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


@dataclass
class Walk:
    """How reading one listing down to a threshold went."""

    threshold: float
    newest: float | None = None
    read: int = 0  # items read, including those older than the threshold on the last page
    reached: bool = False  # an item at or before the threshold was seen: everything newer is covered
    ended: bool = False  # the listing had no further page


def walk_listing(pages: Iterable[ListingPage], walk: Walk) -> Iterator[list[Any]]:
    """Yield, page by page, the items newer than ``walk.threshold``; stop after the page that reaches it.

    Listings are newest first, so the page whose last dated item is at or before the threshold is the last
    one needed. Items without a readable date are passed on (the normaliser counts them as malformed).
    """
    for page in pages:
        walk.read += len(page.items)
        window = []
        for item in page.items:
            ts = created_utc(item)
            if ts is not None:
                walk.newest = ts if walk.newest is None else max(walk.newest, ts)
            if ts is None or ts > walk.threshold:
                window.append(item)
        dated = [ts for ts in map(created_utc, page.items) if ts is not None]
        walk.reached = bool(dated) and dated[-1] <= walk.threshold
        walk.ended = page.after is None
        if window:
            yield window
        if walk.reached:
            return


# --- threads ------------------------------------------------------------------------------------------------


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
        raise MalformedResponse(f"a thread should be a list of two Listings, got {_describe(payload)}")
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
            raise MalformedResponse(f"morechildren: expected json.data.things, got {_describe(more)}")
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



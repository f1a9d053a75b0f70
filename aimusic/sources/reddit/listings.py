"""What a run reads: the listings (search, new posts, new comments), paged with Reddit's ``after`` tokens and
read down to the previous run's position."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import praw

from aimusic.sources.querybuild import or_queries, query_key, quote, terms_for
from aimusic.sources.reddit.client import MalformedResponse, describe, get_json
from aimusic.sources.reddit.config import RedditConfig


def parse_listing(payload: Any) -> tuple[list[Any], str | None]:
    """The children and ``after`` token of a Listing; :class:`MalformedResponse` if it is not one."""
    if not isinstance(payload, dict) or payload.get("kind") != "Listing" or not isinstance(payload.get("data"), dict):
        raise MalformedResponse(f"expected a Listing, got {describe(payload)}")
    children = payload["data"].get("children")
    if not isinstance(children, list):
        raise MalformedResponse("a Listing without a list of children")
    after = payload["data"].get("after")
    return children, after if isinstance(after, str) and after else None


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



@dataclass(frozen=True)
class Listing:
    """One listing to read: its cursor key, path and parameters."""

    key: str
    label: str
    path: str
    params: dict[str, str]
    things: Literal["t3", "t1"] = "t3"
    search: bool = False


def plan_listings(cfg: RedditConfig, tracked_terms: list[str]) -> tuple[list[Listing], list[str]]:
    """The listings a run reads, and notes about terms that cannot be searched."""
    notes: list[str] = []
    listings: list[Listing] = []
    for sub in cfg.on_topic_subreddits:
        listings.append(Listing(f"new:{sub}", f"r/{sub} new posts", f"r/{sub}/new/", {}))
        if cfg.subreddit_comments:
            listings.append(Listing(f"comments:{sub}", f"r/{sub} new comments", f"r/{sub}/comments/", {}, "t1"))
    plan = or_queries(
        (quote(t) for t in terms_for(cfg.terms, tracked_terms)), max_length=cfg.max_query_length
    )
    if plan.too_long:
        notes.append(f"reddit: terms longer than max_query_length not searched: {', '.join(plan.too_long)}")
    on_topic = {s.casefold() for s in cfg.on_topic_subreddits}
    where = (["all"] if cfg.search_all else []) + [s for s in cfg.subreddits if s.casefold() not in on_topic]
    for n, query in enumerate(plan.queries, 1):
        label = f" (query {n}/{len(plan.queries)})" if len(plan.queries) > 1 else ""
        for sub in where:
            params = {"q": query, "sort": "new", "type": "link", "include_over_18": "on"}
            params["restrict_sr"] = "off" if sub == "all" else "on"
            name = "all of Reddit" if sub == "all" else f"r/{sub}"
            listings.append(
                Listing(f"search:{sub}:{query_key(query)}", f"search of {name}{label}", f"r/{sub}/search/", params,
                        search=True)
            )
    return listings, notes


_TIME_FILTERS = [
    ("hour", timedelta(hours=1)),
    ("day", timedelta(days=1)),
    ("week", timedelta(days=7)),
    ("month", timedelta(days=30)),
    ("year", timedelta(days=365)),
]


def time_filter(age: timedelta) -> str:
    """The narrowest search time filter (``t``) that still covers ``age`` (with a few minutes' margin)."""
    for name, span in _TIME_FILTERS:
        if age + timedelta(minutes=5) <= span:
            return name
    return "all"


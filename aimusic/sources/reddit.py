"""Reddit through praw: the tracked terms searched across Reddit and in chosen subreddits, on-topic subreddits
read whole, and the comment threads of relevant posts followed while they are young.

Shape (as every source): :class:`RedditConfig` (``[sources.reddit]``), :func:`make_client` (praw, credentials
passed explicitly or read from :class:`~aimusic.core.config.Settings`), fetch generators (:func:`fetch_listing`,
:func:`fetch_thread`) that yield the raw JSON Reddit returns, and pure :func:`normalize_submission` /
:func:`normalize_comment` turning one raw item into a :class:`~aimusic.core.records.Post`.

praw does authentication (OAuth2, app-only or script), rate limiting (it sleeps on Reddit's
``x-ratelimit-*`` headers) and retries 5xx answers and timeouts twice; requests go through
``praw.Reddit.request`` so the normaliser sees Reddit's own JSON, not praw objects.

What a run reads (each listing newest first, ``sort=new``):

* ``search``: the OR-joined tracked terms (split to fit ``max_query_length``) across all of Reddit and within
  each of ``subreddits``;
* ``new`` and ``comments``: every post and every comment of ``on_topic_subreddits``;
* threads: the comments of relevant posts found by search (fetched once, then refreshed while the post is
  younger than ``comment_refresh_hours``), with ``comment_depth``, ``comment_limit`` and a ``replace_more_limit``
  budget of "load more comments" requests per thread.

Incremental: each listing has a cursor (the newest ``created_utc`` it has seen) keyed by listing and query,
committed with the posts; the next run reads down to that point minus ``overlap_minutes`` (search indexes
posts late). Reddit serves at most ~1,000 items of any listing: when a listing ends before the previous
run's position, the gap is reported in the run summary (run more often, narrow the terms, or fill it from the
Arctic Shift source). Comments inherit their thread's relevance: a thread is committed as one batch (post and
comments), and the relevance filter keeps comments whose thread's post is relevant.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import praw
import prawcore
import requests
from pydantic import Field, SecretStr, field_validator

from aimusic.core.config import Settings, get_settings
from aimusic.core.records import Post, utcnow
from aimusic.debate.relevance import RelevanceFilter
from aimusic.sources import reddit_json
from aimusic.sources.base import (
    Batch,
    CollectContext,
    Source,
    SourceConfig,
    SourceStopped,
    SourceUnavailable,
    normalize_items,
)
from aimusic.sources.querybuild import or_queries, query_key, quote, terms_for
from aimusic.sources.reddit_api import (
    MalformedResponse,
    RateLimited,
    Thread,
    Walk,
    fetch_listing,
    fetch_thread,
    get_json,
    parse_listing,
    walk_listing,
)

log = logging.getLogger(__name__)

#: Reddit stops any listing (search, new, comments) after about this many items
LISTING_CAP = 1000
WATCH_MAX = 5000  # threads remembered for comment refreshes
MAX_NOTES = 6  # sample lines about malformed items per run
_SUBREDDIT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]{1,20}$")
FAILED = object()  # what RedditRun._request returns for a failed request
GONE = object()  # a thread that is no longer there


def _utcnow() -> datetime:  # patched in tests
    return datetime.now(UTC)


# --- config -----------------------------------------------------------------------------------------------


class RedditConfig(SourceConfig):
    """``[sources.reddit]`` in data/topics.toml (every key is optional)."""

    subreddits: list[str] = Field(default_factory=list, description="searched for the tracked terms")
    on_topic_subreddits: list[str] = Field(default_factory=list, description="read whole: newest posts and comments")
    search_all: bool = Field(default=True, description="also search all of Reddit")
    terms: list[str] = Field(default_factory=list, description="search terms; empty = [tracking] terms")
    max_query_length: int = Field(default=512, ge=32, le=4096)
    overlap_minutes: float = Field(default=120, ge=0, description="re-read this far behind the last position")
    first_run_days: float = Field(default=7, gt=0, description="how far back a listing's first run reads")
    page_size: int = Field(default=100, ge=1, le=100)
    max_pages: int = Field(default=10, ge=1, description="pages per listing per run (10 x 100 = the ~1,000 cap)")
    comments: bool = Field(default=True, description="fetch the comment threads of relevant posts")
    subreddit_comments: bool = Field(default=True, description="read on-topic subreddits' comment streams")
    comment_sort: Literal["confidence", "top", "new", "controversial", "old", "qa"] = "confidence"
    comment_depth: int = Field(default=10, ge=1, le=10)
    comment_limit: int = Field(default=500, ge=1, le=500)
    replace_more_limit: int = Field(default=5, ge=0, description="'load more comments' requests per thread")
    replace_more_threshold: int = Field(default=0, ge=0, description="skip 'more' stubs hiding fewer comments")
    comment_refresh_hours: float = Field(default=48, ge=0, description="refresh threads younger than this")
    comment_refresh_every_hours: float = Field(default=6, gt=0, description="at most one refresh per interval")
    max_threads_per_run: int = Field(default=100, ge=0)
    include_nsfw: bool = Field(default=True, description="keep posts marked NSFW (stored with nsfw = true)")
    skip_authors: list[str] = Field(default_factory=lambda: ["AutoModerator"])
    rate_limit_max_wait: float = Field(default=60, ge=0, description="a 429 with a shorter reset is waited out")
    timeout: float = Field(default=16, gt=0, description="seconds per HTTP request")
    oauth_url: str = "https://oauth.reddit.com"
    reddit_url: str = "https://www.reddit.com"

    @field_validator("subreddits", "on_topic_subreddits")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        names = []
        for raw in value:
            name = raw.strip().removeprefix("/").removeprefix("r/").strip("/")
            if not _SUBREDDIT.match(name):
                raise ValueError(f"not a subreddit name: {raw!r}")
            names.append(name)
        return list(dict.fromkeys(names))


# --- credentials and client ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RedditCredentials:
    """An OAuth app's credentials; username and password only for a "script" app acting as its owner."""

    client_id: str
    client_secret: SecretStr
    user_agent: str
    username: str | None = None
    password: SecretStr | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> RedditCredentials:
        """Read REDDIT_* settings; raise :class:`SourceUnavailable` with a one-line reason if incomplete."""
        missing = [
            name
            for name, value in (
                ("REDDIT_CLIENT_ID", settings.reddit_client_id),
                ("REDDIT_CLIENT_SECRET", settings.reddit_client_secret),
            )
            if not value or (isinstance(value, SecretStr) and not value.get_secret_value())
        ]
        if missing:
            raise SourceUnavailable(
                f"reddit: no API credentials ({', '.join(missing)} not set in the environment or .env); Reddit "
                "approves API access case by case, see the README (the arcticshift source needs no keys)"
            )
        if bool(settings.reddit_username) != bool(settings.reddit_password):
            names = ("REDDIT_USERNAME", "REDDIT_PASSWORD")
            given, absent = names if settings.reddit_username else names[::-1]
            raise SourceUnavailable(f"reddit: {given} is set but {absent} is not (set both, or neither)")
        assert settings.reddit_client_id and settings.reddit_client_secret
        return cls(
            client_id=settings.reddit_client_id,
            client_secret=settings.reddit_client_secret,
            user_agent=settings.reddit_user_agent or settings.user_agent,
            username=settings.reddit_username,
            password=settings.reddit_password,
        )


def make_client(
    credentials: RedditCredentials | None = None,
    *,
    settings: Settings | None = None,
    oauth_url: str = "https://oauth.reddit.com",
    reddit_url: str = "https://www.reddit.com",
    timeout: float = 16,
) -> praw.Reddit:
    """A read-only praw client. Credentials default to REDDIT_* from the environment / .env.

    No request is made here; the first request fetches the OAuth token.
    """
    creds = credentials or RedditCredentials.from_settings(settings or get_settings())
    return praw.Reddit(
        client_id=creds.client_id,
        client_secret=creds.client_secret.get_secret_value(),
        user_agent=creds.user_agent,
        username=creds.username,
        password=creds.password.get_secret_value() if creds.password else None,
        oauth_url=oauth_url.rstrip("/"),
        reddit_url=reddit_url.rstrip("/"),
        timeout=timeout,
        check_for_updates=False,
        check_for_async=False,
    )


# --- normalisation (pure) ------------------------------------------------------------------------------------
# The field mapping (ids, deleted content, crossposts) lives in aimusic.sources.reddit_json, shared with the
# arcticshift source and the dump backfill, so a post seen through the API, Arctic Shift and a dump file is one row
# with the same values. This module only adds what the live API needs and checks for partial objects.


def _unwrap(item: Any, kind: str) -> dict:
    """The ``data`` of a ``{"kind": ..., "data": {...}}`` thing (or the data object itself)."""
    if not isinstance(item, dict):
        raise TypeError(f"expected a JSON object, got {type(item).__name__}")
    if "kind" in item and "data" in item:
        if item["kind"] != kind:
            raise ValueError(f"expected a {kind} thing, got {item['kind']!r}")
        data = item["data"]
        if not isinstance(data, dict):
            raise TypeError(f"{kind}.data is {type(data).__name__}, not an object")
        return data
    return item


def crosspost_parent(item: Any) -> str | None:
    """The original's fullname (``t3_...``) when ``item`` is a crosspost that does not embed its original."""
    data = item.get("data") if isinstance(item, dict) and "data" in item else item
    if not isinstance(data, dict) or not isinstance(data.get("crosspost_parent"), str):
        return None
    originals = data.get("crosspost_parent_list")
    if isinstance(originals, list) and originals and isinstance(originals[0], dict):
        return None
    parent = data["crosspost_parent"]
    return parent if parent.startswith("t3_") else f"t3_{parent}"


def bare_id(post_id: str) -> str:
    """Reddit's base-36 id of a stored post id (``t3_abc`` or ``abc``), as API paths want it."""
    return post_id.removeprefix("t3_")


def normalize_submission(item: Any, *, fetched_at: datetime | None = None) -> Post | None:
    """One raw submission (a ``t3`` thing or its ``data``) as a Post; None when nothing of it is left.

    * a crosspost becomes its original (``crosspost_parent_list[0]``), so a post shared to several
      subreddits is one row; without the embedded original it returns None (see :func:`crosspost_parent`);
    * "[deleted]" / "[removed]" bodies become empty text (the title stays public), a deleted author None;
    * ``over_18`` becomes ``nsfw``; title and self-text are kept apart (``title``, ``text``);
    * an object without ``id``, ``created_utc`` or ``title`` is malformed (raises: counted as skipped).
    """
    data = _unwrap(item, "t3")
    if "title" not in data:
        raise KeyError("title")
    fields = reddit_json.submission_fields(data)
    return None if fields is None else reddit_json.to_post(fields, fetched_at=fetched_at or utcnow())


def normalize_comment(item: Any, *, nsfw: bool = False, fetched_at: datetime | None = None) -> Post | None:
    """One raw comment (a ``t1`` thing or its ``data``) as a Post; None for a deleted or removed comment.

    ``thread_id`` is the post's id (from ``link_id``), ``parent_id`` the post's or parent comment's id.
    Comments in a thread carry no NSFW flag of their own, so ``nsfw`` is passed in from the post.
    """
    data = _unwrap(item, "t1")
    for key in ("body", "link_id", "created_utc"):
        if key not in data:
            raise KeyError(key)
    fields = reddit_json.comment_fields(data)
    if fields is None:
        return None
    post = reddit_json.to_post(fields, fetched_at=fetched_at or utcnow())
    if not isinstance(data.get("over_18"), bool):
        post.nsfw = nsfw
    return post


# --- what to read ---------------------------------------------------------------------------------------------


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


# --- threads to follow ------------------------------------------------------------------------------------------


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


# --- the source ---------------------------------------------------------------------------------------------------


class RedditSource(Source):
    """Reddit through praw (``[sources.reddit]``; credentials REDDIT_CLIENT_ID, REDDIT_CLIENT_SECRET, ...)."""

    name = "reddit"
    config_model = RedditConfig
    default_cron = "0 */3 * * *"

    def config(self, topics: Any) -> RedditConfig:
        cfg = super().config(topics)
        assert isinstance(cfg, RedditConfig)
        return cfg

    def check(self, ctx: CollectContext) -> None:
        cfg = self.config(ctx.topics)
        RedditCredentials.from_settings(ctx.settings)
        if not (cfg.search_all or cfg.subreddits or cfg.on_topic_subreddits):
            raise SourceUnavailable(
                "reddit: nothing to read (set subreddits, on_topic_subreddits or search_all in [sources.reddit])"
            )

    def collect(self, ctx: CollectContext) -> Iterator[Batch]:
        cfg = self.config(ctx.topics)
        reddit = make_client(
            RedditCredentials.from_settings(ctx.settings),
            oauth_url=cfg.oauth_url, reddit_url=cfg.reddit_url, timeout=cfg.timeout,
        )
        yield from RedditRun(reddit, cfg, ctx).batches()


class RedditRun:
    """One collection pass: listings first, then the comment threads they queued."""

    def __init__(self, reddit: praw.Reddit, cfg: RedditConfig, ctx: CollectContext) -> None:
        self.reddit, self.cfg, self.ctx = reddit, cfg, ctx
        self.now = _utcnow()
        self.relevance = RelevanceFilter(ctx.topics)
        self.watch = Watchlist.load(ctx.cursors.get("watch"))
        self.seen: set[str] = set()
        self.skip_authors = {a.casefold() for a in cfg.skip_authors}
        self.on_topic = {s.casefold() for s in cfg.on_topic_subreddits}
        self.failures: list[str] = []
        self.consecutive_failures = 0
        self.contacted = False
        self.ignored: Counter[str] = Counter()
        self.problem_notes = 0
        self.problems_hidden = 0

    # -- driver --------------------------------------------------------------------------------------------
    def batches(self) -> Iterator[Batch]:
        listings, notes = plan_listings(self.cfg, self.ctx.topics.tracking.terms)
        if notes:
            yield Batch(notes=notes)
        for listing in listings:
            yield from self._listing(listing)
        if self.cfg.comments:
            yield from self._threads()
        closing = self._closing_notes()
        if closing:
            yield Batch(notes=closing)
        if self.failures:
            more = len(self.failures) - 3
            shown = "; ".join(self.failures[:3]) + (f"; and {more} more" if more > 0 else "")
            raise SourceStopped(f"reddit: {len(self.failures)} request(s) failed and were skipped ({shown}); "
                                "the next run retries them from the cursors")

    def _request(self, call: Callable[[], Any], what: str) -> Any:
        """Run one request (or read one page): failures become notes (and :data:`FAILED`), a long 429 stops
        the source, rejected credentials or an unreachable Reddit make it unavailable."""
        try:
            result = call()
        except RateLimited as exc:
            raise SourceStopped(
                f"reddit: stopped at the {what}: {exc} is longer than rate_limit_max_wait "
                f"({self.cfg.rate_limit_max_wait:.0f}s); the next run resumes from the cursors"
            ) from None
        except prawcore.RequestException as exc:
            if not self.contacted and isinstance(exc.original_exception, requests.ConnectionError):
                why = _first_line(exc.original_exception)
                raise SourceUnavailable(f"reddit: cannot reach Reddit ({why})") from None
            return self._failed(what, f"network error: {_first_line(exc.original_exception)}")
        except prawcore.Redirect:
            return self._failed(what, "the subreddit does not exist (Reddit redirected to its search)", permanent=True)
        except prawcore.NotFound:
            return self._failed(what, "not found (404)", permanent=True)
        except prawcore.Forbidden:
            return self._failed(what, "forbidden (403): a private, quarantined or banned subreddit, or the app is "
                                "blocked")
        except prawcore.ResponseException as exc:
            status = exc.response.status_code if exc.response is not None else "?"
            return self._failed(what, f"HTTP {status} after praw's retries")
        except MalformedResponse as exc:
            return self._failed(what, f"unexpected response: {exc}")
        self.contacted = True
        self.consecutive_failures = 0
        return result

    def _failed(self, what: str, why: str, *, permanent: bool = False) -> object:
        """Record a failed request; three transient failures in a row stop the source."""
        self.contacted = True
        message = f"{what}: {why}"
        log.warning("reddit: %s", message)
        self.failures.append(message)
        if not permanent:
            self.consecutive_failures += 1
            if self.consecutive_failures >= 3:
                raise SourceStopped(
                    f"reddit: stopped after 3 failed requests in a row (last: {message}); committed data is kept "
                    "and the next run resumes from the cursors"
                )
        return FAILED

    # -- listings ------------------------------------------------------------------------------------------
    def _listing(self, listing: Listing) -> Iterator[Batch]:
        """Read one listing down to its cursor (minus the overlap); each page is a batch, and the new cursor
        follows in a last batch once every page is committed."""
        cfg = self.cfg
        previous = _float(self.ctx.cursors.get(listing.key))
        if previous is not None:
            threshold = previous - cfg.overlap_minutes * 60
        else:
            threshold = (self.now - timedelta(days=cfg.first_run_days)).timestamp()
        params = dict(listing.params)
        if listing.search:
            params["t"] = time_filter(self.now - datetime.fromtimestamp(threshold, UTC))
        walk = Walk(threshold=threshold)
        pages = walk_listing(
            fetch_listing(self.reddit, listing.path, params, page_size=cfg.page_size, max_pages=cfg.max_pages,
                          rate_limit_max_wait=cfg.rate_limit_max_wait),
            walk,
        )
        while True:
            items = self._request(lambda: next(pages, None), listing.label)
            if items is FAILED:
                return  # the cursor stays where it was: the next run reads this stretch again
            if items is None:
                break
            yield self._posts_batch(items, listing)
        done = Batch()
        if walk.newest is not None and (previous is None or walk.newest > previous):
            done.cursors[listing.key] = repr(walk.newest)
        if not walk.reached and not walk.ended and walk.read:
            done.notes.append(
                f"reddit: {listing.label} stopped after max_pages={cfg.max_pages} pages before reaching the last "
                "run's position; older posts in between were not read"
            )
        elif not walk.reached and walk.ended and walk.read >= LISTING_CAP - cfg.page_size:
            since = datetime.fromtimestamp(walk.threshold, UTC).strftime("%Y-%m-%d %H:%M")
            done.notes.append(
                f"reddit: {listing.label} hit Reddit's ~{LISTING_CAP}-item listing cap before reaching {since} UTC; "
                "posts in between were not read (run more often, narrow the terms, or backfill with arcticshift)"
            )
        if done.cursors or done.notes:
            yield done

    def _posts_batch(self, items: list[Any], listing: Listing) -> Batch:
        fetched = len(items)
        now = utcnow()
        if listing.things == "t3":
            wanted = [p for p in (crosspost_parent(i) for i in items) if p]
            originals = self._lookup(list(dict.fromkeys(wanted))) if wanted else []
            fetched += len(originals)
            things = [*items, *originals]
            posts, skipped, problems = normalize_items(_data(things), self._submission(now), source="reddit")
        else:
            posts, skipped, problems = normalize_items(_data(items), self._comment(now, False), source="reddit")
        kept = []
        before = self.watch.dump()
        for post in posts:
            if post.post_id in self.seen:
                continue
            self.seen.add(post.post_id)
            if not self._keep(post):
                continue
            kept.append(post)
            if post.kind == "post" and self._follow(post):
                self.watch.add(post)
        batch = Batch(posts=kept, fetched=fetched, skipped=skipped, notes=self._problems(problems, skipped))
        after = self.watch.dump()
        if after != before:
            batch.cursors["watch"] = after  # committed with the posts that put threads on the list
        return batch

    def _submission(self, now: datetime) -> Callable[[Any], Post | None]:
        def normalize(item: Any) -> Post | None:
            post = normalize_submission(item, fetched_at=now)
            if post is None and crosspost_parent(item) is None:
                self.ignored["deleted or removed"] += 1
            return post

        return normalize

    def _comment(self, now: datetime, nsfw: bool) -> Callable[[Any], Post | None]:
        def normalize(item: Any) -> Post | None:
            post = normalize_comment(item, nsfw=nsfw, fetched_at=now)
            if post is None:
                self.ignored["deleted or removed"] += 1
            return post

        return normalize

    def _keep(self, post: Post) -> bool:
        if post.author and post.author.casefold() in self.skip_authors:
            self.ignored[f"by {post.author}"] += 1
            return False
        if post.nsfw and not self.cfg.include_nsfw:
            self.ignored["NSFW"] += 1
            return False
        return True

    def _follow(self, post: Post) -> bool:
        """Should this post's comment thread be fetched?"""
        if not self.cfg.comments:
            return False
        if self.cfg.subreddit_comments and (post.community or "").casefold() in self.on_topic:
            return False  # its comments arrive through the subreddit's comment stream
        relevant, _ = self.relevance.check(post.full_text, post.community)
        return relevant

    def _lookup(self, ids: list[str]) -> list[Any]:
        """Originals of crossposts that did not embed them (``/api/info``, 100 fullnames per request)."""
        found: list[Any] = []
        for start in range(0, len(ids), 100):
            chunk = ",".join(ids[start : start + 100])
            payload = self._request(
                lambda chunk=chunk: get_json(self.reddit, "api/info/", {"id": chunk},
                                             rate_limit_max_wait=self.cfg.rate_limit_max_wait),
                "crosspost lookup",
            )
            if payload is FAILED:
                continue
            try:
                children, _ = parse_listing(payload)
            except MalformedResponse as exc:
                self._failed("crosspost lookup", f"unexpected response: {exc}")
                continue
            found.extend(children)
        return found

    # -- threads ---------------------------------------------------------------------------------------------
    def _threads(self) -> Iterator[Batch]:
        cfg = self.cfg
        due = self.watch.due(self.now, cfg.comment_refresh_hours, cfg.comment_refresh_every_hours)
        todo, left = due[: cfg.max_threads_per_run], len(due) - min(len(due), cfg.max_threads_per_run)
        hidden = 0
        for post_id in todo:
            thread = self._request(lambda post_id=post_id: self._fetch_thread(post_id), f"comments of post {post_id}")
            if thread is GONE:  # deleted since, or its subreddit went private: stop following it
                self.watch.drop(post_id)
                self.ignored["threads no longer available"] += 1
                continue
            if thread is FAILED:
                continue
            batch = self._thread_batch(thread)
            num_comments = next((p.replies for p in batch.posts if p.kind == "post"), None)
            self.watch.mark(post_id, self.now, num_comments)
            batch.cursors["watch"] = self.watch.dump()
            hidden += thread.more_left
            yield batch
        notes = []
        if left:
            notes.append(f"reddit: {left} comment threads left for the next run (max_threads_per_run = "
                         f"{cfg.max_threads_per_run})")
        if hidden:
            notes.append(f"reddit: {hidden} comments behind 'load more' links not fetched (replace_more_limit = "
                         f"{cfg.replace_more_limit})")
        if notes:
            yield Batch(notes=notes)

    def _fetch_thread(self, post_id: str) -> Thread | object:
        cfg = self.cfg
        try:
            return fetch_thread(
                self.reddit, bare_id(post_id), sort=cfg.comment_sort, depth=cfg.comment_depth, limit=cfg.comment_limit,
                replace_more_limit=cfg.replace_more_limit, replace_more_threshold=cfg.replace_more_threshold,
                rate_limit_max_wait=cfg.rate_limit_max_wait,
            )
        except (prawcore.NotFound, prawcore.Forbidden):
            return GONE

    def _thread_batch(self, thread: Thread) -> Batch:
        now = utcnow()
        items: list[Any] = [thread.post] if thread.post is not None else []
        posts, skipped, problems = normalize_items(_data(items), self._submission(now), source="reddit")
        root = posts[0] if posts else None
        comments, c_skipped, c_problems = normalize_items(
            _data(thread.comments), self._comment(now, bool(root and root.nsfw)), source="reddit"
        )
        fetched = len(items) + len(thread.comments)
        kept = [p for p in [*posts, *comments] if self._keep(p)]
        self.seen.update(p.post_id for p in kept)
        return Batch(
            posts=kept, fetched=fetched, skipped=skipped + c_skipped,
            notes=self._problems([*problems, *c_problems], skipped + c_skipped),
        )

    # -- notes -----------------------------------------------------------------------------------------------
    def _problems(self, problems: list[str], skipped: int) -> list[str]:
        room = max(MAX_NOTES - self.problem_notes, 0)
        shown = problems[:room]
        self.problem_notes += len(shown)
        self.problems_hidden += skipped - len(shown)
        return shown

    def _closing_notes(self) -> list[str]:
        notes = []
        if self.problems_hidden > 0:
            notes.append(f"reddit: {self.problems_hidden} more malformed items skipped (details in the log)")
        ignored = {k: v for k, v in self.ignored.items() if v > 0}
        if ignored:
            notes.append("reddit: not stored: " + ", ".join(f"{v} {k}" for k, v in sorted(ignored.items())))
        return notes


def _data(things: list[Any]) -> list[Any]:
    """The ``data`` objects of things (so problems name the item's id); anything else is passed on as is."""
    return [t["data"] if isinstance(t, dict) and isinstance(t.get("data"), dict) else t for t in things]


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]

"""One Reddit collection pass (:class:`RedditRun`): listings first, then the comment threads they queued."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import praw
import prawcore
import requests

from aimusic.core.records import Post, utcnow
from aimusic.debate.relevance import RelevanceFilter
from aimusic.sources.base import Batch, CollectContext, normalize_items
from aimusic.sources.errors import SourceStopped, SourceUnavailable
from aimusic.sources.ratelimit import RateLimited
from aimusic.sources.ratelimit import utcnow as clock_now
from aimusic.sources.reddit.client import MalformedResponse, get_json
from aimusic.sources.reddit.config import LISTING_CAP, MAX_NOTES, RedditConfig
from aimusic.sources.reddit.listings import (
    Listing,
    Walk,
    fetch_listing,
    parse_listing,
    plan_listings,
    time_filter,
    walk_listing,
)
from aimusic.sources.reddit.normalise import (
    bare_id,
    crosspost_parent,
    normalize_comment,
    normalize_submission,
    things_data,
)
from aimusic.sources.reddit.threads import Thread, Watchlist, fetch_thread

log = logging.getLogger(__name__)

FAILED = object()  # what RedditRun._request returns for a failed request
GONE = object()  # a thread that is no longer there


class RedditRun:
    """One collection pass: listings first, then the comment threads they queued."""

    def __init__(self, reddit: praw.Reddit, cfg: RedditConfig, ctx: CollectContext) -> None:
        self.reddit, self.cfg, self.ctx = reddit, cfg, ctx
        self.now = clock_now()
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
            reset = f"reset in {exc.wait:.0f}s" if exc.wait is not None else "no reset time given"
            raise SourceStopped(
                f"reddit: stopped at the {what}: rate limited (429, {reset}), longer than rate_limit_max_wait "
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
            posts, skipped, problems = normalize_items(things_data(things), self._submission(now), source="reddit")
        else:
            posts, skipped, problems = normalize_items(things_data(items), self._comment(now, False), source="reddit")
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
        posts, skipped, problems = normalize_items(things_data(items), self._submission(now), source="reddit")
        root = posts[0] if posts else None
        comments, c_skipped, c_problems = normalize_items(
            things_data(thread.comments), self._comment(now, bool(root and root.nsfw)), source="reddit"
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



def _float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]

"""One pass of the X source over its queries (:class:`XRun`): gaps first, then what is new; stops cleanly at
the caps, on a long rate limit or when the retries run out, keeping what was read."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
import tweepy

from aimusic.core.records import Post, utcnow
from aimusic.sources.base import Batch, CollectContext, normalize_items
from aimusic.sources.errors import SourceStopped, SourceUnavailable
from aimusic.sources.querybuild import query_key
from aimusic.sources.ratelimit import RateLimited
from aimusic.sources.ratelimit import utcnow as clock_now
from aimusic.sources.x.client import RETRY_ERRORS, Budget, CapReached, error_line, fetch_pages
from aimusic.sources.x.config import NAME, RECENT_WINDOW, WINDOW_MARGIN, XConfig
from aimusic.sources.x.normalise import normalize_tweet, not_stored_reason, snowflake_time, users_by_id
from aimusic.sources.x.queries import QueryState, build_queries

log = logging.getLogger(__name__)


class XRun:
    """One pass over the queries: gaps first, then what is new; stops cleanly at the caps."""

    def __init__(self, client: tweepy.Client, cfg: XConfig, ctx: CollectContext) -> None:
        self.client, self.cfg, self.ctx = client, cfg, ctx
        self.now = clock_now()
        day_start = {k.removeprefix("reads:"): _int(v) for k, v in ctx.cursors.items() if k.startswith("reads:")}
        self.budget = Budget(cfg.max_posts_per_run, cfg.max_posts_per_day, day_start=day_start)
        self.seen: set[str] = set()
        self.notes_left = 6
        self.ignored: Counter[str] = Counter()  # well-formed items that are not posts, by reason

    def batches(self) -> Iterator[Batch]:
        queries, notes = build_queries(self.cfg, self.ctx.topics.tracking.terms)
        states = sorted((QueryState.load(query_key(q), self.ctx.cursors) for q in queries), key=QueryState.staleness)
        by_key = {query_key(q): q for q in queries}
        if notes:
            yield Batch(notes=notes)
        stop: str | None = None
        refused: list[str] = []
        try:
            for state in states:
                try:
                    yield from self._query(by_key[state.key], state)
                except tweepy.BadRequest as exc:  # a query the API refuses must not stop the others
                    log.warning("x: query %s refused: %s", state.key, error_line(exc))
                    refused.append(f"x: query {state.key} refused by the API ({error_line(exc)})")
        except CapReached as exc:
            stop = str(exc)
        except RateLimited as exc:
            stop = f"x: {exc}; stopped until the next run, which resumes from the cursors"
        except (tweepy.TwitterServerError, requests.RequestException) as exc:
            retried = f" (after {self.cfg.retries} retries)" if isinstance(exc, RETRY_ERRORS) else ""
            stop = (f"x: stopped: {error_line(exc)}{retried}; data so far is kept and the next run resumes from "
                    "the cursors")
        except tweepy.Unauthorized:
            raise SourceUnavailable("x: X rejected the bearer token (401 Unauthorized): check X_BEARER_TOKEN") from None
        except tweepy.Forbidden as exc:
            raise SourceUnavailable(
                f"x: access denied ({error_line(exc)}); the app's plan may not include recent search"
            ) from None
        except tweepy.HTTPException as exc:
            if exc.response is None or exc.response.status_code != 402:
                raise
            stop = "x: the account is out of API credits (402 Payment Required); add credits to continue"
        now = clock_now()
        summary = (f"x: read {self.budget.run_reads} posts this run, {self.budget.today(now)} today (UTC) "
                   f"(caps: {self.cfg.max_posts_per_run} per run, {self.cfg.max_posts_per_day} per day)")
        ignored = ", ".join(f"{n} {reason}" for reason, n in sorted(self.ignored.items()))
        yield Batch(notes=[summary, *([f"x: not stored: {ignored}"] if ignored else [])])
        problems = [*refused, *([stop] if stop else [])]
        if problems:
            raise SourceStopped("; ".join(problems))

    def _query(self, query: str, state: QueryState) -> Iterator[Batch]:
        window_start = self.now - RECENT_WINDOW + WINDOW_MARGIN
        if state.gap:
            yield from self._gap(query, state, window_start)
        since, start = state.since_id, None
        if since and snowflake_time(since) < window_start:
            since, start, state.since_id = None, window_start, None
            yield Batch(notes=[f"x: query {state.key} last ran more than 7 days ago; posts older than recent "
                               "search's 7-day window were not read"], cursors=state.cursors())
        elif not since:
            start = max(self.now - timedelta(hours=self.cfg.first_run_hours), window_start)
        newest: str | None = None
        for page in self._pages(query, since_id=since, start_time=start):
            meta = page.get("meta") if isinstance(page.get("meta"), dict) else {}
            if newest is None and meta.get("newest_id"):
                newest = str(meta["newest_id"])
            batch = self._batch(page)
            oldest = meta.get("oldest_id")
            if newest:
                state.since_id = newest
                # until this range is read to its end, what lies below the oldest post read is a gap
                state.gap = {"until_id": str(oldest or newest)}
                state.gap.update({"since_id": since} if since else {"start_time": _iso(start)})
            batch.cursors.update(state.cursors())
            yield batch
        state.gap = None
        yield Batch(cursors=state.cursors())

    def _gap(self, query: str, state: QueryState, window_start: datetime) -> Iterator[Batch]:
        gap = dict(state.gap or {})
        until = gap["until_id"]
        if snowflake_time(until) < window_start:
            state.gap = None
            yield Batch(notes=[f"x: an unread stretch of query {state.key} is now older than recent search's 7 days "
                               "and was dropped (backfill can import saved responses)"], cursors=state.cursors())
            return
        since = gap.get("since_id")
        start = _parse_time(gap.get("start_time"))
        if since and snowflake_time(since) < window_start:
            since, start = None, window_start
        if start and start < window_start:
            start = window_start
        for page in self._pages(query, since_id=since, until_id=until, start_time=None if since else start):
            meta = page.get("meta") if isinstance(page.get("meta"), dict) else {}
            batch = self._batch(page)
            if meta.get("oldest_id"):
                state.gap = {**gap, "until_id": str(meta["oldest_id"])}
            batch.cursors.update(state.cursors())
            yield batch
        state.gap = None
        yield Batch(cursors=state.cursors())

    def _pages(self, query: str, **window: Any) -> Iterator[dict]:
        yield from fetch_pages(self.client, query, cfg=self.cfg, budget=self.budget, **window)

    def _normalize(self, item: Any, users: dict[str, dict], fetched_at: datetime) -> Post | None:
        post = normalize_tweet(item, users, fetched_at=fetched_at)
        reason = not_stored_reason(item) if post is None else None
        if reason:
            self.ignored[reason] += 1
        return post

    def _batch(self, page: dict) -> Batch:
        data = page.get("data") or []
        if not isinstance(data, list):
            data = []
        now = clock_now()
        self.budget.spend(len(data), now)
        users = users_by_id(page)
        fetched_at = utcnow()
        posts, skipped, problems = normalize_items(
            data, lambda item: self._normalize(item, users, fetched_at), source=NAME
        )
        latest: dict[str, Post] = {}
        for post in posts:  # several versions of an edited post in one page: keep the newest
            current = latest.get(post.post_id)
            if current is None or _status_id(post) > _status_id(current):
                latest[post.post_id] = post
        fresh = [p for p in latest.values() if p.post_id not in self.seen]
        self.seen.update(latest)
        notes = problems[: max(self.notes_left, 0)]
        self.notes_left -= len(notes)
        errors = page.get("errors")
        if isinstance(errors, list) and errors and self.notes_left > 0:
            first = errors[0] if isinstance(errors[0], dict) else {}
            notes.append(f"x: the API reported {len(errors)} partial error(s), e.g. {first.get('title') or ''}: "
                         f"{first.get('detail') or ''}".strip())
            self.notes_left -= 1
        batch = Batch(posts=fresh, fetched=len(data), skipped=skipped, notes=notes)
        batch.cursors.update(self.budget.cursors(now))
        return batch


def _status_id(post: Post) -> int:
    tail = (post.url or "").rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _iso(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else ""


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _int(value: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0



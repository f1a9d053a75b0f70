"""X (Twitter) API v2 recent search through tweepy, with hard caps on posts read (X bills per post read).

Shape (as every source): :class:`XConfig` (``[sources.x]``), :func:`make_client` (bearer token passed
explicitly or read from :class:`~aimusic.core.config.Settings`), :func:`fetch_pages` (a generator over
``tweepy.Paginator`` pages of ``search_recent_tweets``, raw JSON), and the pure :func:`normalize_tweet`.

* Queries: the tracked terms OR-joined (multi-word terms also as hashtags, ``"AI music" OR #AIMusic``), each
  query at most ``max_query_length`` characters (512 on the pay-per-use and Basic plans; more terms make more
  queries), with ``-is:retweet``: retweets are never read, so a post is never counted twice (and never billed
  twice); quotes and replies are posts of their own.
* Incremental: ``since_id`` per query. Recent search covers 7 days; a cursor older than that restarts at the
  window's start and says so. A run stopped mid-query (cap, rate limit, errors) records the unread stretch as
  a gap (``since_id``/``start_time`` to ``until_id``) that the next run reads first, so nothing in between is
  lost and nothing is read twice.
* Cost control: ``max_posts_per_run`` and ``max_posts_per_day`` (UTC day, counted in the cursors table under
  ``reads:YYYY-MM-DD``, committed with the posts) are never exceeded: before each request the page size is cut
  to what is left, and collection stops cleanly (status partial, a note in the run summary) when less than one
  page (10 posts, the API's minimum) remains.
* A 429 whose reset is at most ``rate_limit_max_wait`` seconds away is waited out; a longer one stops the source
  until the next run. 5xx answers and timeouts are retried with exponential backoff (tenacity), ``retries``
  times, then the source stops with a note; data read so far is kept and the cursors resume from it.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
import tenacity
import tweepy
from pydantic import Field, SecretStr

from aimusic.core.config import Settings, get_settings
from aimusic.core.records import Post, utcnow
from aimusic.sources.base import (
    Batch,
    CollectContext,
    Source,
    SourceConfig,
    SourceStopped,
    SourceUnavailable,
    normalize_items,
)
from aimusic.sources.querybuild import hashtag, or_queries, query_key, quote, terms_for

log = logging.getLogger(__name__)

NAME = "x"
MIN_PAGE = 10  # the API's smallest max_results
MAX_PAGE = 100
RECENT_WINDOW = timedelta(days=7)
WINDOW_MARGIN = timedelta(minutes=5)
TWITTER_EPOCH_MS = 1288834974657
TWEET_FIELDS = [
    "author_id", "conversation_id", "created_at", "lang", "public_metrics", "referenced_tweets",
    "possibly_sensitive", "edit_history_tweet_ids", "note_tweet", "in_reply_to_user_id",
]
USER_FIELDS = ["username", "name"]
#: X's language codes that are not languages (undetermined, no text, only hashtags/mentions/media/...)
NOT_A_LANGUAGE = frozenset({"und", "zxx", "qam", "qct", "qht", "qme", "qst", "art"})
RETRY_ERRORS = (tweepy.TwitterServerError, requests.Timeout, requests.ConnectionError)


def _utcnow() -> datetime:  # patched in tests
    return datetime.now(UTC)


def _sleep(seconds: float) -> None:  # patched in tests
    time.sleep(seconds)


def _wall_time() -> float:  # patched in tests (429 reset times are epoch seconds)
    return time.time()


# --- config and client ------------------------------------------------------------------------------------------


class XConfig(SourceConfig):
    """``[sources.x]`` in data/topics.toml (every key is optional)."""

    terms: list[str] = Field(default_factory=list, description="search terms; empty = [tracking] terms")
    hashtags: bool = Field(default=True, description="also search multi-word terms as hashtags (#AIMusic)")
    languages: list[str] = Field(default_factory=list, description="lang: filter, e.g. ['en', 'es']; empty = all")
    exclude_replies: bool = False
    extra_query: str = Field(default="", description="operators appended to every query, e.g. -is:nullcast")
    max_query_length: int = Field(default=512, ge=64, le=4096)
    first_run_hours: float = Field(default=24, gt=0, le=168, description="how far back a query's first run reads")
    page_size: int = Field(default=100, ge=MIN_PAGE, le=MAX_PAGE)
    max_posts_per_run: int = Field(default=500, ge=0, description="posts read per run, never exceeded")
    max_posts_per_day: int = Field(default=2000, ge=0, description="posts read per UTC day, never exceeded")
    expand_authors: bool = Field(default=True, description="ask for author handles (user objects may be billed)")
    rate_limit_max_wait: float = Field(default=60, ge=0, description="a 429 with a shorter reset is waited out")
    retries: int = Field(default=3, ge=0, le=10, description="retries of 5xx answers and timeouts")
    retry_max_wait: float = Field(default=30, gt=0, description="longest backoff between retries, seconds")
    timeout: float = Field(default=30, gt=0, description="seconds per HTTP request")


class _TimeoutSession(requests.Session):
    """tweepy sends no timeout; a request that hangs would hang the run."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.default_timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.default_timeout)
        return super().request(method, url, *args, **kwargs)


def bearer_token(settings: Settings) -> SecretStr:
    """X_BEARER_TOKEN from the settings, or :class:`SourceUnavailable` with a one-line reason."""
    token = settings.x_bearer_token
    if token is None or not token.get_secret_value().strip():
        raise SourceUnavailable(
            "x: no API credentials (X_BEARER_TOKEN not set in the environment or .env); X bills per post read, "
            "see the README for the caps"
        )
    return token


def make_client(
    token: SecretStr | str | None = None, *, settings: Settings | None = None, timeout: float = 30
) -> tweepy.Client:
    """A tweepy v2 client returning raw JSON (``dict``), with a request timeout and no built-in rate-limit
    sleeping (this module decides how long to wait). Defaults to X_BEARER_TOKEN from the environment / .env."""
    secret = token if token is not None else bearer_token(settings or get_settings())
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    client = tweepy.Client(bearer_token=value, return_type=dict, wait_on_rate_limit=False)
    client.session = _TimeoutSession(timeout)
    return client


# --- queries and cursors ---------------------------------------------------------------------------------------------


def build_queries(cfg: XConfig, tracked_terms: list[str]) -> tuple[list[str], list[str]]:
    """Search queries for the configured terms (each within ``max_query_length``) and notes on terms that do
    not fit."""
    clauses: list[str] = []
    for term in terms_for(cfg.terms, tracked_terms):
        clauses.append(quote(term))
        tag = hashtag(term) if cfg.hashtags else None
        if tag:
            clauses.append(tag)
    suffix = " -is:retweet"
    if cfg.exclude_replies:
        suffix += " -is:reply"
    if cfg.languages:
        langs = [f"lang:{code.strip()}" for code in cfg.languages if code.strip()]
        suffix += " " + (langs[0] if len(langs) == 1 else "(" + " OR ".join(langs) + ")")
    if cfg.extra_query.strip():
        suffix += " " + cfg.extra_query.strip()
    plan = or_queries(clauses, max_length=cfg.max_query_length, prefix="(", suffix=")" + suffix)
    notes = [f"x: terms too long for max_query_length={cfg.max_query_length}: {', '.join(plan.too_long)}"] * bool(
        plan.too_long
    )
    return plan.queries, notes


def snowflake_time(tweet_id: str | int) -> datetime:
    """When a post with this id was created (X ids are Snowflakes: milliseconds since 2010-11-04 << 22)."""
    return datetime.fromtimestamp(((int(tweet_id) >> 22) + TWITTER_EPOCH_MS) / 1000, UTC)


@dataclass
class QueryState:
    """A query's cursors: ``since_id`` (everything newer than it up to the last run is read) and an optional
    gap (a stretch a stopped run left unread: from ``gap_since`` id or ``gap_start`` time to ``gap_until`` id)."""

    key: str
    since_id: str | None = None
    gap: dict[str, str] | None = None

    @classmethod
    def load(cls, key: str, cursors: Mapping[str, str]) -> QueryState:
        since = cursors.get(f"since_id:{key}") or None
        raw = cursors.get(f"gap:{key}")
        gap = None
        if raw:
            try:
                value = json.loads(raw)
                if isinstance(value, dict) and value.get("until_id"):
                    gap = {k: str(v) for k, v in value.items() if v}
            except ValueError:
                log.warning("x: unreadable gap cursor for query %s, ignoring it", key)
        if since and not since.isdigit():
            since = None
        return cls(key, since, gap)

    def cursors(self) -> dict[str, str]:
        """Both cursors; an empty value clears one (the cursors table keeps keys)."""
        return {
            f"since_id:{self.key}": self.since_id or "",
            f"gap:{self.key}": json.dumps(self.gap, sort_keys=True) if self.gap else "",
        }

    def staleness(self) -> int:
        """Sort key: queries never run, or furthest behind, go first (fairness when the cap stops a run)."""
        return int(self.since_id) if self.since_id else -1


# --- fetch -----------------------------------------------------------------------------------------------------------


class CapReached(RuntimeError):
    """Fewer than :data:`MIN_PAGE` posts are left under a cap."""


class RateLimitStop(RuntimeError):
    """A 429 whose reset is too far away to wait for."""


@dataclass
class Budget:
    """Posts that may still be read: the lower of what the run and the UTC day have left."""

    per_run: int
    per_day: int
    day_start: dict[str, int] = field(default_factory=dict)  # day -> reads committed before this run
    run_reads: int = 0
    day_reads: dict[str, int] = field(default_factory=dict)  # day -> reads in this run

    @staticmethod
    def day(now: datetime) -> str:
        return now.strftime("%Y-%m-%d")

    def today(self, now: datetime) -> int:
        day = self.day(now)
        return self.day_start.get(day, 0) + self.day_reads.get(day, 0)

    def left(self, now: datetime) -> int:
        return max(min(self.per_run - self.run_reads, self.per_day - self.today(now)), 0)

    def spend(self, n: int, now: datetime) -> None:
        day = self.day(now)
        self.run_reads += n
        self.day_reads[day] = self.day_reads.get(day, 0) + n

    def cursors(self, now: datetime) -> dict[str, str]:
        return {f"reads:{self.day(now)}": str(self.today(now))}

    def why(self, now: datetime) -> str:
        if self.per_run - self.run_reads <= self.per_day - self.today(now):
            return (f"x: per-run cap reached ({self.run_reads} posts read, max_posts_per_run = {self.per_run}); "
                    "the next run continues from the cursors")
        return (f"x: daily cap reached ({self.today(now)} posts read today (UTC), max_posts_per_day = "
                f"{self.per_day}); collection resumes tomorrow from the cursors")


def _search_call(client: tweepy.Client, cfg: XConfig, budget: Budget) -> Callable[..., dict]:
    """``client.search_recent_tweets`` for tweepy.Paginator, with the caps, the 429 policy and retries.

    Keeps the method's name, which Paginator uses to send ``next_token``.
    """
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(RETRY_ERRORS),
        stop=tenacity.stop_after_attempt(cfg.retries + 1),
        wait=tenacity.wait_exponential(multiplier=1, min=1, max=cfg.retry_max_wait),
        sleep=lambda seconds: _sleep(seconds),
        before_sleep=lambda state: log.warning(
            "x: %s, retrying (attempt %d of %d)", _error_line(state.outcome.exception()), state.attempt_number + 1,
            cfg.retries + 1,
        ),
        reraise=True,
    )

    @functools.wraps(client.search_recent_tweets)
    def search_recent_tweets(**kwargs: Any) -> dict:
        left = budget.left(_utcnow())
        if left < MIN_PAGE:
            raise CapReached(budget.why(_utcnow()))
        kwargs["max_results"] = min(cfg.page_size, left)
        for attempt in range(3):
            try:
                return retrying(client.search_recent_tweets, **kwargs)
            except tweepy.TooManyRequests as exc:
                reset = getattr(exc, "reset_time", None)
                wait = None if reset is None else max(reset - _wall_time(), 0) + 1
                if wait is None or wait > cfg.rate_limit_max_wait or attempt == 2:
                    when = f"resets in {wait:.0f}s" if wait is not None else "no reset time given"
                    raise RateLimitStop(
                        f"x: rate limited (429, {when}); stopped until the next run, which resumes from the cursors"
                    ) from None
                log.warning("x: rate limited (429), waiting %.0fs for the reset", wait)
                _sleep(wait)
        raise AssertionError("unreachable")

    return search_recent_tweets


def fetch_pages(
    client: tweepy.Client,
    query: str,
    *,
    cfg: XConfig,
    budget: Budget,
    since_id: str | None = None,
    until_id: str | None = None,
    start_time: datetime | None = None,
) -> Iterator[dict]:
    """Raw JSON pages of one recent search, newest first, through ``tweepy.Paginator``.

    Raises :class:`CapReached` before a request the caps do not allow, :class:`RateLimitStop` on a long 429,
    and tweepy's errors when retries are exhausted.
    """
    kwargs: dict[str, Any] = {
        "query": query,
        "tweet_fields": TWEET_FIELDS,
        "sort_order": "recency",
        "since_id": since_id,
        "until_id": until_id,
        "start_time": start_time,
        "max_results": cfg.page_size,
    }
    if cfg.expand_authors:
        kwargs.update(expansions=["author_id"], user_fields=USER_FIELDS)
    yield from tweepy.Paginator(_search_call(client, cfg, budget), **kwargs)


# --- normalisation (pure) ------------------------------------------------------------------------------------------


def users_by_id(page: Mapping[str, Any]) -> dict[str, dict]:
    """``includes.users`` of a response page, by id (malformed entries ignored)."""
    includes = page.get("includes")
    users = includes.get("users") if isinstance(includes, dict) else None
    return {str(u["id"]): u for u in users or [] if isinstance(u, dict) and u.get("id") is not None}


def _refs(item: dict) -> dict[str, str]:
    refs = item.get("referenced_tweets") or []
    if not isinstance(refs, list):
        raise TypeError("referenced_tweets is not a list")
    return {str(r.get("type")): str(r.get("id")) for r in refs if isinstance(r, dict)}


def normalize_tweet(
    item: Any, users: Mapping[str, Mapping[str, Any]] | None = None, *, fetched_at: datetime | None = None
) -> Post | None:
    """One post of a search response (``data[i]``) as a Post; None for a retweet (never stored: the original
    is a post of its own, so nothing is counted twice).

    * ``post_id`` is the first id of ``edit_history_tweet_ids``: an edited post keeps one row, and its latest
      text replaces the old one;
    * a long post's full text comes from ``note_tweet.text``;
    * ``author`` is the handle from ``includes.users`` (``users``), ``score`` likes, ``replies`` replies,
      ``reposts`` retweets; a reply has ``kind = "reply"``, its parent's id and its conversation as thread.
    """
    if not isinstance(item, dict):
        raise TypeError(f"expected a JSON object, got {type(item).__name__}")
    refs = _refs(item)
    if "retweeted" in refs:
        return None
    tweet_id = item["id"]
    if not isinstance(tweet_id, str | int) or isinstance(tweet_id, bool):
        raise TypeError(f"id is {type(tweet_id).__name__}")
    tweet_id = str(tweet_id)
    note = item.get("note_tweet")
    text = note.get("text") if isinstance(note, dict) and note.get("text") else item["text"]
    history = item.get("edit_history_tweet_ids")
    post_id = str(history[0]) if isinstance(history, list) and history else tweet_id
    author_id = item.get("author_id")
    user = (users or {}).get(str(author_id)) if author_id is not None else None
    handle = user.get("username") if isinstance(user, Mapping) else None
    metrics = item.get("public_metrics")
    metrics = metrics if isinstance(metrics, dict) else {}
    lang = item.get("lang")
    conversation = item.get("conversation_id")
    reply_to = refs.get("replied_to")
    return Post(
        source=NAME,
        post_id=post_id,
        kind="reply" if reply_to else "post",
        parent_id=reply_to,
        thread_id=str(conversation) if conversation and str(conversation) != post_id else None,
        created_at=item["created_at"],
        author=handle,
        text=text,
        url=f"https://x.com/{handle or 'i/web'}/status/{tweet_id}",
        lang=None if not isinstance(lang, str) or lang in NOT_A_LANGUAGE else lang,
        score=metrics.get("like_count"),
        replies=metrics.get("reply_count"),
        reposts=metrics.get("retweet_count"),
        nsfw=item.get("possibly_sensitive") is True,
        fetched_at=fetched_at or utcnow(),
    )


# --- the source ----------------------------------------------------------------------------------------------


class XSource(Source):
    """X API v2 recent search (``[sources.x]``; credential X_BEARER_TOKEN)."""

    name = NAME
    config_model = XConfig
    default_cron = "0 */6 * * *"

    def config(self, topics: Any) -> XConfig:
        cfg = super().config(topics)
        assert isinstance(cfg, XConfig)
        return cfg

    def check(self, ctx: CollectContext) -> None:
        cfg = self.config(ctx.topics)
        bearer_token(ctx.settings)
        if cfg.max_posts_per_run < MIN_PAGE or cfg.max_posts_per_day < MIN_PAGE:
            raise SourceUnavailable(
                f"x: max_posts_per_run / max_posts_per_day below {MIN_PAGE} (the API's smallest page): nothing can "
                "be read"
            )

    def collect(self, ctx: CollectContext) -> Iterator[Batch]:
        cfg = self.config(ctx.topics)
        client = make_client(bearer_token(ctx.settings), timeout=cfg.timeout)
        yield from XRun(client, cfg, ctx).batches()


class XRun:
    """One pass over the queries: gaps first, then what is new; stops cleanly at the caps."""

    def __init__(self, client: tweepy.Client, cfg: XConfig, ctx: CollectContext) -> None:
        self.client, self.cfg, self.ctx = client, cfg, ctx
        self.now = _utcnow()
        day_start = {k.removeprefix("reads:"): _int(v) for k, v in ctx.cursors.items() if k.startswith("reads:")}
        self.budget = Budget(cfg.max_posts_per_run, cfg.max_posts_per_day, day_start=day_start)
        self.seen: set[str] = set()
        self.notes_left = 6

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
                    log.warning("x: query %s refused: %s", state.key, _error_line(exc))
                    refused.append(f"x: query {state.key} refused by the API ({_error_line(exc)})")
        except (CapReached, RateLimitStop) as exc:
            stop = str(exc)
        except (tweepy.TwitterServerError, requests.RequestException) as exc:
            retried = f" (after {self.cfg.retries} retries)" if isinstance(exc, RETRY_ERRORS) else ""
            stop = (f"x: stopped: {_error_line(exc)}{retried}; data so far is kept and the next run resumes from "
                    "the cursors")
        except tweepy.Unauthorized:
            raise SourceUnavailable("x: X rejected the bearer token (401 Unauthorized): check X_BEARER_TOKEN") from None
        except tweepy.Forbidden as exc:
            raise SourceUnavailable(
                f"x: access denied ({_error_line(exc)}); the app's plan may not include recent search"
            ) from None
        except tweepy.HTTPException as exc:
            if exc.response is None or exc.response.status_code != 402:
                raise
            stop = "x: the account is out of API credits (402 Payment Required); add credits to continue"
        now = _utcnow()
        summary = (f"x: read {self.budget.run_reads} posts this run, {self.budget.today(now)} today (UTC) "
                   f"(caps: {self.cfg.max_posts_per_run} per run, {self.cfg.max_posts_per_day} per day)")
        yield Batch(notes=[summary])
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

    def _batch(self, page: dict) -> Batch:
        data = page.get("data") or []
        if not isinstance(data, list):
            data = []
        now = _utcnow()
        self.budget.spend(len(data), now)
        users = users_by_id(page)
        fetched_at = utcnow()
        posts, skipped, problems = normalize_items(
            data, lambda item: normalize_tweet(item, users, fetched_at=fetched_at), source=NAME
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


def _error_line(exc: BaseException | None) -> str:
    """One line about an error: HTTP status and the API's own message, or the exception's first line."""
    if exc is None:
        return "unknown error"
    if isinstance(exc, tweepy.HTTPException):
        response = exc.response
        status = f"HTTP {response.status_code} {response.reason or ''}".strip() if response is not None else "HTTP ?"
        detail = "; ".join(str(m) for m in (exc.api_messages or [])[:2])
        return (f"{status}: {detail}" if detail else status)[:200]
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:200]

"""X API v2 recent search through tweepy: the client, the read budget, and paging under the caps and the shared
retry and rate-limit policy. Raw JSON only; no normalisation here."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests
import tweepy
from pydantic import SecretStr

from aimusic.core.config import Settings, get_settings
from aimusic.sources.errors import SourceUnavailable
from aimusic.sources.ratelimit import RetryPolicy, utcnow
from aimusic.sources.x.config import MIN_PAGE, TWEET_FIELDS, USER_FIELDS, XConfig

#: transient failures, retried with backoff
RETRY_ERRORS = (tweepy.TwitterServerError, requests.Timeout, requests.ConnectionError)


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
            "see docs/sources.md for the caps"
        )
    return token


def make_client(
    token: SecretStr | str | None = None, *, settings: Settings | None = None, timeout: float = 30
) -> tweepy.Client:
    """A tweepy v2 client returning raw JSON (``dict``), with a request timeout and no built-in rate-limit
    sleeping (the shared policy decides how long to wait). ``token`` defaults to X_BEARER_TOKEN from the
    settings (the environment / .env)."""
    secret = token if token is not None else bearer_token(settings or get_settings())
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    client = tweepy.Client(bearer_token=value, return_type=dict, wait_on_rate_limit=False)
    client.session = _TimeoutSession(timeout)
    return client


class CapReached(RuntimeError):
    """Fewer than :data:`MIN_PAGE` posts are left under a cap."""


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


def policy(cfg: XConfig) -> RetryPolicy:
    """The shared retry policy with the X source's limits: a 429 without a reset time stops the source."""
    return RetryPolicy(
        max_attempts=cfg.retries + 1,
        backoff_max=cfg.retry_max_wait,
        max_wait=cfg.rate_limit_max_wait,
        default_wait=None,
        retry_on=RETRY_ERRORS,
    )


def _search_call(client: tweepy.Client, cfg: XConfig, budget: Budget) -> Callable[..., dict]:
    """``client.search_recent_tweets`` for tweepy.Paginator, with the caps and the retry policy.

    Keeps the method's name, which Paginator uses to send ``next_token``.
    """
    retry = policy(cfg)

    def once(kwargs: dict[str, Any]) -> dict:
        try:
            return client.search_recent_tweets(**kwargs)
        except tweepy.TooManyRequests as exc:
            headers = exc.response.headers if exc.response is not None else {}
            raise retry.too_many_requests(headers, host="X API") from None

    @functools.wraps(client.search_recent_tweets)
    def search_recent_tweets(**kwargs: Any) -> dict:
        left = budget.left(utcnow())
        if left < MIN_PAGE:
            raise CapReached(budget.why(utcnow()))
        kwargs["max_results"] = min(cfg.page_size, left)
        return retry.call(lambda: once(kwargs), what="x search")

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

    Raises :class:`CapReached` before a request the caps do not allow,
    :class:`~aimusic.sources.ratelimit.RateLimited` on a long 429, and tweepy's errors when retries are
    exhausted.
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


def error_line(exc: BaseException | None) -> str:
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

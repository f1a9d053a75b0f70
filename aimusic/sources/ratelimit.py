"""The one retry and rate-limit policy of every source, and the one clock they all read.

- :data:`clock` is the only place a source reads the time or waits: :func:`now_epoch`, :func:`utcnow`,
  :func:`monotonic` and :func:`sleep` go through it, so a test replaces that one object
  (``monkeypatch.setattr(ratelimit, "clock", fake)``) and every source, client and retry sees the fake.
- :func:`retry_after` reads how long a server asks us to wait: ``Retry-After`` (seconds or an HTTP date) or a
  reset header (``X-RateLimit-Reset`` / ``RateLimit-Reset`` / ``x-rate-limit-reset`` as epoch seconds or
  milliseconds, seconds to wait, or an ISO 8601 time).
- :class:`RetryPolicy` (tenacity): exponential backoff with jitter on the errors a source names as transient
  (5xx, timeouts, resets); a 429 becomes :class:`TooManyRequests` (waited out, then retried) when the server
  asks for at most ``max_wait`` seconds, or :class:`RateLimited` (the source stops and resumes from its
  cursors on the next run) when it asks for longer, gives no hint and ``default_wait`` is None, or keeps
  answering 429 until the attempts run out.

The HTTP client of the credential-free APIs, the Bluesky SDK calls, tweepy (X) and praw (Reddit) all use it.
praw also paces itself on Reddit's headers and retries 5xx answers with its own sleeps (``time.sleep``).
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

log = logging.getLogger(__name__)

T = TypeVar("T")

#: added to every wait a server asks for: reset times are whole seconds, and early is a second 429
RESET_MARGIN = 1.0


# --- the clock -----------------------------------------------------------------------------------------------


class Clock:
    """Wall time, monotonic time and waiting, for every source. Tests replace :data:`clock`."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


clock = Clock()


def now_epoch() -> float:
    """Seconds since the epoch, from :data:`clock`."""
    return clock.time()


def utcnow() -> datetime:
    """The current time as an aware UTC datetime, from :data:`clock`."""
    return datetime.fromtimestamp(clock.time(), UTC)


def monotonic() -> float:
    return clock.monotonic()


def sleep(seconds: float) -> None:
    """Every wait of the sources (pacing, backoff, rate limits) goes through here."""
    clock.sleep(seconds)


# --- exceptions ------------------------------------------------------------------------------------------------


class RateLimited(RuntimeError):
    """The server asked us to slow down for longer than we wait (or retries ran out): stop until the next run.

    ``wait`` is what the server asked for in seconds (None when it gave no hint)."""

    def __init__(self, message: str, *, wait: float | None = None, host: str = "") -> None:
        super().__init__(message)
        self.wait = wait
        self.host = host


class TooManyRequests(RateLimited):
    """A 429 with a wait short enough to sleep through: the policy retries it after ``wait`` (+ a margin)."""


# --- rate-limit headers ----------------------------------------------------------------------------------------

_RETRY_AFTER = ("retry-after",)
_RESET = ("x-ratelimit-reset", "ratelimit-reset", "x-rate-limit-reset")
_REMAINING = ("x-ratelimit-remaining", "ratelimit-remaining", "x-rate-limit-remaining")


def _header(headers: Mapping[str, str], names: Iterable[str]) -> str | None:
    lowered = {str(k).lower(): v for k, v in headers.items()}
    for name in names:
        value = lowered.get(name)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def _seconds_until(value: str, now: float) -> float | None:
    """Seconds to wait from a header value: a delay in seconds, an epoch time (s or ms), an HTTP date or ISO."""
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is not None:
        if number > 1e12:  # epoch milliseconds
            return number / 1000 - now
        if number > 1e9:  # epoch seconds
            return number - now
        return number  # a delay
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        when = None
    if when is None:
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp() - now


def retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """How long a 429 (or an exhausted window) asks us to wait, from ``Retry-After`` or a reset header.

    ``None`` when the server gave no usable hint. Never negative. ``now`` defaults to :func:`now_epoch`.
    """
    now = now_epoch() if now is None else now
    for names in (_RETRY_AFTER, _RESET):
        raw = _header(headers, names)
        if raw is None:
            continue
        seconds = _seconds_until(raw, now)
        if seconds is not None:
            return max(seconds, 0.0)
    return None


def remaining(headers: Mapping[str, str]) -> int | None:
    """Requests left in the current window (``X-RateLimit-Remaining`` and kin), if the server says."""
    raw = _header(headers, _REMAINING)
    try:
        return int(float(raw)) if raw is not None else None
    except ValueError:
        return None


# --- the policy ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with backoff, and what a 429 means. One instance per client (its limits come from the
    source's config)."""

    max_attempts: int = 5
    backoff_max: float = 30.0  # longest backoff between retries of transient errors, seconds
    max_wait: float = 120.0  # the longest rate-limit wait slept through
    default_wait: float | None = 30.0  # a 429 without a hint waits this long; None: it stops the source
    retry_on: tuple[type[BaseException], ...] = ()  # transient errors (TooManyRequests is always retried)

    def too_many_requests(self, headers: Mapping[str, str] | None, *, host: str) -> RateLimited:
        """The exception to raise for a 429 answer with these headers (it is returned, not raised)."""
        wait = retry_after(headers or {})
        if wait is None and self.default_wait is None:
            return RateLimited(f"{host} rate limit (429) without a reset time", host=host)
        if wait is not None and wait > self.max_wait:
            return RateLimited(
                f"{host} rate limit (429): asked to wait {wait:.0f}s (more than {self.max_wait:.0f}s)",
                wait=wait,
                host=host,
            )
        hint = f"wait {wait:.0f}s" if wait is not None else "no reset header"
        return TooManyRequests(f"{host} answered 429 ({hint})", wait=self.default_wait if wait is None else wait,
                               host=host)

    def retrying(self, what: str) -> Retrying:
        """A tenacity :class:`~tenacity.Retrying` for this policy; after the last attempt the error is raised."""
        backoff = wait_exponential_jitter(initial=1, max=self.backoff_max, jitter=1)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, TooManyRequests) and exc.wait is not None:
                return exc.wait + RESET_MARGIN
            return backoff(state)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0.0
            log.info("%s failed (%s); retry %d in %.1fs", what, describe_error(exc), state.attempt_number, delay)

        return Retrying(
            retry=retry_if_exception_type((TooManyRequests, *self.retry_on)),
            wait=wait,
            stop=stop_after_attempt(max(1, self.max_attempts)),
            sleep=sleep,
            before_sleep=before_sleep,
            reraise=True,
        )

    def call(self, fn: Callable[[], T], *, what: str) -> T:
        """``fn()`` under this policy. A 429 that outlasts the attempts raises :class:`RateLimited`."""
        try:
            return self.retrying(what)(fn)
        except TooManyRequests as exc:
            raise RateLimited(
                f"{exc.host or what} kept answering 429 (too many requests) after {self.max_attempts} tries",
                wait=exc.wait,
                host=exc.host,
            ) from None


def describe_error(exc: BaseException | None) -> str:
    """One short line about an error, for logs and run notes."""
    if exc is None:
        return "no error"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]

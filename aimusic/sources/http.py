"""A small, polite HTTP client for the credential-free JSON APIs (Hacker News, Mastodon, Arctic Shift).

What every such source needs, in one place:

- a :class:`requests.Session` that sends an identifying user agent, with connect/read timeouts;
- pacing (a minimum interval between requests, and waiting for a rate-limit window announced by the server
  through ``X-RateLimit-Remaining: 0``);
- bounded retries with exponential backoff and jitter (tenacity) on 5xx answers, timeouts and connection
  resets;
- 429 handling that honours ``Retry-After`` (seconds or an HTTP date) and the rate-limit reset headers
  (``X-RateLimit-Reset`` / ``RateLimit-Reset`` as epoch seconds, seconds to wait, or an ISO 8601 time): a short
  wait is slept, a long one raises :class:`RateLimited` so the source stops and resumes from its cursor on the
  next run;
- :class:`LoopGuard`, which stops a pagination loop when the API hands back a page it already gave;
- :func:`probe`, a quick, bounded reachability check so an offline machine skips a source in seconds.

No Prefect, no global state beyond the probe cache. Sleeping goes through :func:`sleep`, which tests replace.
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)  # (connect, read) seconds
PROBE_TIMEOUT = 2.5  # seconds for a reachability check, DNS included


def sleep(seconds: float) -> None:
    """Every wait in this module (and the sources) goes through here, so tests can patch it out."""
    if seconds > 0:
        time.sleep(seconds)


def now_epoch() -> float:
    """The current time (seconds since the epoch). Sources import it by name and call it from their own
    module, so a test replaces it per source: ``monkeypatch.setattr(hackernews, "now_epoch", ...)``."""
    return time.time()


class HttpError(RuntimeError):
    """An answer the client will not retry (4xx other than 429, or a body that is not the JSON expected)."""

    def __init__(self, message: str, *, status: int | None = None, url: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.url = url


class ServerError(HttpError):
    """A 5xx answer (retried with backoff; raised when the retries are used up)."""


class RateLimited(RuntimeError):
    """The server asked us to slow down for longer than we are willing to wait (or retries ran out)."""

    def __init__(self, message: str, *, wait: float | None = None, host: str = "") -> None:
        super().__init__(message)
        self.wait = wait
        self.host = host


class TooManyRequests(RateLimited):
    """A 429 with a wait short enough to sleep through: tenacity retries it after ``wait`` seconds."""


# --- rate-limit headers ------------------------------------------------------------------------------------

_RETRY_AFTER = ("retry-after",)
_RESET = ("x-ratelimit-reset", "ratelimit-reset", "x-rate-limit-reset")
_REMAINING = ("x-ratelimit-remaining", "ratelimit-remaining", "x-rate-limit-remaining")


def _header(headers: Mapping[str, str], names: Iterable[str]) -> str | None:
    lowered = {k.lower(): v for k, v in headers.items()}
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

    ``None`` when the server gave no usable hint. Never negative.
    """
    now = time.time() if now is None else now
    for names in (_RETRY_AFTER, _RESET):
        raw = _header(headers, names)
        if raw is None:
            continue
        seconds = _seconds_until(raw, now)
        if seconds is not None:
            return max(seconds, 0.0)
    return None


def remaining(headers: Mapping[str, str]) -> int | None:
    raw = _header(headers, _REMAINING)
    try:
        return int(float(raw)) if raw is not None else None
    except ValueError:
        return None


# --- retries -----------------------------------------------------------------------------------------------

_RETRYABLE = (
    requests.ConnectionError,  # refused, reset, DNS
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,  # connection broken in the middle of a body
    ServerError,
    TooManyRequests,
)


def retrying(
    *,
    max_attempts: int = 5,
    backoff_max: float = 30.0,
    retry_on: tuple[type[BaseException], ...] = _RETRYABLE,
    what: str = "request",
) -> Retrying:
    """The retry policy shared by the HTTP sources (and reused by Bluesky around the atproto SDK).

    Exponential backoff with jitter (1 s, 2 s, 4 s, ... up to ``backoff_max``) for server errors and network
    failures; a :class:`TooManyRequests` waits the time the server asked for. After ``max_attempts`` the
    last error is raised as is.
    """
    backoff = wait_exponential_jitter(initial=1, max=backoff_max, jitter=1)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TooManyRequests) and exc.wait is not None:
            return exc.wait + 0.5
        return backoff(state)

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        log.info("%s failed (%s); retry %d in %.1fs", what, _describe(exc), state.attempt_number, delay)

    return Retrying(
        retry=retry_if_exception_type(retry_on),
        wait=wait,
        stop=stop_after_attempt(max(1, max_attempts)),
        sleep=lambda seconds: sleep(seconds),
        before_sleep=before_sleep,
        reraise=True,
    )


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "no error"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def describe_error(exc: BaseException) -> str:
    """One short line for a run note."""
    return _describe(exc)


# --- the client ----------------------------------------------------------------------------------------------


def make_session(user_agent: str) -> requests.Session:
    session = requests.Session()
    session.headers.update({"User-Agent": user_agent, "Accept": "application/json"})
    return session


class ApiClient:
    """GET JSON from one API host, politely. One instance per host and run."""

    def __init__(
        self,
        base_url: str,
        *,
        user_agent: str,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        min_interval: float = 0.0,
        max_attempts: int = 5,
        max_wait: float = 120.0,
        default_429_wait: float = 30.0,
        headers: Mapping[str, str] | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.host = urlsplit(self.base_url).hostname or self.base_url
        self.session = session or make_session(user_agent)
        if headers:
            self.session.headers.update(dict(headers))
        self.timeout = timeout
        self.min_interval = max(0.0, min_interval)
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self.default_429_wait = default_429_wait
        self.requests = 0  # requests actually sent, retries included
        self._last = 0.0
        self._not_before = 0.0

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> requests.Response:
        """GET with pacing and retries; returns a 2xx response or raises HttpError / RateLimited / network error."""
        url = self.url(path)
        try:
            for attempt in retrying(max_attempts=self.max_attempts, what=f"GET {self.host}"):
                with attempt:
                    return self._send(url, params)
        except TooManyRequests as exc:
            raise RateLimited(
                f"{self.host} kept answering 429 (too many requests) after {self.max_attempts} tries",
                wait=exc.wait,
                host=self.host,
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover - Retrying either returns or raises

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> tuple[Any, requests.Response]:
        """GET and decode JSON; a body that is not JSON raises :class:`HttpError`."""
        response = self.get(path, params)
        try:
            return response.json(), response
        except ValueError:
            snippet = response.text[:80].replace("\n", " ")
            raise HttpError(
                f"{self.host} answered HTTP {response.status_code} with a body that is not JSON: {snippet!r}",
                status=response.status_code,
                url=response.url,
            ) from None

    def _pace(self) -> None:
        now = time.monotonic()
        wait = max(self._last + self.min_interval - now, self._not_before - now, 0.0)
        if wait > 0:
            sleep(wait)
        self._last = time.monotonic()

    def _send(self, url: str, params: Mapping[str, Any] | None) -> requests.Response:
        self._pace()
        self.requests += 1
        response = self.session.get(url, params=params, timeout=self.timeout)
        status = response.status_code
        if status == 429:
            wait = retry_after(response.headers)
            hinted = wait is not None
            wait = self.default_429_wait if wait is None else wait
            if wait > self.max_wait:
                raise RateLimited(
                    f"{self.host} rate limit: asked to wait {wait:.0f}s (more than {self.max_wait:.0f}s); "
                    "stopping until the next run",
                    wait=wait,
                    host=self.host,
                )
            raise TooManyRequests(
                f"{self.host} answered 429 ({'wait ' + format(wait, '.0f') + 's' if hinted else 'no reset header'})",
                wait=wait,
                host=self.host,
            )
        if status >= 500:
            raise ServerError(f"{self.host} answered HTTP {status}", status=status, url=response.url)
        if status >= 400:
            raise HttpError(_error_line(self.host, response), status=status, url=response.url)
        left = remaining(response.headers)
        if left is not None and left <= 0:
            wait = retry_after(response.headers)
            if wait is not None and wait <= self.max_wait:
                self._not_before = time.monotonic() + wait
        return response


def _error_line(host: str, response: requests.Response) -> str:
    detail = ""
    try:
        body = response.json()
        if isinstance(body, dict):
            detail = str(body.get("error") or body.get("message") or "")
    except ValueError:
        detail = response.text[:120]
    detail = " ".join(detail.split())[:160]
    return f"{host} answered HTTP {response.status_code}" + (f": {detail}" if detail else "")


# --- pagination guard ----------------------------------------------------------------------------------------


class LoopGuard:
    """Remembers page signatures (e.g. the tuple of item ids); :meth:`repeated` is true for a page seen before.

    APIs with cursors sometimes hand back the page they just gave (a stuck cursor, a clock-skewed ``after``);
    without a guard a pager loops forever. An empty page is never a repeat.
    """

    def __init__(self) -> None:
        self._seen: set[Hashable] = set()

    def repeated(self, signature: Hashable) -> bool:
        if signature in self._seen:
            return True
        self._seen.add(signature)
        return False


# --- reachability ----------------------------------------------------------------------------------------------

_PROBE_CACHE: dict[str, tuple[float, str | None]] = {}
_PROBE_LOCK = threading.Lock()
_PROBE_OK_TTL = 300.0
_PROBE_FAIL_TTL = 30.0


def clear_probe_cache() -> None:
    with _PROBE_LOCK:
        _PROBE_CACHE.clear()


def probe(
    urls: Iterable[str],
    *,
    user_agent: str,
    timeout: float = PROBE_TIMEOUT,
    session_factory: Callable[[str], requests.Session] = make_session,
) -> dict[str, str | None]:
    """Check that each URL's host answers HTTP at all; returns host -> ``None`` (reachable) or a short reason.

    All hosts are checked in parallel daemon threads and the whole call returns within about ``timeout``
    seconds, even when DNS hangs. Any HTTP answer (404 and 405 included) counts as reachable. Results are
    cached for a few minutes, so the second check of a run (plan, then collect) costs nothing.
    """
    targets: dict[str, str] = {}
    for url in urls:
        parts = urlsplit(url if "://" in url else f"https://{url}")
        host = parts.hostname or url
        targets.setdefault(host, f"{parts.scheme or 'https'}://{parts.netloc}/")
    results: dict[str, str | None] = {}
    pending: dict[str, str] = {}
    now = time.monotonic()
    with _PROBE_LOCK:
        for host, url in targets.items():
            cached = _PROBE_CACHE.get(host)
            if cached and now - cached[0] < (_PROBE_OK_TTL if cached[1] is None else _PROBE_FAIL_TTL):
                results[host] = cached[1]
            else:
                pending[host] = url
    if not pending:
        return results
    found: dict[str, str | None] = {}

    def check(host: str, url: str) -> None:
        session = session_factory(user_agent)
        try:
            session.head(url, timeout=(timeout, timeout), allow_redirects=False)
            found[host] = None
        except requests.Timeout:
            found[host] = f"{host} did not answer within {timeout:g}s (no network?)"
        except requests.ConnectionError:
            found[host] = f"{host} unreachable (no network?)"
        except requests.RequestException as exc:
            found[host] = f"{host} unreachable ({type(exc).__name__})"
        finally:
            session.close()

    threads = [threading.Thread(target=check, args=item, daemon=True) for item in pending.items()]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout + 0.5
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0.0))
    stamp = time.monotonic()
    with _PROBE_LOCK:
        for host in pending:
            reason = found.get(host, f"{host} did not answer within {timeout:g}s (no network?)")
            results[host] = reason
            _PROBE_CACHE[host] = (stamp, reason)
    return results

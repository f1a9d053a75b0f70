"""A small, polite HTTP client for the credential-free JSON APIs (Hacker News, Mastodon, Arctic Shift).

What every such source needs, in one place:

- a :class:`requests.Session` that sends an identifying user agent, with connect/read timeouts;
- pacing (a minimum interval between requests, and waiting for a rate-limit window announced by the server
  through ``X-RateLimit-Remaining: 0``);
- the shared retry and rate-limit policy (:class:`~aimusic.sources.ratelimit.RetryPolicy`): bounded retries
  with backoff on 5xx answers, timeouts and connection resets; a 429 with a short wait is slept, a long one
  raises :class:`RateLimited` so the source stops and resumes from its cursor on the next run;
- :class:`LoopGuard`, which stops a pagination loop when the API hands back a page it already gave;
- :func:`probe`, a quick, bounded reachability check so an offline machine skips a source in seconds.

No Prefect, no global state beyond the probe cache. Time and waits come from :mod:`aimusic.sources.ratelimit`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests

from aimusic.sources.ratelimit import RetryPolicy, monotonic, remaining, retry_after, sleep

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)  # (connect, read) seconds
PROBE_TIMEOUT = 2.5  # seconds for a reachability check, DNS included


class HttpError(RuntimeError):
    """An answer the client will not retry (4xx other than 429, or a body that is not the JSON expected)."""

    def __init__(self, message: str, *, status: int | None = None, url: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.url = url


class ServerError(HttpError):
    """A 5xx answer (retried with backoff; raised when the retries are used up)."""


#: network failures and server errors: retried with backoff
TRANSIENT = (
    requests.ConnectionError,  # refused, reset, DNS
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,  # connection broken in the middle of a body
    ServerError,
)


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
        self.policy = RetryPolicy(
            max_attempts=max_attempts, max_wait=max_wait, default_wait=default_429_wait, retry_on=TRANSIENT
        )
        self.requests = 0  # requests actually sent, retries included
        self._last = 0.0
        self._not_before = 0.0

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> requests.Response:
        """GET with pacing and retries; returns a 2xx response or raises HttpError / RateLimited / a network error."""
        url = self.url(path)
        return self.policy.call(lambda: self._send(url, params), what=f"GET {self.host}")

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
        now = monotonic()
        wait = max(self._last + self.min_interval - now, self._not_before - now, 0.0)
        if wait > 0:
            sleep(wait)
        self._last = monotonic()

    def _send(self, url: str, params: Mapping[str, Any] | None) -> requests.Response:
        self._pace()
        self.requests += 1
        response = self.session.get(url, params=params, timeout=self.timeout)
        status = response.status_code
        if status == 429:
            raise self.policy.too_many_requests(response.headers, host=self.host)
        if status >= 500:
            raise ServerError(f"{self.host} answered HTTP {status}", status=status, url=response.url)
        if status >= 400:
            raise HttpError(_error_line(self.host, response), status=status, url=response.url)
        left = remaining(response.headers)
        if left is not None and left <= 0:
            wait = retry_after(response.headers)
            if wait is not None and wait <= self.policy.max_wait:
                self._not_before = monotonic() + wait
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

"""The shared HTTP helper of the credential-free sources and the one retry / rate-limit policy (ratelimit.py):
rate-limit headers, retries, the clock, the loop guard, probes."""

from __future__ import annotations

import email.utils
import time

import pytest
import requests
import responses
from source_testkit import clock_fixtures

from aimusic.sources import ratelimit
from aimusic.sources.http import ApiClient, HttpError, LoopGuard, ServerError, probe
from aimusic.sources.ratelimit import RateLimited, RetryPolicy, TooManyRequests, retry_after

NOW = 1_763_000_000.0
URL = "https://api.example.org/items"

clock, sleeps = clock_fixtures(NOW)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": email.utils.formatdate(NOW + 30, usegmt=True)}, 30.0),
        ({"X-RateLimit-Reset": str(int(NOW + 12))}, 12.0),  # epoch seconds (Arctic Shift, Mastodon-likes)
        ({"x-ratelimit-reset": str(int((NOW + 12) * 1000))}, 12.0),  # epoch milliseconds
        ({"RateLimit-Reset": "45"}, 45.0),  # seconds to wait (IETF draft)
        ({"X-RateLimit-Reset": "2025-11-13T02:14:00.000Z"}, 40.0),  # ISO time (Mastodon)
        ({"Retry-After": str(int(NOW - 100))}, 0.0),  # a reset in the past: no wait
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_reads_every_header_form(headers: dict, expected: float | None) -> None:
    got = retry_after(headers, now=NOW)
    assert got == (pytest.approx(expected, abs=1) if expected is not None else None)
    assert retry_after(headers) == got  # the default "now" is the sources' clock


@pytest.mark.parametrize(
    ("headers", "default_wait", "kind", "wait"),
    [
        ({"x-rate-limit-reset": str(int(NOW + 20))}, None, TooManyRequests, 20.0),  # X: epoch seconds
        ({"x-ratelimit-reset": "5"}, None, TooManyRequests, 5.0),  # Reddit: seconds to wait
        ({"retry-after": "300"}, 30.0, RateLimited, 300.0),  # longer than max_wait: stop
        ({}, 30.0, TooManyRequests, 30.0),  # no hint: the default wait
        ({}, None, RateLimited, None),  # no hint and no default: stop
    ],
)
def test_policy_decides_what_a_429_means(headers, default_wait, kind, wait) -> None:
    exc = RetryPolicy(max_wait=60, default_wait=default_wait).too_many_requests(headers, host="api")
    assert type(exc) is kind and exc.wait == wait and "api" in str(exc) and "429" in str(exc)


def test_policy_sleeps_through_short_429s_then_gives_up(sleeps) -> None:
    calls = []

    def limited() -> None:
        calls.append(1)
        raise RetryPolicy().too_many_requests({"Retry-After": "7"}, host="api")

    with pytest.raises(RateLimited, match="kept answering 429") as info:
        RetryPolicy(max_attempts=3).call(limited, what="test")
    assert type(info.value) is RateLimited and info.value.wait == 7
    assert len(calls) == 3 and sleeps == [8.0, 8.0]  # the asked-for wait + a second, between the tries


def test_every_source_module_waits_through_the_one_clock(clock) -> None:
    clock.set(NOW + 3600)
    assert ratelimit.now_epoch() == NOW + 3600 and ratelimit.utcnow().timestamp() == NOW + 3600
    ratelimit.sleep(2.5)
    assert clock.sleeps == [2.5]


def test_connection_reset_and_broken_body_are_retried(sleeps) -> None:
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, URL, body=requests.ConnectionError("Connection reset by peer"))
        rsps.add(responses.GET, URL, body=requests.exceptions.ChunkedEncodingError("Connection broken"))
        rsps.add(responses.GET, URL, body=requests.Timeout("read timed out"))
        rsps.add(responses.GET, URL, json={"ok": True})
        client = ApiClient("https://api.example.org", user_agent="t/1")
        data, _ = client.get_json("items")
    assert data == {"ok": True} and client.requests == 4
    assert len(sleeps) == 3
    assert sleeps[0] < sleeps[1] < sleeps[2] + 1  # growing backoff (with jitter)


def test_retries_are_bounded(sleeps) -> None:
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, URL, status=502)
        client = ApiClient("https://api.example.org", user_agent="t/1", max_attempts=3)
        with pytest.raises(ServerError, match="HTTP 502"):
            client.get("items")
    assert client.requests == 3


def test_4xx_is_not_retried_and_says_why(sleeps) -> None:
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, URL, status=422, json={"error": "Validation failed: limit too large"})
        client = ApiClient("https://api.example.org", user_agent="t/1")
        with pytest.raises(HttpError) as info:
            client.get("items")
    assert info.value.status == 422 and "limit too large" in str(info.value) and client.requests == 1


def test_html_instead_of_json_is_an_error(sleeps) -> None:
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, URL, body="<html>maintenance</html>", content_type="text/html")
        with pytest.raises(HttpError, match="not JSON"):
            ApiClient("https://api.example.org", user_agent="t/1").get_json("items")


def test_long_rate_limit_is_not_slept(sleeps) -> None:
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, URL, status=429, headers={"Retry-After": "900"})
        with pytest.raises(RateLimited) as info:
            ApiClient("https://api.example.org", user_agent="t/1", max_wait=60).get("items")
    assert info.value.wait == pytest.approx(900) and not sleeps.long


def test_pacing_keeps_the_interval(sleeps) -> None:
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, URL, json=[])
        client = ApiClient("https://api.example.org", user_agent="t/1", min_interval=0.5)
        for _ in range(3):
            client.get("items")
    assert len(sleeps) == 2 and all(0.3 < s <= 0.5 for s in sleeps)


def test_loop_guard() -> None:
    guard = LoopGuard()
    assert not guard.repeated(("a", "b"))
    assert not guard.repeated(("c",))
    assert guard.repeated(("a", "b"))


def test_probe_is_bounded_and_cached(monkeypatch) -> None:
    from aimusic.sources import http

    http.clear_probe_cache()

    class Hanging:
        def __init__(self, user_agent: str) -> None:
            pass

        def head(self, url: str, **kw: object) -> None:
            time.sleep(5)  # a DNS lookup that hangs

        def close(self) -> None:
            pass

    started = time.monotonic()
    result = probe(["https://slow.example/"], user_agent="t", timeout=0.3, session_factory=Hanging)
    assert time.monotonic() - started < 1.5
    assert result == {"slow.example": "slow.example did not answer within 0.3s (no network?)"}
    started = time.monotonic()
    assert probe(["https://slow.example/x"], user_agent="t", timeout=0.3, session_factory=Hanging) == result
    assert time.monotonic() - started < 0.1  # cached
    http.clear_probe_cache()

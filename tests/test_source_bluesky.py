"""Bluesky source: the real atproto SDK talking to a mock HTTP transport that answers in the XRPC wire format."""

from __future__ import annotations

import base64
import copy
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import responses
from source_testkit import Sleeps, clear_probes, collect, fixture_json, make_topics, patch_sleeps, rows, settings

from aimusic.sources import bluesky
from aimusic.sources.bluesky import BlueskySource, make_client, normalize_post

NOW = 1_763_000_000  # 2025-11-13T02:13:20Z
SECTION = """
[sources.bluesky]
queries = ["Suno"]
initial_days = 2
window_hours = 48
overlap_minutes = 30
"""
CREDS = {"BLUESKY_HANDLE": "monitor.bsky.social", "BLUESKY_APP_PASSWORD": "abcd-efgh-ijkl-mnop"}


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> Sleeps:
    return patch_sleeps(monkeypatch)


@pytest.fixture(autouse=True)
def _fresh_probes() -> None:
    clear_probes()


def _jwt(exp: int) -> str:
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    claims = {"scope": "com.atproto.appPass", "sub": "did:plc:monitor4fake7ids9only2", "iat": NOW, "exp": exp}
    return f"{part({'typ': 'at+jwt', 'alg': 'ES256K'})}.{part(claims)}.c2lnbmF0dXJl"


class Xrpc:
    """The PDS: createSession, then searchPosts pages by cursor; records every request."""

    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.pages = pages
        self.requests: list[httpx.Request] = []
        self.search_params: list[dict[str, str]] = []
        self.failures: list[httpx.Response] = []  # answered first, before any page
        self.login_status = 200

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path.endswith("com.atproto.server.createSession"):
            if self.login_status != 200:
                return httpx.Response(
                    self.login_status,
                    json={"error": "AuthenticationRequired", "message": "Invalid identifier or password"},
                )
            body = fixture_json("bluesky", "create_session.json")
            body["accessJwt"] = _jwt(int(time.time()) + 7200)
            body["refreshJwt"] = _jwt(int(time.time()) + 86400)
            return httpx.Response(200, json=body)
        if path.endswith("app.bsky.feed.searchPosts"):
            params = {k: v[0] for k, v in parse_qs(urlsplit(str(request.url)).query).items()}
            self.search_params.append(params)
            if self.failures:
                return self.failures.pop(0)
            index = int(params.get("cursor", "0")) // 2
            page = self.pages[index] if index < len(self.pages) else {"posts": []}
            return httpx.Response(200, json=page)
        return httpx.Response(404, json={"error": "MethodNotImplemented"})


@pytest.fixture(autouse=True)
def now(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(bluesky, "now_epoch", lambda: NOW)
    return NOW


@pytest.fixture
def probe_ok():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(responses.HEAD, "https://bsky.social/", status=200)
        yield rsps


def pages() -> list[dict[str, Any]]:
    return [
        copy.deepcopy(fixture_json("bluesky", "search_posts_page1.json")),
        copy.deepcopy(fixture_json("bluesky", "search_posts_page2.json")),
    ]


def install(monkeypatch: pytest.MonkeyPatch, server: Xrpc) -> None:
    from atproto_client.request import Request

    def factory(settings_obj: Any, service: str) -> Any:
        return make_client(settings_obj, service, request=Request(transport=httpx.MockTransport(server)))

    monkeypatch.setattr(BlueskySource, "client_factory", staticmethod(factory))


def test_normalize_post_view() -> None:
    post = normalize_post(pages()[0]["posts"][0])
    assert post is not None
    assert post.post_id == "at://did:plc:ewvi7nxzyoun6zhxrhs64oiz/app.bsky.feed.post/3m5ff7ijsfk2c"
    assert post.url == "https://bsky.app/profile/countrywriter.bsky.social/post/3m5ff7ijsfk2c"
    assert post.author == "countrywriter.bsky.social" and post.lang == "en" and post.kind == "post"
    assert (post.score, post.replies, post.reposts) == (140, 12, 34)
    reply = normalize_post(pages()[0]["posts"][1])
    assert reply is not None and reply.kind == "reply" and reply.parent_id == post.post_id
    assert reply.thread_id == post.post_id


def test_missing_credentials_skip_with_one_line(tmp_path, store) -> None:
    summary = collect("bluesky", store, make_topics(tmp_path, SECTION))
    assert summary.status == "skipped"
    assert summary.error.startswith("no credentials: set BLUESKY_HANDLE and BLUESKY_APP_PASSWORD")


def test_collects_pages_skips_malformed_and_second_run_adds_nothing(
    tmp_path, store, probe_ok, monkeypatch, sleeps
) -> None:
    server = Xrpc(pages())
    install(monkeypatch, server)
    topics = make_topics(tmp_path, SECTION)
    first = collect("bluesky", store, topics, settings(**CREDS))
    assert first.status == "partial" and first.skipped == 2
    assert first.fetched == 5
    assert {r["post_id"].rsplit("/", 1)[1] for r in rows(store, "bluesky")} == {
        "3m5ff7ijsfk2c",
        "3m5fa2kq3rs2x",
        "3m5e7yrbhbc2p",
    }
    login = server.requests[0]
    assert login.url.host == "bsky.social"
    assert json.loads(login.content) == {"identifier": "monitor.bsky.social", "password": "abcd-efgh-ijkl-mnop"}
    search = [r for r in server.requests if "searchPosts" in r.url.path]
    assert search[0].url.host == "morel.us-east.host.bsky.network"  # the PDS from the session's DID document
    assert search[0].headers["Authorization"].startswith("Bearer ")
    assert server.search_params[0] == {
        "q": "Suno",
        "sort": "latest",
        "since": "2025-11-11T02:13:20Z",
        "until": "2025-11-13T02:13:20Z",
        "limit": "100",
    }
    assert server.search_params[1]["cursor"] == "2"
    assert store.get_cursors("bluesky") == {"query:Suno": str(NOW)}

    server.search_params.clear()
    server.pages = [{"posts": []}]
    second = collect("bluesky", store, topics, settings(**CREDS))
    assert second.new == 0 and second.fetched == 0
    assert server.search_params == [
        {
            "q": "Suno",
            "sort": "latest",
            "since": "2025-11-13T01:43:20Z",
            "until": "2025-11-13T02:13:20Z",
            "limit": "100",
        }
    ]


def test_429_short_reset_waits_long_reset_stops(tmp_path, store, probe_ok, monkeypatch, sleeps) -> None:
    server = Xrpc(pages())
    reset = int(time.time()) + 12
    server.failures = [
        httpx.Response(
            429,
            headers={"ratelimit-reset": str(reset), "ratelimit-remaining": "0"},
            json={"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
        )
    ]
    install(monkeypatch, server)
    summary = collect("bluesky", store, make_topics(tmp_path, SECTION), settings(**CREDS))
    assert summary.new == 3
    assert any(9 < s < 15 for s in sleeps.long), sleeps

    server.failures = [
        httpx.Response(
            429, headers={"ratelimit-reset": str(int(time.time()) + 3600)}, json={"error": "RateLimitExceeded"}
        )
    ]
    store.set_cursors({("bluesky", "query:Suno"): str(NOW - 86_400)})
    sleeps.clear()
    summary = collect("bluesky", store, make_topics(tmp_path, SECTION), settings(**CREDS))
    assert summary.status == "partial" and any("rate limit" in n for n in summary.notes)
    assert not sleeps.long
    assert store.get_cursors("bluesky") == {"query:Suno": str(NOW - 86_400)}  # not moved


def test_5xx_is_retried_then_succeeds(tmp_path, store, probe_ok, monkeypatch, sleeps) -> None:
    server = Xrpc(pages())
    server.failures = [httpx.Response(502, text="Bad Gateway"), httpx.Response(500, json={"error": "InternalError"})]
    install(monkeypatch, server)
    summary = collect("bluesky", store, make_topics(tmp_path, SECTION), settings(**CREDS))
    assert summary.new == 3
    assert len(sleeps.long) == 2


def test_persistent_5xx_stops_with_a_note(tmp_path, store, probe_ok, monkeypatch, sleeps) -> None:
    server = Xrpc(pages())
    server.failures = [httpx.Response(503, json={"error": "Unavailable"}) for _ in range(10)]
    install(monkeypatch, server)
    summary = collect("bluesky", store, make_topics(tmp_path, SECTION), settings(**CREDS))
    assert summary.status == "partial" and any("503" in n for n in summary.notes)
    assert store.get_cursors("bluesky") == {}


def test_login_refused_is_a_skip(tmp_path, store, probe_ok, monkeypatch, sleeps) -> None:
    server = Xrpc(pages())
    server.login_status = 401
    install(monkeypatch, server)
    summary = collect("bluesky", store, make_topics(tmp_path, SECTION), settings(**CREDS))
    assert summary.status == "skipped"
    assert summary.error == "Bluesky login refused for monitor.bsky.social: check BLUESKY_APP_PASSWORD"
    assert "abcd-efgh" not in summary.error


def test_loop_guard_when_the_cursor_repeats_a_page(tmp_path, store, probe_ok, monkeypatch, sleeps) -> None:
    page = pages()[0]
    server = Xrpc([page, page, page])  # cursors "2" and "4" both answer the same posts
    page["cursor"] = "2"
    server.pages[1] = dict(page, cursor="4")
    install(monkeypatch, server)
    summary = collect("bluesky", store, make_topics(tmp_path, SECTION), settings(**CREDS))
    assert any("same page again" in n for n in summary.notes)
    assert len(server.search_params) == 2


def test_offline_with_credentials_is_skipped_quickly(tmp_path, store) -> None:
    started = time.monotonic()
    summary = collect("bluesky", store, make_topics(tmp_path, SECTION), settings(**CREDS))
    assert summary.status == "skipped" and summary.error == "bsky.social unreachable (no network?)"
    assert time.monotonic() - started < 5

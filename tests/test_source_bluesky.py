"""Bluesky source: the real atproto SDK talking to a mock HTTP transport that answers in the XRPC wire format."""

from __future__ import annotations

import base64
import copy
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from source_testkit import api_fixture, clock_fixtures, collect, fixture_json, make_topics, rows, settings

from aimusic.sources.bluesky import BlueskySource, expand_links, normalize_post

NOW = 1_763_000_000  # 2025-11-13T02:13:20Z
SECTION = """
[sources.bluesky]
queries = ["Suno"]
initial_days = 2
window_hours = 48
overlap_minutes = 30
"""
CREDS = {"BLUESKY_HANDLE": "monitor.bsky.social", "BLUESKY_APP_PASSWORD": "abcd-efgh-ijkl-mnop"}
EXPLICIT = {"handle": "monitor.bsky.social", "app_password": "abcd-efgh-ijkl-mnop"}  # passed to the source

clock, sleeps = clock_fixtures(NOW)


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


api = api_fixture("https://bsky.social/")


def pages() -> list[dict[str, Any]]:
    return [
        copy.deepcopy(fixture_json("bluesky", "search_posts_page1.json")),
        copy.deepcopy(fixture_json("bluesky", "search_posts_page2.json")),
    ]


def source(server: Xrpc, **credentials: str) -> BlueskySource:
    """The source with the SDK's HTTP transport replaced by ``server``; credentials explicit or from settings."""
    from atproto_client.request import Request

    return BlueskySource(**credentials, request=Request(transport=httpx.MockTransport(server)))


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


def _facet(text: str, shown: str, feature: dict[str, Any]) -> dict[str, Any]:
    """A facet as the app writes it: the feature and the UTF-8 byte range of ``shown`` in ``text``."""
    start = text.encode("utf-8").index(shown.encode("utf-8"))
    return {"$type": "app.bsky.richtext.facet", "index": {"byteStart": start, "byteEnd": start + len(shown.encode())},
            "features": [feature]}


def test_shortened_links_are_expanded_from_their_facets() -> None:
    full = "https://www.billboard.com/charts/country-digital-song-sales/2025-11-15/"
    other = "https://example.org/ai-music-licensing-explained?ref=bsky"
    text = ("🎶🤖 Breaking Rust #1 again: www.billboard.com/charts/count... (and example.org/ai-music-lic… too) "
            "@label.bsky.social #AIMusic read this")
    link = "app.bsky.richtext.facet#link"
    raw = copy.deepcopy(pages()[0]["posts"][0])
    raw["record"]["text"] = text
    raw["record"]["facets"] = [
        _facet(text, "www.billboard.com/charts/count...", {"$type": link, "uri": full}),
        _facet(text, "example.org/ai-music-lic…", {"$type": link, "uri": other}),
        _facet(text, "@label.bsky.social", {"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:label1"}),
        _facet(text, "#AIMusic", {"$type": "app.bsky.richtext.facet#tag", "tag": "AIMusic"}),
        _facet(text, "read this", {"$type": link, "uri": "https://example.org/essay"}),  # anchor text: kept
    ]
    post = normalize_post(raw)
    assert post is not None and post.text == (
        f"🎶🤖 Breaking Rust #1 again: {full} (and {other} too) @label.bsky.social #AIMusic read this"
    )
    # offsets that do not fit the text, or cut a character in two, leave it as it is
    broken = {"index": {"byteStart": 1, "byteEnd": 9999}, "features": [{"$type": link, "uri": full}]}
    half = {"index": {"byteStart": 1, "byteEnd": 3}, "features": [{"$type": link, "uri": full}]}
    no_features = {"index": {"byteStart": 0, "byteEnd": 4}, "features": 5}
    odd = [broken, half, "junk", {"index": {"byteStart": True}}, no_features]
    assert expand_links(text, odd) == text


def test_engagement_counts_quotes_as_reposts() -> None:
    raw = pages()[0]["posts"][0]
    assert (raw["repostCount"], raw["quoteCount"]) == (30, 4)
    assert normalize_post(raw).reposts == 34
    del raw["quoteCount"]
    assert normalize_post(raw).reposts == 30
    del raw["repostCount"]
    assert normalize_post(raw).reposts is None


def test_missing_credentials_skip_with_one_line(tmp_path, store) -> None:
    summary = collect("bluesky", store, make_topics(tmp_path, SECTION))
    assert summary.status == "skipped"
    assert summary.error.startswith("no credentials: set BLUESKY_HANDLE and BLUESKY_APP_PASSWORD")


def test_collects_pages_skips_malformed_and_second_run_adds_nothing(
    tmp_path, store, api, sleeps
) -> None:
    server = Xrpc(pages())
    topics = make_topics(tmp_path, SECTION)
    first = collect(source(server), store, topics, settings(**CREDS))
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
    second = collect(source(server), store, topics, settings(**CREDS))
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


def test_429_short_reset_waits_long_reset_stops(tmp_path, store, api, sleeps) -> None:
    server = Xrpc(pages())
    reset = NOW + 12
    server.failures = [
        httpx.Response(
            429,
            headers={"ratelimit-reset": str(reset), "ratelimit-remaining": "0"},
            json={"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
        )
    ]
    summary = collect(source(server, **EXPLICIT), store, make_topics(tmp_path, SECTION))
    assert summary.new == 3
    assert 13 in sleeps.long, sleeps  # the reset (12 s) + 1

    server.failures = [
        httpx.Response(
            429, headers={"ratelimit-reset": str(NOW + 3600)}, json={"error": "RateLimitExceeded"}
        )
    ]
    store.set_cursors({("bluesky", "query:Suno"): str(NOW - 86_400)})
    sleeps.clear()
    summary = collect(source(server, **EXPLICIT), store, make_topics(tmp_path, SECTION))
    assert summary.status == "partial" and any("rate limit" in n for n in summary.notes)
    assert not sleeps.long
    assert store.get_cursors("bluesky") == {"query:Suno": str(NOW - 86_400)}  # not moved


def test_5xx_is_retried_then_succeeds(tmp_path, store, api, sleeps) -> None:
    server = Xrpc(pages())
    server.failures = [httpx.Response(502, text="Bad Gateway"), httpx.Response(500, json={"error": "InternalError"})]
    summary = collect(source(server, **EXPLICIT), store, make_topics(tmp_path, SECTION))
    assert summary.new == 3
    assert len(sleeps.long) == 2


def test_persistent_5xx_stops_with_a_note(tmp_path, store, api, sleeps) -> None:
    server = Xrpc(pages())
    server.failures = [httpx.Response(503, json={"error": "Unavailable"}) for _ in range(10)]
    summary = collect(source(server, **EXPLICIT), store, make_topics(tmp_path, SECTION))
    assert summary.status == "partial" and any("503" in n for n in summary.notes)
    assert store.get_cursors("bluesky") == {}


def test_login_refused_is_a_skip(tmp_path, store, api, sleeps) -> None:
    server = Xrpc(pages())
    server.login_status = 401
    summary = collect(source(server, **EXPLICIT), store, make_topics(tmp_path, SECTION))
    assert summary.status == "skipped"
    assert summary.error == "Bluesky login refused for monitor.bsky.social: check BLUESKY_APP_PASSWORD"
    assert "abcd-efgh" not in summary.error


def test_loop_guard_when_the_cursor_repeats_a_page(tmp_path, store, api, sleeps) -> None:
    page = pages()[0]
    server = Xrpc([page, page, page])  # cursors "2" and "4" both answer the same posts
    page["cursor"] = "2"
    server.pages[1] = dict(page, cursor="4")
    summary = collect(source(server, **EXPLICIT), store, make_topics(tmp_path, SECTION))
    assert any("same page again" in n for n in summary.notes)
    assert len(server.search_params) == 2


def test_offline_with_credentials_is_skipped_quickly(tmp_path, store) -> None:
    started = time.monotonic()
    summary = collect("bluesky", store, make_topics(tmp_path, SECTION), settings(**CREDS))
    assert summary.status == "skipped" and summary.error == "bsky.social unreachable (no network?)"
    assert time.monotonic() - started < 5

"""Hacker News (Algolia) source against hand-built responses in Algolia's wire format, served by `responses`."""

from __future__ import annotations

import copy
import math
import re
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import responses
from source_testkit import api_fixture, clock_fixtures, collect, fixture_json, make_topics, rows, settings

from aimusic.sources.hackernews import normalize_hit

API = "https://hn.algolia.com/api/v1/search_by_date"
NOW = 1_763_000_000  # 2025-11-13T02:13:20Z, after every fixture item

clock, sleeps = clock_fixtures(NOW)


class FakeAlgolia:
    """Serves hits like ``search_by_date``: word query, tags, numericFilters, newest first, 1,000-hit cap."""

    def __init__(self, hits: list[dict[str, Any]], cap: int = 1000) -> None:
        self.hits = hits
        self.cap = cap
        self.calls: list[dict[str, str]] = []

    def __call__(self, request: Any) -> tuple[int, dict, str]:
        import json

        params = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        self.calls.append(params)
        words = params.get("query", "").lower().split()
        tags = params.get("tags", "").strip("()").split(",")
        low, high = -math.inf, math.inf
        for cond in params.get("numericFilters", "").split(","):
            m = re.fullmatch(r"created_at_i(>=|<)(\d+)", cond)
            if m:
                if m.group(1) == ">=":
                    low = int(m.group(2))
                else:
                    high = int(m.group(2))
        found = []
        for hit in self.hits:
            text = " ".join(str(hit.get(k) or "") for k in ("title", "story_text", "comment_text")).lower()
            stamp = hit.get("created_at_i")
            in_window = stamp is None or low <= stamp < high
            if all(w in text for w in words) and in_window and set(hit.get("_tags", [])) & set(tags):
                found.append(hit)
        found.sort(key=lambda h: h.get("created_at_i") or 0, reverse=True)
        per_page = int(params.get("hitsPerPage", 20))
        page = int(params.get("page", 0))
        reachable = found[: self.cap]
        body = {
            "exhaustive": {"nbHits": True, "typo": True},
            "exhaustiveNbHits": True,
            "hits": reachable[page * per_page : (page + 1) * per_page],
            "hitsPerPage": per_page,
            "nbHits": len(found),
            "nbPages": math.ceil(len(reachable) / per_page),
            "page": page,
            "params": urlsplit(request.url).query,
            "processingTimeMS": 1,
            "query": params.get("query", ""),
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(body)


SECTION = """
[sources.hackernews]
queries = ["Suno"]
initial_days = 10
window_days = 7
overlap_minutes = 30
"""


api = api_fixture("https://hn.algolia.com/", status=404)  # any HTTP answer counts as reachable


def fixture_hits() -> list[dict[str, Any]]:
    return copy.deepcopy(fixture_json("hackernews", "search_by_date.json")["hits"])


def test_normalize_story_and_comment() -> None:
    hits = fixture_hits()
    comment = normalize_hit(hits[0])
    assert comment is not None
    assert comment.kind == "comment" and comment.post_id == "45912150"
    assert comment.parent_id == "45912001" and comment.thread_id == "45912001"
    assert comment.text.startswith("Suno v5 is remarkably good at country vocals.\n\nBut the training data")
    assert "https://example.com/riaa" in comment.text and "<" not in comment.text
    assert comment.url == "https://news.ycombinator.com/item?id=45912150"
    assert comment.created_at.timestamp() == 1762964405
    story = normalize_hit(hits[2])
    assert story is not None and story.kind == "post" and story.title.startswith("An AI-generated country song")
    assert story.score == 212 and story.replies == 57
    ask = normalize_hit(hits[3])
    assert (
        ask is not None
        and ask.text == "Has anyone used Udio for a real album release? Curious about licensing & the vocals."
    )


def test_literal_backslash_n_becomes_a_line_break() -> None:
    # as Algolia serves some older items: the two characters backslash + n where the text had a line break
    hit = {
        "_tags": ["comment", "author_kp", "story_45912001"], "author": "kp", "comment_text":
        "Suno covers are fun.\\nBut the vocals?\\n\\nStill uncanny. Code stays: <code>printf</code>",
        "created_at": "2025-11-12T16:20:05Z", "created_at_i": 1762964405, "objectID": "45912160",
        "parent_id": 45912001, "story_id": 45912001,
    }
    post = normalize_hit(hit)
    assert post is not None
    assert post.text == "Suno covers are fun.\nBut the vocals?\n\nStill uncanny. Code stays: printf"
    assert "\\" not in post.text
    hit["comment_text"] = "No escapes here.\nA real line break stays one."
    assert normalize_hit(hit).text == "No escapes here.\nA real line break stays one."


def test_collects_relevant_hits_and_skips_malformed(tmp_path, store, api, sleeps) -> None:
    fake = FakeAlgolia(fixture_hits())
    api.add_callback(responses.GET, API, callback=fake)
    summary = collect("hackernews", store, make_topics(tmp_path, SECTION))
    assert summary.status == "partial"  # one malformed hit
    assert summary.skipped == 1
    assert any("45912199" in note for note in summary.notes)
    ids = {r["post_id"] for r in rows(store, "hackernews")}
    # the Rust story matches "Suno"? no: it is not returned; the Udio story does not match the query "Suno"
    assert ids == {"45912150"}
    assert summary.fetched == 2  # the comment and the malformed hit
    params = fake.calls[0]
    assert params["tags"] == "(story,comment)" and params["hitsPerPage"] == "1000"
    assert params["numericFilters"] == f"created_at_i>={NOW - 10 * 86_400},created_at_i<{NOW - 3 * 86_400}"


def _many(n: int, start: int, step: int) -> list[dict[str, Any]]:
    return [
        {
            "_tags": ["story", f"author_u{i}", f"story_{900000 + i}"],
            "author": f"u{i}",
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + i * step)),
            "created_at_i": start + i * step,
            "num_comments": 0,
            "objectID": str(900000 + i),
            "points": 1,
            "story_id": 900000 + i,
            "story_text": None,
            "title": f"Suno AI music experiment number {i}",
            "url": None,
        }
        for i in range(n)
    ]


def test_walks_past_the_hit_cap_and_second_run_adds_nothing(tmp_path, store, api, sleeps) -> None:
    # 25 hits in one window, the server caps at 10 per query and serves 4 per page: only time slicing reaches all
    hits = _many(25, NOW - 5 * 86_400, 3_600)
    hits[5]["created_at_i"] = hits[4]["created_at_i"]  # two hits sharing a second at a page boundary
    fake = FakeAlgolia(hits, cap=10)
    api.add_callback(responses.GET, API, callback=fake)
    topics = make_topics(tmp_path, SECTION.replace("window_days = 7", "window_days = 30") + "hits_per_page = 4\n")
    first = collect("hackernews", store, topics)
    assert first.status == "ok", first
    assert first.new == 25
    assert len({r["post_id"] for r in rows(store, "hackernews")}) == 25
    assert store.get_cursors("hackernews") == {"query:Suno": str(NOW)}

    fake.calls.clear()
    second = collect("hackernews", store, topics)
    assert second.new == 0 and second.updated == 0
    assert len(fake.calls) == 1  # nothing new: one request for the overlap window
    assert fake.calls[0]["numericFilters"] == f"created_at_i>={NOW - 1800},created_at_i<{NOW}"


def test_429_with_retry_after_waits_and_goes_on(tmp_path, store, api, sleeps) -> None:
    fake = FakeAlgolia(fixture_hits())
    api.add(responses.GET, API, status=429, headers={"Retry-After": "7"}, json={"message": "Too many requests"})
    api.add_callback(responses.GET, API, callback=fake)
    summary = collect("hackernews", store, make_topics(tmp_path, SECTION))
    assert summary.new == 1
    assert 8 in sleeps  # the asked-for 7 s (+ 1), not a blind backoff


def test_429_without_reset_header_retries_then_stops_keeping_data(tmp_path, store, api, sleeps) -> None:
    fake = FakeAlgolia(fixture_hits())

    def flaky(request: Any) -> tuple[int, dict, str]:
        if "query=Suno" in request.url:
            return fake(request)  # the first query comes through
        return 429, {}, '{"message": "Too many requests"}'

    api.add_callback(responses.GET, API, callback=flaky)
    topics = make_topics(tmp_path, SECTION.replace('queries = ["Suno"]', 'queries = ["Suno", "Udio"]'))
    summary = collect("hackernews", store, topics)
    assert summary.status == "partial"
    assert any("429" in note for note in summary.notes)
    assert summary.new == 1  # the first query's post is committed
    assert store.get_cursors("hackernews") == {"query:Suno": str(NOW)}  # no cursor for the stopped query
    assert len(sleeps.long) == 4 and all(s == 31 for s in sleeps.long)  # the default wait (30 s + 1), no header


def test_429_with_a_long_reset_stops_at_once(tmp_path, store, api, sleeps) -> None:
    api.add(responses.GET, API, status=429, headers={"X-RateLimit-Reset": str(NOW + 3600)}, json={})
    summary = collect("hackernews", store, make_topics(tmp_path, SECTION))
    assert summary.status == "partial"
    assert any("rate limit" in note and "next run" in note for note in summary.notes)
    assert not sleeps.long
    assert store.get_cursors("hackernews") == {}


def test_5xx_is_retried_with_backoff(tmp_path, store, api, sleeps) -> None:
    fake = FakeAlgolia(fixture_hits())
    api.add(responses.GET, API, status=502)
    api.add(responses.GET, API, status=503)
    api.add_callback(responses.GET, API, callback=fake)
    summary = collect("hackernews", store, make_topics(tmp_path, SECTION))
    assert summary.new == 1 and summary.status == "partial"  # partial only because of the malformed hit
    assert len(sleeps.long) == 2 and all(0.5 <= s <= 31 for s in sleeps.long)


def test_persistent_5xx_stops_the_source_with_a_note(tmp_path, store, api, sleeps) -> None:
    api.add(responses.GET, API, status=500)
    summary = collect("hackernews", store, make_topics(tmp_path, SECTION))
    assert summary.status == "partial"
    assert any("HTTP 500" in note for note in summary.notes)
    assert len(sleeps.long) == 4  # 5 attempts


def test_loop_guard_stops_a_server_that_repeats_its_page(tmp_path, store, api, sleeps) -> None:
    hits = _many(4, NOW - 5 * 86_400, 60)
    body = {"hits": hits, "hitsPerPage": 4, "nbHits": 50, "nbPages": 13, "page": 0}
    api.add(responses.GET, API, json=body)  # ignores numericFilters: always the same full page
    topics = make_topics(tmp_path, SECTION.replace("window_days = 7", "window_days = 30") + "hits_per_page = 4\n")
    summary = collect("hackernews", store, topics)
    assert summary.new == 4
    assert any("same page again" in note for note in summary.notes)
    get_calls = [c for c in api.calls if c.request.method == "GET"]
    assert len(get_calls) == 2


def test_offline_is_skipped_quickly_with_one_line(tmp_path, store) -> None:
    started = time.monotonic()
    summary = collect("hackernews", store, make_topics(tmp_path, SECTION))
    assert summary.status == "skipped"
    assert summary.error == "hn.algolia.com unreachable (no network?)"
    assert time.monotonic() - started < 5


def test_settings_user_agent_is_sent(tmp_path, store, api, sleeps) -> None:
    fake = FakeAlgolia(fixture_hits())
    api.add_callback(responses.GET, API, callback=fake)
    collect("hackernews", store, make_topics(tmp_path, SECTION), settings(AIMUSIC_USER_AGENT="tester/1.0 (ops@x)"))
    sent = [c.request.headers["User-Agent"] for c in api.calls]
    assert sent and set(sent) == {"tester/1.0 (ops@x)"}

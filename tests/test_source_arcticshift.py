"""Arctic Shift source against responses in its wire format ({"data": [Reddit objects]}), served by `responses`."""

from __future__ import annotations

import copy
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from source_testkit import api_fixture, clear_probes, clock_fixtures, collect, fixture_json, make_topics, rows, settings

from aimusic.sources import reddit_json
from aimusic.sources.arcticshift import build_query, normalize_item, stream_key

BASE = "https://arctic-shift.photon-reddit.com"
POSTS = f"{BASE}/api/posts/search"
COMMENTS = f"{BASE}/api/comments/search"
NOW = 1_763_000_000

SECTION = """
[sources.arcticshift]
subreddits = ["country"]
kinds = ["posts", "comments"]
initial_days = 1
overlap_minutes = 60
"""


clock, sleeps = clock_fixtures(NOW)
api = api_fixture(f"{BASE}/")


class Archive:
    """Serves items by subreddit and ``after`` < created_utc < ``before``, ascending, ``limit`` at most 100."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items
        self.calls: list[dict[str, str]] = []

    def __call__(self, request: Any) -> tuple[int, dict, str]:
        params = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        self.calls.append(params)
        after, before = float(params["after"]), float(params["before"])
        chosen = [
            i
            for i in self.items
            if i.get("subreddit", "").lower() == params["subreddit"].lower()
            and after < float(i["created_utc"]) < before
        ]
        chosen.sort(key=lambda i: float(i["created_utc"]))
        limit = min(int(params.get("limit", 25)), 100)
        headers = {"X-RateLimit-Remaining": "1000", "X-RateLimit-Reset": str(int(time.time()) + 60)}
        return 200, headers, json.dumps({"data": chosen[:limit]})


def posts() -> list[dict[str, Any]]:
    return copy.deepcopy(fixture_json("arcticshift", "posts_search.json")["data"])


def comments() -> list[dict[str, Any]]:
    return copy.deepcopy(fixture_json("arcticshift", "comments_search.json")["data"])


def test_normalize_reddit_objects() -> None:
    post = normalize_item(posts()[0])
    assert post is not None and post.source == "reddit" and post.post_id == "1ovx3kq" and post.kind == "post"
    assert post.title == "Breaking Rust is #1 and it's AI" and post.community == "country"
    assert post.url == "https://www.reddit.com/r/country/comments/1ovx3kq/breaking_rust_is_1_and_its_ai/"
    assert (post.score, post.replies, post.reposts) == (1, 311, 2)
    removed = normalize_item(posts()[1])  # string created_utc, null score, [removed] body, deleted author
    assert removed is not None and removed.text == "" and removed.title.startswith("Is the new Suno")
    assert removed.author is None and removed.score is None and removed.created_at.timestamp() == 1762961000
    comment = normalize_item(comments()[0])
    assert comment is not None and comment.kind == "comment" and comment.post_id == "nozq2x1"
    assert comment.thread_id == "1ovx3kq" and comment.parent_id == "1ovx3kq"
    assert normalize_item(comments()[1]) is None  # a removed comment is not a post
    with pytest.raises(ValueError):
        normalize_item(posts()[2])  # no id


def test_same_row_as_the_praw_collector() -> None:
    """The archive and the Reddit API must store a post identically, or they would fight over the row."""
    reddit = pytest.importorskip("aimusic.sources.reddit")
    for item, theirs in (
        (posts()[0], reddit.normalize_submission),
        (posts()[1], reddit.normalize_submission),
        (comments()[0], reddit.normalize_comment),
    ):
        fields = reddit_json.item_fields(item)
        assert fields is not None
        mine = reddit_json.to_post(fields, fetched_at=reddit_json.to_utc(1762990000)).model_dump()
        other = theirs(item, fetched_at=reddit_json.to_utc(1762990000)).model_dump()
        assert mine == other


def test_old_dump_items_without_permalink_get_a_url() -> None:
    # a 2012 Pushshift comment and submission: no permalink, created_utc as a string, ids without prefixes
    comment = {"author": "oldtimer", "body": "Computer-made music will never have soul.", "controversiality": 0,
               "created_utc": "1342000000", "distinguished": None, "edited": False, "gilded": 0, "id": "c5abcde",
               "link_id": "t3_wxyz1", "name": "t1_c5abcde", "parent_id": "t1_c5abc00", "retrieved_on": 1425000000,
               "score": 3, "subreddit": "Music", "subreddit_id": "t5_2qh1u", "ups": 3}
    post = normalize_item(comment)
    assert post is not None and post.url == "https://www.reddit.com/comments/wxyz1/_/c5abcde/"
    assert post.thread_id == "wxyz1" and post.parent_id == "c5abc00"
    submission = {"author": "oldtimer", "created_utc": 1342000000, "domain": "self.Music", "id": "wxyz1",
                  "num_comments": 12, "over_18": False, "score": 40, "selftext": "", "subreddit": "Music",
                  "title": "Algorithmic composition is getting good", "url": "https://example.org/algo"}
    assert normalize_item(submission).url == "https://www.reddit.com/comments/wxyz1/"
    assert normalize_item({**comment, "permalink": "/r/Music/comments/wxyz1/t/c5abcde/"}).url == (
        "https://www.reddit.com/r/Music/comments/wxyz1/t/c5abcde/"
    )


def test_build_query_quotes_phrases() -> None:
    assert build_query(["AI music", "Suno", "AI-generated song", "Suno"]) == '"AI music" OR Suno OR "AI-generated song"'


def test_collects_posts_and_comments_with_cursors(tmp_path, store, api, sleeps) -> None:
    archive_posts, archive_comments = Archive(posts()), Archive(comments())
    api.add_callback(responses.GET, POSTS, callback=archive_posts)
    api.add_callback(responses.GET, COMMENTS, callback=archive_comments)
    topics = make_topics(tmp_path, SECTION)
    summary = collect("arcticshift", store, topics)
    assert summary.fetched == 5 and summary.skipped == 1 and summary.status == "partial"
    got = {r["post_id"]: r for r in rows(store, "reddit")}
    assert set(got) == {"1ovx3kq", "1ovx9aa", "nozq2x1"}
    query = build_query(topics.tracking.terms)
    assert archive_posts.calls[0] == {
        "subreddit": "country",
        "after": str(NOW - 86_400),
        "before": str(NOW),
        "limit": "100",
        "sort": "asc",
        "query": query,
    }
    assert archive_comments.calls[0]["body"] == query and "query" not in archive_comments.calls[0]
    cursors = store.get_cursors("arcticshift")
    assert cursors == {
        stream_key("posts", "country", query): "1762962000",
        stream_key("comments", "country", query): "1762960600",
    }


def _items(n: int, start: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        item = copy.deepcopy(comments()[0])
        item["id"] = f"c{i:05d}"
        item["name"] = f"t1_c{i:05d}"
        item["created_utc"] = start + (i // 3) * 10  # three comments share each second: page edges cut groups
        item["body"] = f"AI music comment {i}"
        out.append(item)
    return out


def test_pages_past_100_and_second_run_adds_nothing(tmp_path, store, api, sleeps) -> None:
    archive = Archive(_items(250, NOW - 50_000))
    api.add_callback(responses.GET, COMMENTS, callback=archive)
    topics = make_topics(tmp_path, SECTION.replace('kinds = ["posts", "comments"]', 'kinds = ["comments"]'))
    first = collect("arcticshift", store, topics)
    assert first.new == 250 and first.status == "ok"
    afters = [int(c["after"]) for c in archive.calls]
    assert afters[0] == NOW - 86_400 and afters == sorted(afters) and len(archive.calls) >= 3
    key = stream_key("comments", "country", build_query(topics.tracking.terms))
    newest = NOW - 50_000 + (249 // 3) * 10
    assert store.get_cursors("arcticshift") == {key: str(newest)}

    archive.calls.clear()
    second = collect("arcticshift", store, topics)
    assert second.new == 0 and second.updated == 0
    assert next(int(c["after"]) for c in archive.calls) == newest - 3600


def test_429_with_reset_header_is_waited_out(tmp_path, store, api, sleeps) -> None:
    api.add(
        responses.GET,
        POSTS,
        status=429,
        headers={"X-RateLimit-Reset": str(NOW + 15)},
        json={"error": "Too many requests"},
    )
    api.add_callback(responses.GET, POSTS, callback=Archive(posts()))
    api.add_callback(responses.GET, COMMENTS, callback=Archive(comments()))
    collect("arcticshift", store, make_topics(tmp_path, SECTION))
    assert len(rows(store, "reddit")) == 3
    assert 16 in sleeps, sleeps  # the reset (15 s) + 1


def test_exhausted_window_is_respected_before_the_next_request(tmp_path, store, api, sleeps) -> None:
    def drained(request: Any) -> tuple[int, dict, str]:
        return 200, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "20"}, json.dumps({"data": posts()})

    api.add_callback(responses.GET, POSTS, callback=drained)
    api.add_callback(responses.GET, COMMENTS, callback=Archive(comments()))
    collect("arcticshift", store, make_topics(tmp_path, SECTION))
    assert any(19 < s <= 20 for s in sleeps.long), sleeps


def test_api_error_message_is_noted_and_other_streams_go_on(tmp_path, store, api, sleeps) -> None:
    api.add(responses.GET, POSTS, status=400, json={"error": "Query timed out"})
    api.add_callback(responses.GET, COMMENTS, callback=Archive(comments()))
    summary = collect("arcticshift", store, make_topics(tmp_path, SECTION))
    assert any(n.startswith("r/country posts (search):") and "Query timed out" in n for n in summary.notes)
    assert {r["post_id"] for r in rows(store, "reddit")} == {"nozq2x1"}


def test_server_down_stops_after_two_streams(tmp_path, store, api, sleeps) -> None:
    api.add(responses.GET, POSTS, status=503)
    api.add(responses.GET, COMMENTS, status=503)
    summary = collect("arcticshift", store, make_topics(tmp_path, SECTION + 'whole_subreddits = ["SunoAI"]\n'))
    assert summary.status == "partial" and any("keeps failing" in n for n in summary.notes)
    gets = [c for c in api.calls if c.request.method == "GET"]
    assert len(gets) == 10  # two streams x 5 attempts, the third and fourth streams not tried


def test_loop_guard_when_after_is_ignored(tmp_path, store, api, sleeps) -> None:
    page = _items(100, NOW - 5000)
    api.add(responses.GET, COMMENTS, json={"data": page})
    topics = make_topics(tmp_path, SECTION.replace('kinds = ["posts", "comments"]', 'kinds = ["comments"]'))
    summary = collect("arcticshift", store, topics)
    assert summary.new == 100
    assert len([c for c in api.calls if c.request.method == "GET"]) == 2


def test_identifying_user_agent_and_offline_skip(tmp_path, store, sleeps) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(responses.HEAD, f"{BASE}/", status=200)
        rsps.add_callback(responses.GET, POSTS, callback=Archive(posts()))
        rsps.add_callback(responses.GET, COMMENTS, callback=Archive(comments()))
        collect("arcticshift", store, make_topics(tmp_path, SECTION), settings(AIMUSIC_USER_AGENT="aimusic-test/9"))
        assert {c.request.headers["User-Agent"] for c in rsps.calls} == {"aimusic-test/9"}
    clear_probes()
    started = time.monotonic()
    summary = collect("arcticshift", store, make_topics(tmp_path, SECTION))
    assert summary.status == "skipped" and summary.error == "arctic-shift.photon-reddit.com unreachable (no network?)"
    assert time.monotonic() - started < 5

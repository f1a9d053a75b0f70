"""The Reddit source against a local HTTP server standing in for Reddit (praw's oauth_url / reddit_url).

The server answers from tests/fixtures/reddit/ (Reddit's wire format, see build.py there). The clock is frozen
at the fixtures' NOW and every sleep is recorded instead of slept.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from reddit_x_testkit import (
    NOW,
    FakeReddit,
    make_topics,
    posts_by_id,
    reddit_ok,
    reddit_status,
    standard_routes,
    use_live_credentials,
)
from reddit_x_testkit import fixture as kit_fixture
from source_testkit import clock_fixtures

from aimusic.core.config import get_settings
from aimusic.core.records import Post
from aimusic.core.topics import TopicsError
from aimusic.debate.relevance import RelevanceFilter
from aimusic.pipeline.collect import check_source, collect_source
from aimusic.sources import get_source, reddit
from aimusic.sources.base import CollectContext
from aimusic.sources.reddit import (
    RedditConfig,
    RedditCredentials,
    RedditSource,
    crosspost_parent,
    normalize_comment,
    normalize_submission,
    plan_listings,
    time_filter,
)
from aimusic.store.db import Store

LIVE_ENV = {k: v for k, v in os.environ.items() if k.startswith("REDDIT_")}  # read before conftest clears it

def P(bare: str) -> str:
    """The stored id of post ``bare``, as the shared Reddit mapping (aimusic.sources.reddit_json) writes it."""
    return normalize_submission({"id": bare, "title": "t", "created_utc": 1795176000.0}).post_id


def C(bare: str) -> str:
    """The stored id of comment ``bare``."""
    return normalize_comment({"id": bare, "body": "b", "link_id": "t3_x", "created_utc": 1795176000.0}).post_id


def fixture(name: str) -> dict | list:
    return kit_fixture("reddit", name)


ok, status = reddit_ok, reddit_status


@pytest.fixture
def topics(tmp_path: Path):
    return make_topics(tmp_path)


@pytest.fixture
def fake() -> Iterator[FakeReddit]:
    server = FakeReddit()
    standard_routes(server)
    yield server
    server.close()


#: the sources' clock frozen at NOW; every wait recorded, not slept (ours, and praw's rate limiter and retries)
clock, sleeps = clock_fixtures(NOW, praw=True)
USER_AGENT = "linux:aimusic-monitor-tests:0.1 (by /u/tester)"


@pytest.fixture
def creds() -> RedditCredentials:
    """Credentials passed to the source explicitly."""
    return RedditCredentials("test-client-id", SecretStr("test-client-secret"), USER_AGENT)


@pytest.fixture
def creds_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same credentials in the environment, where the settings read them by default."""
    monkeypatch.setenv("REDDIT_CLIENT_ID", "test-client-id")
    monkeypatch.setenv("REDDIT_CLIENT_SECRET", "test-client-secret")
    monkeypatch.setenv("REDDIT_USER_AGENT", USER_AGENT)


def configure(topics, fake: FakeReddit, **overrides: object):
    topics = topics.model_copy(deep=True)
    topics.sources["reddit"] = {
        "subreddits": ["WeAreTheMusicMakers", "country"],
        "on_topic_subreddits": ["SunoAI"],
        "page_size": 5,
        "replace_more_limit": 2,
        "oauth_url": fake.url,
        "reddit_url": fake.url,
        **overrides,
    }
    return topics


def run(store: Store, topics, creds: RedditCredentials | None = None):
    """One collection; credentials explicit, or (None) from the settings."""
    return collect_source(RedditSource(credentials=creds), store, topics, get_settings())


def rows(store: Store) -> dict[str, dict]:
    return posts_by_id(store, "reddit")


FIRST_RUN_IDS = {
    # posts: search (p1, the crosspost's original p5, NSFW p3, deleted p4, crosspost lookup p11, r/WATMM p8)
    P("1p0001"),
    P("1p0005"),
    P("1p0003"),
    P("1p0004"),
    P("1p0011"),
    P("1p0008"),
    # r/SunoAI read whole: posts (s2's body was removed, its title stays) and comments
    P("1s0001"),
    P("1s0002"),
    P("1s0003"),
    C("ka0001"),
    C("ka0003"),
    # thread comments (no tracked term of their own: they inherit the thread's relevance), "more" expanded
    C("kc0001"),
    C("kc0002"),
    C("kc0004"),
    C("kc0007"),
    C("kc0008"),
}


# --- a full run -----------------------------------------------------------------------------------------------


def test_first_run_reads_listings_threads_and_handles_edge_cases(fake, store, topics, creds, clock, sleeps):
    topics = configure(topics, fake)
    s = run(store, topics, creds)

    assert set(rows(store)) == FIRST_RUN_IDS
    assert s.status == "partial" and s.new == len(FIRST_RUN_IDS) and s.updated == 0
    assert s.skipped == 2  # a post without created_utc, a comment without body
    assert s.irrelevant == 1  # "Happy birthday to my cousin Suno!"
    assert any("1p0006" in n for n in s.notes) and any("kc0006" in n for n in s.notes)
    assert any("not stored" in n and "deleted or removed" in n for n in s.notes)

    got = rows(store)
    # pagination: page 2 asked for with Reddit's after token
    page2 = [p for m, path, p in fake.requests if path == "/r/all/search/" and "after" in p]
    assert page2 and page2[0]["after"] == "t3_1p0003" and page2[0]["count"] == "3"
    # the search query: the tracked terms OR-joined, newest first, a time filter covering the first-run window
    first = next(p for _, path, p in fake.requests if path == "/r/all/search/")
    assert '"AI music" OR' in first["q"] and first["sort"] == "new" and first["t"] == "month"
    assert first["restrict_sr"] == "off"
    assert next(p for _, path, p in fake.requests if path == "/r/country/search/")["restrict_sr"] == "on"
    # r/SunoAI is read whole, never searched
    assert "/r/SunoAI/search/" not in fake.paths()
    # crossposts: one row, the original's (p2 -> p5 embedded, p10 -> p11 looked up)
    assert P("1p0002") not in got and P("1p0010") not in got
    assert got[P("1p0005")]["community"] == "Music" and got[P("1p0011")]["title"].startswith("The Velvet Sundown")
    # title and self-text both kept
    assert got[P("1p0001")]["title"] == "Is AI music going to flood Spotify?"
    assert got[P("1p0001")]["text"].startswith("Every week there are more AI-generated tracks")
    # NSFW flagged; a comment in a thread gets its post's flag
    assert got[P("1p0003")]["nsfw"] and not got[P("1p0001")]["nsfw"]
    # deleted post: title kept, body and author gone; deleted author of a live comment
    assert got[P("1p0004")]["text"] == "" and got[P("1p0004")]["author"] is None
    assert got[P("1s0002")]["text"] == "" and got[P("1s0002")]["title"] == "My workflow for full songs"
    assert got[C("kc0002")]["author"] is None and "vocals" in got[C("kc0002")]["text"]
    # thread structure: fullnames, parent and thread
    assert got[C("kc0002")]["parent_id"] == C("kc0001") and got[C("kc0002")]["thread_id"] == P("1p0001")
    assert got[C("kc0001")]["kind"] == "comment" and got[C("kc0001")]["url"].startswith("https://www.reddit.com/r/")
    # "load more comments" expanded within the budget; AutoModerator, removed and deleted comments not stored
    more = [p for _, path, p in fake.requests if path == "/api/morechildren/"]
    assert more and more[0]["children"] == "kc0004,kc0005" and more[0]["link_id"] == "t3_1p0001"
    assert not {C("kc0003"), C("kc0005"), C("ka0002")} & set(got)
    # comments are fetched for relevant posts with comments, not for on-topic subreddits (comment stream)
    threads = {path for path in fake.paths("/comments/")}
    assert threads == {"/comments/1p0001/", "/comments/1p0005/", "/comments/1p0008/", "/comments/1p0011/"}
    # cursors: one per listing and query, the newest created_utc seen, committed with the data
    cursors = store.get_cursors("reddit")
    search_keys = [k for k in cursors if k.startswith("search:all:")]
    assert len(search_keys) == 1
    assert float(cursors[search_keys[0]]) == (NOW - timedelta(hours=1)).timestamp()
    assert float(cursors["new:SunoAI"]) == (NOW - timedelta(minutes=30)).timestamp()
    assert "search:country:" not in "".join(cursors)  # an empty listing sets no cursor
    # praw's rate limiter was fed the x-ratelimit headers but never had to wait long
    assert all(s < 11 for s in sleeps)


def test_second_run_reads_only_the_overlap_window_and_adds_nothing(fake, store, topics, creds, clock, sleeps):
    topics = configure(topics, fake)
    first = run(store, topics, creds)
    before = len(fake.requests)
    second = run(store, topics, creds)

    assert (second.new, second.updated, second.skipped) == (0, 0, 0)
    assert second.status == "ok"
    # read per listing: the items newer than its cursor minus 120 minutes (no second page, no thread refresh)
    # r/SunoAI: 1 post, 2 comments; all of Reddit: 2 posts; r/WeAreTheMusicMakers: 1 post
    assert second.fetched == 6 < first.fetched
    later = [path for _, path, _ in fake.requests[before:] if path != "/api/v1/access_token"]
    assert sorted(later) == sorted(
        [
            "/r/SunoAI/new/",
            "/r/SunoAI/comments/",
            "/r/all/search/",
            "/r/WeAreTheMusicMakers/search/",
            "/r/country/search/",
        ]
    )
    t = next(p for _, path, p in fake.requests[before:] if path == "/r/all/search/")["t"]
    assert t == "day"  # the narrowest time filter that covers the overlap window
    assert store.count("posts") == len(FIRST_RUN_IDS)


def test_edited_post_updates_its_row(fake, store, topics, creds, clock, sleeps):
    topics = configure(topics, fake)
    run(store, topics, creds)
    edited = fixture("search_all_p1.json")
    edited["data"]["children"][0]["data"]["selftext"] = "EDIT: the AI music flood is already here."
    edited["data"]["children"][0]["data"]["edited"] = (NOW - timedelta(minutes=5)).timestamp()
    fake.route("/r/all/search/", ok(edited))
    s = run(store, topics, creds)
    assert (s.new, s.updated) == (0, 1)
    assert rows(store)[P("1p0001")]["text"] == "EDIT: the AI music flood is already here."


def test_threads_are_refreshed_while_young(fake, store, topics, creds, clock, sleeps):
    topics = configure(topics, fake, comment_refresh_every_hours=6, comment_refresh_hours=48)
    run(store, topics, creds)
    clock.set(NOW + timedelta(hours=7))
    before = len(fake.requests)
    s = run(store, topics, creds)
    refreshed = {p for _, p, _ in fake.requests[before:] if p.startswith("/comments/")}
    # p1, p5, p8, p11 were fetched 7 h ago; p3 and p4 had no comments and are now old enough to look again, but
    # they are gone (404 here): dropped from the list quietly, not a failure
    assert refreshed == {"/comments/1p0001/", "/comments/1p0005/", "/comments/1p0008/", "/comments/1p0011/",
                         "/comments/1p0003/", "/comments/1p0004/"}
    assert any("2 threads no longer available" in n for n in s.notes), s.line()
    assert not any("failed" in n for n in s.notes) and s.skipped == 1  # only the malformed comment, again
    clock.set(NOW + timedelta(hours=60))
    before = len(fake.requests)
    run(store, topics, creds)
    assert not [p for _, p, _ in fake.requests[before:] if p.startswith("/comments/")]  # past the window


def test_listing_cap_is_reported(fake, store, topics, creds, clock, sleeps, monkeypatch):
    monkeypatch.setattr(reddit.run, "LISTING_CAP", 8)  # all of Reddit's search serves 8 items, then ends
    topics = configure(topics, fake, first_run_days=30, page_size=1)
    s = run(store, topics, creds)
    cap = [n for n in s.notes if "listing cap" in n]
    assert len(cap) == 1 and "search of all of Reddit" in cap[0] and "arcticshift" in cap[0]
    assert any(k.startswith("search:all:") for k in store.get_cursors("reddit"))


def test_max_pages_is_reported(fake, store, topics, creds, clock, sleeps):
    topics = configure(topics, fake, max_pages=1, first_run_days=30)
    s = run(store, topics, creds)
    assert any("max_pages=1" in n and "search of all of Reddit" in n for n in s.notes)
    assert not [p for _, path, p in fake.requests if path == "/r/all/search/" and "after" in p]


# --- rate limits and server errors -----------------------------------------------------------------------------------


def test_429_with_a_short_reset_is_waited_out(fake, store, topics, creds, clock, sleeps):
    topics = configure(topics, fake)
    fake.route("/r/all/search/", status(429, **{"x-ratelimit-reset": "5"}), ok("search_all_p1.json"))
    fake.route("/r/all/search/", ok("search_all_p2.json"), after="t3_1p0003")
    s = run(store, topics, creds)
    assert 6 in sleeps
    assert set(rows(store)) == FIRST_RUN_IDS and s.status == "partial" and s.skipped == 2


@pytest.mark.parametrize("headers", [{"x-ratelimit-reset": "900"}, {}], ids=["long reset", "no reset"])
def test_429_with_a_long_or_unknown_reset_stops_and_the_next_run_resumes(
    fake, store, topics, creds, clock, sleeps, headers
):
    topics = configure(topics, fake)
    fake.route("/r/all/search/", status(429, **headers), ok("search_all_p1.json"))
    fake.route("/r/all/search/", ok("search_all_p2.json"), after="t3_1p0003")
    s = run(store, topics, creds)
    assert s.status == "partial" and any("429" in n and "rate_limit_max_wait" in n for n in s.notes)
    assert "1 posts" not in s.line() and "429" in s.line()
    got = rows(store)
    assert P("1s0001") in got and P("1p0001") not in got  # what came before the 429 is kept
    cursors = store.get_cursors("reddit")
    assert "new:SunoAI" in cursors and not any(k.startswith("search:") for k in cursors)
    assert "/r/WeAreTheMusicMakers/search/" not in fake.paths()  # stopped, not hammering
    again = run(store, topics, creds)  # the route now answers 200
    assert again.status == "partial" and again.skipped == 2
    assert set(rows(store)) == FIRST_RUN_IDS


def test_5xx_is_retried_by_praw(fake, store, topics, creds, clock, sleeps):
    topics = configure(topics, fake)
    fake.route("/r/WeAreTheMusicMakers/search/", status(503), ok("search_wearethemusicmakers.json"))
    s = run(store, topics, creds)
    assert P("1p0008") in rows(store) and not any("503" in n for n in s.notes)
    assert fake.paths().count("/r/WeAreTheMusicMakers/search/") == 2  # one retry


def test_persistent_5xx_skips_that_listing_only(fake, store, topics, creds, clock, sleeps):
    topics = configure(topics, fake)
    fake.route("/r/WeAreTheMusicMakers/search/", status(503))
    s = run(store, topics, creds)
    assert s.status == "partial"
    failed = [n for n in s.notes if "request(s) failed" in n]
    assert len(failed) == 1 and "r/WeAreTheMusicMakers" in failed[0] and "503" in failed[0]
    assert fake.paths().count("/r/WeAreTheMusicMakers/search/") == 3  # praw's two retries
    got = rows(store)
    assert P("1p0001") in got and P("1s0001") in got and C("kc0004") in got
    cursors = store.get_cursors("reddit")
    assert not any(k.startswith("search:WeAreTheMusicMakers") for k in cursors)
    assert any(k.startswith("search:all:") for k in cursors)


def test_three_failures_in_a_row_stop_the_source(fake, store, topics, creds, clock, sleeps):
    topics = configure(topics, fake, subreddits=[])
    fake.route("/r/SunoAI/new/", status(500))
    fake.route("/r/SunoAI/comments/", status(502))
    fake.route("/r/all/search/", status(503))
    s = run(store, topics, creds)
    assert s.status == "partial" and any("3 failed requests in a row" in n for n in s.notes)
    assert store.count("posts") == 0 and "/comments/1p0001/" not in fake.paths()


def test_unexpected_json_is_a_failed_listing_not_a_crash(fake, store, topics, creds, clock, sleeps):
    topics = configure(topics, fake)
    fake.route("/r/country/search/", ok({"kind": "t5", "data": {"display_name": "country"}}))
    s = run(store, topics, creds)
    assert s.status == "partial" and any("unexpected response" in n and "r/country" in n for n in s.notes)
    assert set(rows(store)) == FIRST_RUN_IDS


def test_private_or_missing_subreddit_is_a_note(fake, store, topics, creds, clock, sleeps):
    topics = configure(topics, fake)
    fake.route("/r/country/search/", status(403))
    s = run(store, topics, creds)
    assert any("r/country" in n and "403" in n for n in s.notes)
    assert set(rows(store)) == FIRST_RUN_IDS


# --- credentials -----------------------------------------------------------------------------------------------------


def test_missing_credentials_skip_the_source_with_one_line(fake, store, topics, clock):
    s = run(store, configure(topics, fake))
    assert s.status == "skipped" and "\n" not in s.error
    assert "REDDIT_CLIENT_ID" in s.error and "REDDIT_CLIENT_SECRET" in s.error and "arcticshift" in s.error
    assert fake.requests == [] and store.count("posts") == 0


def test_username_without_password_is_a_clear_reason(fake, store, topics, creds_env, monkeypatch):
    monkeypatch.setenv("REDDIT_USERNAME", "someone")
    s = run(store, configure(topics, fake))
    assert s.status == "skipped" and "REDDIT_PASSWORD" in s.error and fake.requests == []


def test_rejected_credentials_are_reported_not_raised(fake, store, topics, creds, clock, sleeps):
    fake.route("/api/v1/access_token", status(401))
    s = run(store, configure(topics, fake), creds)
    assert s.status == "skipped" and "rejected" in s.error and "REDDIT_CLIENT_SECRET" in s.error


def test_script_app_logs_in_with_password(fake, store, topics, creds_env, clock, sleeps, monkeypatch):
    monkeypatch.setenv("REDDIT_USERNAME", "someone")
    monkeypatch.setenv("REDDIT_PASSWORD", "hunter2")
    run(store, configure(topics, fake))
    grant = next(p for m, path, p in fake.requests if path == "/api/v1/access_token")
    assert grant["grant_type"] == "password" and grant["username"] == "someone"
    assert "hunter2" not in store.query("SELECT string_agg(value, ' ') AS v FROM cursors")["v"][0]


def test_bad_config_is_a_topics_error(topics):
    bad = topics.model_copy(deep=True)
    bad.sources["reddit"] = {"subreddits": ["not a subreddit!"]}
    ctx = CollectContext(topics=bad, settings=get_settings())
    assert "not a subreddit" in check_source(get_source("reddit"), ctx)
    with pytest.raises(TopicsError):
        get_source("reddit").config(bad)


# --- pure parts ------------------------------------------------------------------------------------------------------


def test_normalize_submission_and_comment():
    p1 = fixture("search_all_p1.json")["data"]["children"]
    post = normalize_submission(p1[0])
    assert isinstance(post, Post) and post.post_id == P("1p0001") and post.thread_id in (None, P("1p0001"))
    assert post.created_at == NOW - timedelta(hours=1) and post.score == 240 and post.replies == 6
    # a crosspost is its original
    cross = normalize_submission(p1[1])
    assert cross.post_id == P("1p0005") and cross.text.startswith("The AI singer")
    p10 = fixture("search_all_p2.json")["data"]["children"][3]
    assert normalize_submission(p10) is None and crosspost_parent(p10) == "t3_1p0011"
    # malformed: no created_utc, no title, not an object, wrong kind
    p6 = fixture("search_all_p2.json")["data"]["children"][1]
    for bad in (p6, {"kind": "t3", "data": {"id": "x", "created_utc": 1}}, "junk", {"kind": "t1", "data": {}}):
        with pytest.raises((ValueError, KeyError, TypeError)):
            normalize_submission(bad)
    thread = fixture("thread_1p0001.json")
    c1 = thread[1]["data"]["children"][1]
    comment = normalize_comment(c1, nsfw=True)
    assert comment.kind == "comment" and comment.nsfw and comment.parent_id == P("1p0001")
    removed = fixture("morechildren_1p0001.json")["json"]["data"]["things"][1]
    assert normalize_comment(removed) is None


def test_queries_fit_the_length_limit_and_cover_every_term():
    terms = [f"AI artist number {i}" for i in range(60)]
    cfg = RedditConfig(subreddits=["Music"], max_query_length=200)
    listings, notes = plan_listings(cfg, terms)
    queries = sorted({lst.params["q"] for lst in listings if lst.search})
    assert len(queries) > 1 and all(len(q) <= 200 for q in queries)
    found = [t for q in queries for t in q.split(" OR ")]
    assert sorted(found) == sorted(f'"{t}"' for t in terms) and not notes
    assert len(listings) == 2 * len(queries)  # all of Reddit and r/Music, per query


def test_time_filter_is_the_narrowest_that_covers():
    assert time_filter(timedelta(minutes=30)) == "hour"
    assert time_filter(timedelta(hours=3)) == "day"
    assert time_filter(timedelta(days=7)) == "month"
    assert time_filter(timedelta(days=400)) == "all"


def test_comments_inherit_their_threads_relevance(topics):
    def comment(post_id: str, thread: str, text: str) -> Post:
        return Post(source="reddit", post_id=post_id, kind="comment", thread_id=thread, parent_id=thread,
                    created_at=NOW, text=text)

    rel = RelevanceFilter(topics)
    root = Post(source="reddit", post_id="a", thread_id="a", created_at=NOW, title="AI music is everywhere")
    kid = comment("b", "a", "Agreed, the mixes are flat.")
    rust = comment("c", "a", "Off topic: my cargo build fails with the borrow checker again")
    stray = comment("d", "zzz", "Agreed, the mixes are flat.")
    kept, dropped = rel.apply([root, kid, rust, stray])
    assert [p.post_id for p in kept] == ["a", "b"] and dropped == 2
    kept, _ = rel.apply([kid])  # without its post in the batch a comment stands on its own
    assert kept == []


# --- live ------------------------------------------------------------------------------------------------------------


@pytest.mark.live
def test_live_reddit(store, topics, monkeypatch):
    use_live_credentials(monkeypatch, LIVE_ENV, "REDDIT_CLIENT_ID", "REDDIT_CLIENT_ID and REDDIT_CLIENT_SECRET are "
                         "needed for the live test")
    live = topics.model_copy(deep=True)
    live.sources["reddit"] = {
        "subreddits": ["SunoAI"],
        "on_topic_subreddits": [],
        "search_all": False,
        "max_pages": 1,
        "max_threads_per_run": 2,
        "first_run_days": 2,
    }
    s = run(store, live)
    assert s.status in ("ok", "partial"), s.line()
    assert s.fetched > 0

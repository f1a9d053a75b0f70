"""The X source against ``responses`` standing in for ``GET https://api.twitter.com/2/tweets/search/recent``.

Responses come from tests/fixtures/x/ (the API v2 wire format, see build.py there). The clock is frozen at the
fixtures' NOW and every sleep is recorded instead of slept.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import responses
from reddit_x_testkit import (
    ABSENT,
    NOW,
    XApi,
    make_topics,
    posts_by_id,
    use_live_credentials,
    x_error,
    x_ok,
    x_standard_routes,
)
from source_testkit import clock_fixtures

from aimusic.core.config import get_settings
from aimusic.pipeline.collect import collect_source
from aimusic.sources import get_source, x
from aimusic.sources.x import XConfig, XSource, build_queries, normalize_tweet, snowflake_time, users_by_id
from aimusic.store.db import Store

FIXTURES = Path(__file__).parent / "fixtures" / "x"
LIVE_ENV = {k: v for k, v in os.environ.items() if k.startswith("X_BEARER")}  # read before conftest clears it


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


P1, P2 = fixture("search_p1.json"), fixture("search_p2.json")
NEWEST, OLDEST, TOKEN = P1["meta"]["newest_id"], P1["meta"]["oldest_id"], P1["meta"]["next_token"]


ok, error = x_ok, x_error


@pytest.fixture
def topics(tmp_path: Path):
    return make_topics(tmp_path)


@pytest.fixture
def api():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = XApi(rsps)
        x_standard_routes(fake)
        yield fake


#: the sources' clock frozen at the fixtures' NOW; waits recorded, not slept
clock, sleeps = clock_fixtures(NOW)
TOKEN_VALUE = "AAAAAAAAAAAAAAAAAAAAAtest%2Btoken"


@pytest.fixture
def token() -> str:
    """The bearer token, passed to the source explicitly."""
    return TOKEN_VALUE


@pytest.fixture
def token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bearer token in the environment, where the settings read it by default."""
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN_VALUE)


def configure(topics, **overrides: object):
    topics = topics.model_copy(deep=True)
    topics.sources["x"] = {"terms": ["AI music", "Suno", "Breaking Rust"], "page_size": 10, **overrides}
    return topics


def run(store: Store, topics, token: str | None = None):
    """One collection; the bearer token explicit, or (None) from the settings."""
    return collect_source(XSource(token), store, topics, get_settings())


def rows(store: Store) -> dict[str, dict]:
    return posts_by_id(store, "x")


def ids(page: dict, *positions: int) -> set[str]:
    return {page["data"][i]["edit_history_tweet_ids"][0] for i in positions}


# page 1: reply, post, edited post (two versions, one row), NSFW post with escaped text; page 2: long post,
# malformed (a garbled created_at), a retweet (never stored), emoji-only (lang zxx, no created_at), a quote
FIRST_RUN = ids(P1, 0, 1, 2, 4) | ids(P2, 0, 3, 4)


def test_first_run_pages_through_and_normalises(api, store, topics, token, clock, sleeps):
    s = run(store, configure(topics), token)
    assert set(rows(store)) == FIRST_RUN
    assert (s.status, s.fetched, s.new, s.skipped, s.irrelevant) == ("partial", 10, 7, 1, 0)
    assert any("created_at" in n for n in s.notes)  # the malformed item, named
    assert any("partial error" in n and "Not Found Error" in n for n in s.notes)  # the API's own errors array
    assert any("read 10 posts this run, 10 today" in n for n in s.notes)

    first, second = api.calls
    assert first["query"] == '("AI music" OR #AIMusic OR Suno OR "Breaking Rust" OR #BreakingRust) -is:retweet'
    assert set(first["tweet.fields"].split(",")) >= {
        "author_id", "created_at", "public_metrics", "lang", "conversation_id", "referenced_tweets",
    }
    assert first["expansions"] == "author_id" and first["user.fields"] == "username,name"
    assert first["max_results"] == "10" and first["sort_order"] == "recency"
    assert first["start_time"] == "2026-11-19T12:00:00Z" and "since_id" not in first  # first_run_hours = 24
    assert second["next_token"] == TOKEN  # tweepy.Paginator's next page

    got = rows(store)
    reply = got[P1["data"][0]["id"]]
    assert reply["kind"] == "reply" and reply["author"] == "mira_writes"
    assert reply["parent_id"] == P1["data"][0]["referenced_tweets"][0]["id"]
    assert reply["thread_id"] == P1["data"][0]["conversation_id"]
    assert reply["url"] == f"https://x.com/mira_writes/status/{P1['data'][0]['id']}"
    post = got[P1["data"][1]["id"]]
    assert (post["score"], post["replies"], post["reposts"], post["lang"]) == (310, 45, 86, "en")  # 80 RTs + 6 quotes
    assert post["created_at"] == NOW - timedelta(minutes=20)
    edited = got[P1["data"][3]["id"]]  # stored under the first id of its edit history, with the latest text
    assert "(edited: typo)" in edited["text"] and edited["url"].endswith(P1["data"][2]["id"])
    assert got[P1["data"][4]["id"]]["nsfw"] is True
    assert got[P1["data"][4]["id"]]["text"] == "Suno v5 made this whole AI R&B track <3 #AIMusic"  # unescaped
    long = got[P2["data"][0]["id"]]
    assert long["text"] == P2["data"][0]["note_tweet"]["text"] and len(long["text"]) > 280
    assert got[P2["data"][3]["id"]]["lang"] is None  # "zxx": no linguistic content
    assert "created_at" not in P2["data"][3]  # ... and no created_at: the time comes from its id
    assert got[P2["data"][3]["id"]]["created_at"] == snowflake_time(P2["data"][3]["id"]) == NOW - timedelta(minutes=100)
    assert P2["data"][2]["id"] not in got  # the retweet

    cursors = store.get_cursors("x")
    key = x.query_key(first["query"])
    assert cursors[f"since_id:{key}"] == NEWEST and cursors[f"gap:{key}"] == ""
    assert cursors["reads:2026-11-20"] == "10"


def test_second_run_asks_only_for_newer_posts_and_adds_nothing(api, store, topics, token, clock, sleeps):
    topics = configure(topics)
    run(store, topics, token)
    calls = len(api.calls)
    s = run(store, topics, token)
    assert (s.status, s.fetched, s.new, s.updated) == ("ok", 0, 0, 0)
    assert len(api.calls) == calls + 1 and api.calls[-1]["since_id"] == NEWEST
    assert "start_time" not in api.calls[-1]
    api.route(ok("search_newer.json"), since_id=NEWEST)
    s = run(store, topics, token)
    assert (s.fetched, s.new, s.skipped) == (2, 1, 0)  # and a "temporarily unavailable" placeholder, counted
    assert "x: not stored: 1 withheld or unavailable placeholders" in s.notes
    assert store.get_cursors("x")[f"since_id:{x.query_key(api.calls[-1]['query'])}"] == fixture(
        "search_newer.json")["meta"]["newest_id"]


def test_per_run_cap_stops_cleanly_and_the_next_run_reads_the_rest(api, store, topics, token, clock, sleeps):
    s = run(store, configure(topics, max_posts_per_run=12), token)
    assert s.status == "partial" and any("per-run cap" in n and "max_posts_per_run = 12" in n for n in s.notes)
    assert len(api.calls) == 1 and s.fetched == 5  # 7 left: less than the API's smallest page (10)
    assert set(rows(store)) == ids(P1, 0, 1, 2, 4)
    gap = json.loads(store.get_cursors("x")[f"gap:{x.query_key(api.calls[0]['query'])}"])
    assert gap == {"until_id": OLDEST, "start_time": "2026-11-19T12:00:00Z"}

    s = run(store, configure(topics), token)
    assert s.status == "partial" and s.skipped == 1 and s.new == 3
    gap_call, new_call = api.calls[1:]
    assert gap_call["until_id"] == OLDEST and gap_call["start_time"] == "2026-11-19T12:00:00Z"
    assert new_call["since_id"] == NEWEST
    assert set(rows(store)) == FIRST_RUN
    assert store.get_cursors("x")[f"gap:{x.query_key(api.calls[0]['query'])}"] == ""


def test_page_size_is_cut_to_the_budget(api, store, topics, token, clock, sleeps):
    run(store, configure(topics, max_posts_per_run=17, page_size=100), token)
    assert api.calls[0]["max_results"] == "17"
    assert len(api.calls) == 2 and api.calls[1]["max_results"] == "12"


def test_daily_cap_counts_across_runs_and_resets_the_next_day(api, store, topics, token, clock, sleeps):
    topics = configure(topics, max_posts_per_day=14)
    s = run(store, topics, token)
    assert any("daily cap" in n for n in s.notes) and store.get_cursors("x")["reads:2026-11-20"] == "5"
    s = run(store, topics, token)
    assert s.status == "partial" and s.fetched == 0 and len(api.calls) == 1  # nothing left today: no request
    assert any("daily cap reached (5 posts read today" in n for n in s.notes)
    clock.set(NOW + timedelta(days=1))
    s = run(store, topics, token)
    assert len(api.calls) > 1 and store.get_cursors("x")["reads:2026-11-21"] == str(s.fetched)


def test_429_with_a_short_reset_is_waited_out(api, store, topics, token, clock, sleeps):
    api.route(error(429, reset_in=5), ok("search_p1.json"), since_id=ABSENT, until_id=ABSENT, next_token=ABSENT)
    s = run(store, configure(topics), token)
    assert sleeps == [6] and set(rows(store)) == FIRST_RUN and s.new == 7


@pytest.mark.parametrize("reset_in", [900, None], ids=["long reset", "no reset"])
def test_429_with_a_long_or_unknown_reset_stops_and_resumes(api, store, topics, token, clock, sleeps, reset_in):
    api.route(error(429, reset_in=reset_in), next_token=TOKEN)
    s = run(store, configure(topics), token)
    assert s.status == "partial" and any("429" in n and "next run" in n for n in s.notes)
    assert sleeps == [] and set(rows(store)) == ids(P1, 0, 1, 2, 4)  # page 1 kept
    key = x.query_key(api.calls[0]["query"])
    assert json.loads(store.get_cursors("x")[f"gap:{key}"])["until_id"] == OLDEST
    s = run(store, configure(topics), token)
    assert set(rows(store)) == FIRST_RUN and s.new == 3


def test_5xx_and_timeouts_are_retried_with_backoff(api, store, topics, token, clock, sleeps):
    api.route(error(503), requests.exceptions.ReadTimeout("read timed out"), ok("search_p1.json"),
              since_id=ABSENT, until_id=ABSENT, next_token=ABSENT)
    s = run(store, configure(topics), token)
    assert len(sleeps) == 2 and sleeps[0] <= sleeps[1] <= 30  # exponential, bounded
    assert set(rows(store)) == FIRST_RUN and s.new == 7


def test_persistent_5xx_stops_after_the_retries(api, store, topics, token, clock, sleeps):
    api.route(error(503), next_token=TOKEN)
    s = run(store, configure(topics, retries=2), token)
    assert s.status == "partial" and any("503" in n and "after 2 retries" in n for n in s.notes)
    assert len([c for c in api.calls if c.get("next_token") == TOKEN]) == 3
    assert set(rows(store)) == ids(P1, 0, 1, 2, 4)


def test_out_of_credits_stops_with_a_clear_line(api, store, topics, token, clock, sleeps):
    body = {"title": "Payment Required", "detail": "Your enrolled account does not have any credits.",
            "type": "about:blank", "status": 402}
    api.route((402, {}, json.dumps(body)), next_token=TOKEN)
    s = run(store, configure(topics), token)
    assert s.status == "partial" and any("402" in n and "credits" in n for n in s.notes)
    assert set(rows(store)) == ids(P1, 0, 1, 2, 4)


def test_refused_query_does_not_stop_the_others(api, store, topics, token, clock, sleeps):
    topics = configure(topics, terms=[f"AI music phrase number {i}" for i in range(40)])
    queries, _ = build_queries(x.XConfig(**topics.sources["x"]), [])
    assert len(queries) > 1
    api.route((400, {}, json.dumps({"errors": [{"parameters": {"query": ["x"]}, "message": "bad query"}],
                                    "title": "Invalid Request", "detail": "One or more parameters to your request "
                                    "was invalid.", "type": "https://api.twitter.com/2/problems/invalid-request"})),
              query=queries[0])
    s = run(store, topics, token)
    assert s.status == "partial" and any("refused" in n for n in s.notes)
    assert {c["query"] for c in api.calls} == set(queries) and set(rows(store)) == FIRST_RUN


def test_since_id_older_than_the_search_window_restarts_at_its_start(api, store, topics, token, clock, sleeps):
    topics = configure(topics)
    run(store, topics, token)
    clock.set(NOW + timedelta(days=8))
    api.route(ok("search_empty.json"), since_id=ABSENT, until_id=ABSENT, next_token=ABSENT)  # nothing that new
    s = run(store, topics, token)
    last = api.calls[-1]
    assert "since_id" not in last and last["start_time"] == "2026-11-21T12:05:00Z"
    assert any("more than 7 days ago" in n for n in s.notes)
    s = run(store, topics, token)  # said once: the stale cursor is cleared, the query starts over
    assert not any("more than 7 days ago" in n for n in s.notes)
    assert api.calls[-1]["start_time"] == "2026-11-27T12:00:00Z" and "since_id" not in api.calls[-1]


def test_missing_token_skips_with_one_line(api, store, topics, clock):
    s = run(store, configure(topics))
    assert s.status == "skipped" and "X_BEARER_TOKEN" in s.error and "\n" not in s.error
    assert api.calls == []


def test_rejected_token_is_reported(api, store, topics, token_env, clock, sleeps):
    api.route(error(401), since_id=ABSENT, until_id=ABSENT, next_token=ABSENT)
    s = run(store, configure(topics))
    assert s.status == "skipped" and "rejected" in s.error and "X_BEARER_TOKEN" in s.error


def test_token_is_never_stored_or_logged(api, store, topics, token_env, clock, sleeps, caplog):
    caplog.set_level("DEBUG")
    run(store, configure(topics))
    secret = TOKEN_VALUE
    with store.connect() as con:
        dumped = str(con.sql("SELECT * FROM cursors").fetchall()) + str(con.sql("SELECT * FROM posts").fetchall())
    assert secret not in dumped
    assert secret not in "".join(r.getMessage() for r in caplog.records if r.name.startswith("flows"))


# --- pure parts ------------------------------------------------------------------------------------------------------


def test_queries_split_at_the_length_limit_and_cover_every_term():
    terms = [f"AI music term {i}" for i in range(80)] + ["Suno"]
    cfg = XConfig(languages=["en", "es"], exclude_replies=True)
    queries, notes = build_queries(cfg, terms)
    assert len(queries) > 1 and all(len(q) <= 512 for q in queries) and not notes
    assert all(q.endswith(") -is:retweet -is:reply (lang:en OR lang:es)") for q in queries)
    clauses = [c for q in queries for c in q[1:q.index(")")].split(" OR ")]
    assert sorted(c for c in clauses if not c.startswith("#")) == sorted([f'"{t}"' for t in terms[:-1]] + ["Suno"])
    assert len(clauses) == len(set(clauses))
    _, notes = build_queries(XConfig(max_query_length=64), ["a phrase that is much too long to fit in a query at all"])
    assert notes and "too long" in notes[0]


def test_normalize_tweet():
    users = users_by_id(P1)
    reply = normalize_tweet(P1["data"][0], users)
    assert reply.kind == "reply" and reply.author == "mira_writes" and reply.source == "x"
    retweet = P2["data"][2]
    assert normalize_tweet(retweet, users_by_id(P2)) is None
    anonymous = normalize_tweet(P1["data"][1], {})
    assert anonymous.author is None and anonymous.url.startswith("https://x.com/i/web/status/")
    for bad in (P2["data"][1], {"id": {"x": 1}, "text": "t", "created_at": "2026-11-20T11:00:00.000Z"}, "junk",
                {"id": "1", "created_at": "2026-11-20T11:00:00.000Z"}):
        with pytest.raises((ValueError, KeyError, TypeError)):
            normalize_tweet(bad, users)
    assert snowflake_time(P1["data"][1]["id"]) == NOW - timedelta(minutes=20)


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("AI R&amp;B is everywhere &amp; I &lt;3 it", "AI R&B is everywhere & I <3 it"),
        ("typing &amp;amp; in a post", "typing &amp; in a post"),  # unescaped once, not twice
        ("no entities at all", "no entities at all"),
    ],
)
def test_text_is_html_unescaped_once(text, stored):
    item = {**P1["data"][1], "text": text}
    assert normalize_tweet(item, users_by_id(P1)).text == stored
    assert normalize_tweet({**item, "note_tweet": {"text": text + " (long)"}}).text == stored + " (long)"


@pytest.mark.parametrize(
    "text",
    [
        "This account is temporarily unavailable because it violates the Twitter Media Policy. Learn more.",
        "This Post is from an account that no longer exists. Learn more",
        "This Tweet violated the Twitter Rules. Learn more",
        "This Post was deleted by the Post author. Learn more",
        "This Tweet is from a suspended account. Learn more https://t.co/Abc123xyz",
        "This Tweet has been withheld in response to a report from the copyright holder. Learn more.",
        "This media has been disabled in response to a report by the copyright owner.",
        "This Post is unavailable.",
    ],
)
def test_placeholders_are_not_posts(text):
    item = {**P1["data"][1], "text": text}
    assert x.is_placeholder(text) and normalize_tweet(item, users_by_id(P1)) is None


def test_a_post_quoting_a_placeholder_is_kept():
    text = "Wow: 'This account is temporarily unavailable because it violates the Twitter Media Policy.' for AI music?"
    assert not x.is_placeholder(text)
    assert normalize_tweet({**P1["data"][1], "text": text}, users_by_id(P1)).text == text


def test_created_at_from_the_snowflake_id_and_reposts_with_quotes():
    item = {"id": "2123735605049176068", "text": "a tweet", "edit_history_tweet_ids": ["2123735605049176068"],
            "public_metrics": {"retweet_count": 3, "reply_count": 1, "like_count": 9, "quote_count": 2}}
    post = normalize_tweet(item)
    assert post.created_at == datetime(2026, 11, 20, 11, 10, tzinfo=UTC) and post.reposts == 5
    assert normalize_tweet({**item, "public_metrics": {"quote_count": 4}}).reposts == 4
    assert normalize_tweet({**item, "public_metrics": {}}).reposts is None
    with pytest.raises(ValueError):
        normalize_tweet({**item, "id": str(1 << 90)})  # an id beyond any date


def test_check_rejects_caps_below_one_page(topics, token_env):
    from aimusic.pipeline.collect import check_source
    from aimusic.sources.base import CollectContext

    ctx = CollectContext(topics=configure(topics, max_posts_per_run=5), settings=get_settings())
    assert "below 10" in check_source(get_source("x"), ctx)


# --- live ------------------------------------------------------------------------------------------------------------


@pytest.mark.live
def test_live_x(store, topics, monkeypatch):
    use_live_credentials(monkeypatch, LIVE_ENV, "X_BEARER_TOKEN", "X_BEARER_TOKEN is needed for the live test (it "
                         "reads at most 10 posts)")
    s = run(store, configure(topics, terms=["AI music"], max_posts_per_run=10, first_run_hours=1))
    assert s.status in ("ok", "partial"), s.line()
    assert s.fetched <= 10

"""Mastodon hashtag timelines against responses in Mastodon's wire format (Status entities, Link headers)."""

from __future__ import annotations

import copy
import json
import logging
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from source_testkit import api_fixture, clear_probes, clock_fixtures, collect, fixture_json, make_topics, rows, settings

from aimusic.core.config import get_settings
from aimusic.core.topics import TopicsError
from aimusic.sources.mastodon import MastodonSource, normalize_status

NOW = 1_763_000_000.0
SOCIAL = "https://mastodon.social/api/v1/timelines/tag/AIMusic"
ONLINE = "https://mastodon.online/api/v1/timelines/tag/AIMusic"

SECTION = """
[sources.mastodon]
instances = ["mastodon.social", "mastodon.online"]
hashtags = ["AIMusic"]
initial_days = 30
requests_per_second = 100
"""


clock, sleeps = clock_fixtures(NOW)
api = api_fixture("https://mastodon.social/", "https://mastodon.online/", status=302)


def social() -> list[dict[str, Any]]:
    return copy.deepcopy(fixture_json("mastodon", "tag_aimusic_social.json"))


def online() -> list[dict[str, Any]]:
    return copy.deepcopy(fixture_json("mastodon", "tag_aimusic_online.json"))


class Timeline:
    """A tag timeline: newest first, ``limit``, ``max_id`` / ``min_id`` paging and Link headers."""

    def __init__(self, base: str, statuses: list[dict[str, Any]]) -> None:
        self.base = base
        self.statuses = sorted(statuses, key=lambda s: (len(s["id"]), s["id"]), reverse=True)
        self.calls: list[dict[str, str]] = []

    def __call__(self, request: Any) -> tuple[int, dict, str]:
        params = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        self.calls.append(params)
        limit = int(params.get("limit", 20))
        key = lambda s: (len(s["id"]), s["id"])  # noqa: E731
        items = self.statuses
        if "max_id" in params:
            bound = (len(params["max_id"]), params["max_id"])
            items = [s for s in items if key(s) < bound]
        if "min_id" in params:
            bound = (len(params["min_id"]), params["min_id"])
            items = [s for s in items if key(s) > bound][-limit:]  # the ones immediately newer
        page = items[:limit]
        headers = {"Content-Type": "application/json"}
        if page:
            headers["Link"] = (
                f'<{self.base}?max_id={page[-1]["id"]}>; rel="next", <{self.base}?min_id={page[0]["id"]}>; rel="prev"'
            )
        return 200, headers, json.dumps(page)


def test_normalize_status_plain_text_and_uri_key() -> None:
    post = normalize_status(social()[0])
    assert post is not None
    assert post.post_id == "https://musician.social/users/fiddler/statuses/115532990000000001"
    assert (
        post.text
        == "An #AIMusic track on a Billboard chart. Songwriters spend years on their craft & this wins?\n\nNot amused."
    )
    assert post.author == "fiddler@musician.social" and post.community == "musician.social"
    assert (post.score, post.replies, post.reposts) == (27, 4, 13)  # 11 boosts + 2 quotes (Mastodon 4.5)
    local = normalize_status(social()[1])
    assert local is not None and local.author == "lena@mastodon.social" and local.kind == "reply"
    cw = normalize_status(online()[1])
    assert cw is not None and cw.title == "AI music rant" and cw.nsfw and cw.lang == "de"
    assert cw.text == "KI-Musik wie Suno ist Diebstahl an echten Künstlern.\nPunkt."


def test_boost_is_folded_into_the_original() -> None:
    original = social()[0]
    boost = {
        "id": "999",
        "uri": "https://x.example/users/a/statuses/999/activity",
        "reblog": original,
        "content": "",
        "account": {"username": "booster", "acct": "booster"},
        "created_at": "2025-11-12T19:00:00Z",
    }
    post = normalize_status(boost)
    assert post is not None and post.post_id == original["uri"]


def test_collects_two_instances_deduplicated_and_notes_malformed(tmp_path, store, api, sleeps) -> None:
    api.add_callback(responses.GET, SOCIAL, callback=Timeline(SOCIAL, social()))
    api.add_callback(responses.GET, ONLINE, callback=Timeline(ONLINE, online()))
    summary = collect("mastodon", store, make_topics(tmp_path, SECTION))
    assert summary.fetched == 5
    assert summary.skipped == 1 and summary.status == "partial"
    got = rows(store, "mastodon")
    uris = [r["post_id"] for r in got]
    # the fiddler status reached both instances: one row
    assert uris.count("https://musician.social/users/fiddler/statuses/115532990000000001") == 1
    assert len(got) == 3
    cursors = store.get_cursors("mastodon")
    assert cursors == {"mastodon.social#aimusic": "115533000000000003", "mastodon.online#aimusic": "115533777000000042"}


def test_pages_back_then_forward_incrementally(tmp_path, store, api, sleeps) -> None:
    base = social()[1]
    statuses = []
    for i in range(7):
        s = copy.deepcopy(base)
        s["id"] = str(115533000000000100 + i)
        s["uri"] = f"https://mastodon.social/users/lena/statuses/{s['id']}"
        s["content"] = f"<p>Suno song number {i} #AIMusic</p>"
        s["created_at"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(NOW - 3600 * (10 - i)))
        statuses.append(s)
    timeline = Timeline(SOCIAL, statuses)
    api.add_callback(responses.GET, SOCIAL, callback=timeline)
    api.add(responses.GET, ONLINE, json=[])
    section = SECTION + "page_size = 3\n"
    first = collect("mastodon", store, make_topics(tmp_path, section))
    assert first.new == 7
    social_calls = timeline.calls
    assert [c.get("max_id") for c in social_calls] == [None, "115533000000000104", "115533000000000101"]
    assert store.get_cursors("mastodon")["mastodon.social#aimusic"] == "115533000000000106"
    # an instance with nothing under the tag is named in the notes
    assert any("mastodon.online: returned no statuses for #AIMusic" in n for n in first.notes)

    # three new statuses arrive; the next run walks forward from the cursor with min_id
    for i in range(7, 10):
        s = copy.deepcopy(statuses[0])
        s["id"] = str(115533000000000100 + i)
        s["uri"] = f"https://mastodon.social/users/lena/statuses/{s['id']}"
        s["content"] = f"<p>Udio song number {i} #AIMusic</p>"
        timeline.statuses.insert(0, s)
    timeline.statuses.sort(key=lambda s: s["id"], reverse=True)
    timeline.calls.clear()
    second = collect("mastodon", store, make_topics(tmp_path, section))
    assert second.new == 3
    assert [c.get("min_id") for c in timeline.calls] == ["115533000000000106", "115533000000000109"]
    assert store.get_cursors("mastodon")["mastodon.social#aimusic"] == "115533000000000109"
    timeline.calls.clear()
    third = collect("mastodon", store, make_topics(tmp_path, section))
    assert third.new == 0 and third.fetched == 0 and len(timeline.calls) == 1


def test_401_instance_is_reported_and_the_others_go_on(tmp_path, store, api, sleeps) -> None:
    api.add_callback(responses.GET, SOCIAL, callback=Timeline(SOCIAL, social()))
    api.add(responses.GET, ONLINE, status=401, json={"error": "This API requires an authenticated user"})
    summary = collect("mastodon", store, make_topics(tmp_path, SECTION))
    assert any("mastodon.online: HTTP 401" in n and "MASTODON_TOKEN_MASTODON_ONLINE" in n for n in summary.notes), (
        summary.notes
    )
    assert len(rows(store, "mastodon")) == 2


def _sent_tokens(api: responses.RequestsMock) -> dict[str | None, str | None]:
    return {
        urlsplit(c.request.url).hostname: c.request.headers.get("Authorization")
        for c in api.calls
        if c.request.method == "GET"
    }


@pytest.mark.parametrize("where", ["environment", ".env", "token_env"])
def test_token_from_the_settings_is_sent_only_to_its_instance(tmp_path, store, api, sleeps, monkeypatch, where):
    section = SECTION
    if where == "environment":
        monkeypatch.setenv("MASTODON_TOKEN_MASTODON_ONLINE", "s3cret-token")
    elif where == ".env":  # the working directory's .env (the tests run in tmp_path)
        (tmp_path / ".env").write_text("MASTODON_TOKEN_MASTODON_ONLINE=s3cret-token\n")
    else:
        monkeypatch.setenv("MASTODON_TOKEN_SECOND_ACCOUNT", "s3cret-token")
        section += '[sources.mastodon.token_env]\n"mastodon.online" = "MASTODON_TOKEN_SECOND_ACCOUNT"\n'
    api.add_callback(responses.GET, SOCIAL, callback=Timeline(SOCIAL, social()))
    api.add_callback(responses.GET, ONLINE, callback=Timeline(ONLINE, online()))
    collect("mastodon", store, make_topics(tmp_path, section), get_settings())
    assert _sent_tokens(api) == {"mastodon.social": None, "mastodon.online": "Bearer s3cret-token"}


def test_tokens_passed_to_the_source_win(tmp_path, store, api, sleeps, monkeypatch) -> None:
    monkeypatch.setenv("MASTODON_TOKEN_MASTODON_ONLINE", "from-the-environment")
    api.add_callback(responses.GET, SOCIAL, callback=Timeline(SOCIAL, social()))
    api.add_callback(responses.GET, ONLINE, callback=Timeline(ONLINE, online()))
    source = MastodonSource(tokens={"mastodon.social": "explicit-social-token"})
    collect(source, store, make_topics(tmp_path, SECTION), get_settings())
    assert _sent_tokens(api) == {"mastodon.social": "Bearer explicit-social-token", "mastodon.online": None}


def test_tokens_are_settings_secrets_redacted_from_logs(tmp_path, monkeypatch, caplog) -> None:
    from aimusic.ops.runreport import redact

    (tmp_path / ".env").write_text("MASTODON_TOKEN_MASTODON_SOCIAL=dotenv-token-8f8f\n")
    monkeypatch.setenv("MASTODON_TOKEN_FOSSTODON_ORG", "env-token-2b2b")
    loaded = get_settings()
    assert set(loaded.mastodon_tokens) == {"MASTODON_SOCIAL", "FOSSTODON_ORG"}
    assert "dotenv-token" not in repr(loaded) and "env-token" not in str(loaded.model_dump())
    caplog.set_level("DEBUG")
    logging.getLogger("urllib3").debug("Authorization: Bearer dotenv-token-8f8f, Bearer env-token-2b2b")
    assert "dotenv-token-8f8f" not in caplog.text and "env-token-2b2b" not in caplog.text
    assert redact("failed with env-token-2b2b", loaded) == "failed with ***"


def test_token_env_must_name_a_settings_variable(tmp_path) -> None:
    section = SECTION + '[sources.mastodon.token_env]\n"mastodon.online" = "MY_TOKEN"\n'
    with pytest.raises(TopicsError, match="MASTODON_TOKEN_"):
        MastodonSource().config(make_topics(tmp_path, section))


def test_429_with_iso_reset_is_waited_out(tmp_path, store, api, sleeps) -> None:
    reset = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(NOW + 20))
    api.add(
        responses.GET, SOCIAL, status=429, headers={"X-RateLimit-Reset": reset}, json={"error": "Too many requests"}
    )
    api.add_callback(responses.GET, SOCIAL, callback=Timeline(SOCIAL, social()))
    api.add_callback(responses.GET, ONLINE, callback=Timeline(ONLINE, online()))
    summary = collect("mastodon", store, make_topics(tmp_path, SECTION))
    assert len(rows(store, "mastodon")) == 3
    assert 21 in sleeps, sleeps  # the reset (20 s) + 1
    assert summary.status == "partial"  # the malformed status


def test_server_error_on_one_instance_makes_the_run_partial(tmp_path, store, api, sleeps) -> None:
    api.add(responses.GET, SOCIAL, status=503)
    api.add_callback(responses.GET, ONLINE, callback=Timeline(ONLINE, online()))
    summary = collect("mastodon", store, make_topics(tmp_path, SECTION))
    assert summary.status == "partial"
    assert any("mastodon.social" in n and "503" in n and "next run" in n for n in summary.notes)
    assert len(rows(store, "mastodon")) == 2  # the other instance went on
    assert len(sleeps.long) == 4  # five tries with backoff


def test_loop_guard_on_a_stuck_min_id(tmp_path, store, api, sleeps) -> None:
    store.set_cursors({("mastodon", "mastodon.social#aimusic"): "115533000000000001"})
    page = social()[:2]
    api.add(responses.GET, SOCIAL, json=page, headers={"Link": f'<{SOCIAL}?min_id=115533000000000001>; rel="prev"'})
    api.add(responses.GET, ONLINE, json=[])
    summary = collect("mastodon", store, make_topics(tmp_path, SECTION + "page_size = 2\n"))
    assert any("same page again" in n for n in summary.notes)
    assert sum(1 for c in api.calls if c.request.url.startswith(SOCIAL)) == 1


def test_offline_skip_and_one_unreachable_instance(tmp_path, store, sleeps) -> None:
    started = time.monotonic()
    summary = collect("mastodon", store, make_topics(tmp_path, SECTION))
    assert summary.status == "skipped"
    assert summary.error == "no instance reachable (mastodon.social, mastodon.online; no network?)"
    assert time.monotonic() - started < 5

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        clear_probes()
        rsps.add(responses.HEAD, "https://mastodon.social/", status=200)
        rsps.add_callback(responses.GET, SOCIAL, callback=Timeline(SOCIAL, social()))
        summary = collect("mastodon", store, make_topics(tmp_path, SECTION), settings())
    assert summary.new == 2
    assert any("mastodon.online unreachable" in n for n in summary.notes)

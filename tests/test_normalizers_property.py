"""Property tests on every source's normaliser and on the scorers' preprocessing.

Each normaliser gets real wire-format items from the fixtures with one field replaced by an arbitrary JSON
value (or removed), and arbitrary JSON objects. It must return a valid Post or None, or raise one of the
errors the collectors count as a skipped item; never anything else.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from aimusic.core.records import Post
from aimusic.sources import arcticshift, bluesky, hackernews, mastodon, reddit, x

FIXTURES = Path(__file__).parent / "fixtures"
SKIPPABLE = (ValidationError, KeyError, TypeError, ValueError, AttributeError)  # what normalize_items counts

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63) | st.floats()
    | st.text(max_size=50) | st.sampled_from(["", "[deleted]", "\x00", "\ud800", "2025-11-11T10:00:00Z", "-1"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)


def load(path: str) -> Any:
    return json.loads((FIXTURES / path).read_text())


def _x_items() -> list[dict]:
    return load("x/search_p1.json")["data"]


X_USERS = {u["id"]: u for u in load("x/search_p1.json").get("includes", {}).get("users", [])}

NORMALIZERS: dict[str, tuple[Callable[[Any], Post | None], list[dict]]] = {
    "reddit submission": (reddit.normalize_submission, load("reddit/search_all_p1.json")["data"]["children"]),
    "reddit comment": (reddit.normalize_comment, load("reddit/comments_sunoai.json")["data"]["children"]),
    "x tweet": (lambda item: x.normalize_tweet(item, X_USERS), _x_items()),
    "hackernews hit": (hackernews.normalize_hit, load("hackernews/search_by_date.json")["hits"]),
    "mastodon status": (mastodon.normalize_status, load("mastodon/tag_aimusic_social.json")),
    "bluesky post": (bluesky.normalize_post, load("bluesky/search_posts_page1.json")["posts"]),
    "arcticshift item": (arcticshift.normalize_item, load("arcticshift/posts_search.json")["data"]),
}


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:3]):
            out += paths(v, (*prefix, i))
    return out


def mutate(item: Any, path: tuple, new: Any, delete: bool) -> Any:
    item = copy.deepcopy(item)
    parent = item
    for key in path[:-1]:
        parent = parent[key]
    if delete and isinstance(parent, dict):
        parent.pop(path[-1], None)
    else:
        parent[path[-1]] = new
    return item


def check(normalize: Callable[[Any], Post | None], item: Any) -> None:
    try:
        result = normalize(item)
    except SKIPPABLE:
        return
    assert result is None or isinstance(result, Post)
    if result is not None:
        assert result.source and result.post_id and result.created_at.tzinfo is not None
        result.text.encode("utf-8")


@pytest.mark.parametrize("name", list(NORMALIZERS))
def test_fixture_items_normalise(name):
    normalize, items = NORMALIZERS[name]
    assert items, "fixture has items"
    assert any(isinstance(normalize(item), Post) for item in items)


@pytest.mark.parametrize("name", list(NORMALIZERS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_items_never_crash(name, data):
    normalize, items = NORMALIZERS[name]
    item = data.draw(st.sampled_from(items))
    path = data.draw(st.sampled_from(paths(item)))
    new = data.draw(json_values)
    delete = data.draw(st.booleans())
    check(normalize, mutate(item, path, new, delete))


@pytest.mark.parametrize("name", list(NORMALIZERS))
@settings(max_examples=100, deadline=None)
@given(raw=st.one_of(json_values, st.dictionaries(st.text(max_size=12), json_values, max_size=8)))
def test_arbitrary_json_never_crashes(name, raw):
    check(NORMALIZERS[name][0], raw)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=2000))
def test_scorer_preprocessing_is_total(text):
    from sentiment.preprocess import clip_chars, normalize_social

    out = normalize_social(text)
    assert isinstance(out, str)
    out.encode("utf-8", errors="surrogatepass")
    assert isinstance(clip_chars(out, 128), str)

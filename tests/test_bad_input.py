"""Bad input: whatever strangers write, normalisation, relevance, storage and scoring hold."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from aimusic.core.records import Post, clean_text, posts_to_arrow, to_utc
from aimusic.core.topics import load_topics
from aimusic.debate.relevance import RelevanceFilter, TermMatcher
from sentiment import load_scorer

NASTY = [
    "",
    "   \t\n ",
    "x" * 100_000 + " AI music",
    "AI music \x00 with NUL",
    "lone surrogate \ud83d AI music",
    "zero\u200bwidth AI\u200d music \u2066bidi\u2069 \u202eAI music\u202c",
    "&lt;b&gt;AI music&lt;/b&gt; &amp; &#x1F3B5;",
    "🎵🤖🎶🔥",
    "موسيقى الذكاء الاصطناعي AI music",
    "שיר AI music בינה מלאכותית",
    "AI music\r\n=cmd|' /C calc'!A0",
]


@pytest.fixture(scope="module")
def relevance() -> RelevanceFilter:
    return RelevanceFilter(load_topics())


@pytest.mark.parametrize("text", NASTY)
def test_nasty_text_through_record_relevance_store_and_score(text, relevance, tmp_path):
    from aimusic.store.db import Store

    post = Post(source="x", post_id="1", created_at=1_760_000_000, text=text)
    assert "\x00" not in post.text and len(post.text) <= 100_000
    post.text.encode("utf-8")  # always encodable: no lone surrogates left
    relevant, terms = relevance.check(post.full_text)
    assert isinstance(relevant, bool) and isinstance(terms, list)
    store = Store(tmp_path / "n.duckdb")
    store.upsert_posts(posts_to_arrow([post]))
    assert store.query("SELECT text FROM posts")["text"][0] == post.text
    result = load_scorer("vader").score([post.text])
    if post.text.strip():
        assert result.labels[0] in ("negative", "neutral", "positive")
    else:
        assert result.labels[0] is None and result.status[0] == "empty"


@pytest.mark.parametrize("when", ["1700000000", 1_700_000_000.5, "2025-11-11T10:00:00Z", "2025-11-11 10:00:00+05:30",
                                  datetime(2025, 11, 11, 10)])
def test_timestamps_of_every_shape(when):
    assert Post(source="x", post_id="1", created_at=when).created_at.tzinfo is not None


@pytest.mark.parametrize("when", [0, "0", -1, 1e300, float("inf"), datetime.now(UTC) + timedelta(days=365 * 20)])
def test_placeholder_and_future_timestamps_are_rejected_not_stored(when):
    with pytest.raises(ValidationError, match="timestamp"):
        Post(source="x", post_id="1", created_at=when)


@pytest.mark.parametrize("author", [None, "", "   ", "[deleted]", "名前", "a" * 500])
def test_authors(author):
    post = Post(source="x", post_id="1", created_at=1_760_000_000, author=author)
    assert post.author is None or post.author.strip()


def test_duplicated_ids_in_one_page_are_one_row(tmp_path):
    from aimusic.store.db import Store

    page = [Post(source="x", post_id=7, created_at=1_760_000_000, text=f"AI music v{i}",
                 fetched_at=datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=i)) for i in range(3)]
    result = Store(tmp_path / "d.duckdb").upsert_posts(posts_to_arrow(page))
    assert result.new == 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(), st.one_of(st.none(), st.text(max_size=30)))
def test_any_text_and_community_never_break_relevance(relevance, text, community):
    relevant, terms = relevance.check(text, community)
    assert isinstance(relevant, bool)
    assert set(terms) <= set(relevance.terms.terms.values())


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary(), st.none(), st.integers()))
def test_clean_text_total(value):
    out = clean_text(value)
    assert isinstance(out, str) and "\x00" not in out and len(out) <= 100_000
    out.encode("utf-8")


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.integers(min_value=-(10**10), max_value=10**10), st.floats(allow_nan=True), st.text(max_size=40),
                 st.datetimes(timezones=st.just(UTC))))
def test_to_utc_returns_aware_or_raises_value_error(value):
    try:
        out = to_utc(value)
    except (ValueError, OverflowError, OSError):
        return
    assert out.tzinfo is not None
    if isinstance(value, float) and math.isnan(value):
        pytest.fail("NaN must not become a timestamp")


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["source", "post_id", "created_at", "text", "author", "score", "kind",
                                        "lang", "title", "url", "replies"]),
                       st.one_of(st.none(), st.text(max_size=20), st.integers(), st.floats(), st.booleans())))
def test_post_from_arbitrary_dicts_validates_or_raises_validation_error(raw):
    try:
        post = Post(**raw)
    except ValidationError:
        return
    assert post.source and post.post_id and post.created_at.tzinfo is not None


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(max_size=300), min_size=1, max_size=8))
def test_vader_scores_are_probabilities(texts):
    result = load_scorer("vader").score(texts)
    for label, probs, status in zip(result.labels, result.probs, result.status, strict=True):
        if status == "scored":
            assert abs(sum(probs) - 1) < 1e-6 and min(probs) >= 0
            assert label == ("negative", "neutral", "positive")[int(probs.argmax())]
        else:
            assert label is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=20), max_size=6), st.text())
def test_term_matcher_never_raises(terms, text):
    TermMatcher(terms).find(text)

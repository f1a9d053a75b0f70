from datetime import UTC, datetime

import pyarrow as pa
import pytest
from pydantic import ValidationError

from aimusic.core.records import POST_SCHEMA, Post, clean_text, posts_to_arrow, to_utc


def make(**kw):
    base = {"source": "reddit", "post_id": "abc", "created_at": 1_700_000_000, "text": "AI music"}
    base.update(kw)
    return Post(**base)


def test_timestamps_become_aware_utc():
    assert to_utc(0) == datetime(1970, 1, 1, tzinfo=UTC)
    assert make(created_at="1700000000").created_at == datetime.fromtimestamp(1_700_000_000, UTC)
    assert make(created_at="2025-11-11T10:00:00Z").created_at == datetime(2025, 11, 11, 10, tzinfo=UTC)
    naive = make(created_at=datetime(2025, 1, 1, 12)).created_at
    assert naive.tzinfo is not None and naive.hour == 12
    assert to_utc("2025-11-11T12:00:00+02:00").hour == 10


@pytest.mark.parametrize("bad", [None, "", "  ", True, 1.5, {"a": 1}, [1]])
def test_bad_ids_are_rejected(bad):
    with pytest.raises(ValidationError):
        make(post_id=bad)


def test_integer_ids_become_strings():
    assert make(post_id=12345).post_id == "12345"


@pytest.mark.parametrize(
    "bad", ["yesterday", None, True, [1], 0, "0", 946_684_799, float("nan"), 1e300, "2099-01-01T00:00:00Z"]
)
def test_bad_timestamps_are_rejected(bad):
    with pytest.raises(ValidationError):
        make(created_at=bad)


def test_text_is_cleaned():
    assert clean_text("a\x00b") == "ab"
    assert clean_text("x\ud800y") == "x\ufffdy"
    assert clean_text(b"caf\xc3\xa9 \xff") == "café \ufffd"
    assert clean_text(None) == ""
    assert len(clean_text("x" * 200_000)) == 100_000
    assert make(text=None).text == ""


def test_engagement_counts_are_lenient():
    post = make(score="12", replies=None, reposts="n/a")
    assert (post.score, post.replies, post.reposts) == (12, None, None)


def test_full_text_joins_title_and_body():
    assert make(title="Suno sued", text="the labels filed today").full_text == "Suno sued\n\nthe labels filed today"
    assert make(title="Suno sued", text="").full_text == "Suno sued"
    assert make(title=None, text="body").full_text == "body"


def test_unknown_fields_are_rejected():
    with pytest.raises(ValidationError):
        make(unexpected=1)


def test_arrow_conversion_matches_schema():
    table = posts_to_arrow([make(post_id="1", terms=["AI music"]), make(post_id="2", author="me", score=3)])
    assert table.schema.equals(POST_SCHEMA)
    assert table.num_rows == 2
    assert table.column("terms").to_pylist() == [["AI music"], []]
    assert posts_to_arrow([]).num_rows == 0
    assert isinstance(table, pa.Table)

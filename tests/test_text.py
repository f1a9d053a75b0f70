"""The shared text helpers: one title + body join, one term key, one reading of "A.I."."""

from __future__ import annotations

import pytest

from aimusic.core.languages import post_texts
from aimusic.core.records import Post
from aimusic.core.text import join_many, join_title_body, normalize_ai_spelling, term_key
from aimusic.debate.signals import full_texts

T0 = "2025-11-11T12:00:00Z"


@pytest.mark.parametrize(
    ("title", "body", "joined"),
    [
        ("Title", "Body", "Title\n\nBody"),
        ("Title", "", "Title"),  # never "Title\n\n"
        ("Title", None, "Title"),
        (None, "Body", "Body"),
        ("", "Body", "Body"),
        ("Same", "Same start of the body", "Same start of the body"),  # platforms that repeat the title
        (None, None, ""),
    ],
)
def test_one_join_everywhere(title, body, joined):
    assert join_title_body(title, body) == joined
    assert join_many([title], [body]) == [joined]
    assert post_texts([title], [body]) == [joined]  # language detection
    assert full_texts([title], [body]) == [joined]  # debate signals
    assert Post(source="x", post_id="1", created_at=T0, title=title, text=body or "").full_text == joined


def test_term_key():
    assert term_key("AI-generated music") == term_key("#AIGeneratedMusic") == term_key("ai_generated  music")
    assert term_key("Suno") != term_key("Sunoco")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A.I. music is everywhere", "AI music is everywhere"),
        ("the a.i designed songs", "the AI designed songs"),
        ("90% A. I. generated mixes", "90% AI generated mixes"),
        ("(A.I.)", "(AI)"),
        ("A.I.M. is a messenger", "A.I.M. is a messenger"),
        ("see data.ai.com", "see data.ai.com"),
        ("Ms. A. Ingram", "Ms. A. Ingram"),
        ("no dots at all", "no dots at all"),
    ],
)
def test_dotted_ai(text, expected):
    assert normalize_ai_spelling(text) == expected

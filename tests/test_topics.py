from pathlib import Path

import pytest

from aimusic.core.topics import TopicsError, load_topics, source_config
from aimusic.sources.base import SourceConfig

GOOD = """
[tracking]
terms = ["AI music", "Suno"]

[[events]]
date = 2025-11-11
title = "chart"

[sources.demo]
posts = 10
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "topics.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_project_topics_file_is_valid():
    topics = load_topics()
    assert "Suno" in topics.tracking.terms
    assert any(e.date.isoformat() == "2025-11-11" for e in topics.events)
    assert topics.source_enabled("demo")


def test_minimal_file(tmp_path):
    topics = load_topics(write(tmp_path, GOOD))
    assert topics.tracking.terms == ["AI music", "Suno"]
    assert topics.relevance.exclude_terms == []


def test_syntax_error_names_the_line(tmp_path):
    bad = GOOD.replace('terms = ["AI music", "Suno"]', 'terms = ["AI music", "Suno"')
    with pytest.raises(TopicsError, match=r"line \d+"):
        load_topics(write(tmp_path, bad))


def test_wrong_type_names_key_and_line(tmp_path):
    bad = GOOD.replace("date = 2025-11-11", 'date = "next tuesday"')
    with pytest.raises(TopicsError) as err:
        load_topics(write(tmp_path, bad))
    message = str(err.value)
    assert "events.0.date" in message
    assert "topics.toml:6" in message  # the line of `date =` under the first [[events]]
    assert "next tuesday" in message


def test_line_of_a_later_array_item(tmp_path):
    text = GOOD + '\n[[events]]\ndate = 2025-12-01\ntitle = "ok"\n\n[[events]]\ndate = 2025-12-02\ntitle = 5\n'
    with pytest.raises(TopicsError) as err:
        load_topics(write(tmp_path, text))
    line = text.splitlines().index("title = 5") + 1
    assert f"topics.toml:{line}: key 'events.2.title'" in str(err.value)


def test_unknown_key_is_reported(tmp_path):
    with pytest.raises(TopicsError, match=r"tracking\.termz"):
        load_topics(write(tmp_path, GOOD.replace("terms =", "termz =")))


def test_missing_file_and_empty_terms(tmp_path):
    with pytest.raises(TopicsError, match="not found"):
        load_topics(tmp_path / "nope.toml")
    with pytest.raises(TopicsError, match=r"tracking\.terms"):
        load_topics(write(tmp_path, "[tracking]\nterms = []\n"))


def test_source_section_validated_by_the_source_model(tmp_path):
    class Demo(SourceConfig):
        posts: int = 5

    topics = load_topics(write(tmp_path, GOOD))
    assert source_config(topics, "demo", Demo).posts == 10
    bad = load_topics(write(tmp_path, GOOD.replace("posts = 10", 'posts = "many"')))
    with pytest.raises(TopicsError, match=r"sources\.demo\.posts"):
        source_config(bad, "demo", Demo)

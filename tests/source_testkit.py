"""Helpers shared by the tests of the credential-free sources (not a test module itself)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"

TOPICS_TOML = """
[tracking]
terms = ["AI music", "AI-generated music", "Suno", "Udio", "Breaking Rust", "Xania Monet"]

[relevance]
ambiguous_terms = ["Suno", "Udio", "Breaking Rust"]
context_terms = ["music", "song", "songs", "track", "album", "artist", "chart", "billboard", "vocals", "AI"]
exclude_terms = ["rustlang", "borrow checker"]
on_topic_communities = ["SunoAI"]
"""


def fixture_json(source: str, name: str) -> Any:
    return json.loads((FIXTURES / source / name).read_text(encoding="utf-8"))


def make_topics(tmp_path: Path, sources: str = "") -> Any:
    """A small, stable topics file (the project's own is edited by other features)."""
    from aimusic.core.topics import load_topics

    path = tmp_path / "topics.toml"
    path.write_text(TOPICS_TOML + "\n" + sources, encoding="utf-8")
    return load_topics(path)


def settings(**overrides: Any) -> Any:
    from aimusic.core.config import Settings

    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]


class Sleeps(list):
    """Records the waits the code asked for, instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)

    @property
    def long(self) -> list[float]:
        """Backoff and rate-limit waits (>= 0.5 s), without the pacing between requests."""
        return [s for s in self if s >= 0.5]


def patch_sleeps(monkeypatch: pytest.MonkeyPatch) -> Sleeps:
    """Replace every wait of the HTTP sources with a recorder (use in a ``sleeps`` fixture)."""
    from aimusic.sources import http

    recorder = Sleeps()
    monkeypatch.setattr(http, "sleep", recorder)
    return recorder


def clear_probes() -> None:
    from aimusic.sources.http import clear_probe_cache

    clear_probe_cache()


def collect(source_name: str, store: Any, topics: Any, settings_obj: Any | None = None) -> Any:
    from aimusic.pipeline.collect import collect_source
    from aimusic.sources import get_source

    return collect_source(get_source(source_name), store, topics, settings_obj or settings())


def rows(store: Any, source: str) -> list[dict]:
    frame = store.query("SELECT * FROM posts WHERE source = ? ORDER BY post_id", [source])
    return frame.to_dict("records")

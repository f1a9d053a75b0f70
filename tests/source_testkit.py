"""Helpers shared by the tests of the credential-free sources (not a test module itself)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import responses

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


class FakeClock:
    """Stands in for :data:`aimusic.sources.ratelimit.clock`, the one clock of every source: the time is what
    the test sets (``now``, epoch seconds), and waits are recorded in ``sleeps`` instead of slept."""

    def __init__(self, now: float | datetime) -> None:
        self.now = 0.0
        self.set(now)
        self.sleeps = Sleeps()

    def set(self, now: float | datetime) -> None:
        self.now = now.timestamp() if isinstance(now, datetime) else float(now)

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def patch_clock(monkeypatch: pytest.MonkeyPatch, now: float | datetime) -> FakeClock:
    """Install a :class:`FakeClock` as the sources' clock (and forget cached reachability probes)."""
    from aimusic.sources import ratelimit

    fake = FakeClock(now)
    monkeypatch.setattr(ratelimit, "clock", fake)
    clear_probes()
    return fake


def clock_fixtures(now: float | datetime, *, praw: bool = False) -> tuple[Any, Any]:
    """A test module's fixtures ``clock`` (autouse: the sources' clock frozen at ``now``) and ``sleeps`` (the
    waits they asked for): ``clock, sleeps = clock_fixtures(NOW)``. ``praw``: praw paces itself and retries
    with its own ``time.sleep``; record those waits too."""

    @pytest.fixture(autouse=True)
    def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
        fake = patch_clock(monkeypatch, now)
        if praw:
            monkeypatch.setattr(time, "sleep", lambda s: fake.sleep(round(s, 2)) if s > 0 else None)
        return fake

    @pytest.fixture
    def sleeps(clock: FakeClock) -> Sleeps:
        return clock.sleeps

    return clock, sleeps


def api_fixture(*reachable: str, status: int = 200) -> Any:
    """A test module's ``api`` fixture: a ``responses`` mock where the ``reachable`` URLs answer the sources'
    reachability probe (HEAD) with ``status``: ``api = api_fixture("https://hn.algolia.com/")``."""

    @pytest.fixture
    def api() -> Iterator[responses.RequestsMock]:
        with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
            for url in reachable:
                rsps.add(responses.HEAD, url, status=status)
            yield rsps

    return api


def clear_probes() -> None:
    from aimusic.sources.http import clear_probe_cache

    clear_probe_cache()


def collect(source: Any, store: Any, topics: Any, settings_obj: Any | None = None) -> Any:
    """Run one source (a registry name, or a source object built with explicit credentials) into ``store``."""
    from aimusic.pipeline.collect import collect_source
    from aimusic.sources import get_source

    return collect_source(get_source(source) if isinstance(source, str) else source, store, topics,
                          settings_obj or settings())


def rows(store: Any, source: str) -> list[dict]:
    frame = store.query("SELECT * FROM posts WHERE source = ? ORDER BY post_id", [source])
    return frame.to_dict("records")

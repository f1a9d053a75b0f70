"""Schema migrations: a database written by the last release opens and migrates; unknown versions are refused;
each file is migrated once per process; building a Store parses no settings."""

from __future__ import annotations

import gzip
import shutil
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

import aimusic.core.config as config
from aimusic.core.records import Post, posts_to_arrow
from aimusic.store import schema
from aimusic.store.db import SCHEMA_VERSION, Store, StoreError

FIXTURES = Path(__file__).parent / "fixtures" / "store"


def release_db(tmp_path: Path) -> Path:
    """A database written by release 9a5b47b (schema versions 1, 3, 4 and 7): two posts, a score, a run, an
    event, a cursor and a meta key. Made with that release's own code (``git show 9a5b47b:flows/store.py``
    and ``flows/records.py``: ``Store(path).upsert_posts(...)``, ``upsert_scores``, ``record_run``,
    ``add_event``, ``set_meta``, then ``CHECKPOINT``) and gzipped."""
    target = tmp_path / "release.duckdb"
    with gzip.open(FIXTURES / "release-9a5b47b.duckdb.gz", "rb") as src, target.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    return target


def versions(path: Path) -> list[int]:
    with duckdb.connect(str(path), read_only=True) as con:
        return [v for (v,) in con.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()]


def columns(path: Path, table: str) -> list[str]:
    with duckdb.connect(str(path), read_only=True) as con:
        return [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]


def test_a_database_of_the_last_release_opens_and_migrates(tmp_path):
    path = release_db(tmp_path)
    assert versions(path) == [1, 3, 4, 7]
    before = Store(path, read_only=True)  # the dashboard reads it before any writer migrated it
    assert before.count("posts") == 2 and before.count("scores") == 1

    store = Store(path)
    assert versions(path) == [m.version for m in schema.MIGRATIONS] and versions(path)[-1] == SCHEMA_VERSION
    assert "relevance" in columns(path, "posts") and "labeller" in columns(path, "labels")
    assert {t: store.count(t) for t in ("posts", "scores", "runs", "cursors", "events", "meta")} == {
        "posts": 2, "scores": 1, "runs": 1, "cursors": 1, "events": 1, "meta": 1}
    assert store.get_cursors("reddit") == {"after": "1767614400"}
    with store.connect() as con:
        kept = con.execute("SELECT post_id, author, terms, relevance FROM posts ORDER BY post_id").fetchall()
    assert kept == [("42", "bob", ["udio"], None), ("abc1", "alice", ["suno"], None)]

    # the current code writes to it: an unchanged re-fetch is not an update, a new post is new
    again = Post(source="reddit", post_id="abc1", kind="post", created_at=datetime(2026, 1, 5, 12, tzinfo=UTC),
                 author="alice", title="Suno", text="AI music is everywhere", url="https://reddit.com/r/x/abc1",
                 community="WeAreTheMusicMakers", terms=["suno"])
    new = Post(source="reddit", post_id="n1", created_at=datetime(2026, 2, 1, tzinfo=UTC), text="AI song news")
    result = store.upsert_posts(posts_to_arrow([again, new]))
    assert (result.new, result.updated) == (1, 0)
    assert Store(path).count("posts") == 3


@pytest.mark.parametrize("extra", [[5], [5, 99]])  # a gap below the newest known version counts too
def test_a_version_this_release_does_not_know_is_refused_by_name(tmp_path, extra):
    path = release_db(tmp_path)
    with duckdb.connect(str(path)) as con:  # as if another release had recorded versions this one lacks
        con.executemany("INSERT INTO schema_migrations VALUES (?, 'elsewhere', now())", [[v] for v in extra])
    named = ", ".join(map(str, extra))
    with pytest.raises(StoreError, match=rf"schema version\(s\) {named} that this aimusic does not know"):
        Store(path)
    assert versions(path) == sorted([1, 3, 4, 7, *extra])  # refused before anything was written
    assert "relevance" not in columns(path, "posts")


def test_each_file_is_migrated_once_per_process_unless_asked(tmp_path, monkeypatch):
    calls: list[Path] = []
    real = schema.migrate
    monkeypatch.setattr(schema, "migrate", lambda con, *, path=None: calls.append(path) or real(con, path=path))
    path = tmp_path / "once.duckdb"
    Store(path)
    Store(path)
    Store(path, read_only=True)
    assert calls == [path]
    Store(path, migrate=True)
    assert len(calls) == 2
    path.unlink()  # a new file at the same path is a new database: migrated again
    Store(path).upsert_posts(posts_to_arrow([Post(source="x", post_id="1", created_at=datetime.now(UTC),
                                                  text="AI music")]))
    assert len(calls) == 3 and Store(path, read_only=True).count("posts") == 1


def test_building_a_store_parses_no_settings(tmp_path, monkeypatch):
    parsed = []
    real = config.get_settings
    monkeypatch.setattr(config, "get_settings", lambda **kw: parsed.append(1) or real(**kw))
    config._cached.cache_clear()
    path = tmp_path / "s.duckdb"
    for _ in range(5):
        Store(path)
        Store(path, read_only=True)
    assert parsed == []

    def post(i: int, author: str = "alice") -> Post:
        return Post(source="x", post_id=str(i), created_at=datetime.now(UTC), text="AI music", author=author)

    store = Store(path)
    for i in range(3):
        store.upsert_posts(posts_to_arrow([post(i)]))  # the default key is read from cached settings
    assert len(parsed) == 1
    monkeypatch.setenv("AIMUSIC_PSEUDONYMIZE_KEY", "a-key-that-is-long-enough")  # a changed environment counts
    store.upsert_posts(posts_to_arrow([post(9, "bob")]))
    assert len(parsed) == 2
    with store.connect() as con:
        authors = dict(con.execute("SELECT post_id, author FROM posts").fetchall())
    assert authors["0"] == "alice" and authors["9"].startswith("anon-")

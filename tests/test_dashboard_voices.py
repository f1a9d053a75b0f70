"""Voices and the Posts view read the database file (issue 16): the summary's author ids stay one per author
through incremental refreshes, a database of schema 10 migrates and rebuilds its summary, and the page shows
Voices and Posts without building the in-memory copy of every post. That the file's answers equal the copy's, for
every filter set and after every kind of refresh: tests/test_dashboard_summary.py (``assert_file_paths_same``)."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import streamlit as st
from dashboard_testkit import END, MODEL, seed, working_copy
from streamlit.testing.v1 import AppTest

from aimusic.core.config import PROJECT_ROOT
from aimusic.core.topics import load_topics
from aimusic.debate.relevance import RelevanceFilter
from aimusic.debate.signals import tag_entities
from aimusic.pipeline.collect import score_posts
from aimusic.sources.demo import generate_table
from aimusic.store import dashboard_posts as posts
from aimusic.store import dashboard_queries as q
from aimusic.store import dashboard_summary
from aimusic.store import dashboard_top as top
from aimusic.store import dashboard_voices as voices
from aimusic.store.dashboard_facts import Facts, ensure_summary, read_connection, read_version
from aimusic.store.db import SCHEMA_VERSION, Store
from aimusic.store.queries import Filters
from sentiment import load_scorer


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("voices") / "base.duckdb"
    seed(path, 1500)
    Store(path).refresh_summary()
    return path


@pytest.fixture
def db(base: Path, tmp_path: Path) -> Path:
    return working_copy(base, tmp_path)


def ids_ok(path: Path) -> None:
    """Every author of the posts has exactly one id, and no two authors share one."""
    with duckdb.connect(str(path), read_only=True) as con:
        n_ids, n_authors, n_distinct_ids, missing = con.execute(
            """SELECT count(*), count(DISTINCT author), count(DISTINCT id),
                      (SELECT count(*) FROM (SELECT DISTINCT author FROM posts WHERE author IS NOT NULL)
                       ANTI JOIN dash_author_ids USING (author))
               FROM dash_author_ids"""
        ).fetchall()[0]
    assert n_ids == n_authors == n_distinct_ids and missing == 0


def same_voices(path: Path) -> None:
    with read_connection(path) as con:
        assert dashboard_summary.is_current(con)
        version = read_version(con)
    facts = Facts(str(path), MODEL)
    facts.sync(version)
    try:
        with read_connection(path) as con:
            for filters in (Filters(), Filters(start=END - timedelta(days=29), end=END + timedelta(days=5)),
                            Filters(entities=("Suno",)), Filters(entities=("Suno", "Udio"), sources=("reddit",))):
                assert voices.supported(filters)
                for by in ("author", "community"):
                    pd.testing.assert_frame_equal(voices.voices(con, filters, MODEL, by, "posts", 10),
                                                  q.voices(facts.cursor(), filters, by, "posts", 10),
                                                  check_dtype=False)
    finally:
        facts.close()


def test_author_ids_stay_one_per_author_through_refreshes(db: Path) -> None:
    ids_ok(db)
    topics = load_topics()
    store = Store(db)
    for round_ in range(2):  # new posts by known and by new authors, on new and on old days
        more, _ = RelevanceFilter(topics).filter_table(
            generate_table(200, seed=500 + round_, end=END + timedelta(days=3), days=60, events=[]))
        store.upsert_posts(more)
        tag_entities(store, topics)
        score_posts(store, load_scorer("vader"))
        assert store.refresh_summary() == "incremental"
        assert store.refresh_summary() == "unchanged"  # a re-run recomputes nothing
        ids_ok(db)
        same_voices(db)
    assert store.refresh_summary(full=True) == "full"
    ids_ok(db)
    same_voices(db)


def test_a_database_of_schema_10_migrates_and_rebuilds_its_summary(db: Path, tmp_path: Path) -> None:
    """The summary tables as migration 10 left them, with a summary that was current then: migration 11 replaces
    them (12 adds the Voices bounds and the scores index, 13 the Voices summary by entity) and the next refresh is a
    full build."""
    with duckdb.connect(str(db)) as con:
        con.execute("DROP INDEX scores_post")
        for table in ("dash_authors", "dash_entity_authors", "dash_author_ids", "dash_voices", "dash_top",
                      "dash_top_cut", "dash_voice_totals", "dash_entity_voices"):
            con.execute(f"DROP TABLE {table}")
        for sql in dashboard_summary.TABLES[1:3]:  # dash_authors, dash_entity_authors of migration 10
            con.execute(sql)
        con.execute("DELETE FROM schema_migrations WHERE version >= 11")
    old = tmp_path / "v10.duckdb"  # another file: this process has not migrated it yet
    shutil.copy(db, old)
    with duckdb.connect(str(old), read_only=True) as con:  # its summary was current under schema 10
        assert not dashboard_summary.is_current(con)  # ... which is not current for this release's readers
    shutil.copy(old, tmp_path / "v10-dashboard.duckdb")
    assert ensure_summary(tmp_path / "v10-dashboard.duckdb")  # the dashboard opening it first migrates it
    same_voices(tmp_path / "v10-dashboard.duckdb")
    store = Store(old)
    with duckdb.connect(str(old), read_only=True) as con:
        assert con.execute("SELECT max(version) FROM schema_migrations").fetchall()[0][0] == SCHEMA_VERSION
        assert "author_id" in [r[0] for r in con.execute("DESCRIBE dash_authors").fetchall()]
        assert not dashboard_summary.is_current(con)
    assert store.refresh_summary() == "full"
    ids_ok(old)
    same_voices(old)



def test_a_database_of_schema_12_migrates_to_voices_by_entity_and_rebuilds_its_summary(db: Path,
                                                                                     tmp_path: Path) -> None:
    """Migration 13 adds the Voices summary of the posts that mention an entity: a file of schema 12 whose summary
    was current is not current for this release, and its next refresh is a full build that answers Voices under
    entity filters from the summary."""
    with duckdb.connect(str(db)) as con:
        con.execute("DROP TABLE dash_entity_voices")
        con.execute("DELETE FROM schema_migrations WHERE version >= 13")
    old = tmp_path / "v12.duckdb"
    shutil.copy(db, old)
    with duckdb.connect(str(old), read_only=True) as con:
        assert not dashboard_summary.is_current(con)
    store = Store(old)
    with duckdb.connect(str(old), read_only=True) as con:
        assert con.execute("SELECT max(version) FROM schema_migrations").fetchall()[0][0] == SCHEMA_VERSION
        assert con.execute("SELECT count(*) FROM dash_entity_voices").fetchall()[0][0] == 0
    assert store.refresh_summary() == "full"
    with duckdb.connect(str(old), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM dash_entity_voices").fetchall()[0][0] > 0
    ids_ok(old)
    same_voices(old)


def test_voices_and_posts_never_build_the_in_memory_copy(monkeypatch: pytest.MonkeyPatch, db: Path) -> None:
    def refuse(self: Facts, version: object) -> str:
        raise AssertionError("the in-memory copy was built")

    monkeypatch.setattr(Facts, "sync", refuse)
    monkeypatch.setenv("AIMUSIC_DB", str(db))
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    for view in ("Voices", "Posts"):
        at.segmented_control(key="view").set_value(view).run()
        assert not at.exception, at.exception
        assert at.dataframe and not at.dataframe[0].value.empty
    at.selectbox(key="sort").set_value("most negative").run()
    assert not at.exception, at.exception
    at.segmented_control(key="view").set_value("Voices").run()
    at.segmented_control(key="rank").set_value("most engaged").run()
    assert not at.exception, at.exception


def test_posts_pages_survive_stale_row_ids(db: Path) -> None:
    """The ranked lists carry each post's row id as a hint; when it no longer holds that post (a table rewritten
    since), the page is found by time instead: same rows, same order."""
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE dash_top SET post_rowid = post_rowid + 1")
    with read_connection(db) as con:
        version = read_version(con)
    facts = Facts(str(db), MODEL)
    facts.sync(version)
    try:
        with read_connection(db) as con:
            for sort in ("newest", "most engaged", "most negative"):
                for filters in (Filters(), Filters(start=END - timedelta(days=29), end=END)):
                    assert top.page(con, filters, MODEL, sort, 20) is not None  # the lists answer, not a fallback
                    mine = posts.posts_page(con, filters, MODEL, sort, 20, summary=True)
                    theirs = posts.posts_page(con, filters, MODEL, sort, 20, facts.cursor())
                    assert len(mine) == 20
                    pd.testing.assert_frame_equal(mine, theirs, check_dtype=False)
    finally:
        facts.close()


def test_a_model_scoring_only_new_posts_gets_lists_for_every_day(db: Path) -> None:
    """A second model that scored only the newest posts: its lists cover the old days too (pages of old windows
    under that model equal the per-post answer, not an empty page)."""
    with duckdb.connect(str(db)) as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("""INSERT INTO scores SELECT source, post_id, 'late-model', 'negative', 0.8, 0.1, 0.1, 'scored',
                              text_md5, now() FROM posts ORDER BY created_at DESC LIMIT 30""")
    assert Store(db).refresh_summary() == "incremental"
    with read_connection(db) as con:
        version = read_version(con)
    facts = Facts(str(db), "late-model")
    facts.sync(version)
    try:
        with read_connection(db) as con:
            old = Filters(start=END - timedelta(days=100), end=END - timedelta(days=60))
            for sort in ("newest", "most engaged", "most negative"):
                for filters in (old, Filters()):
                    mine = posts.posts_page(con, filters, "late-model", sort, 40, summary=True)
                    theirs = posts.posts_page(con, filters, "late-model", sort, 40, facts.cursor())
                    assert len(theirs) == 40
                    pd.testing.assert_frame_equal(mine, theirs, check_dtype=False, obj=f"{sort} {filters}")
    finally:
        facts.close()

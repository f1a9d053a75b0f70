"""The dashboard's daily summary (aimusic/store/dashboard_summary.py, read by aimusic/store/dashboard_daily.py):
every aggregate it answers equals the same aggregate over one row per post (the facts copy, itself checked
against pandas in test_dashboard_queries.py), after a full build, after new posts, after a rescore, and after
rows are deleted; a refresh with nothing new does nothing."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pytest
from dashboard_testkit import END, MODEL, seed, working_copy

from aimusic.core.topics import load_topics
from aimusic.debate.relevance import RelevanceFilter
from aimusic.debate.signals import tag_entities
from aimusic.pipeline.collect import score_posts
from aimusic.sources.demo import generate_table
from aimusic.store import dashboard_daily as daily
from aimusic.store import dashboard_posts as posts
from aimusic.store import dashboard_queries as q
from aimusic.store import dashboard_summary, dashboard_top
from aimusic.store import dashboard_voices as voices
from aimusic.store.dashboard_facts import Facts, ensure_summary, read_connection, read_version
from aimusic.store.db import Store
from aimusic.store.queries import Filters
from sentiment import load_scorer

START = END - timedelta(days=59)
FILTERS = [
    Filters(start=START, end=END),
    Filters(),  # open window: no previous one
    Filters(start=END - timedelta(days=119), end=END),
    Filters(start=START, end=END, sources=("reddit", "bluesky"), min_engagement=5),
    Filters(start=START, end=END, entities=("Suno",)),
    Filters(start=START, end=END, entities=("Suno", "Udio"), sources=("reddit",)),
    Filters(start=START, end=END, terms=("suno",), langs=("en",)),
    Filters(start=START, end=END, min_engagement=daily.ENGAGEMENT_CAP),
    Filters(start=END + timedelta(days=30), end=END + timedelta(days=40)),  # no posts
]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("summary") / "base.duckdb"
    seed(path, 2500)
    return path


@pytest.fixture
def db(base: Path, tmp_path: Path) -> Path:
    return working_copy(base, tmp_path)


def assert_same(path: Path) -> None:
    """Every summary-backed aggregate equals the facts copy's, for every filter set."""
    with read_connection(path) as con:
        assert dashboard_summary.is_current(con)
        version = read_version(con)
    facts = Facts(str(path), MODEL)
    facts.sync(version)
    try:
        with read_connection(path) as con:
            for filters in FILTERS:
                assert daily.supported(filters)
                cases = [
                    (daily.totals(con, filters, MODEL), q.totals(facts.cursor(), filters)),
                    (daily.series(con, filters, MODEL, "day"), q.series(facts.cursor(), filters, "day")),
                    (daily.series(con, filters, MODEL, "week"), q.series(facts.cursor(), filters, "week")),
                    (daily.sentiment_rolling(con, filters, MODEL, 7), q.sentiment_rolling(facts.cursor(), filters, 7)),
                ]
                for by in ("source", "entity"):
                    cases.append((daily.compare(con, filters, MODEL, by), q.compare(facts.cursor(), filters, by)))
                    cases.append((daily.compare_series(con, filters, MODEL, by, "week"),
                                  q.compare_series(facts.cursor(), filters, by, "week")))
                for mine, theirs in cases:
                    pd.testing.assert_frame_equal(mine.reset_index(drop=True), theirs.reset_index(drop=True),
                                                  check_dtype=False, obj=str(filters))
                assert daily.posts_count(con, filters) == posts.posts_count(con, filters)
                assert_file_paths_same(con, facts, filters)
            assert q.db_info(con, summary=True) == q.db_info(con)
    finally:
        facts.close()


def assert_file_paths_same(con: duckdb.DuckDBPyConnection, facts: Facts, filters: Filters) -> None:
    """Voices, the top posts and the Posts view's summary-helped orderings, read from the file, equal what the
    in-memory copy answers (same rows, same order)."""
    for by in ("author", "community"):
        for order in ("posts", "engagement"):
            for limit in (3, 25):
                theirs = q.voices(facts.cursor(), filters, by, order, limit)
                for summary in (True, False):
                    mine = voices.voices(con, filters, MODEL, by, order, limit, summary=summary)
                    pd.testing.assert_frame_equal(mine, theirs, check_dtype=False,
                                                  obj=f"voices {by} {order} {limit} {summary} {filters}")
    for label in ("positive", "negative"):
        for limit in (1, 10):
            theirs = posts.top_posts(con, filters, MODEL, label, limit, fcon=facts.cursor())
            for summary in (True, False):
                mine = posts.top_posts(con, filters, MODEL, label, limit, summary=summary)
                pd.testing.assert_frame_equal(mine, theirs, check_dtype=False, obj=f"top {label} {filters}")
    for sort in posts.POST_SORTS:  # from the ranked lists (short ones here: cut, and falling back past them)
        for limit in (1, 7, 40, 300):
            theirs = posts.posts_page(con, filters, MODEL, sort, limit, facts.cursor())
            mine = posts.posts_page(con, filters, MODEL, sort, limit, summary=True)
            pd.testing.assert_frame_equal(mine, theirs, check_dtype=False, obj=f"{sort} {limit} {filters}")


@pytest.fixture(autouse=True)
def _short_ranked_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ranked lists of 8 posts a day (not 500), so most days' lists are cut: pages come from them when they can
    tell, and from the posts when not."""
    monkeypatch.setattr(dashboard_top, "K_DAY", 8)


def refresh(path: Path) -> str:
    return Store(path).refresh_summary()


def test_full_build_matches_the_per_post_aggregates(db: Path) -> None:
    assert refresh(db) == "full"
    assert refresh(db) == "unchanged"  # nothing new: nothing recomputed
    assert_same(db)


def test_new_posts_and_a_rescore_refresh_only_their_days(db: Path) -> None:
    refresh(db)
    topics = load_topics()
    store = Store(db)
    more, _ = RelevanceFilter(topics).filter_table(
        generate_table(300, seed=99, end=END + timedelta(days=2), days=3, events=[])
    )
    store.upsert_posts(more)
    tag_entities(store, topics)
    score_posts(store, load_scorer("vader"))
    with duckdb.connect(str(db)) as con:
        before = con.execute("SELECT count(DISTINCT day) FROM dash_daily").fetchall()[0][0]
    assert refresh(db) == "incremental"
    assert_same(db)

    # a rescore flips the labels of some old posts (as a new model version or `aimusic rescore` would)
    with duckdb.connect(str(db), read_only=True) as con:
        picked = con.execute(
            "SELECT source, post_id, text_md5 FROM posts WHERE created_at < ? ORDER BY post_id LIMIT 40",
            [datetime.combine(START, datetime.min.time(), tzinfo=UTC)],
        ).fetchall()
    n = len(picked)
    store.upsert_scores(pa.table({
        "source": [r[0] for r in picked], "post_id": [r[1] for r in picked], "model": [MODEL] * n,
        "label": ["negative"] * n, "negative": [0.9] * n, "neutral": [0.05] * n, "positive": [0.05] * n,
        "status": ["scored"] * n, "text_md5": [r[2] for r in picked],
    }))
    assert refresh(db) == "incremental"
    assert_same(db)
    with duckdb.connect(str(db)) as con:
        assert con.execute("SELECT count(DISTINCT day) FROM dash_daily").fetchall()[0][0] >= before


def test_a_second_model_and_deleted_rows(db: Path) -> None:
    refresh(db)
    with duckdb.connect(str(db)) as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("""INSERT INTO scores SELECT source, post_id, 'other-model', 'positive', 0, 0, 1, 'scored',
                              text_md5, now() FROM posts WHERE hash(post_id) % 3 = 0""")
    assert refresh(db) == "incremental"
    with read_connection(db) as con:
        other = daily.totals(con, Filters(), "other-model")
        none = daily.totals(con, Filters(), None)
    assert other.loc[0, "scored"] == other.loc[0, "positive"] > 0
    assert none.loc[0, "scored"] == 0 and none.loc[0, "posts"] == other.loc[0, "posts"]
    with duckdb.connect(str(db)) as con:  # rows deleted by hand: caught by the check, rebuilt
        con.execute("DELETE FROM scores WHERE post_id IN (SELECT post_id FROM posts ORDER BY post_id LIMIT 25)")
        con.execute("DELETE FROM posts WHERE post_id IN (SELECT post_id FROM posts ORDER BY post_id LIMIT 25)")
    assert refresh(db) == "full"
    assert_same(db)


def test_a_finished_run_refreshes_it_and_the_dashboard_catches_up(db: Path) -> None:
    store = Store(db)
    now = datetime.now(UTC)
    store.record_run({"run_id": "r1", "source": "demo", "started_at": now, "finished_at": now, "status": "ok"})
    with read_connection(db) as con:
        assert dashboard_summary.is_current(con)
    more, _ = RelevanceFilter(load_topics()).filter_table(generate_table(50, seed=7, end=END, days=2, events=[]))
    store.upsert_posts(more)
    with read_connection(db) as con:
        assert not dashboard_summary.is_current(con)
    assert ensure_summary(db)  # what the dashboard does when it finds the summary behind
    assert_same(db)


def test_unsupported_filters_are_left_to_the_facts_copy() -> None:
    assert not daily.supported(Filters(min_engagement=daily.ENGAGEMENT_CAP + 1))
    assert not daily.supported(Filters(search="suno"))
    assert set(daily.REPLACES) == {q.totals, q.series, q.sentiment_rolling, q.compare, q.compare_series}


def test_posts_from_the_file_match_the_facts_copy(db: Path) -> None:
    """A Posts page read from the file (newest/oldest find their cut-off value first) equals the page read
    with the in-memory copy: same rows, same order."""
    with read_connection(db) as con:
        version = read_version(con)
    facts = Facts(str(db), MODEL)
    facts.sync(version)
    try:
        with read_connection(db) as con:
            for filters in FILTERS[:7]:
                for sort in posts.POST_SORTS:
                    for limit in (5, 300):
                        mine = posts.posts_page(con, filters, MODEL, sort, limit)
                        theirs = posts.posts_page(con, filters, MODEL, sort, limit, facts.cursor())
                        pd.testing.assert_frame_equal(mine, theirs, check_dtype=False, obj=f"{filters} {sort}")
    finally:
        facts.close()


def test_languages_filled_in_later_reach_the_summary(db: Path) -> None:
    """Detection fills ``posts.lang`` after posts were stored (and summarised as 'und'): the days of those posts
    are recomputed, so the language filter counts them."""
    from aimusic.pipeline.languages import update_langs

    store = Store(db)
    with store.connect() as con:
        con.execute("UPDATE posts SET lang = NULL WHERE post_id IN (SELECT post_id FROM posts ORDER BY post_id "
                    "LIMIT 300)")
        keys = pa.Table.from_pandas(con.execute("SELECT source, post_id FROM posts WHERE lang IS NULL").df(),
                                    preserve_index=False)
    assert refresh(db) == "full"
    langs = keys.append_column("lang", pa.array(["en"] * keys.num_rows, pa.string()))
    assert update_langs(store, langs) == keys.num_rows
    assert refresh(db) == "incremental"
    assert_same(db)


def reference_page(con: duckdb.DuckDBPyConnection, filters: Filters, sort: str, limit: int) -> pd.DataFrame:
    """A Posts page the straightforward way: every matching post joined with its score, sorted, cut."""
    where, params = filters.where("p")
    page = con.execute(
        f"""SELECT {posts._POST_FIELDS}, s.label AS sentiment,
                   greatest(s.negative, s.neutral, s.positive) AS confidence
            FROM posts p LEFT JOIN scores s ON s.source = p.source AND s.post_id = p.post_id AND s.model = ?
            WHERE {where} ORDER BY {posts.POST_SORTS[sort][0]} LIMIT ?""", [MODEL, *params, limit]).df()
    page = page[posts.POST_TABLE_COLUMNS]
    return page.assign(sentiment=page["sentiment"].astype(object).where(page["sentiment"].notna(), None))


def test_pages_by_time_and_text_searches_match_the_straightforward_query(db: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Newest and oldest pages are read in slices of days from the window's end (sized by the daily summary, or
    growing from one day), text searches included: the same rows in the same order as one sorted query."""
    assert refresh(db) == "full"
    searches = [None, "ai", "Suno", "stolen", "no such words here"]
    with read_connection(db) as con:
        for growth in (4, 2):
            monkeypatch.setattr(posts, "_SLICE_GROWTH", growth)
            for filters in FILTERS:
                for search in searches:
                    flt = dataclasses.replace(filters, search=search)
                    for sort in ("newest", "oldest"):
                        for limit in (1, 40, 300, 5000):
                            theirs = reference_page(con, flt, sort, limit)
                            for summary in (True, False):
                                mine = posts.posts_page(con, flt, MODEL, sort, limit, summary=summary)
                                pd.testing.assert_frame_equal(mine, theirs, check_dtype=False,
                                                              obj=f"{sort} {limit} {summary} {flt}")
            for search in searches:  # also a text search under the other orderings, and an open-ended window
                flt = Filters(start=START, search=search)
                for sort in posts.POST_SORTS:
                    pd.testing.assert_frame_equal(posts.posts_page(con, flt, MODEL, sort, 50, summary=True),
                                                  reference_page(con, flt, sort, 50), check_dtype=False,
                                                  obj=f"{sort} {flt}")


def test_voices_ranked_among_the_bounded_candidates_match_the_copy(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Voices ranks only the authors whose totals (``dash_voice_totals``) reach the bar the seeds set: the same
    pages as ranking every author, with few seeds, many, and none (every author ranked), after a full build and
    after new posts (the totals kept incrementally)."""
    assert refresh(db) == "full"
    for step in ("full", "incremental"):
        if step == "incremental":
            topics = load_topics()
            more, _ = RelevanceFilter(topics).filter_table(generate_table(300, seed=99, end=END, days=20, events=[]))
            Store(db).upsert_posts(more)
            tag_entities(Store(db), topics)
            score_posts(Store(db), load_scorer("vader"))
            assert refresh(db) == "incremental"
        with read_connection(db) as con:
            assert dashboard_summary.is_current(con)
            bounds = con.execute(
                """SELECT count(*) FROM dash_voice_totals t FULL JOIN (
                       SELECT source, author_id, sum(posts) AS posts, sum(greatest(engagement, 0)) AS engagement
                       FROM dash_voices WHERE model = '' AND author_id IS NOT NULL GROUP BY ALL) v
                   ON v.source = t.source AND v.author_id = t.author_id
                   WHERE t.posts IS DISTINCT FROM v.posts OR t.engagement IS DISTINCT FROM v.engagement""").fetchall()
            assert bounds[0][0] == 0  # the kept totals equal the totals recomputed from the Voices summary
            for seeds, most in ((1, 250_000), (5, 250_000), (5, 0)):
                monkeypatch.setattr(voices, "_SEEDS", seeds)
                monkeypatch.setattr(voices, "_MAX_CANDIDATES", most)
                assert_voices_match_ranking_everyone(con, FILTERS, (1, 3, 25), f"{seeds} {most}")


def assert_voices_match_ranking_everyone(con: duckdb.DuckDBPyConnection, cases: list[Filters],
                                         limits: tuple[int, ...], what: str) -> None:
    """Voices from the summary (ranked among the bounded candidates) equals Voices ranked over every post."""
    for filters in [f for f in cases if voices.supported(f)]:
        for order in ("posts", "engagement"):
            for limit in limits:
                mine = voices.voices(con, filters, MODEL, "author", order, limit)
                theirs = voices.voices(con, filters, MODEL, "author", order, limit, summary=False)
                pd.testing.assert_frame_equal(mine, theirs, check_dtype=False, obj=f"{what} {order} {limit} {filters}")


def test_voices_bounds_hold_with_negative_engagement_null_authors_ties_and_source_or_language_filters(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bound (an author's positive engagement and posts over every day) must never cut an author who belongs on
    the page: few authors (many ties), posts with negative engagement, posts without an author, other languages,
    and source-only or language-only filters (which the totals do not split by), after a full build and after an
    incremental refresh in which authors change and engagement drops."""
    path = tmp_path / "v.duckdb"
    store = seed(path, 1500)
    with duckdb.connect(str(path)) as con:
        con.execute("UPDATE posts SET author = 'a' || (hash(post_id) % 40)::VARCHAR, updated_at = now()")
        con.execute("UPDATE posts SET author = NULL WHERE hash(post_id) % 17 = 0")
        con.execute("UPDATE posts SET score = score - 8 WHERE hash(post_id) % 3 = 0")
        con.execute("UPDATE posts SET lang = CASE WHEN hash(post_id) % 4 = 0 THEN 'de' "
                    "WHEN hash(post_id) % 11 = 0 THEN NULL ELSE lang END")
    store.refresh_summary(full=True)
    start = END - timedelta(days=59)
    cases = [Filters(start=start, end=END), Filters(), Filters(sources=("reddit",)), Filters(langs=("de",)),
             Filters(sources=("bluesky", "mastodon"), langs=("en",)), Filters(start=END - timedelta(days=100),
                                                                               end=END - timedelta(days=50))]
    for step in ("full", "incremental"):
        if step == "incremental":
            with duckdb.connect(str(path)) as con:
                con.execute("UPDATE posts SET author = 'newcomer', updated_at = now() WHERE hash(post_id) % 9 = 1")
                con.execute("UPDATE posts SET score = score - 50, updated_at = now() WHERE hash(post_id) % 13 = 2")
            store.refresh_summary()
        with read_connection(path) as con:
            assert dashboard_summary.is_current(con)
            for seeds in (1, 2):
                monkeypatch.setattr(voices, "_SEEDS", seeds)
                assert_voices_match_ranking_everyone(con, cases, (1, 3, 7), f"{step} {seeds}")


def test_voices_under_an_entity_filter_with_negative_posts_beside_and_posts_without_an_author(tmp_path: Path) -> None:
    """An entity filter keeps only some posts of a summary row: an author whose Suno post (+5) shares its row with a
    -10 post has a bound of 0 in ``dash_voice_totals``, yet tops Voices by engagement under "Suno" (a reviewer's
    case: the bounded candidates once dropped the author). Posts without an author are no author in the community
    counts read from the posts, as in the summary and the in-memory copy (``hash(NULL)`` once counted as one)."""
    path = tmp_path / "e.duckdb"
    store = Store(path)
    t = datetime(2026, 2, 1, 12, tzinfo=UTC)
    rows = [(f"s{i}{k}", f"seed{i}", score, ents) for i in range(5) for k, score, ents in (("a", 100, None),
                                                                                          ("b", 3, ["Suno"]))]
    rows += [("ya", "Y", 5, ["Suno"]), ("yb", "Y", -10, None), ("n1", None, 1, ["Suno"]), ("n2", None, 2, None)]
    with duckdb.connect(str(path)) as con:
        for pid, author, score, ents in rows:
            con.execute("""INSERT INTO posts (source, post_id, kind, created_at, author, text, lang, score, community,
                           entities, fetched_at, text_md5, first_seen_at, updated_at)
                           VALUES ('reddit', ?, 'post', ?, ?, 'x', 'en', ?, 'c', ?, ?, 'm', ?, ?)""",
                        [pid, t, author, score, ents, t, t, t])
    assert store.refresh_summary() == "full"
    with read_connection(path) as con:
        for filters in (Filters(entities=("Suno",)), Filters(entities=("Suno", "Udio"), sources=("reddit",))):
            for order in ("engagement", "posts"):
                for limit in (1, 3):
                    mine = voices.voices(con, filters, None, "author", order, limit)
                    theirs = voices.voices(con, filters, None, "author", order, limit, summary=False)
                    pd.testing.assert_frame_equal(mine, theirs, check_dtype=False, obj=f"{filters} {order} {limit}")
        top = voices.voices(con, Filters(entities=("Suno",)), None, "author", "engagement", 1)
        assert top["author"].tolist() == ["Y"] and top["engagement"].tolist() == [5]
        for filters in (Filters(), Filters(min_engagement=1), Filters(entities=("Suno",))):
            mine = voices.voices(con, filters, None, "community", "posts", 5, summary=False)
            theirs = voices.voices(con, filters, None, "community", "posts", 5)
            pd.testing.assert_frame_equal(mine, theirs, check_dtype=False, obj=str(filters))
        assert voices.voices(con, Filters(), None, "community", "posts", 5, summary=False)["authors"].tolist() == [6]

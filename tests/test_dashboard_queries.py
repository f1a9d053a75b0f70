"""The dashboard's named queries (aimusic/store/dashboard_*.py) against independent pandas computations, the facts
copy's incremental refresh, the statistics, the default window, and the rule that the dashboard imports no
database driver."""

from __future__ import annotations

import ast
import threading
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from dashboard_testkit import END, MODEL, STANCE_MODEL, add_signals, frame, in_window, mentions, seed, working_copy

from aimusic.core import stats
from aimusic.core.config import PROJECT_ROOT
from aimusic.core.topics import load_topics
from aimusic.dashboard import freshness
from aimusic.dashboard.db import resolve_dashboard_db
from aimusic.dashboard.state import FilterState, Options
from aimusic.debate.relevance import RelevanceFilter
from aimusic.debate.signals import tag_entities
from aimusic.pipeline.collect import score_posts
from aimusic.sources.demo import event_dates, generate_table
from aimusic.store import dashboard_posts as posts
from aimusic.store import dashboard_queries as q
from aimusic.store import debate_queries
from aimusic.store.dashboard_facts import FACT_COLUMNS, Facts, add_event, read_connection, read_version
from aimusic.store.db import Store
from aimusic.store.queries import Filters, guard_csv_frame
from sentiment import load_scorer

WINDOW = (END - timedelta(days=89), END)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dashq") / "seeded.duckdb"
    seed(path, 4000)
    add_signals(path)
    return path


@pytest.fixture
def db_copy(seeded: Path, tmp_path: Path) -> Path:
    return working_copy(seeded, tmp_path)


@pytest.fixture(scope="module")
def facts(seeded: Path) -> Facts:
    with read_connection(seeded) as con:
        version = read_version(con)
    f = Facts(str(seeded), MODEL)
    f.sync(version)
    return f


# --- statistics ----------------------------------------------------------------------------------------------
def test_wilson_known_values() -> None:
    low, high = stats.wilson([0, 10, 81], [10, 10, 263])
    assert low[0] == 0 and high[0] == pytest.approx(0.2775, abs=1e-4)
    assert low[1] == pytest.approx(0.7225, abs=1e-4) and high[1] == pytest.approx(1.0)
    assert (low[2], high[2]) == (pytest.approx(0.2553, abs=1e-3), pytest.approx(0.3662, abs=1e-3))
    assert np.isnan(stats.wilson([0], [0])[0][0])


def test_net_interval_bounds_and_large_sample() -> None:
    pos, neg, n = np.array([0, 5, 30, 3000]), np.array([0, 0, 10, 2000]), np.array([1, 5, 60, 10000])
    low, high = stats.net_interval(pos, neg, n)
    net = stats.net_sentiment(pos, neg, n)
    assert np.all(low <= net) and np.all(net <= high)
    assert np.all(low >= -1) and np.all(high <= 1)
    assert high[1] == 1.0 and low[1] < 1.0  # all positive: the upper end is the bound, the lower is not
    p1, p2 = 0.3, 0.2
    normal_half = 1.96 * np.sqrt((p1 + p2 - (p1 - p2) ** 2) / 10000)
    assert (high[3] - low[3]) / 2 == pytest.approx(normal_half, rel=0.02)


def test_net_interval_coverage_by_simulation() -> None:
    rng = np.random.default_rng(0)
    p = np.array([0.35, 0.4, 0.25])  # negative, neutral, positive
    draws = rng.multinomial(40, p, size=4000)
    low, high = stats.net_interval(draws[:, 2], draws[:, 0], np.full(4000, 40))
    truth = p[2] - p[0]
    coverage = np.mean((low <= truth) & (truth <= high))
    assert 0.93 <= coverage <= 0.975


# --- pure helpers --------------------------------------------------------------------------------------------
def test_filter_state_to_filters_and_bucket() -> None:
    state = FilterState(start=date(2026, 1, 1), end=date(2026, 1, 31), entities=("Suno",), terms=("Udio",),
                        min_engagement=3, model="m")
    f = state.to_filters()
    assert f.entities == ("Suno",) and f.terms == ("Udio",) and f.min_engagement == 3 and f.model == "m"
    assert state.resolved_bucket() == "day"
    assert FilterState(start=date(2025, 3, 1), end=date(2026, 2, 28)).resolved_bucket() == "day"  # a year: days
    assert FilterState(start=date(2024, 1, 1), end=date(2026, 1, 1)).resolved_bucket() == "week"
    assert FilterState(start=date(2025, 1, 1), end=date(2025, 1, 2), bucket="week").resolved_bucket() == "week"


def test_default_window_shows_the_whole_story() -> None:
    """Data spanning up to a year opens on all of it (the demo's 180 days hold its events); longer data on its
    last 365 days; no data, no window."""
    demo = Options(date(2025, 9, 2), date(2026, 2, 28), (), (), (), (), ())
    assert demo.default_window() == (date(2025, 9, 2), date(2026, 2, 28))
    assert Options(date(2026, 2, 1), date(2026, 2, 28), (), (), (), (), ()).default_window() == (
        date(2026, 2, 1), date(2026, 2, 28))
    long = Options(date(2021, 1, 1), date(2026, 2, 28), (), (), (), (), ())
    assert long.default_window() == (date(2025, 3, 1), date(2026, 2, 28))
    assert Options(None, None, (), (), (), (), ()).default_window() == (None, None)
    topics = load_topics()
    in_demo = [e.date for e in topics.events if demo.first_day <= e.date <= demo.last_day]
    assert len(in_demo) >= 3  # the shipped events fall in the demo's default window


def test_previous_window() -> None:
    f = Filters(start=date(2026, 2, 1), end=date(2026, 2, 28))
    prev = f.previous_window()
    assert f.days == 28 and prev.start == date(2026, 1, 4) and prev.end == date(2026, 1, 31)
    assert Filters().previous_window() is None


def test_guard_csv_frame() -> None:
    df = pd.DataFrame({"a": ["=cmd()", "+1", "ok", None, "@x", "-2"], "n": [-1, 2, 3, 4, 5, 6]})
    out = guard_csv_frame(df)
    assert out["a"].tolist()[:3] == ["'=cmd()", "'+1", "ok"] and out["a"].tolist()[4:] == ["'@x", "'-2"]
    assert pd.isna(out["a"].iloc[3]) and out["n"].tolist() == df["n"].tolist()


def test_freshness_check() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    ok = freshness.check("reddit", "0 */6 * * *", now - timedelta(hours=3), now)
    assert not ok.late and ok.every == "every 6 h"
    late = freshness.check("reddit", "0 */6 * * *", now - timedelta(hours=9), now)
    assert late.late and "has not delivered for 9 h" in late.message
    assert not freshness.check("x", "0 */6 * * *", None, now).late
    assert freshness.check("demo", None, now - timedelta(days=30), now).message == "not scheduled"
    assert "invalid schedule" in freshness.check("x", "not a cron", now, now).message


def test_resolve_dashboard_db_falls_back_to_demo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    default, demo = tmp_path / "aimusic.duckdb", tmp_path / "demo.duckdb"
    monkeypatch.setattr("aimusic.dashboard.db.DEFAULT_DB", default)
    monkeypatch.setattr("aimusic.dashboard.db.DEMO_DB", demo)
    monkeypatch.setattr("aimusic.dashboard.db.resolve_db", lambda db=None: default)
    assert resolve_dashboard_db().path == default  # neither exists: the configured one, empty state
    demo.touch()
    chosen = resolve_dashboard_db()
    assert chosen.path == demo and "demo" in chosen.note
    default.touch()
    assert resolve_dashboard_db().path == default


def test_dashboard_imports_no_database_driver() -> None:
    """The dashboard reads through the store's named queries only: no module of it imports duckdb."""
    offenders = []
    for path in sorted((PROJECT_ROOT / "aimusic" / "dashboard").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "duckdb"]
    assert offenders == []
    assert not (PROJECT_ROOT / "aimusic" / "dashboard" / "entities.py").exists()  # one definition of an entity


# --- queries against independent computations ----------------------------------------------------------------
def test_totals_series_and_compare_match_pandas(seeded: Path, facts: Facts) -> None:
    df = frame(seeded)
    start, end = WINDOW
    flt = Filters(start=start, end=end, sources=("reddit", "bluesky"), min_engagement=2)
    sel = df[df["source"].isin(["reddit", "bluesky"]) & (df["engagement"] >= 2)]
    cur = in_window(sel, start, end)
    prev = in_window(sel, start - timedelta(days=90), start - timedelta(days=1))

    totals = facts.run(q.totals, flt).set_index("window")
    assert totals.loc["current", "posts"] == len(cur) > 0
    assert totals.loc["current", "authors"] == cur["author"].nunique()
    assert totals.loc["previous", "posts"] == len(prev) > 0
    scored = cur["label"].notna().sum()
    net = ((cur["label"] == "positive").sum() - (cur["label"] == "negative").sum()) / scored
    assert totals.loc["current", "net"] == pytest.approx(net)
    assert totals.loc["current", "net_low"] < net < totals.loc["current", "net_high"]

    series = facts.run(q.series, flt, "day")
    per_day = cur.groupby(["day", "source"]).size()
    got = series[series["source"].notna()].set_index(["bucket", "source"])["posts"]
    assert got.sort_index().to_dict() == per_day.sort_index().to_dict()
    overall = series[series["source"].isna()].set_index("bucket")
    assert overall["posts"].to_dict() == cur.groupby("day").size().to_dict()
    assert overall["negative"].sum() == (cur["label"] == "negative").sum()

    weekly = facts.run(q.series, flt, "week")
    weeks = weekly[weekly["source"].isna()]
    assert all(b.weekday() == 0 for b in weeks["bucket"]) and weeks["posts"].sum() == len(cur)

    by_source = facts.run(q.compare, flt, "source").set_index("group")
    assert by_source["posts"].to_dict() == cur.groupby("source").size().to_dict()
    assert by_source["prev_posts"].to_dict() == prev.groupby("source").size().to_dict()


def test_rolling_sentiment_pools_the_last_seven_days(seeded: Path, facts: Facts) -> None:
    df = frame(seeded)
    start, end = date(2026, 1, 10), date(2026, 2, 10)
    got = facts.run(q.sentiment_rolling, Filters(start=start, end=end), 7).set_index("bucket")
    assert got.index.min() == start and got.index.max() == end
    for day in (start, date(2026, 1, 25), end):  # the first day pools the 6 days before the window too
        pooled = in_window(df, day - timedelta(days=6), day)
        scored = pooled["label"].notna().sum()
        assert got.loc[day, "scored"] == scored
        expected = ((pooled["label"] == "positive").sum() - (pooled["label"] == "negative").sum()) / scored
        assert got.loc[day, "net"] == pytest.approx(expected)
        assert got.loc[day, "net_low"] <= expected <= got.loc[day, "net_high"]
        assert got.loc[day, "share_negative"] == pytest.approx((pooled["label"] == "negative").sum() / scored)
    daily = facts.run(q.series, Filters(start=start, end=end), "day")
    daily = daily[daily["source"].isna()]
    assert got["scored"].mean() > 5 * daily["scored"].mean()  # the pooled figure rests on ~7x the posts
    assert got["net"].std() < daily["net"].std()  # and moves less than the daily one


def test_entities_are_the_stored_entities_everywhere(seeded: Path, facts: Facts) -> None:
    """One definition: posts.entities. The filter, Compare and Debate count the same posts; filtered to Suno,
    Compare and Debate show only Suno (posts about Suno that also name Udio are not Udio rows)."""
    df = in_window(frame(seeded), *WINDOW)
    flt = Filters(start=WINDOW[0], end=WINDOW[1])
    exploded = df.explode("entities").dropna(subset=["entities"])
    expected = exploded.groupby("entities").size().to_dict()
    assert {"Suno", "Udio", "Breaking Rust", "Billboard", "Spotify"} <= set(expected)
    got = facts.run(q.compare, flt, "entity").set_index("group")["posts"].to_dict()
    assert got == expected
    series = facts.run(q.compare_series, flt, "entity", "week")
    assert series.groupby("group")["posts"].sum().to_dict() == expected
    with read_connection(seeded) as con:
        debate = debate_queries.stance_by(con, flt, STANCE_MODEL, "entity").set_index("group")["posts"].to_dict()
        assert debate == expected
        info = q.db_info(con)
    assert set(info["entities"]) == set(exploded["entities"]) and info["untagged"] == 0

    suno = Filters(start=WINDOW[0], end=WINDOW[1], entities=("Suno",))
    n_suno = int(mentions(df, {"Suno"}).sum())
    assert facts.run(q.totals, suno).set_index("window").loc["current", "posts"] == n_suno > 0
    assert facts.run(q.compare, suno, "entity")["group"].tolist() == ["Suno"]
    assert set(facts.run(q.compare_series, suno, "entity", "week")["group"]) == {"Suno"}
    with read_connection(seeded) as con:
        assert debate_queries.stance_by(con, suno, STANCE_MODEL, "entity")["group"].tolist() == ["Suno"]
        assert posts.posts_count(con, suno) == n_suno
    both = Filters(start=WINDOW[0], end=WINDOW[1], entities=("Suno", "Udio"))
    assert facts.run(q.totals, both).set_index("window").loc["current", "posts"] == int(
        mentions(df, {"Suno", "Udio"}).sum())


def test_voices_match_pandas(seeded: Path, facts: Facts) -> None:
    df = in_window(frame(seeded), *WINDOW)
    flt = Filters(start=WINDOW[0], end=WINDOW[1])
    top = facts.run(q.voices, flt, "author", "posts", 5)
    expected = df.groupby(["source", "author"]).size().sort_values(ascending=False)
    assert top["posts"].tolist() == expected.head(5).tolist()
    eng = facts.run(q.voices, flt, "community", "engagement", 3)
    expected_eng = df.dropna(subset=["community"]).groupby(["source", "community"])["engagement"].sum()
    assert eng["engagement"].tolist() == sorted(expected_eng, reverse=True)[:3]


def test_posts_page_and_top_posts(seeded: Path, facts: Facts) -> None:
    df = in_window(frame(seeded), *WINDOW)
    window = Filters(start=WINDOW[0], end=WINDOW[1])
    flt = Filters(start=WINDOW[0], end=WINDOW[1], search="stolen")
    with read_connection(seeded) as con:
        count = posts.posts_count(con, flt)
        page = posts.posts_page(con, flt, MODEL, "newest", 50)
        same = posts.posts_page(con, flt, MODEL, "newest", 50, fcon=facts.cursor())  # labels from the facts copy
        engaged = posts.posts_page(con, window, MODEL, "most engaged", 30, fcon=facts.cursor())
        negative = posts.posts_page(con, window, MODEL, "most negative", 20, fcon=facts.cursor())
        keys = posts.top_keys(facts.cursor(), window, "positive", 5)
        top = posts.posts_by_keys(con, keys, MODEL)
        top_facts = posts.top_posts(con, window, MODEL, "positive", 5, fcon=facts.cursor())
    assert count == df["text"].str.lower().str.contains("stolen").sum() > 0
    assert len(page) == min(50, count) and page["created_at"].is_monotonic_decreasing
    pd.testing.assert_frame_equal(page, same)
    labels = df.set_index(["source", "post_id"])["label"]
    assert [labels[k] for k in zip(page["source"], page["post_id"], strict=True)] == page["sentiment"].tolist()
    assert engaged["engagement"].tolist() == df["engagement"].sort_values(ascending=False).head(30).tolist()
    assert negative["sentiment"].eq("negative").all()
    assert list(zip(top["source"], top["post_id"], strict=True)) == keys
    pd.testing.assert_frame_equal(top, top_facts)
    best = df[df["label"] == "positive"].sort_values("engagement", ascending=False)
    assert top["engagement"].tolist() == best["engagement"].head(5).tolist()


def test_title_and_body_are_joined_as_everywhere(db_copy: Path) -> None:
    from aimusic.core.text import join_title_body

    with duckdb.connect(str(db_copy)) as con:
        rows = con.execute("SELECT source, post_id, text FROM posts ORDER BY post_id LIMIT 3").fetchall()
        con.execute("UPDATE posts SET title = 'A title' WHERE post_id = ?", [rows[0][1]])
        con.execute("UPDATE posts SET title = 'Only a title', text = '' WHERE post_id = ?", [rows[1][1]])
        con.execute("UPDATE posts SET title = left(text, 10) WHERE post_id = ?", [rows[2][1]])
    with read_connection(db_copy) as con:
        got = posts.posts_by_keys(con, [(s, p) for s, p, _ in rows], MODEL)["text"].tolist()
    assert got == [join_title_body("A title", rows[0][2]), "Only a title", rows[2][2]]


def test_only_web_links_reach_the_table(db_copy: Path) -> None:
    with duckdb.connect(str(db_copy)) as con:
        con.execute("UPDATE posts SET url = 'javascript:alert(1)' WHERE post_id = (SELECT min(post_id) FROM posts)")
        bad = con.execute("SELECT source, post_id FROM posts WHERE url LIKE 'javascript:%'").fetchall()
    with read_connection(db_copy) as con:
        rows = posts.posts_by_keys(con, bad, MODEL)
        good = posts.posts_page(con, Filters(), MODEL, "newest", 5)
    assert len(rows) == 1 and rows["url"].isna().all()
    assert good["url"].str.startswith("https://").all()


def test_facts_refresh_is_incremental_and_correct(db_copy: Path) -> None:
    topics = load_topics()
    f = Facts(str(db_copy), MODEL)
    with read_connection(db_copy) as con:
        assert f.sync(read_version(con)) == "full"
        assert f.sync(read_version(con)) == "unchanged"
    store = Store(db_copy)
    # a new run: more posts, one edited post, entities tagged, scores for all
    more, _ = RelevanceFilter(topics).filter_table(
        generate_table(300, seed=99, end=END, days=30, events=event_dates(topics))
    )
    store.upsert_posts(more)
    edited = more.slice(0, 1)
    edited = edited.set_column(edited.schema.get_field_index("score"), "score", pa.array([123456], pa.int64()))
    store.upsert_posts(edited)
    tag_entities(store, topics)
    score_posts(store, load_scorer("vader"))
    with read_connection(db_copy) as con:
        assert f.sync(read_version(con)) == "incremental"
    rebuilt = Facts(str(db_copy), MODEL)
    with read_connection(db_copy) as con:
        rebuilt.sync(read_version(con))
    cols = "source, post_id, day, author, lang, engagement, label, entities"
    mine = f.cursor().execute(f"SELECT {cols} FROM facts ORDER BY source, post_id").df()
    fresh = rebuilt.cursor().execute(f"SELECT {cols} FROM facts ORDER BY source, post_id").df()
    pd.testing.assert_frame_equal(mine, fresh)
    assert tuple(f.cursor().execute("SELECT * FROM facts LIMIT 0").df().columns) == FACT_COLUMNS
    assert (mine["engagement"] >= 123456).sum() == 1
    assert mine["entities"].map(len).sum() > 0
    # rows removed behind the dashboard's back: detected, rebuilt in full
    with duckdb.connect(str(db_copy)) as con:
        con.execute("DELETE FROM scores WHERE post_id IN (SELECT post_id FROM posts LIMIT 10)")
        con.execute("DELETE FROM posts WHERE post_id IN (SELECT post_id FROM posts LIMIT 10)")
    with read_connection(db_copy) as con:
        assert f.sync(read_version(con)) == "full"
        assert f.cursor().execute("SELECT count(*) FROM facts").fetchall()[0][0] == con.execute(
            "SELECT count(*) FROM posts").fetchall()[0][0]


def test_retagged_entities_reach_the_facts_copy(db_copy: Path) -> None:
    """Entity tagging of stored posts (`aimusic signals`) changes the data version and is picked up incrementally."""
    with duckdb.connect(str(db_copy)) as con:
        con.execute("UPDATE posts SET entities = NULL, entities_key = NULL")
    f = Facts(str(db_copy), MODEL)
    with read_connection(db_copy) as con:
        before = read_version(con)
        f.sync(before)
    assert f.cursor().execute("SELECT count(*) FROM facts WHERE len(entities) > 0").fetchall()[0][0] == 0
    assert tag_entities(Store(db_copy), load_topics()) > 0
    with read_connection(db_copy) as con:
        after = read_version(con)
    assert after != before and f.sync(after) == "incremental"
    assert f.cursor().execute("SELECT count(*) FROM facts WHERE len(entities) > 0").fetchall()[0][0] > 0


def test_event_write_waits_for_this_process_readers(db_copy: Path) -> None:
    """DuckDB refuses a read-write connection while this process holds a read-only one: the write retries."""
    reader = duckdb.connect(str(db_copy), read_only=True)
    threading.Timer(0.3, reader.close).start()
    add_event(db_copy, date(2026, 1, 2), "  Waited for the reader  ", "https://example.org/x")
    with read_connection(db_copy) as con:
        assert con.execute("SELECT title, origin FROM events").fetchall() == [("Waited for the reader", "dashboard")]
    with pytest.raises(ValueError, match="title"):
        add_event(db_copy, date(2026, 1, 2), "   ")
    with pytest.raises(ValueError, match="http"):
        add_event(db_copy, date(2026, 1, 2), "x", "javascript:alert(1)")


def test_events_merge_topics_and_database(db_copy: Path) -> None:
    Store(db_copy).add_event(date(2026, 1, 15), "Stored event", None, origin="dashboard")
    configured = [(date(2026, 1, 10), "From topics", "https://example.org/a"), (date(2024, 1, 1), "Old", None)]
    with read_connection(db_copy) as con:
        ev = q.events(con, configured, date(2026, 1, 1), date(2026, 1, 31))
    assert ev["title"].tolist() == ["From topics", "Stored event"]
    assert ev["origin"].tolist() == ["topics", "dashboard"]


def test_synthetic_flag_detected(seeded: Path) -> None:
    with read_connection(seeded) as con:
        info = q.db_info(con)
    assert info["synthetic"] and info["contains_demo"] and info["models"] == [MODEL]
    with duckdb.connect(str(seeded), read_only=True) as con:
        rows = con.execute("SELECT count(*) FROM posts").fetchall()[0][0]
    assert info["posts"] == rows

"""The dashboard (app.py + flows/dashboard): queries against independent pandas computations, the facts copy's
incremental refresh, the statistics, and the page itself through Streamlit's AppTest over seeded databases."""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import streamlit as st
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from aimusic.core.config import PROJECT_ROOT
from aimusic.core.topics import Entity, load_topics
from aimusic.dashboard import data, freshness, stats
from aimusic.dashboard.context import data_version
from aimusic.dashboard.db import read_connection, resolve_dashboard_db
from aimusic.dashboard.entities import build_entity_map
from aimusic.dashboard.facts import FACT_COLUMNS, Facts, read_version
from aimusic.dashboard.state import FilterState, Options
from aimusic.dashboard.views import VIEWS, load_view
from aimusic.debate.relevance import RelevanceFilter
from aimusic.pipeline.collect import score_posts
from aimusic.sources.base import Source
from aimusic.sources.demo import event_dates, generate_table
from aimusic.store.db import Store, StoreError
from aimusic.store.queries import Filters, guard_csv_frame
from sentiment import load_scorer

APP = str(PROJECT_ROOT / "app.py")
END = date(2026, 2, 28)
DEFAULT_START = END - timedelta(days=89)
MODEL = "vader-3.3.2"


# --- seeding -------------------------------------------------------------------------------------------------
def seed(path: Path, n: int, *, seed_value: int = 11, days: int = 120, synthetic: bool = True,
         scored: bool = True, offset: int = 0) -> Store:
    """``n`` demo posts (relevance-filtered so ``terms`` is filled, as ``aimusic demo`` does), scored by VADER."""
    topics = load_topics()
    table = generate_table(n + offset, seed=seed_value, end=END, days=days, events=event_dates(topics)).slice(offset)
    if not synthetic:
        table = table.set_column(table.schema.get_field_index("synthetic"), "synthetic",
                                 pa.array(np.zeros(table.num_rows, dtype=bool)))
    table, _ = RelevanceFilter(topics).filter_table(table)
    store = Store(path)
    store.upsert_posts(table)
    if synthetic:
        store.set_meta("contains_demo", "true")
    if scored:
        score_posts(store, load_scorer("vader"))
    return store


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dash") / "seeded.duckdb"
    store = seed(path, 4000)
    now = datetime.now(UTC)
    store.record_run({"run_id": "r1", "source": "demo", "started_at": now - timedelta(minutes=5),
                      "finished_at": now - timedelta(minutes=4), "status": "ok", "fetched": 4000, "new": 3900})
    store.record_run({"run_id": "r0", "source": "latesrc", "started_at": now - timedelta(days=3),
                      "finished_at": now - timedelta(days=3) + timedelta(minutes=1), "status": "ok", "fetched": 10})
    store.record_run({"run_id": "r1", "source": "latesrc", "started_at": now - timedelta(hours=2),
                      "finished_at": now - timedelta(hours=2) + timedelta(seconds=3), "status": "failed",
                      "failed": True, "error": "HTTPError: 503 Service Unavailable"})
    return path


@pytest.fixture
def db_copy(seeded: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy.duckdb"
    shutil.copy(seeded, target)
    return target


def frame(path: Path) -> pd.DataFrame:
    """Posts with their label, read straight from the file (the independent side of the comparisons)."""
    with duckdb.connect(str(path), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        df = con.execute(
            """SELECT p.*, s.label FROM posts p
               LEFT JOIN scores s ON s.source = p.source AND s.post_id = p.post_id AND s.model = ?""", [MODEL]
        ).df()
    df["day"] = df["created_at"].dt.tz_convert("UTC").dt.date
    df["engagement"] = df[["score", "replies", "reposts"]].fillna(0).sum(axis=1)
    return df


def in_window(df: pd.DataFrame, start: date, end: date) -> pd.DataFrame:
    return df[(df["day"] >= start) & (df["day"] <= end)]


def mentions(df: pd.DataFrame, terms: set[str]) -> pd.Series:
    return df["terms"].map(lambda ts: ts is not None and bool(set(ts) & terms))


# --- AppTest helpers -----------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _fresh_caches() -> None:
    st.cache_data.clear()
    st.cache_resource.clear()


def app(monkeypatch: pytest.MonkeyPatch, path: Path, **params: str | list[str]) -> AppTest:
    monkeypatch.setenv("AIMUSIC_DB", str(path))
    at = AppTest.from_file(APP, default_timeout=120)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def metric(at: AppTest, label: str) -> str:
    values = [m.value for m in at.metric if m.label == label]
    assert values, f"no metric {label!r}: {[m.label for m in at.metric]}"
    return values[0]


def as_int(text: str) -> int:
    return int(text.replace(",", ""))


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("info", "warning", "error", "success", "caption", "markdown")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts).replace("\\", "")  # markdown escapes removed


def show(at: AppTest, view: str) -> AppTest:
    at.segmented_control(key="view").set_value(load_view(view).TITLE).run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> dict[str, Callable[[], bytes | str]]:
    """Capture the generators of the page's deferred downloads, by file name."""
    captured: dict[str, Callable[[], bytes | str]] = {}
    original = MediaFileManager.add_deferred

    def spy(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        captured[file_name or coordinates] = data_callable
        return original(self, data_callable, mimetype, coordinates, file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", spy)
    return captured


def fetch(downloads: dict[str, Callable[[], bytes | str]], prefix: str, suffix: str = ".csv") -> bytes:
    names = [n for n in downloads if n.startswith(prefix) and n.endswith(suffix)]
    assert len(names) == 1, f"{prefix}*{suffix} in {sorted(downloads)}"
    payload = downloads[names[0]]()
    return payload.encode() if isinstance(payload, str) else payload


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
def test_entity_map_matches_aliases_to_tracked_terms() -> None:
    entities = [Entity(name="Suno", aliases=["Suno AI", "SunoAI"]), Entity(name="Breaking Rust",
                aliases=["BreakingRust", "Walk My Walk"]), Entity(name="Spotify", aliases=["Spotify"])]
    emap = build_entity_map(entities, ["suno", "walk-my-walk", "AI music"])
    assert set(emap.pairs) == {("suno", "Suno"), ("walk-my-walk", "Breaking Rust")}
    assert emap.untracked == ("Spotify",)
    assert emap.terms_for(["Breaking Rust"]) == ("walk-my-walk",)


def test_filter_state_to_filters_and_bucket() -> None:
    emap = build_entity_map([Entity(name="Suno", aliases=["Suno"])], ["Suno", "Udio"])
    state = FilterState(start=date(2026, 1, 1), end=date(2026, 1, 31), entities=("Suno",), terms=("Udio",),
                        min_engagement=3, model="m")
    f = state.to_filters(emap)
    assert f.terms == ("Suno", "Udio") and f.min_engagement == 3 and f.model == "m"
    assert state.resolved_bucket() == "day"
    assert FilterState(start=date(2025, 1, 1), end=date(2026, 1, 1)).resolved_bucket() == "week"
    assert FilterState(start=date(2025, 1, 1), end=date(2025, 1, 2), bucket="week").resolved_bucket() == "week"
    opts = Options(date(2026, 2, 1), date(2026, 2, 28), (), (), (), (), ())
    assert opts.default_window() == (date(2026, 2, 1), date(2026, 2, 28))


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


# --- queries against independent computations ----------------------------------------------------------------
@pytest.fixture(scope="module")
def facts(seeded: Path) -> Facts:
    with read_connection(seeded) as con:
        version = read_version(con)
    topics = load_topics()
    emap = build_entity_map(topics.entities, topics.tracking.terms)
    f = Facts(str(seeded), MODEL, emap)
    f.sync(version)
    return f


def test_totals_series_and_compare_match_pandas(seeded: Path, facts: Facts) -> None:
    df = frame(seeded)
    flt = Filters(start=DEFAULT_START, end=END, sources=("reddit", "bluesky"), min_engagement=2)
    sel = df[df["source"].isin(["reddit", "bluesky"]) & (df["engagement"] >= 2)]
    cur = in_window(sel, DEFAULT_START, END)
    prev = in_window(sel, DEFAULT_START - timedelta(days=90), DEFAULT_START - timedelta(days=1))

    totals = data.totals(facts.cursor(), flt).set_index("window")
    assert totals.loc["current", "posts"] == len(cur) > 0
    assert totals.loc["current", "authors"] == cur["author"].nunique()
    assert totals.loc["previous", "posts"] == len(prev) > 0
    scored = cur["label"].notna().sum()
    net = ((cur["label"] == "positive").sum() - (cur["label"] == "negative").sum()) / scored
    assert totals.loc["current", "net"] == pytest.approx(net)
    assert totals.loc["current", "net_low"] < net < totals.loc["current", "net_high"]

    series = data.series(facts.cursor(), flt, "day")
    per_day = cur.groupby(["day", "source"]).size()
    got = series[series["source"].notna()].set_index(["bucket", "source"])["posts"]
    assert got.sort_index().to_dict() == per_day.sort_index().to_dict()
    overall = series[series["source"].isna()].set_index("bucket")
    assert overall["posts"].to_dict() == cur.groupby("day").size().to_dict()
    assert overall["negative"].sum() == (cur["label"] == "negative").sum()

    weekly = data.series(facts.cursor(), flt, "week")
    weeks = weekly[weekly["source"].isna()]
    assert all(b.weekday() == 0 for b in weeks["bucket"]) and weeks["posts"].sum() == len(cur)

    by_source = data.compare(facts.cursor(), flt, "source").set_index("group")
    assert by_source["posts"].to_dict() == cur.groupby("source").size().to_dict()
    assert by_source["prev_posts"].to_dict() == prev.groupby("source").size().to_dict()


def test_entity_compare_matches_term_aliases(seeded: Path, facts: Facts) -> None:
    df = in_window(frame(seeded), DEFAULT_START, END)
    flt = Filters(start=DEFAULT_START, end=END)
    got = data.compare(facts.cursor(), flt, "entity").set_index("group")["posts"].to_dict()
    assert got["Breaking Rust"] == mentions(df, {"Breaking Rust", "Walk My Walk"}).sum() > 0
    assert got["Suno"] == mentions(df, {"Suno"}).sum() > 0
    series = data.compare_series(facts.cursor(), flt, "entity", "week")
    assert series.groupby("group")["posts"].sum().to_dict() == got


def test_voices_match_pandas(seeded: Path, facts: Facts) -> None:
    df = in_window(frame(seeded), DEFAULT_START, END)
    flt = Filters(start=DEFAULT_START, end=END)
    top = data.voices(facts.cursor(), flt, "author", "posts", 5)
    expected = df.groupby(["source", "author"]).size().sort_values(ascending=False)
    assert top["posts"].tolist() == expected.head(5).tolist()
    eng = data.voices(facts.cursor(), flt, "community", "engagement", 3)
    expected_eng = df.dropna(subset=["community"]).groupby(["source", "community"])["engagement"].sum()
    assert eng["engagement"].tolist() == sorted(expected_eng, reverse=True)[:3]


def test_posts_page_and_top_posts(seeded: Path, facts: Facts) -> None:
    df = in_window(frame(seeded), DEFAULT_START, END)
    flt = Filters(start=DEFAULT_START, end=END, search="stolen")
    with read_connection(seeded) as con:
        count = data.posts_count(con, flt)
        page = data.posts_page(con, flt, MODEL, "newest", 50)
        same = data.posts_page(con, flt, MODEL, "newest", 50, fcon=facts.cursor())  # labels from the facts copy
        engaged = data.posts_page(con, Filters(start=DEFAULT_START, end=END), MODEL, "most engaged", 30,
                                  fcon=facts.cursor())
        negative = data.posts_page(con, Filters(start=DEFAULT_START, end=END), MODEL, "most negative", 20,
                                   fcon=facts.cursor())
        keys = data.top_keys(facts.cursor(), Filters(start=DEFAULT_START, end=END), "positive", 5)
        top = data.posts_by_keys(con, keys, MODEL)
        top_facts = data.posts_by_keys(con, keys, MODEL, facts.cursor())
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


def test_only_web_links_reach_the_table(db_copy: Path) -> None:
    with duckdb.connect(str(db_copy)) as con:
        con.execute("UPDATE posts SET url = 'javascript:alert(1)' WHERE post_id = (SELECT min(post_id) FROM posts)")
        bad = con.execute("SELECT source, post_id FROM posts WHERE url LIKE 'javascript:%'").fetchall()
    with read_connection(db_copy) as con:
        rows = data.posts_by_keys(con, bad, MODEL)
        good = data.posts_page(con, Filters(), MODEL, "newest", 5)
    assert len(rows) == 1 and rows["url"].isna().all()
    assert good["url"].str.startswith("https://").all()


def test_facts_refresh_is_incremental_and_correct(db_copy: Path) -> None:
    topics = load_topics()
    emap = build_entity_map(topics.entities, topics.tracking.terms)
    f = Facts(str(db_copy), MODEL, emap)
    with read_connection(db_copy) as con:
        assert f.sync(read_version(con)) == "full"
        assert f.sync(read_version(con)) == "unchanged"
    store = Store(db_copy)
    # a new run: more posts, one edited post, scores for all
    more, _ = RelevanceFilter(topics).filter_table(
        generate_table(300, seed=99, end=END, days=30, events=event_dates(topics))
    )
    store.upsert_posts(more)
    edited = more.slice(0, 1)
    edited = edited.set_column(edited.schema.get_field_index("score"), "score", pa.array([123456], pa.int64()))
    store.upsert_posts(edited)
    score_posts(store, load_scorer("vader"))
    with read_connection(db_copy) as con:
        assert f.sync(read_version(con)) == "incremental"
    rebuilt = Facts(str(db_copy), MODEL, emap)
    with read_connection(db_copy) as con:
        rebuilt.sync(read_version(con))
    cols = "source, post_id, day, author, lang, engagement, label, entities"
    mine = f.cursor().execute(f"SELECT {cols} FROM facts ORDER BY source, post_id").df()
    fresh = rebuilt.cursor().execute(f"SELECT {cols} FROM facts ORDER BY source, post_id").df()
    pd.testing.assert_frame_equal(mine, fresh)
    assert tuple(f.cursor().execute("SELECT * FROM facts LIMIT 0").df().columns) == FACT_COLUMNS
    assert (mine["engagement"] >= 123456).sum() == 1
    # rows removed behind the dashboard's back: detected, rebuilt in full
    with duckdb.connect(str(db_copy)) as con:
        con.execute("DELETE FROM scores WHERE post_id IN (SELECT post_id FROM posts LIMIT 10)")
        con.execute("DELETE FROM posts WHERE post_id IN (SELECT post_id FROM posts LIMIT 10)")
    with read_connection(db_copy) as con:
        assert f.sync(read_version(con)) == "full"
        assert f.cursor().execute("SELECT count(*) FROM facts").fetchall()[0][0] == con.execute(
            "SELECT count(*) FROM posts").fetchall()[0][0]


def test_event_write_waits_for_this_process_readers(db_copy: Path) -> None:
    """DuckDB refuses a read-write connection while this process holds a read-only one: the write retries."""
    import threading

    from aimusic.dashboard.db import add_event

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
        ev = data.events(con, configured, date(2026, 1, 1), date(2026, 1, 31))
    assert ev["title"].tolist() == ["From topics", "Stored event"]
    assert ev["origin"].tolist() == ["topics", "dashboard"]


# --- the page (AppTest) --------------------------------------------------------------------------------------
class LateSource(Source):
    """A scheduled source for the Runs view test (every 6 hours)."""

    name = "latesrc"
    default_cron = "0 */6 * * *"


@pytest.fixture
def late_source(monkeypatch: pytest.MonkeyPatch) -> None:
    import aimusic.sources

    monkeypatch.setitem(aimusic.sources.REGISTRY, "latesrc", f"{__name__}:LateSource")


def test_every_view_renders(monkeypatch: pytest.MonkeyPatch, seeded: Path, late_source: None) -> None:
    at = app(monkeypatch, seeded)
    assert "DEMO DATA" in texts(at)
    assert len(at.get("vega_lite_chart")) >= 3  # volume, net sentiment, mix
    for key in VIEWS:
        show(at, key)
        assert load_view(key).TITLE
    runs = texts(show(at, "runs"))
    assert "Late: latesrc has not delivered" in runs
    assert "HTTPError: 503 Service Unavailable" in runs


def test_overview_figures_follow_the_filters(monkeypatch: pytest.MonkeyPatch, seeded: Path) -> None:
    df = frame(seeded)
    at = app(monkeypatch, seeded)
    window = in_window(df, DEFAULT_START, END)
    assert as_int(metric(at, "Posts")) == len(window)
    assert as_int(metric(at, "Authors")) == window["author"].nunique()
    prev = in_window(df, DEFAULT_START - timedelta(days=90), DEFAULT_START - timedelta(days=1))
    delta = next(m.delta for m in at.metric if m.label == "Posts")
    assert delta == f"{(len(window) - len(prev)) / len(prev) * 100:+.1f}%"

    at.multiselect(key="source").set_value(["reddit"]).run()
    reddit = window[window["source"] == "reddit"]
    assert as_int(metric(at, "Posts")) == len(reddit)
    scored = reddit["label"].notna().sum()
    net = ((reddit["label"] == "positive").sum() - (reddit["label"] == "negative").sum()) / scored
    assert metric(at, "Net sentiment") == f"{net:+.2f}"

    at.number_input(key="min_engagement").set_value(10).run()
    assert as_int(metric(at, "Posts")) == int((reddit["engagement"] >= 10).sum())

    at.number_input(key="min_engagement").set_value(0).run()
    at.multiselect(key="source").set_value([]).run()
    at.multiselect(key="entity").set_value(["Breaking Rust"]).run()
    assert as_int(metric(at, "Posts")) == int(mentions(window, {"Breaking Rust", "Walk My Walk"}).sum())

    start, end = date(2026, 1, 1), date(2026, 1, 31)
    at.multiselect(key="entity").set_value([]).run()
    at.date_input(key="dates").set_value((start, end)).run()
    assert not at.exception
    assert as_int(metric(at, "Posts")) == len(in_window(df, start, end))

    at.multiselect(key="source").set_value(["x"]).run()
    next(b for b in at.button if b.label == "Reset filters").click().run()
    assert not at.exception
    assert at.multiselect(key="source").value == [] and at.date_input(key="dates").value == (DEFAULT_START, END)
    assert as_int(metric(at, "Posts")) == len(window)


def test_filters_come_from_the_url(monkeypatch: pytest.MonkeyPatch, seeded: Path) -> None:
    df = frame(seeded)
    at = app(monkeypatch, seeded, source=["bluesky", "mastodon"], dates=["2026-02-01", "2026-02-28"],
             lang="en", view="Overview")
    sel = in_window(df, date(2026, 2, 1), date(2026, 2, 28))
    sel = sel[sel["source"].isin(["bluesky", "mastodon"]) & (sel["lang"] == "en")]
    assert as_int(metric(at, "Posts")) == len(sel) > 0
    at = app(monkeypatch, seeded, view="Voices", source="nosuchsource", rank="most engaged")
    assert at.segmented_control(key="view").value == "Voices"
    assert at.multiselect(key="source").value == []  # an unknown source in a link is ignored
    assert at.segmented_control(key="rank").value == "most engaged"
    assert at.subheader[0].value == "Authors"


def test_downloads_contain_exactly_the_filtered_rows(
    monkeypatch: pytest.MonkeyPatch, seeded: Path, downloads: dict
) -> None:
    df = frame(seeded)
    at = app(monkeypatch, seeded, source="x", min_engagement="3")
    expected = in_window(df, DEFAULT_START, END)
    expected = expected[(expected["source"] == "x") & (expected["engagement"] >= 3)]
    volume = pd.read_csv(io.BytesIO(fetch(downloads, "aimusic-volume")))
    assert volume["posts"].sum() == len(expected)
    assert set(volume["source"]) == {"x"}

    downloads.clear()
    show(at, "posts")
    posts_csv = pd.read_csv(io.BytesIO(fetch(downloads, "aimusic-posts_")))
    assert len(posts_csv) == len(expected)
    assert set(posts_csv["post_id"]) == set(expected["post_id"])
    parquet = pd.read_parquet(io.BytesIO(fetch(downloads, "aimusic-posts_", ".parquet")))
    assert set(parquet["post_id"]) == set(expected["post_id"])
    assert (parquet["model"] == MODEL).all()
    shown = pd.read_csv(io.BytesIO(fetch(downloads, "aimusic-posts-shown")))
    assert len(shown) == min(500, len(expected))

    downloads.clear()
    at.text_input(key="q").input("stolen").run()
    searched = pd.read_csv(io.BytesIO(fetch(downloads, "aimusic-posts_")))
    assert len(searched) == expected["text"].str.lower().str.contains("stolen").sum() > 0


def test_added_event_appears_at_once(monkeypatch: pytest.MonkeyPatch, db_copy: Path) -> None:
    at = show(app(monkeypatch, db_copy), "events")
    at.date_input(key="event-date").set_value(date(2026, 2, 10))
    at.text_input(key="event-title").input("Label deal for an AI singer")
    at.text_input(key="event-url").input("https://example.org/news")
    next(b for b in at.button if b.label == "Add event").click().run()
    assert not at.exception
    assert "Event added" in texts(at)
    table = at.dataframe[0].value
    assert "Label deal for an AI singer" in table["title"].tolist()
    with duckdb.connect(str(db_copy), read_only=True) as con:
        assert con.execute("SELECT origin, url FROM events WHERE title = ?",
                           ["Label deal for an AI singer"]).fetchall() == [("dashboard", "https://example.org/news")]
    show(at, "overview")
    assert "Timeline events in the window (1)" in [e.label for e in at.expander]


def test_new_run_shows_without_restart(monkeypatch: pytest.MonkeyPatch, db_copy: Path) -> None:
    at = app(monkeypatch, db_copy)
    before = as_int(metric(at, "Posts"))
    store = seed(db_copy, 500, seed_value=5, days=20)
    data_version.clear()  # stands for its 2-second expiry; results stay cached, keyed by the version
    at.run()
    after = as_int(metric(at, "Posts"))
    assert after == len(in_window(frame(db_copy), DEFAULT_START, END)) > before
    assert store.count("posts") > 0


def test_empty_and_missing_databases(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    at = app(monkeypatch, tmp_path / "nothing-here.duckdb")
    assert "aimusic run" in texts(at) and "aimusic demo" in texts(at)
    empty = tmp_path / "empty.duckdb"
    Store(empty)
    at = app(monkeypatch, empty)
    assert "holds no posts yet" in texts(at) and "aimusic demo" in texts(at)
    assert not at.metric


def test_tiny_unscored_and_real_databases(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tiny = tmp_path / "tiny.duckdb"
    seed(tiny, 12, synthetic=False)
    at = app(monkeypatch, tiny, dates=["2025-11-01", "2026-02-28"], bucket="day")
    assert "DEMO DATA" not in texts(at)
    assert "Too few scored posts" in texts(at)
    for key in VIEWS:
        show(at, key)
    unscored = tmp_path / "unscored.duckdb"
    seed(unscored, 200, scored=False)
    at = app(monkeypatch, unscored)
    assert "No post has a sentiment score yet" in texts(at)
    for key in VIEWS:
        show(at, key)


def test_busy_database_is_a_message_not_a_crash(monkeypatch: pytest.MonkeyPatch, seeded: Path) -> None:
    def busy(db):
        raise StoreError(f"database {db} is busy: another aimusic process holds it for writing")

    monkeypatch.setattr("aimusic.dashboard.context.read_connection", busy)
    at = app(monkeypatch, seeded)
    assert "cannot be read right now" in texts(at)


def test_dashboard_never_writes_on_read(monkeypatch: pytest.MonkeyPatch, db_copy: Path) -> None:
    before = db_copy.stat().st_mtime_ns, db_copy.read_bytes()
    at = app(monkeypatch, db_copy)
    for key in VIEWS:
        show(at, key)
    assert (db_copy.stat().st_mtime_ns, db_copy.read_bytes()) == before


def test_synthetic_flag_detected(seeded: Path) -> None:
    with read_connection(seeded) as con:
        info = data.db_info(con)
    assert info["synthetic"] and info["contains_demo"] and info["models"] == [MODEL]
    with duckdb.connect(str(seeded), read_only=True) as con:
        rows = con.execute("SELECT count(*) FROM posts").fetchall()[0][0]
    assert info["posts"] == rows

"""The dashboard page (app.py + aimusic/dashboard) through Streamlit's AppTest over seeded databases: every view,
the opening window, the rolling mean, filters from the sidebar and the URL, one definition of an entity, the
Runs view's account of skipped sources, downloads, events, and data that changes under a running page.
The queries alone: tests/test_dashboard_queries.py."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import streamlit as st
from dashboard_testkit import END, MODEL, add_signals, frame, in_window, mentions, seed, working_copy
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from aimusic.core.config import PROJECT_ROOT
from aimusic.core.topics import load_topics
from aimusic.dashboard.context import data_version
from aimusic.dashboard.views import VIEWS, load_view
from aimusic.sources.base import Source
from aimusic.store.db import Store, StoreError

APP = str(PROJECT_ROOT / "app.py")
#: view key -> the title the switcher shows and the URL holds (a new view adds its line here)
TITLES = {"overview": "Overview", "debate": "Debate", "compare": "Compare", "posts": "Posts", "voices": "Voices",
          "events": "Events", "runs": "Runs", "alerts": "Alerts", "label": "Label"}
SKIP_REASON = "no API credentials (REDDIT_CLIENT_ID, REDDIT_CLIENT_SECRET not set in the environment or .env)"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dash") / "seeded.duckdb"
    store = seed(path, 4000)
    add_signals(path)
    now = datetime.now(UTC)
    store.record_run({"run_id": "r1", "source": "demo", "started_at": now - timedelta(minutes=5),
                      "finished_at": now - timedelta(minutes=4), "status": "ok", "fetched": 4000, "new": 3900})
    store.record_run({"run_id": "r0", "source": "latesrc", "started_at": now - timedelta(days=3),
                      "finished_at": now - timedelta(days=3) + timedelta(minutes=1), "status": "ok", "fetched": 10})
    store.record_run({"run_id": "r1", "source": "latesrc", "started_at": now - timedelta(hours=2),
                      "finished_at": now - timedelta(hours=2) + timedelta(seconds=3), "status": "failed",
                      "failed": True, "error": "HTTPError: 503 Service Unavailable"})
    store.record_run({"run_id": "r1", "source": "reddit", "started_at": now - timedelta(minutes=5),
                      "finished_at": now - timedelta(minutes=5), "status": "skipped", "error": SKIP_REASON})
    return path


@pytest.fixture(scope="module")
def posts_frame(seeded: Path) -> pd.DataFrame:
    return frame(seeded)


@pytest.fixture(scope="module")
def first_day(posts_frame: pd.DataFrame) -> date:
    """The data's first day: the default window starts here (the seeded data spans 120 days, under a year)."""
    return posts_frame["day"].min()


@pytest.fixture
def db_copy(seeded: Path, tmp_path: Path) -> Path:
    return working_copy(seeded, tmp_path)


# --- AppTest helpers -----------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _fresh_caches() -> None:
    st.cache_data.clear()
    st.cache_resource.clear()


def app(monkeypatch: pytest.MonkeyPatch, path: Path, **params: str | list[str]) -> AppTest:
    monkeypatch.setenv("AIMUSIC_DB", str(path))
    # a new page sees the file as it is now: the data version is cached for 2 s per process (a real page
    # catches up after that), and the tests write between pages faster than that
    from aimusic.dashboard.context import clear_caches

    clear_caches()
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


def frames(at: AppTest) -> list[pd.DataFrame]:
    return [d.value for d in at.dataframe]


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


class LateSource(Source):
    """A scheduled source for the Runs view test (every 6 hours)."""

    name = "latesrc"
    default_cron = "0 */6 * * *"


@pytest.fixture
def late_source(monkeypatch: pytest.MonkeyPatch) -> None:
    import aimusic.sources

    monkeypatch.setitem(aimusic.sources.REGISTRY, "latesrc", f"{__name__}:LateSource")


# --- the page ------------------------------------------------------------------------------------------------
def test_every_view_renders(monkeypatch: pytest.MonkeyPatch, seeded: Path, late_source: None) -> None:
    at = app(monkeypatch, seeded)
    assert "DEMO DATA" in texts(at)
    assert len(at.get("vega_lite_chart")) >= 3  # volume, net sentiment, mix
    assert at.segmented_control(key="view").options == [TITLES[k] for k in VIEWS]
    for key in VIEWS:
        show(at, key)
        assert TITLES[key] == load_view(key).TITLE
        assert at.segmented_control(key="view").value == TITLES[key]
    show(at, "debate")
    assert len(at.get("vega_lite_chart")) >= 4  # stance over time, each side's arguments, arguments over time


def test_opening_window_shows_the_events_and_a_rolling_mean(
    monkeypatch: pytest.MonkeyPatch, seeded: Path, posts_frame: pd.DataFrame, first_day: date
) -> None:
    """The page opens on the data's whole range (under a year), which holds the configured events, drawn by day
    with the 7-day rolling mean over the daily sentiment points, and says which is shown."""
    at = app(monkeypatch, seeded)
    assert at.date_input(key="dates").value == (first_day, END)
    assert as_int(metric(at, "Posts")) == len(posts_frame)
    events = [e for e in load_topics().events if first_day <= e.date <= END]
    assert len(events) >= 2
    assert f"Timeline events in the window ({len(events)})" in [e.label for e in at.expander]
    assert at.segmented_control(key="smooth").value == "7-day mean"
    assert "Shown: the 7-day rolling mean" in texts(at) and "Shown: 7-day rolling shares" in texts(at)
    at.segmented_control(key="smooth").set_value("daily only").run()
    assert "Shown: daily values" in texts(at) and "rolling" not in " ".join(c.value for c in at.caption)
    at = app(monkeypatch, seeded, bucket="week")
    assert "Shown: weekly values" in texts(at)


def test_overview_figures_follow_the_filters(
    monkeypatch: pytest.MonkeyPatch, seeded: Path, posts_frame: pd.DataFrame, first_day: date
) -> None:
    df = posts_frame
    start, end = date(2026, 1, 30), END
    at = app(monkeypatch, seeded, dates=[str(start), str(end)])
    window = in_window(df, start, end)
    assert as_int(metric(at, "Posts")) == len(window)
    assert as_int(metric(at, "Authors")) == window["author"].nunique()
    prev = in_window(df, start - timedelta(days=30), start - timedelta(days=1))
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
    assert as_int(metric(at, "Posts")) == int(mentions(window, {"Breaking Rust"}).sum()) > 0

    at.multiselect(key="source").set_value(["x"]).run()
    next(b for b in at.button if b.label == "Reset filters").click().run()
    assert not at.exception
    assert at.multiselect(key="source").value == [] and at.multiselect(key="entity").value == []
    assert at.date_input(key="dates").value == (first_day, END)
    assert as_int(metric(at, "Posts")) == len(df)


def test_one_entity_everywhere(monkeypatch: pytest.MonkeyPatch, seeded: Path, posts_frame: pd.DataFrame) -> None:
    """The sidebar offers the stored entities (Billboard and Spotify included, as Debate counts them), and
    filtered to Suno, Overview, Compare and Debate show Suno only."""
    at = app(monkeypatch, seeded)
    offered = set(at.multiselect(key="entity").options)
    stored = set(posts_frame["entities"].explode().dropna())
    assert offered == stored and {"Suno", "Udio", "Billboard", "Spotify"} <= offered
    show(at, "compare")
    entity_table = frames(at)[1]
    assert set(entity_table["group"]) == stored
    assert "not compared" not in texts(at)

    at.multiselect(key="entity").set_value(["Suno"]).run()
    suno = int(mentions(posts_frame, {"Suno"}).sum())
    assert frames(at)[1]["group"].tolist() == ["Suno"]
    assert frames(at)[1]["posts"].tolist() == [suno]
    assert frames(at)[0]["posts"].sum() == suno  # the platforms table counts the same posts
    show(at, "debate")
    by_entity = next(f for f in frames(at) if "net_stance" in f.columns and "Suno" in set(f["group"]))
    assert by_entity["group"].tolist() == ["Suno"] and by_entity["posts"].tolist() == [suno]
    show(at, "overview")
    assert as_int(metric(at, "Posts")) == suno


def test_runs_say_what_ran_and_what_was_skipped(monkeypatch: pytest.MonkeyPatch, seeded: Path,
                                                late_source: None) -> None:
    at = show(app(monkeypatch, seeded), "runs")
    page = texts(at)
    assert "**Ran (1):** demo (ok, 3,900 new)" in page
    assert "**Skipped (1):** reddit" in page and "**Failed (1):** latesrc" in page
    warning = next(w.value for w in at.warning if "skipped in their last run" in w.value).replace("\\", "")
    assert f"**reddit**: {SKIP_REASON}" in warning  # the reason is in view, not only in a table column
    assert "Late: latesrc has not delivered" in page
    assert "HTTPError: 503 Service Unavailable" in page
    assert not at.success  # skipped (and failed, and late) is not healthy
    latest = frames(at)[0]
    assert list(latest.columns[:3]) == ["source", "status", "error"]


def test_runs_green_only_when_every_source_ran(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "healthy.duckdb"
    store = seed(path, 200)
    now = datetime.now(UTC)
    store.record_run({"run_id": "r1", "source": "demo", "started_at": now, "finished_at": now, "status": "ok"})
    at = show(app(monkeypatch, path), "runs")
    assert [s.value for s in at.success] == [
        "Every source ran in its last run, none failed, and every scheduled source delivered on time."]
    store.record_run({"run_id": "r2", "source": "reddit", "started_at": now, "finished_at": now,
                      "status": "skipped", "error": f"reddit: {SKIP_REASON}"})
    at = show(app(monkeypatch, path), "runs")
    assert not at.success
    warning = next(w.value for w in at.warning if "skipped" in w.value).replace("\\", "")
    assert "Only synthetic demo posts were collected" in warning
    assert f"**reddit**: {SKIP_REASON}" in warning and "reddit: no API" not in warning  # no doubled prefix


def test_posts_table_keeps_what_matters_in_view(monkeypatch: pytest.MonkeyPatch, seeded: Path) -> None:
    at = show(app(monkeypatch, seeded), "posts")
    table = frames(at)[0]
    assert list(table.columns[:6]) == ["created_at", "source", "sentiment", "confidence", "url", "text"]
    assert table["community"].map(lambda v: v is None or (isinstance(v, float) and pd.isna(v))).sum() == 0
    assert (table["community"] == "").any()  # platforms without communities show an empty cell, not "None"
    top = frames(at)[1]
    assert list(top.columns[:5]) == ["created_at", "source", "engagement", "confidence", "url"]


def test_filters_come_from_the_url(monkeypatch: pytest.MonkeyPatch, seeded: Path, posts_frame: pd.DataFrame) -> None:
    at = app(monkeypatch, seeded, source=["bluesky", "mastodon"], dates=["2026-02-01", "2026-02-28"],
             lang="en", view="Overview")
    sel = in_window(posts_frame, date(2026, 2, 1), date(2026, 2, 28))
    sel = sel[sel["source"].isin(["bluesky", "mastodon"]) & (sel["lang"] == "en")]
    assert as_int(metric(at, "Posts")) == len(sel) > 0
    at = app(monkeypatch, seeded, view="Voices", source="nosuchsource", rank="most engaged")
    assert at.segmented_control(key="view").value == "Voices"
    assert at.multiselect(key="source").value == []  # an unknown source in a link is ignored
    assert at.segmented_control(key="rank").value == "most engaged"
    assert at.subheader[0].value == "Authors"


def test_downloads_contain_exactly_the_filtered_rows(
    monkeypatch: pytest.MonkeyPatch, seeded: Path, posts_frame: pd.DataFrame, downloads: dict
) -> None:
    at = app(monkeypatch, seeded, source="x", min_engagement="3")
    expected = posts_frame[(posts_frame["source"] == "x") & (posts_frame["engagement"] >= 3)]
    volume = pd.read_csv(io.BytesIO(fetch(downloads, "aimusic-volume")))
    assert volume["posts"].sum() == len(expected)
    assert set(volume["source"]) == {"x"}
    rolling = pd.read_csv(io.BytesIO(fetch(downloads, "aimusic-net-sentiment-rolling")))
    assert rolling["days_pooled"].max() <= 7 and rolling["scored"].max() <= expected["label"].notna().sum()

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


def test_added_event_appears_at_once(monkeypatch: pytest.MonkeyPatch, db_copy: Path, first_day: date) -> None:
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
    configured = sum(first_day <= e.date <= END for e in load_topics().events)
    assert f"Timeline events in the window ({configured + 1})" in [e.label for e in at.expander]


def test_new_run_shows_without_restart(monkeypatch: pytest.MonkeyPatch, db_copy: Path) -> None:
    at = app(monkeypatch, db_copy)
    before = as_int(metric(at, "Posts"))
    store = seed(db_copy, 500, seed_value=5, days=20)
    data_version.clear()  # stands for its 2-second expiry; results stay cached, keyed by the version
    at.run()
    after = as_int(metric(at, "Posts"))
    assert after == len(frame(db_copy)) > before
    assert store.count("posts") > 0


def test_open_page_notices_new_data_by_itself(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                              db_copy: Path) -> None:
    """What the page's watcher (a fragment run every WATCH_SECONDS; the browser test sees it redraw) asks."""
    from aimusic.dashboard.db import DashboardDb
    from aimusic.dashboard.page import data_moved
    from aimusic.store import read_keeper
    from aimusic.store.dashboard_facts import peek_version

    read_keeper.release_all()
    monkeypatch.setenv("AIMUSIC_DB", str(db_copy))
    page = DashboardDb(db_copy)
    drawn = peek_version(db_copy).key()
    assert not data_moved(page, drawn)
    assert read_keeper.kept_files() == []  # it watches on a short connection: an idle page still lets go
    seed(db_copy, 50, seed_value=5, days=20)
    assert data_moved(page, drawn)
    assert not data_moved(page, peek_version(db_copy).key())
    # a page drawn with no file to show redraws once the file (or, with no file configured, the demo one) exists
    later = tmp_path / "later.duckdb"
    monkeypatch.setenv("AIMUSIC_DB", str(later))
    assert not data_moved(DashboardDb(later), None)
    Store(later)
    assert data_moved(DashboardDb(later), None)

    def busy(*args, **kwargs):
        raise StoreError("database is busy")

    monkeypatch.setenv("AIMUSIC_DB", str(db_copy))
    current = peek_version(db_copy).key()
    with monkeypatch.context() as m:
        m.setattr("aimusic.store.dashboard_facts.peek_version", busy)
        assert not data_moved(page, "")  # a busy file is asked again at the next check, never an error
    assert data_moved(page, "") and not data_moved(page, current)  # an unread page redraws once it can read
    # a page showing the demo database switches once the configured one exists
    monkeypatch.setattr("aimusic.dashboard.page.resolve_dashboard_db", lambda: DashboardDb(later))
    assert data_moved(page, drawn)


def test_window_ending_on_the_last_day_follows_new_days(monkeypatch: pytest.MonkeyPatch, db_copy: Path,
                                                        first_day: date) -> None:
    """What a redraw during a pass shows: the default window grows to the new last day; a window that ended on
    the last day keeps ending on it; a window the user ended earlier stays."""
    at = app(monkeypatch, db_copy)
    narrowed = app(monkeypatch, db_copy, dates=[str(END - timedelta(days=29)), str(END)])
    earlier = app(monkeypatch, db_copy, dates=[str(first_day), str(END - timedelta(days=10))])
    before = as_int(metric(at, "Posts"))
    new_end = END + timedelta(days=10)
    seed(db_copy, 300, seed_value=5, days=20, end=new_end)
    for page in (at, narrowed, earlier):
        data_version.clear()
        page.run()
        assert not page.exception, page.exception
    assert tuple(at.session_state["dates"]) == (first_day, new_end)
    assert as_int(metric(at, "Posts")) == len(frame(db_copy)) > before
    assert tuple(narrowed.session_state["dates"]) == (END - timedelta(days=29), new_end)
    assert tuple(earlier.session_state["dates"]) == (first_day, END - timedelta(days=10))


def test_empty_and_missing_databases(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    at = app(monkeypatch, tmp_path / "nothing-here.duckdb")
    assert "aimusic run" in texts(at) and "aimusic demo" in texts(at)
    empty = tmp_path / "empty.duckdb"
    Store(empty)
    at = app(monkeypatch, empty)
    assert "holds no posts yet" in texts(at) and "aimusic demo" in texts(at)
    assert not at.metric
    foreign = tmp_path / "foreign.duckdb"
    with duckdb.connect(str(foreign)) as con:
        con.execute("CREATE TABLE something (x INTEGER)")
    at = app(monkeypatch, foreign)
    assert "is not an aimusic database" in texts(at)


def test_tiny_unscored_untagged_and_real_databases(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tiny = tmp_path / "tiny.duckdb"
    seed(tiny, 12, synthetic=False)
    at = app(monkeypatch, tiny, dates=["2025-11-01", "2026-02-28"], bucket="day")
    assert "DEMO DATA" not in texts(at)
    assert "Too few scored posts" in texts(at)
    for key in VIEWS:
        show(at, key)
    unscored = tmp_path / "unscored.duckdb"
    seed(unscored, 200, scored=False)
    with duckdb.connect(str(unscored)) as con:
        con.execute("UPDATE posts SET entities = NULL, entities_key = NULL")
    at = app(monkeypatch, unscored)
    assert "No post has a sentiment score yet" in texts(at)
    assert "have no entity tags yet" in texts(at) and "aimusic signals" in texts(at)
    for key in VIEWS:
        show(at, key)


def test_busy_database_is_a_message_not_a_crash(monkeypatch: pytest.MonkeyPatch, seeded: Path) -> None:
    def busy(db, *args, **kwargs):
        raise StoreError(f"database {db} is busy: another aimusic process holds it for writing")

    monkeypatch.setattr("aimusic.store.dashboard_facts.read", busy)
    at = app(monkeypatch, seeded)
    assert "cannot be read right now" in texts(at)


def test_dashboard_never_writes_on_read(monkeypatch: pytest.MonkeyPatch, db_copy: Path) -> None:
    before = db_copy.stat().st_mtime_ns, db_copy.read_bytes()
    at = app(monkeypatch, db_copy)
    for key in VIEWS:
        show(at, key)
    assert (db_copy.stat().st_mtime_ns, db_copy.read_bytes()) == before

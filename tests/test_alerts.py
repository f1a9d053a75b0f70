"""Alerts: the detector on synthetic series (spike, weekly cycle, sparse series, sentiment shift), storage
(idempotent per kind/scope/day, cooldown), and delivery through a local webhook receiver and Apprise."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from aimusic.core.records import POST_SCHEMA
from aimusic.core.topics import TopicsError, load_topics
from aimusic.ops.alert_rules import AlertRules, load_rules
from aimusic.ops.alerts import list_alerts, raise_alerts, scan
from aimusic.ops.detection import Window, build_series, detect, sentiment_shift, volume_spike
from aimusic.ops.notify import deliver, describe_url, digest_markdown
from aimusic.store.db import Store

RULES = AlertRules()
START = date(2026, 1, 5)  # a Monday


def hourly(days: dict[str, list[int]], *, start: date = START, net: dict[str, list[float]] | None = None,
           hour: int = 12) -> pd.DataFrame:
    """Rows (source, hour, posts, scored, positive, negative): each day's posts at ``hour``, all scored, with
    the given net sentiment (split between positive and negative, no neutral)."""
    rows = []
    for source, counts in days.items():
        nets = (net or {}).get(source, [0.0] * len(counts))
        for i, n in enumerate(counts):
            when = datetime.combine(start + timedelta(days=i), datetime.min.time(), tzinfo=UTC) + timedelta(hours=hour)
            pos = round(n * (1 + nets[i]) / 2)
            rows.append((source, when, n, n, pos, n - pos))
    return pd.DataFrame(rows, columns=["source", "hour", "posts", "scored", "positive", "negative"])


def run_detect(frame: pd.DataFrame, day_index: int, rules: AlertRules = RULES, start: date = START):
    """Alerts for the calendar day ``day_index`` (the window ending at the next midnight)."""
    as_of = datetime.combine(start + timedelta(days=day_index + 1), datetime.min.time(), tzinfo=UTC)
    begin = as_of - timedelta(days=70)
    coverage = {s: datetime.combine(start, datetime.min.time(), tzinfo=UTC) for s in frame["source"].unique()}
    return detect(build_series(frame, begin, as_of), coverage, as_of, rules, model="m")


def poisson(rng: np.random.Generator, means: list[float]) -> list[int]:
    return [int(v) for v in rng.poisson(means)]


# --- the detector ---------------------------------------------------------------------------------------------


def test_volume_spike_is_detected_per_source_and_overall():
    rng = np.random.default_rng(1)
    days = 56
    reddit = poisson(rng, [60] * days)
    hn = poisson(rng, [20] * days)
    reddit[-1] = 240  # 4x the usual day
    alerts = run_detect(hourly({"reddit": reddit, "hackernews": hn}), days - 1)
    spikes = {a.scope: a for a in alerts if a.kind == "volume_spike"}
    assert set(spikes) == {"reddit", "all"}
    a = spikes["reddit"]
    assert a.observed == 240 and 50 <= a.expected <= 70 and a.score >= RULES.spike_z
    assert a.day == START + timedelta(days=days - 1)
    assert "240 posts" in a.message and "the usual" in a.message
    assert spikes["all"].observed == 240 + hn[-1]


def test_normal_weekly_cycle_raises_nothing():
    """Saturdays carry three times the posts of other days (release day); comparing with the same weekday
    keeps that from looking like a spike every week."""
    rng = np.random.default_rng(2)
    means = [150 if (START + timedelta(days=i)).weekday() == 5 else 50 for i in range(63)]
    counts = poisson(rng, means)
    saturdays = [i for i in range(35, 63) if (START + timedelta(days=i)).weekday() == 5]
    for i in saturdays:
        trailing_week = counts[i - 7:i]
        assert counts[i] >= 2 * np.median(trailing_week)  # a naive trailing-week baseline would alert here
        assert [a for a in run_detect(hourly({"reddit": counts}), i) if a.kind == "volume_spike"] == []
    # the same series with an extra burst on a Wednesday does alert
    counts[58] = 200
    assert (START + timedelta(days=58)).weekday() == 2
    assert {a.scope for a in run_detect(hourly({"reddit": counts}), 58) if a.kind == "volume_spike"} == {
        "reddit", "all"}


def test_sparse_series_raises_nothing():
    rng = np.random.default_rng(3)
    counts = poisson(rng, [0.7] * 56)
    counts[-1] = 12  # 12x a quiet source's day, but below min_posts
    assert run_detect(hourly({"mastodon": counts}), 55) == []
    assert volume_spike(12, [0, 1, 0, 2, 1, 0], RULES) is None


def test_too_little_history_raises_nothing():
    counts = [5] * 10 + [80]  # ten days of history: fewer than min_history_weeks same-weekday windows
    assert run_detect(hourly({"bluesky": counts}), 10) == []


def test_spike_thresholds_on_plain_numbers():
    base = [100, 104, 98, 101, 99, 97]
    assert volume_spike(130, base, RULES) is None  # 30% more: within the Poisson floor x z
    assert volume_spike(180, base, RULES) is None  # far out, but below spike_ratio x median
    found = volume_spike(250, base, RULES)
    assert found is not None and found.direction == "up" and found.expected == pytest.approx(99.5)
    assert volume_spike(25, [0, 0, 0, 0], RULES) is not None  # a silent source wakes up with 25 posts


def test_sentiment_shift_is_detected_and_normal_noise_is_not():
    rng = np.random.default_rng(4)
    days = 40
    nets = list(np.clip(rng.normal(0.1, 0.05, days), -1, 1))
    counts = [300] * days
    frame = hourly({"x": counts}, net={"x": nets})
    assert [a for a in run_detect(frame, days - 1) if a.kind == "sentiment_shift"] == []
    nets[-1] = -0.4
    shifted = [a for a in run_detect(hourly({"x": counts}, net={"x": nets}), days - 1)
               if a.kind == "sentiment_shift"]
    assert {a.scope for a in shifted} == {"x", "all"}
    a = shifted[0]
    assert a.direction == "down" and a.observed == pytest.approx(-0.4, abs=0.02)
    assert a.low is not None and a.observed < a.low and "fell" in a.message


def test_sentiment_needs_enough_scored_posts():
    hist = [Window(datetime.now(UTC), datetime.now(UTC), 100, 100, 55, 45) for _ in range(20)]
    few = Window(datetime.now(UTC), datetime.now(UTC), 10, 10, 0, 10)  # net -1, but only 10 posts
    assert sentiment_shift(few, hist, RULES) is None
    many = Window(datetime.now(UTC), datetime.now(UTC), 100, 100, 10, 90)
    assert sentiment_shift(many, hist, RULES) is not None
    small_move = Window(datetime.now(UTC), datetime.now(UTC), 100, 100, 50, 50)  # 0.1 -> 0.0
    assert sentiment_shift(small_move, hist, RULES) is None


def test_alert_rules_from_topics(tmp_path: Path):
    assert load_rules(load_topics()) == AlertRules()  # data/topics.toml spells out the defaults
    base = '[tracking]\nterms = ["AI music"]\n'
    path = tmp_path / "topics.toml"
    path.write_text(base + "\n[alerts]\nmin_posts = 50\n")
    assert load_rules(load_topics(path)).min_posts == 50
    path.write_text(base + "\n[alerts]\nmin_post = 50\n")
    with pytest.raises(TopicsError, match=r"alerts\.min_post"):
        load_rules(load_topics(path))


# --- storage --------------------------------------------------------------------------------------------------


def make_posts(source: str, times: list[datetime], *, prefix: str = "p") -> pa.Table:
    n = len(times)
    ids = [f"{prefix}{i}" for i in range(n)]
    table = pa.table(
        {
            "source": [source] * n, "post_id": ids, "kind": ["post"] * n, "parent_id": [None] * n,
            "thread_id": [None] * n, "created_at": times, "author": [f"user{i % 7}" for i in range(n)],
            "title": [None] * n, "text": [f"AI music post {i}" for i in range(n)],
            "url": [f"https://example.invalid/{source}/{i}" for i in range(n)], "lang": ["en"] * n,
            "score": [i % 50 for i in range(n)], "replies": [0] * n, "reposts": [0] * n, "community": [None] * n,
            "terms": [None] * n, "relevance": [None] * n, "nsfw": [False] * n, "synthetic": [False] * n,
            "fetched_at": times,
        },
        schema=POST_SCHEMA,
    )
    return table


def seed_spike(store: Store, end: datetime, *, per_day: int = 40, spike: int = 200) -> None:
    """Eight weeks of ``per_day`` posts a day on reddit, then ``spike`` posts in the 24 h before ``end``."""
    times = [end - timedelta(days=d, hours=1 + (i * 23) / per_day) for d in range(1, 57) for i in range(per_day)]
    times += [end - timedelta(hours=1 + (i * 22) / spike) for i in range(spike)]
    table = make_posts("reddit", times)
    store.upsert_posts(table)
    # md5 is computed by the store: fill scores after the insert, mostly positive, negative in the spike
    rows = store.query("SELECT source, post_id, text_md5, created_at FROM posts")
    recent = pd.to_datetime(rows["created_at"], utc=True) >= pd.Timestamp(end - timedelta(hours=24))
    labels = np.where(recent, "negative", np.where(np.arange(len(rows)) % 3 == 0, "negative", "positive"))
    store.upsert_scores(pa.table({
        "source": rows["source"], "post_id": rows["post_id"], "model": ["m"] * len(rows), "label": labels,
        "negative": np.where(labels == "negative", 0.8, 0.1), "neutral": [0.1] * len(rows),
        "positive": np.where(labels == "positive", 0.8, 0.1), "status": ["scored"] * len(rows),
        "text_md5": rows["text_md5"],
    }))


def test_raise_alerts_stores_once_per_kind_scope_day_with_top_posts(store: Store):
    end = datetime(2026, 3, 10, tzinfo=UTC)
    seed_spike(store, end)
    new = raise_alerts(store, as_of=end, model="m", run_id="r1")
    kinds = {(a.kind, a.scope) for a in new}
    assert ("volume_spike", "reddit") in kinds and ("volume_spike", "all") in kinds
    assert ("sentiment_shift", "reddit") in kinds
    spike = next(a for a in new if a.kind == "volume_spike" and a.scope == "reddit")
    assert spike.observed == 200 and spike.expected == 40
    engagement = [p["engagement"] for p in spike.top_posts]
    assert len(engagement) == 5 and engagement == sorted(engagement, reverse=True)
    shift = next(a for a in new if a.kind == "sentiment_shift")
    assert all(p["label"] == "negative" for p in shift.top_posts)

    assert raise_alerts(store, as_of=end, model="m") == []  # same window again: nothing new
    assert raise_alerts(store, as_of=end + timedelta(hours=5), model="m") == []  # the next day, same spike
    stored = list_alerts(store)
    assert len(stored) == len(new)
    assert stored.groupby(["kind", "scope", "day"]).size().max() == 1
    assert isinstance(stored["top_posts"].iloc[0], list)


def test_scan_replays_history_without_duplicates(store: Store):
    end = datetime(2026, 3, 10, tzinfo=UTC)
    seed_spike(store, end)
    found = scan(store, date(2026, 3, 1), date(2026, 3, 9), model="m")
    assert {a.day for a in found} == {date(2026, 3, 9)}
    assert scan(store, date(2026, 3, 1), date(2026, 3, 9), model="m") == []


def test_list_alerts_on_a_database_without_the_table(tmp_path: Path):
    import duckdb

    path = tmp_path / "old.duckdb"
    duckdb.connect(str(path)).close()
    assert list_alerts(Store(path, read_only=True)).empty


# --- delivery -------------------------------------------------------------------------------------------------


class Receiver:
    """A stdlib HTTP server on loopback that records every request."""

    def __init__(self, status: int = 200):
        self.requests: list[tuple[str, dict]] = []
        self.status = status
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append((self.path, json.loads(body or b"{}")))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def no_retry_wait(monkeypatch):
    from tenacity import wait_none

    import aimusic.ops.notify as notify

    monkeypatch.setattr(notify._post.retry, "wait", wait_none())


def spike_alerts(store: Store) -> list:
    """The alerts a seeded volume spike raises (to deliver)."""
    end = datetime(2026, 3, 10, tzinfo=UTC)
    seed_spike(store, end)
    return raise_alerts(store, as_of=end, model="m")


def test_webhook_receives_the_digest(store: Store):
    new = spike_alerts(store)
    with Receiver() as hook:
        result = deliver(new, [f"http://127.0.0.1:{hook.port}/hooks/T0KEN-SECRET"])
    assert result.ok and result.sent == ["http://127.0.0.1"]
    ((path, payload),) = hook.requests
    assert path == "/hooks/T0KEN-SECRET"
    assert len(payload["alerts"]) == len(new)
    spike = next(a for a in payload["alerts"] if a["kind"] == "volume_spike" and a["scope"] == "reddit")
    assert spike["observed"] == 200 and len(spike["top_posts"]) == 5
    assert spike["top_posts"][0]["url"].startswith("https://example.invalid/reddit/")
    assert "Volume spike" in payload["text"] and "engagement" in payload["text"]


def test_apprise_url_delivers_through_apprise(store: Store):
    new = spike_alerts(store)
    with Receiver() as hook:
        result = deliver(new, [f"json://127.0.0.1:{hook.port}/apprise"])
    assert result.ok, result.summary()
    ((path, payload),) = hook.requests
    assert path == "/apprise"
    assert "alert" in payload["title"] and "Volume spike" in payload["message"]


def test_failed_delivery_is_reported_not_raised_and_never_shows_the_token(store: Store, no_retry_wait, caplog):
    new = spike_alerts(store)
    with Receiver(status=500) as bad, Receiver() as good:
        urls = [f"http://127.0.0.1:{bad.port}/hooks/T0KEN-SECRET", f"http://127.0.0.1:{good.port}/ok"]
        result = deliver(new, urls)
    assert len(bad.requests) == 3  # retried
    assert len(good.requests) == 1  # the failure did not stop the other channel
    assert not result.ok and result.sent and "HTTP 500" in result.failed[0]
    assert "T0KEN" not in result.summary() and "T0KEN" not in caplog.text
    refused = deliver(new, ["http://127.0.0.1:9/hooks/T0KEN-SECRET"])  # nothing listens on port 9
    assert refused.failed and "T0KEN" not in refused.summary()
    assert describe_url("https://hooks.slack.com/services/T0/B0/XYZ") == "https://hooks.slack.com"


def test_digest_lists_top_posts():
    end = datetime(2026, 3, 10, tzinfo=UTC)
    from aimusic.ops.detection import Alert

    alert = Alert("volume_spike", "reddit", end.date(), end - timedelta(days=1), end, 120, 20, None, 60, 9.0, "up",
                  120, "m", "Volume spike in reddit: 120 posts",
                  [{"source": "reddit", "text": "x " * 200, "url": "https://example.invalid/1", "engagement": 42,
                    "label": "negative"}])
    title, body = digest_markdown([alert])
    assert title == "aimusic-monitor: 1 alert"
    assert "Volume spike in reddit" in body and "engagement 42" in body and "[negative]" in body
    assert "…" in body  # long posts are shortened


# --- the dashboard --------------------------------------------------------------------------------------------


def test_dashboard_alerts_view_lists_replayed_alerts(monkeypatch, tmp_path: Path):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from aimusic.core.config import PROJECT_ROOT
    from aimusic.debate.relevance import RelevanceFilter
    from aimusic.pipeline.collect import score_posts
    from aimusic.sources.demo import event_dates, generate_table
    from aimusic.store.queries import pick_model
    from sentiment import load_scorer

    topics = load_topics()
    db = tmp_path / "demo.duckdb"
    store = Store(db)
    table, _ = RelevanceFilter(topics).filter_table(generate_table(6000, events=event_dates(topics)))
    store.upsert_posts(table)
    score_posts(store, load_scorer("vader"))
    found = scan(store, date(2025, 9, 1), date(2026, 2, 28), model=pick_model(store))
    # the demo's dated events (topics.toml) are where its volume jumps
    assert {date(2025, 10, 30), date(2025, 11, 11), date(2025, 11, 25)} <= {a.day for a in found}

    st.cache_data.clear()
    st.cache_resource.clear()
    monkeypatch.setenv("AIMUSIC_DB", str(db))
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=120)
    at.query_params["view"] = "Alerts"
    at.query_params["dates"] = ["2025-10-01", "2025-11-30"]
    at.run()
    assert not at.exception, at.exception
    in_window = [a for a in found if date(2025, 10, 1) <= a.day <= date(2025, 11, 30)]
    assert [m.value for m in at.metric if m.label == "Alerts"] == [f"{len(in_window):,}"]
    labels = [e.label for e in at.expander]
    assert any("2025-11-11 · Volume spike · all sources" in label for label in labels), labels
    assert len(at.dataframe) >= 2  # an alert's posts and the full table

"""The dashboard in a real browser: `streamlit run app.py` on a free loopback port, opened in headless Chromium
through Playwright (Debian's /usr/bin/chromium; never `playwright install`). Checks that the charts and the
headline figures render, that a filter in the URL is applied, and saves a screenshot (its path is printed;
a copy goes to benchmarks/out/)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest

from aimusic.core.config import PROJECT_ROOT

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
OUT = PROJECT_ROOT / "benchmarks" / "out"

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no browser: install Debian's chromium (apt-get install "
                       "chromium) to run the dashboard's browser test"),
    pytest.mark.slow,
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early:\n{proc.stdout.read() if proc.stdout else ''}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError("streamlit did not become healthy")


@pytest.fixture
def served(tmp_path: Path):
    from dashboard_testkit import seed

    db = tmp_path / "browser.duckdb"
    seed(db, 6000).add_event(date(2026, 1, 20), "Test event: a label signs an AI singer", None, origin="dashboard")
    port = _free_port()
    env = {**os.environ, "AIMUSIC_DB": str(db), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(PROJECT_ROOT / "app.py"), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url, db
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _settle(page) -> None:
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=60_000)


@contextlib.contextmanager
def _overview(playwright: Any, url: str, *, height: int) -> Iterator[Any]:
    """Headless Chromium on the served page, once its Overview has drawn."""
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": height})
            page.goto(url, wait_until="domcontentloaded")
            page.get_by_text("Volume by source").wait_for(timeout=60_000)
            _settle(page)
            yield page
        finally:
            browser.close()


def test_dashboard_in_chromium(served, tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download)")
    url, db = served
    with duckdb.connect(str(db), read_only=True) as con:  # the opening window is all the data (under a year)
        reddit = con.execute("SELECT count(*) FROM posts WHERE source = 'reddit'").fetchall()[0][0]
    shot, shot_compare = tmp_path / "dashboard.png", tmp_path / "dashboard-compare.png"
    # tall enough for the whole Overview: Streamlit scrolls inside its own container, not the page
    with _overview(playwright, url, height=2500) as page:
        page.wait_for_function(
            "document.querySelectorAll('.vega-embed svg, .vega-embed canvas').length >= 3", timeout=60_000
        )
        assert page.locator('[data-testid="stException"]').count() == 0
        labels = page.locator('[data-testid="stMetricLabel"]').all_inner_texts()
        assert {"Posts", "Authors", "Net sentiment"} <= {t.strip() for t in labels}
        values = page.locator('[data-testid="stMetricValue"]').all_inner_texts()
        assert all(v.strip() for v in values)
        assert "DEMO DATA" in page.inner_text("body")
        _settle(page)
        page.screenshot(path=str(shot), full_page=True)

        page.get_by_text("Compare", exact=True).click()
        page.get_by_text("Platforms side by side").wait_for(timeout=60_000)
        _settle(page)
        page.wait_for_function(
            "document.querySelectorAll('.vega-embed svg, .vega-embed canvas').length >= 4", timeout=60_000
        )
        assert "view=Compare" in page.url  # the view switcher is kept in the URL
        _settle(page)
        page.screenshot(path=str(shot_compare), full_page=True)

        # a filter carried by the URL is applied, and the figure follows it
        page.goto(f"{url}/?source=reddit", wait_until="domcontentloaded")
        page.get_by_text("Volume by source").wait_for(timeout=60_000)
        _settle(page)
        posts = page.locator('[data-testid="stMetricValue"]').first.inner_text()
        assert int(posts.replace(",", "")) == reddit
    OUT.mkdir(parents=True, exist_ok=True)
    for file in (shot, shot_compare):
        shutil.copy(file, OUT / file.name)
        print(f"screenshot: {file} (copied to {OUT / file.name})")


def test_open_page_follows_new_data_without_a_click(served) -> None:
    """A page left open while a monitoring pass writes (the quickstart opens it during the first pass) redraws by
    itself: the Posts figure moves to the new count with no interaction."""
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download)")
    from dashboard_testkit import seed

    from aimusic.dashboard.page import WATCH_SECONDS

    url, db = served
    with _overview(playwright, url, height=1600) as page:
        before = int(page.locator('[data-testid="stMetricValue"]').first.inner_text().replace(",", ""))
        seed(db, 300, seed_value=5, days=20, offset=6000)  # what a pass commits; the page's reader lets go
        with duckdb.connect(str(db), read_only=True) as con:
            total = con.execute("SELECT count(*) FROM posts").fetchall()[0][0]
        assert total > before
        started = time.monotonic()
        page.wait_for_function(
            "n => { const v = document.querySelector('[data-testid=\"stMetricValue\"]');"
            " return v && parseInt(v.innerText.replace(/,/g, '')) === n; }",
            arg=total, timeout=(WATCH_SECONDS * 3 + 30) * 1000,
        )
        print(f"redrawn {time.monotonic() - started:.1f}s after the write (checks every {WATCH_SECONDS:.0f}s)")
        assert page.locator('[data-testid="stException"]').count() == 0

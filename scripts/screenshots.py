"""Screenshot every dashboard view of a running dashboard in Debian's chromium (Playwright, no browser download).

    .venv/bin/python scripts/screenshots.py --url http://127.0.0.1:8501 --out docs/screenshots
    .venv/bin/python scripts/screenshots.py --url ... --out /tmp/shots --height 3000   # whole views, for review

Each view is opened by its address (``?view=<title>``, the switcher's URL binding), the script waits for its
first heading or chart and for Streamlit's "running" widget to go away, then saves ``<n>-<view>.png``. PNGs are
reduced to a 256-colour palette (Pillow) so the committed screenshots stay small. Exit 1 if a view shows a
Python exception. Recipe: STACK.md ("Browser check"); never run ``playwright install``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
#: view title (the switcher's label and the ``view=`` value) -> a text each view shows once it has rendered
VIEWS: dict[str, str] = {
    "Overview": "Volume by source",
    "Debate": "Pro vs anti over time",
    "Compare": "Platforms side by side",
    "Posts": "Most engaged posts of the window",
    "Voices": "Communities",
    "Events": "Add a timeline event",
    "Runs": "Data freshness per platform",
    "Alerts": "Alerts",
    "Label": "Labels so far",
}


NO_SKELETONS = "document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0"


def _settle(page: Any) -> None:
    """Until the script has finished and every element has replaced its loading skeleton (charts and tables load
    their code on first use), then a moment for Vega to draw."""
    for _ in range(2):  # the running widget can appear after a first quiet moment: check twice
        page.wait_for_function(NO_SKELETONS, timeout=90_000)
        page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=90_000)
        page.wait_for_timeout(1000)
    page.wait_for_function(NO_SKELETONS, timeout=90_000)


def _shrink(path: Path) -> None:
    """Quantise to a 256-colour palette: a dashboard has few colours, and the file gets 3-4x smaller."""
    from PIL import Image

    with Image.open(path) as img:
        small = img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def shoot(url: str, out: Path, *, width: int = 1280, height: int = 900, views: list[str] | None = None) -> list[Path]:
    """Save one PNG per view; return their paths. Raises RuntimeError when a view shows an exception."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            for n, title in enumerate(views or list(VIEWS), start=1):
                page.goto(f"{url.rstrip('/')}/?view={title}", wait_until="domcontentloaded")
                page.get_by_text(VIEWS.get(title, title)).first.wait_for(timeout=90_000)
                _settle(page)
                if page.locator('[data-testid="stException"]').count():
                    problems.append(f"{title}: {page.locator('[data-testid=stException]').first.inner_text()}")
                path = out / f"{n}-{title.lower()}.png"
                page.screenshot(path=str(path))
                _shrink(path)
                saved.append(path)
                print(f"{path} ({path.stat().st_size // 1024} KB)")
        finally:
            browser.close()
    if problems:
        raise RuntimeError("views with an exception:\n" + "\n".join(problems))
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8501")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=900, help="viewport height (Streamlit scrolls inside it)")
    parser.add_argument("--views", help="comma-separated view titles (default: all)")
    args = parser.parse_args(argv)
    views = [v.strip() for v in args.views.split(",")] if args.views else None
    try:
        shoot(args.url, args.out, width=args.width, height=args.height, views=views)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

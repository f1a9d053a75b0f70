"""A monitor-like writer for the fault tests, run as a subprocess.

    python -m tests.workers.writer DB MODE [SECONDS|ROWS] [PROGRESS_FILE]

MODE ``soak``: for SECONDS, collect pages of synthetic posts through the real pipeline (collect_source: relevance,
bulk upsert with cursors) and score them (score_posts), then print the number of posts written as JSON.
MODE ``upsert``: one big upsert of ROWS posts with a cursor, printing "upserting" just before it starts.
MODE ``score``: score every post with VADER in small batches, appending the count to PROGRESS_FILE per batch.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from aimusic.core.config import get_settings
from aimusic.core.topics import load_topics
from aimusic.pipeline.collect import collect_source, score_posts
from aimusic.sources.base import Batch, CollectContext, Source
from aimusic.sources.demo import generate_table
from aimusic.store.db import Store
from sentiment import load_scorer


def pages(seconds: float, size: int = 1_500) -> Iterator[Batch]:
    deadline = time.monotonic() + seconds
    page = 0
    while time.monotonic() < deadline:
        table = generate_table(size, seed=1000 + page)
        yield Batch(table=table, fetched=size, cursors={"page": str(page)})
        page += 1


class Soak(Source):
    name = "soak"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def collect(self, ctx: CollectContext) -> Iterator[Batch]:
        yield from pages(self.seconds)


def main() -> None:
    db, mode = Path(sys.argv[1]), sys.argv[2]
    store = Store(db)
    if mode == "soak":
        seconds = float(sys.argv[3])
        topics = load_topics()
        summary = collect_source(Soak(seconds), store, topics, get_settings())
        scored = score_posts(store, load_scorer("vader"), batch_size=1_000)
        print(json.dumps({"new": summary.new, "status": summary.status, "scored": sum(scored.values()),
                          "error": summary.error}), flush=True)
    elif mode == "upsert":
        rows = int(sys.argv[3])
        table = generate_table(rows, seed=7)
        print("upserting", flush=True)
        store.upsert_posts(table, cursors={("crash", "cursor"): "done"})
        print("committed", flush=True)
    elif mode == "score":
        progress = Path(sys.argv[4])
        score_posts(store, load_scorer("vader"), batch_size=500,
                    progress=lambda n: progress.open("a").write(f"{n}\n"))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()

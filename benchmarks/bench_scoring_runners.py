"""Scoring throughput per task runner: the monitor's local scoring step vs the chunked flow on threads and on
a local Dask cluster (what ``AIMUSIC_TASK_RUNNER`` chooses).

    .venv/bin/python benchmarks/bench_scoring_runners.py [--posts 20000] [--model vader] [--chunk 1000]
        [--runners local,threads:2,dask:local:2]

Each runner scores the same unscored demo posts in its own copy of one database, and the scores are checked
to be identical across runners. Prints posts/s per runner. Start-up costs are included (a temporary Prefect
server once; a Dask cluster per Dask run), because that is what a scheduled run pays; on a small batch they
dominate, on a large one the per-post cost does. On a machine with few cores Dask cannot beat the local
step with a fast model like VADER; it pays off with a slow model and more cores (or machines).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=20_000)
    parser.add_argument("--model", default="vader")
    parser.add_argument("--chunk", type=int, default=1_000)
    parser.add_argument("--runners", default="local,threads:2,dask:local:2")
    args = parser.parse_args()

    from prefect.testing.utilities import prefect_test_harness

    from aimusic.core.topics import load_topics
    from aimusic.debate.relevance import RelevanceFilter
    from aimusic.sources.demo import generate_table
    from aimusic.store.db import Store
    from flows.monitor import score_task
    from flows.scoring import score_flow, task_runner

    with tempfile.TemporaryDirectory(prefix="aimusic-bench-") as tmp, prefect_test_harness(server_startup_timeout=90):
        base = Path(tmp) / "base.duckdb"
        table, _ = RelevanceFilter(load_topics()).filter_table(generate_table(args.posts, seed=5, days=90))
        Store(base).upsert_posts(table)
        n = Store(base, read_only=True).count("posts")
        print(f"{n:,} posts to score with {args.model} (chunks of {args.chunk:,}), {os.cpu_count()} CPUs")
        results = {}
        for spec in [r.strip() for r in args.runners.split(",") if r.strip()]:
            db = Path(tmp) / f"{spec.replace(':', '_')}.duckdb"
            shutil.copy(base, db)
            started = time.perf_counter()
            if spec == "local":
                model_id, counts = score_task(str(db), args.model)
            else:
                flow = score_flow.with_options(task_runner=task_runner(spec))
                model_id, counts = flow(db=str(db), model=args.model, chunk_size=args.chunk)
            elapsed = time.perf_counter() - started
            scored = sum(counts.values())
            print(f"{spec:<16} {scored:>9,} posts  {elapsed:7.2f} s  {scored / elapsed:>10,.0f} posts/s  ({model_id})")
            results[spec] = Store(db, read_only=True).query(
                "SELECT source, post_id, label, negative, neutral, positive, status FROM scores ORDER BY 1, 2"
            )
        frames = list(results.values())
        same = all(f.equals(frames[0]) for f in frames[1:])
        print("scores identical across runners:", same)


if __name__ == "__main__":
    main()

"""Memory of the scoring step on a one-million-post database, with ``minilm-ft`` (or another model).

    .venv/bin/python benchmarks/bench_memory.py [--posts 1000000] [--score 20000] [--model minilm-ft]

1. Builds a DuckDB file with ``--posts`` short synthetic posts (the demo generator, ~60-120 characters each,
   each made unique) in a temporary directory, and clears the language of ``--score`` of them so detection
   runs too.
2. Runs the real scoring step (:func:`aimusic.pipeline.rescore.score_store`: language detection, then
   :func:`aimusic.pipeline.collect.score_posts` in its batches of 2,000 read from the 1M-post table) for ``--score``
   posts (``--score 0``: all of them, hours on 2 CPUs) and samples this process's RSS after every batch.
3. Prints peak RSS (the kernel's high-water mark, ``ru_maxrss``), RSS after loading, the per-batch RSS
   series and its slope over the second half of the run. A slope near zero shows memory does not grow
   with the number of posts scored, which is what lets a partial run stand for the full million (every
   batch reads the same 1M-row table and holds only 2,000 posts).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(db: Path, posts: int, clear_lang: int) -> float:
    import pyarrow as pa
    import pyarrow.compute as pc

    from aimusic.sources.demo import generate_table
    from aimusic.store.db import Store

    started = time.perf_counter()
    store = Store(db)
    chunk = 100_000
    for offset in range(0, posts, chunk):
        table = generate_table(min(chunk, posts - offset), seed=offset + 1)
        # the generator draws from a few hundred templates and sentiment.embedding.encode caches repeated texts,
        # so make every post unique or the figures would flatter the model
        suffix = pa.array([f"#{offset + i}" for i in range(table.num_rows)])
        unique = pc.binary_join_element_wise(table.column("text"), suffix, " ")
        store.upsert_posts(table.set_column(table.schema.get_field_index("text"), "text", unique))
    if clear_lang:
        with store.connect() as con:
            con.execute(
                "UPDATE posts SET lang = NULL WHERE post_id IN (SELECT post_id FROM posts ORDER BY post_id LIMIT ?)",
                [clear_lang],
            )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=1_000_000, help="posts in the database (default 1M)")
    parser.add_argument("--score", type=int, default=20_000, help="posts to score in this run (0: all)")
    parser.add_argument("--model", default="minilm-ft",
                        help="scorer name (default: minilm-ft, the offline default's sentiment model)")
    parser.add_argument("--db", type=Path, help="reuse this database (built if missing) instead of a temp one")
    args = parser.parse_args()

    from aimusic.pipeline.rescore import score_store
    from aimusic.store.db import Store
    from sentiment import load_scorer

    with tempfile.TemporaryDirectory(prefix="aimusic-mem-") as tmp:
        db = args.db or Path(tmp) / "bench.duckdb"
        limit = args.score or None
        if not db.exists():
            took = build(db, args.posts, args.score or args.posts)
            print(f"built {args.posts:,} posts in {db} ({db.stat().st_size / 1e6:.0f} MB) in {took:.0f}s", flush=True)
        base = rss_mb()
        started = time.perf_counter()
        scorer = load_scorer(args.model)
        loaded = rss_mb()
        print(f"RSS {base:.0f} MB before loading {scorer.model_id}, {loaded:.0f} MB after "
              f"({time.perf_counter() - started:.1f}s)", flush=True)
        samples: list[tuple[int, float]] = []
        done = 0
        t0 = time.perf_counter()

        def progress(n: int) -> None:
            nonlocal done
            done += n
            samples.append((done, rss_mb()))
            if len(samples) % 5 == 1:
                print(f"  {done:>9,} scored  RSS {samples[-1][1]:6.0f} MB  peak {peak_mb():6.0f} MB  "
                      f"{done / (time.perf_counter() - t0):6.0f} posts/s", flush=True)

        summary = score_store(Store(db), scorer, limit=limit, progress=progress)
        elapsed = time.perf_counter() - t0
    half = samples[len(samples) // 2 :]
    slope = 0.0
    if len(half) >= 2 and half[-1][0] > half[0][0]:
        slope = (half[-1][1] - half[0][1]) / (half[-1][0] - half[0][0]) * 10_000
    rate = summary.scored / elapsed if elapsed else 0.0
    result = {
        "model": scorer.model_id, "posts_in_db": args.posts, "scored": summary.scored,
        "languages_detected": sum(summary.languages.values()), "seconds": round(elapsed, 1),
        "posts_per_s": round(rate, 1), "rss_after_load_mb": round(loaded), "peak_rss_mb": round(peak_mb()),
        "rss_first_batch_mb": round(samples[0][1]) if samples else None,
        "rss_last_batch_mb": round(samples[-1][1]) if samples else None,
        "rss_slope_mb_per_10k_posts": round(slope, 2),
        "hours_for_1m_posts": round(1_000_000 / rate / 3600, 2) if rate else None,
    }
    print(f"\n{scorer.model_id}: scored {summary.scored:,} of {args.posts:,} posts in {elapsed:.0f}s ({rate:.0f}/s); "
          f"peak RSS {result['peak_rss_mb']} MB; RSS first batch {result['rss_first_batch_mb']} MB, last "
          f"{result['rss_last_batch_mb']} MB; slope over the second half {slope:+.2f} MB per 10k posts")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

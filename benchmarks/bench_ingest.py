"""Ingest benchmark: ``Store.upsert_posts`` against a bare DuckDB Arrow insert, and a row-by-row baseline.

    .venv/bin/python benchmarks/bench_ingest.py [--posts 1000000] [--sample 5000] [--rounds 2]

The fair baseline is what a careful user writes: one ``INSERT INTO t SELECT * FROM arrow_table`` into a table
with the same columns and the same primary key (``source, post_id``) for a first insert, and ``INSERT ...
ON CONFLICT DO NOTHING`` for a re-import of the same posts. ``Store.upsert_posts`` does more (text hash,
first-seen and updated times, only changed rows rewritten, cursors in the same transaction), so its ratio
to the bare insert is the price of that work. The naive ``executemany`` of ``INSERT ... ON CONFLICT DO
UPDATE`` (one transaction) runs on a sample. Each step runs into fresh files, interleaved over rounds; peak
RSS is sampled every 10 ms during each step. Generation time is excluded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa
import pyarrow.compute as pc

from aimusic.core.records import POST_COLUMNS
from aimusic.sources.demo import generate_table
from aimusic.store.db import Store


class PeakRss:
    """Samples this process's RSS every 10 ms while active; ``peak_mb`` is the highest seen."""

    def __init__(self) -> None:
        self.proc, self.peak, self._stop = psutil.Process(), 0, threading.Event()

    def __enter__(self) -> PeakRss:
        self.peak = self.proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    with PeakRss() as rss:
        started = time.perf_counter()
        fn()
        seconds = time.perf_counter() - started
    return seconds, rss.peak_mb


def bare_table(con: Any, arrow: pa.Table) -> None:
    """A table with the Arrow table's columns (DuckDB's types for them) and the posts' primary key."""
    con.register("arrow", arrow)
    columns = con.execute("DESCRIBE SELECT * FROM arrow").fetchall()
    cols = ", ".join(f'"{name}" {kind}' for name, kind, *_ in columns)
    con.execute(f"CREATE TABLE bare ({cols}, PRIMARY KEY (source, post_id))")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=5_000, help="rows for the executemany baseline")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    import duckdb

    table = generate_table(args.posts, seed=1)
    table = table.set_column(table.schema.get_field_index("terms"), "terms",
                             pa.array([["AI music"]] * table.num_rows, pa.list_(pa.string())))
    edited = table.set_column(
        table.schema.get_field_index("text"), "text",
        pc.if_else(pc.less(pc.random(table.num_rows, initializer=7), 0.1),
                   pc.binary_join_element_wise(table.column("text"), " (edited)", ""), table.column("text")),
    )
    arrow = table.select(list(POST_COLUMNS))  # what the baseline inserts: the same columns Store receives
    n = table.num_rows
    runs: dict[str, list[tuple[float, float]]] = {}
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{n:,} demo posts, {os.cpu_count()} CPUs, load average {load} at start, {args.rounds} rounds", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            store = Store(Path(tmp) / f"bench{r}.duckdb")
            steps: list[tuple[str, Callable[[], object]]] = [
                ("store: first insert", lambda store=store: store.upsert_posts(table)),
                ("store: re-upsert unchanged", lambda store=store: store.upsert_posts(table)),
                ("store: re-upsert, 10% edited", lambda store=store: store.upsert_posts(edited)),
            ]
            con = duckdb.connect(str(Path(tmp) / f"bare{r}.duckdb"))
            bare_table(con, arrow)
            steps += [
                ("bare: INSERT SELECT from Arrow", lambda con=con: con.execute("INSERT INTO bare SELECT * FROM arrow")),
                ("bare: INSERT ON CONFLICT DO NOTHING",
                 lambda con=con: con.execute("INSERT INTO bare SELECT * FROM arrow ON CONFLICT DO NOTHING")),
            ]
            for name, fn in steps:
                seconds, peak = timed(fn)
                runs.setdefault(name, []).append((seconds, peak))
                print(f"  round {r + 1} {name:<38} {n / seconds:>12,.0f} posts/s  peak RSS {peak:6.0f} MB", flush=True)
            con.close()
            assert store.count("posts") == n

        base = Store(Path(tmp) / "baseline.duckdb")
        sample = table.slice(0, args.sample).to_pylist()
        cols = ", ".join(POST_COLUMNS)
        marks = ", ".join("?" for _ in POST_COLUMNS)
        sets = ", ".join(f"{c} = excluded.{c}" for c in POST_COLUMNS if c not in ("source", "post_id"))
        sql = (f"INSERT INTO posts ({cols}, text_md5, first_seen_at, updated_at) VALUES ({marks}, md5(?), now(), "
               f"now()) ON CONFLICT (source, post_id) DO UPDATE SET {sets}")
        values = [[row[c] for c in POST_COLUMNS] + [row["text"]] for row in sample]

        def executemany() -> None:
            with base.connect() as c:
                c.execute("BEGIN")
                c.executemany(sql, values)
                c.execute("COMMIT")

        seconds, peak = timed(executemany)
        naive = len(values) / seconds
    print(f"\n{'step':<40} {'posts/s (median)':>16} {'peak RSS MB':>12}")
    rates = {}
    for name, values_ in runs.items():
        rates[name] = statistics.median(n / s for s, _ in values_)
        print(f"{name:<40} {rates[name]:16,.0f} {max(p for _, p in values_):12.0f}")
    print(f"{'naive: executemany, one transaction':<40} {naive:16,.0f} {peak:12.0f}  ({len(values):,}-post sample)")
    first = statistics.median(b[0] / a[0] for a, b in zip(runs["bare: INSERT SELECT from Arrow"],
                                                           runs["store: first insert"], strict=True))
    again = statistics.median(b[0] / a[0] for a, b in zip(runs["bare: INSERT ON CONFLICT DO NOTHING"],
                                                           runs["store: re-upsert unchanged"], strict=True))
    print(f"\nStore vs the bare Arrow insert (same primary key), median of per-round ratios: first insert "
          f"{1 / first:.2f}x, re-import of the same posts {1 / again:.2f}x; vs executemany: "
          f"{rates['store: first insert'] / naive:,.0f}x")
    print(json.dumps({"posts": n, "rounds": args.rounds, "rates": {k: round(v) for k, v in rates.items()},
                      "executemany": round(naive), "store_vs_bare_first": round(1 / first, 3),
                      "store_vs_bare_reimport": round(1 / again, 3),
                      "peak_rss_mb": {k: round(max(p for _, p in v)) for k, v in runs.items()}}))


if __name__ == "__main__":
    main()

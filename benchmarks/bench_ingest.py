"""Ingest benchmark: bulk upsert of demo posts vs a row-by-row ``executemany`` baseline.

    .venv/bin/python benchmarks/bench_ingest.py [--posts 1000000] [--sample 5000]

Prints posts/s for (1) the first insert of N posts into an empty database, (2) a full re-upsert of the same
N posts (nothing changes: the idempotent path), (3) a re-upsert where 10% of the posts changed, and
(4) the naive baseline: ``executemany`` of ``INSERT ... ON CONFLICT DO UPDATE`` on a sample, in one
transaction. Generation time is excluded; what is timed is exactly ``Store.upsert_posts``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from aimusic.core.records import POST_COLUMNS
from aimusic.sources.demo import generate_table
from aimusic.store.db import Store


def timed(label: str, n: int, fn) -> float:
    started = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - started
    rate = n / elapsed
    print(f"{label:<44} {n:>9,} posts  {elapsed:7.2f} s  {rate:>12,.0f} posts/s   {result or ''}")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=5_000, help="rows for the executemany baseline")
    args = parser.parse_args()

    table = generate_table(args.posts, seed=1)
    table = table.set_column(table.schema.get_field_index("terms"), "terms",
                             pa.array([["AI music"]] * table.num_rows, pa.list_(pa.string())))
    edited = table.set_column(
        table.schema.get_field_index("text"), "text",
        pc.if_else(pc.less(pc.random(table.num_rows, initializer=7), 0.1),
                   pc.binary_join_element_wise(table.column("text"), " (edited)", ""), table.column("text")),
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.duckdb")
        first = timed("bulk upsert, first insert (empty table)", table.num_rows, lambda: store.upsert_posts(table))
        again = timed("bulk upsert, re-upsert unchanged", table.num_rows, lambda: store.upsert_posts(table))
        timed("bulk upsert, re-upsert with 10% edited", table.num_rows, lambda: store.upsert_posts(edited))

        base = Store(Path(tmp) / "baseline.duckdb")
        sample = table.slice(0, args.sample).to_pylist()
        cols = ", ".join(POST_COLUMNS)
        marks = ", ".join("?" for _ in POST_COLUMNS)
        sets = ", ".join(f"{c} = excluded.{c}" for c in POST_COLUMNS if c not in ("source", "post_id"))
        sql = (
            f"INSERT INTO posts ({cols}, text_md5, first_seen_at, updated_at) "
            f"VALUES ({marks}, md5(?), now(), now()) ON CONFLICT (source, post_id) DO UPDATE SET {sets}"
        )
        values = [[row[c] for c in POST_COLUMNS] + [row["text"]] for row in sample]

        def executemany() -> str:
            with base.connect() as con:
                con.execute("BEGIN")
                con.executemany(sql, values)
                con.execute("COMMIT")
            return ""

        naive = timed("baseline: executemany in one transaction", len(values), executemany)
        print(f"\nspeed-up over executemany: first insert {first / naive:,.0f}x, re-upsert {again / naive:,.0f}x")
        print(f"final rows: {store.count('posts'):,} (expected {table.num_rows:,})")


if __name__ == "__main__":
    main()

"""Building the dashboard benchmark's database (see ``bench_dashboard.py``'s docstring): up to --base demo posts
through the real pipeline (:func:`seed`), the sample multiplied inside DuckDB (:func:`multiply`), and, on request,
the busiest authors split into realistic ones (:func:`spread_authors`)."""

from __future__ import annotations

import math
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import duckdb

from aimusic.core.topics import load_topics
from aimusic.debate.relevance import RelevanceFilter
from aimusic.debate.signals import tag_entities
from aimusic.pipeline.collect import score_posts
from aimusic.sources.demo import event_dates, generate_table
from aimusic.store.db import Store
from sentiment import load_scorer

#: the last day of the seeded data
END = date(2026, 2, 28)


def seed(path: Path, n: int) -> None:
    topics = load_topics()
    started = time.perf_counter()
    table = generate_table(n, seed=42, end=END, days=180, events=event_dates(topics))
    store = Store(path)
    store.set_meta("contains_demo", "true")
    relevance = RelevanceFilter(topics)
    for offset in range(0, n, 100_000):
        part, _ = relevance.filter_table(table.slice(offset, 100_000))
        store.upsert_posts(part)
    written = time.perf_counter()
    tag_entities(store, topics)
    tagged = time.perf_counter()
    score_posts(store, load_scorer("vader"), batch_size=100_000)
    print(f"seeded {store.count('posts'):,} posts in {written - started:.1f}s, tagged their entities in "
          f"{tagged - written:.1f}s, scored them with VADER in {time.perf_counter() - tagged:.1f}s")


#: per-copy columns of posts (``{i}``: the copy's number; ``{lo}``, ``{span}``: the sample's time range in µs)
_COPY_POSTS = """
    post_id || '~{i}' AS post_id,
    make_timestamptz({lo} + (((epoch_us(created_at) - {lo}
        + ((hash(post_id || '~{i}') % 604800)::BIGINT - 302400) * 1000000) % {span}) + {span}) % {span}) AS created_at,
    CASE WHEN author IS NULL THEN NULL
         WHEN hash(post_id || '~{i}u') % 10 = 0 THEN 'u' || (hash(post_id || '~{i}') % 2000000)::VARCHAR
         WHEN hash(author || '~{i}') % 3 = 0 THEN author ELSE author || '.{i}' END AS author,
    CASE WHEN community IS NULL OR hash(community || '~{i}') % 2 = 0 THEN community
         ELSE community || '-{m}' END AS community,
    now() AS fetched_at, now() AS first_seen_at, now() AS updated_at"""
#: the tables keyed by post whose rows travel with their post
_COPY_TABLES = {"scores": "scored_at", "stances": "scored_at", "post_arguments": "tagged_at"}


def multiply(path: Path, factor: float) -> None:
    """Grow the seeded sample ``factor``-fold inside DuckDB (see the module docstring)."""
    started = time.perf_counter()
    with duckdb.connect(str(path)) as con:
        con.execute("SET TimeZone = 'UTC'")
        base, lo, hi = con.execute("SELECT count(*), min(epoch_us(created_at)), max(epoch_us(created_at)) FROM posts"
                                   ).fetchall()[0]
        extra = round(base * factor) - base
        span = hi - lo + 1
        for i in range(1, math.ceil(extra / base) + 1):
            part = min(base, extra - (i - 1) * base)
            # a partial last copy takes the posts whose hash falls under the share it needs
            keep = "TRUE" if part == base else f"hash(post_id || '~{i}k') % 1000000 < {part * 1_000_000 // base}"
            con.execute("BEGIN")
            con.execute(f"INSERT INTO posts SELECT * REPLACE ({_COPY_POSTS.format(i=i, lo=lo, span=span, m=i % 4)}) "
                        f"FROM posts WHERE NOT contains(post_id, '~') AND {keep}")
            for table, stamp in _COPY_TABLES.items():
                con.execute(f"INSERT INTO {table} SELECT * REPLACE (post_id || '~{i}' AS post_id, now() AS {stamp}) "
                            f"FROM {table} WHERE NOT contains(post_id, '~') AND {keep}")
            con.execute("COMMIT")
            print(f"  copy {i}: {con.execute('SELECT count(*) FROM posts').fetchall()[0][0]:,} posts "
                  f"({time.perf_counter() - started:.0f}s)", flush=True)
    multiplied = time.perf_counter()
    mode = Store(path).refresh_summary(full=True)
    print(f"multiplied to {Store(path).count('posts'):,} posts in {multiplied - started:.1f}s; dashboard summary "
          f"({mode} build) in {time.perf_counter() - multiplied:.1f}s")


def spread_authors(path: Path, most: int) -> None:
    """Split every author with more than ``most`` posts into authors of at most about ``most`` posts each
    (``<handle>~<k>``, k from a hash of the post id), then bring the dashboard's summary up to date."""
    started = time.perf_counter()
    with duckdb.connect(str(path)) as con:
        con.execute(f"CREATE TEMP TABLE big AS SELECT author, count(*) AS n FROM posts WHERE author IS NOT NULL "
                    f"GROUP BY author HAVING count(*) > {int(most)}")
        handles, moved = con.execute("SELECT count(*), coalesce(sum(n), 0) FROM big").fetchall()[0]
        con.execute(f"""UPDATE posts SET updated_at = now(), author = posts.author || '~' ||
                            (hash(posts.post_id) % ceil(big.n / {int(most)}.0)::BIGINT)::VARCHAR
                        FROM big WHERE big.author = posts.author""")
    mode = Store(path).refresh_summary()
    print(f"split {handles} authors holding {moved:,} posts into authors of <= ~{most:,} posts "
          f"({time.perf_counter() - started:.0f}s, summary {mode})")


def author_share(path: Path) -> float:
    """The busiest author's share of the posts."""
    with duckdb.connect(str(path), read_only=True) as con:
        return float(con.execute("SELECT max(n) / sum(n) FROM (SELECT count(*) AS n FROM posts GROUP BY author)"
                                 ).fetchall()[0][0] or 0.0)

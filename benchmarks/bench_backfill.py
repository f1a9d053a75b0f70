"""Benchmark ``aimusic backfill`` on a Reddit comment dump: lines/s and peak memory, then a re-import.

    .venv/bin/python benchmarks/bench_backfill.py                 # 1,000,000 lines (targets: >= 150,000/s, < 1 GB)
    .venv/bin/python benchmarks/bench_backfill.py --lines 20000   # a quick check

Four imports of the same dump, each into a fresh database in its own process, in one run (compare their ratios:
the machine is shared): the bulk reader with the second relevance stage (the default: overlapped with the
reading), the bulk reader with the rules only, the bulk reader with the second stage run in place (not
overlapped), and the line reader with the second stage (the baseline: how every line was read before). The bulk
and line readers must store the same rows (checked). Each prints lines/s, peak memory, the lines handed to the
per-line Python code and the texts the second stage embedded, with the load average.

It writes a zstd NDJSON dump of realistic Reddit comments (the fields and value shapes of Arctic Shift's
comment dumps, ~1.3 kB a line; a realistic share mentions AI music; some lines have a string ``created_utc``,
no ``author``, a null ``score``, a deleted body; a few are corrupt), then imports it into a fresh database **in a
child process** so the figures are the import's own: wall time, lines/s and the process's peak resident memory
(``ru_maxrss``, which counts native memory: DuckDB, Arrow, zstd). Then it imports the same file again (recognised
as done: nothing read) and once more with ``--force`` (every line read again): both must add no rows.

The dump is cached under ``benchmarks/out/`` (git-ignored) and reused. ``--long-window`` compresses it like the
published dumps (``--long=31``): zstd then needs a window buffer as large as the data (up to 2 GB) to decompress,
which shows in the peak memory; that memory belongs to the format, not to the importer.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
sys.path.insert(0, str(ROOT))

SUBREDDITS = [
    ("Music", 0.26),
    ("WeAreTheMusicMakers", 0.16),
    ("country", 0.12),
    ("edmproduction", 0.1),
    ("musicindustry", 0.05),
    ("Guitar", 0.1),
    ("rust", 0.05),
    ("artificial", 0.06),
    ("hiphopheads", 0.08),
    ("SunoAI", 0.02),
]
FILLER = (
    "I think the chorus on this one is really strong but the mix feels a bit muddy in the low end. "
    "Been playing guitar for ten years and I still can't get that tone right. "
    "Honestly the live version is way better than the studio recording. "
    "Does anyone know what reverb they used on the vocals here? "
    "This album got me through a rough year, every track is a banger. "
    "The drummer is criminally underrated, listen to the fills in the bridge. "
    "My band just played our first gig last weekend and it went great! "
    "Streaming payouts are a joke, we made eleven dollars from ten thousand plays. "
    "Try sidechaining the pad to the kick, it opens up the whole mix. "
    "Lyrics are fine but the melody is what carries the song for me. "
    "The borrow checker rejected my code again, lifetimes are hard. "
    "Anyone else think the new single sounds like every other pop song right now? "
    "Saw them at a festival in 2019 and the crowd was insane. "
    "I said it again and again, the label ruined their sound. "
)
RELEVANT = [
    "Suno just made a better country song than half of Nashville, that's depressing.",
    "AI music is theft, the models were trained on our songs without consent.",
    "Breaking Rust topping a Billboard chart with an AI song is a disgrace.",
    "I've been using Udio to sketch demos, honestly a great tool for songwriters.",
    "Xania Monet signing a record deal shows where the industry is heading.",
    "The Velvet Sundown fooled everyone, label AI-generated music clearly please.",
    "AI generated song on my Discover Weekly again. Spotify needs a filter.",
    "Tried Suno v5 with my own lyrics, the vocals are scary good.",
    "Is AI music going to replace session musicians? Seems like it already is.",
    "Walk My Walk by Breaking Rust is catchy but it's still AI slop music.",
]
AMBIGUOUS = [
    "Happy birthday Suno! Hope you have a great day.",
    "Breaking Rust changes in the new edition broke my cargo build.",
    "My cousin Cain Walker is visiting next week.",
]


def _text(rng: random.Random, subreddit: str) -> str:
    n = max(20, int(rng.lognormvariate(4.9, 0.9)))  # median ~135 characters
    start = rng.randrange(0, len(FILLER) - 1)
    base = (FILLER[start:] + FILLER)[:n]
    roll = rng.random()
    if subreddit == "SunoAI" or roll < 0.045:
        return base + " " + rng.choice(RELEVANT) if rng.random() < 0.5 else rng.choice(RELEVANT) + " " + base
    if roll < 0.055:
        return rng.choice(AMBIGUOUS) + " " + base
    return base


def comment(rng: random.Random, i: int, now: int) -> dict:
    subreddit = rng.choices([s for s, _ in SUBREDDITS], weights=[w for _, w in SUBREDDITS])[0]
    created = now - rng.randrange(0, 30 * 86_400)
    link = f"1o{rng.randrange(36**5):05x}"
    cid = f"n{i:07x}"
    body = "[deleted]" if rng.random() < 0.03 else _text(rng, subreddit)
    item = {
        "all_awardings": [],
        "archived": False,
        "associated_award": None,
        "author": rng.choice(["[deleted]"] + [f"user_{rng.randrange(200_000)}" for _ in range(30)]),
        "author_created_utc": created - rng.randrange(10**8),
        "author_flair_background_color": None,
        "author_flair_css_class": None,
        "author_flair_richtext": [],
        "author_flair_template_id": None,
        "author_flair_text": None,
        "author_flair_text_color": None,
        "author_flair_type": "text",
        "author_fullname": f"t2_{rng.randrange(36**7):x}",
        "author_patreon_flair": False,
        "author_premium": False,
        "body": body,
        "can_gild": True,
        "collapsed": False,
        "collapsed_because_crowd_control": None,
        "collapsed_reason": None,
        "collapsed_reason_code": None,
        "comment_type": None,
        "controversiality": 0,
        "created_utc": created,
        "distinguished": None,
        "edited": False,
        "gilded": 0,
        "gildings": {},
        "id": cid,
        "is_submitter": rng.random() < 0.1,
        "link_id": f"t3_{link}",
        "locked": False,
        "name": f"t1_{cid}",
        "no_follow": True,
        "parent_id": f"t3_{link}",
        "permalink": f"/r/{subreddit}/comments/{link}/some_title/{cid}/",
        "retrieved_on": created + 36 * 3600,
        "score": rng.randrange(-5, 200),
        "score_hidden": False,
        "send_replies": True,
        "stickied": False,
        "subreddit": subreddit,
        "subreddit_id": f"t5_{rng.randrange(36**5):x}",
        "subreddit_name_prefixed": f"r/{subreddit}",
        "subreddit_type": "public",
        "top_awarded_type": None,
        "total_awards_received": 0,
        "treatment_tags": [],
        "unrepliable_reason": None,
    }
    roll = rng.random()
    if roll < 0.02:
        item["created_utc"] = str(created)  # old dumps: a string
    elif roll < 0.03:
        del item["author"]
    elif roll < 0.04:
        item["score"] = None
    return item


def make_dump(path: Path, lines: int, seed: int, long_window: bool) -> None:
    import orjson
    import zstandard

    rng = random.Random(seed)
    now = 1_763_000_000
    params = zstandard.ZstdCompressionParameters.from_level(
        3, window_log=31 if long_window else 0, enable_ldm=long_window
    )
    cctx = zstandard.ZstdCompressor(compression_params=params)
    tmp = path.with_suffix(".partial")
    with tmp.open("wb") as fh, cctx.stream_writer(fh) as writer:
        buffer = []
        for i in range(lines):
            if i % 100_000 == 99_999:
                buffer.append(b'{"id": "broken", "body": "a line cut short by a bad dow')  # corrupt
            else:
                buffer.append(orjson.dumps(comment(rng, i, now)))
            if len(buffer) >= 10_000:
                writer.write(b"\n".join(buffer) + b"\n")
                buffer = []
        if buffer:
            writer.write(b"\n".join(buffer) + b"\n")
    tmp.rename(path)


def child_import(dump: Path, db: Path, force: bool, bulk: bool = True, second_stage: bool = True,
                 overlap: bool = True) -> None:
    """Runs in a fresh process: import, print a JSON line with the figures and this process's peak memory."""
    from aimusic.core.topics import load_topics
    from aimusic.pipeline.backfill import BackfillOptions, backfill_paths
    from aimusic.store.db import Store

    store = Store(db)
    before = store.count("posts")
    options = BackfillOptions(force=force, quarantine_dir=db.parent / "quarantine", bulk=bulk,
                              second_stage=second_stage, overlap=overlap)
    topics = load_topics()
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    (report,) = backfill_paths([dump], store, topics, options)
    seconds = time.perf_counter() - started
    after = store.count("posts")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak_mb = usage.ru_maxrss / 1024  # Linux: KiB
    cpu = usage.ru_utime + usage.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime
    print(
        json.dumps(
            {
                "lines": report.lines,
                "relevant": report.relevant,
                "new": report.new,
                "duplicates": report.duplicates,
                "bad": report.bad,
                "already_done": report.already_done,
                "seconds": seconds,
                "rows_before": before,
                "rows_after": after,
                "peak_mb": peak_mb,
                # a first export of the second stage's model runs in a child process (0 when the graph was cached)
                "export_child_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                "cpu_seconds": cpu,
                "reader": report.reader,
                "candidates": report.candidates,
                "embedded": report.embedded,
                "load": os.getloadavg()[0],
            }
        )
    )


def run_child(dump: Path, db: Path, force: bool = False, bulk: bool = True, second_stage: bool = True,
              overlap: bool = True) -> dict:
    cmd = [sys.executable, __file__, "--child", str(dump), "--db", str(db)] + (["--force"] if force else [])
    cmd += ([] if bulk else ["--lines-reader"]) + ([] if second_stage else ["--rules-only"])
    cmd += [] if overlap else ["--in-place"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"import failed ({done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--long-window", action="store_true", help="compress like the published dumps (--long=31)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--force", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--lines-reader", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rules-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--in-place", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_import(args.child, args.db, args.force, not args.lines_reader, not args.rules_only, not args.in_place)
        return

    OUT.mkdir(parents=True, exist_ok=True)
    dump = OUT / f"RC_bench_{args.lines}_{args.seed}{'_long' if args.long_window else ''}.zst"
    if not dump.exists():
        started = time.perf_counter()
        make_dump(dump, args.lines, args.seed, args.long_window)
        print(f"wrote {dump} ({dump.stat().st_size / 1e6:.1f} MB compressed) in {time.perf_counter() - started:.1f}s")
    else:
        print(f"reusing {dump} ({dump.stat().st_size / 1e6:.1f} MB compressed)")

    with tempfile.TemporaryDirectory(prefix="bench_backfill_") as tmp:
        db = Path(tmp) / "bench.duckdb"
        first = run_child(dump, db)
        _print("bulk reader, rules + second stage", first)
        rules = run_child(dump, Path(tmp) / "rules.duckdb", second_stage=False)
        _print("bulk reader, rules only", rules)
        serial = run_child(dump, Path(tmp) / "serial.duckdb", overlap=False)
        _print("bulk reader, rules + second stage in place (not overlapped)", serial)
        base = run_child(dump, Path(tmp) / "lines.duckdb", bulk=False)
        _print("line reader (baseline), rules + second stage", base)
        print(f"ratios in this run: bulk + second stage = {_rate(first) / _rate(base):.2f}x the line reader; "
              f"bulk rules only = {_rate(rules) / _rate(base):.2f}x; overlapped second stage = "
              f"{_rate(first) / _rate(serial):.2f}x in place")
        print(f"same rows stored overlapped and in place: {_same_rows(db, Path(tmp) / 'serial.duckdb')}")
        print(f"same rows stored by the bulk and the line reader: {_same_rows(db, Path(tmp) / 'lines.duckdb')}")
        again = run_child(dump, db)
        print(
            f"re-import: already done = {again['already_done']}, {again['seconds']:.2f}s, "
            f"rows {again['rows_before']:,} -> {again['rows_after']:,} "
            f"({again['rows_after'] - again['rows_before']} added)"
        )
        forced = run_child(dump, db, force=True)
        print(
            f"re-import --force: {forced['lines']:,} lines read again in {forced['seconds']:.1f}s, "
            f"new {forced['new']}, rows {forced['rows_before']:,} -> {forced['rows_after']:,} "
            f"({forced['rows_after'] - forced['rows_before']} added); peak {forced['peak_mb']:,.0f} MB"
        )
        print(f"cpu: {os.cpu_count()} cores visible; load average {os.getloadavg()[0]:.2f}")


def _rate(result: dict) -> float:
    return result["lines"] / result["seconds"]


def _print(name: str, r: dict) -> None:
    print(
        f"{name}: {r['lines']:,} lines in {r['seconds']:.1f}s = {_rate(r):,.0f} lines/s "
        f"({r['lines'] / r['cpu_seconds']:,.0f} per cpu-second); peak {r['peak_mb']:,.0f} MB; "
        f"relevant {r['relevant']:,}, new {r['new']:,}, bad {r['bad']:,}; handed to Python {r['candidates']:,}; "
        f"embedded {r['embedded']:,}; load average {r['load']:.2f}"
    )
    if r.get("export_child_peak_mb"):
        print(f"  (this run exported the second stage's model to ONNX first, once per machine: in a child process "
              f"that peaked at {r['export_child_peak_mb']:,.0f} MB and ended before the reading began)")


def _same_rows(a: Path, b: Path) -> bool:
    import duckdb

    query = "SELECT * EXCLUDE (first_seen_at, updated_at) FROM db.posts ORDER BY source, post_id"
    rows = []
    for path in (a, b):
        with duckdb.connect(str(path), read_only=True) as con:
            rows.append(con.sql(query.replace("db.", "")).fetchall())
    return rows[0] == rows[1]


if __name__ == "__main__":
    main()

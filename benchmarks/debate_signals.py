"""Speed and quality of the debate signals; prints figures (never asserts).

    .venv/bin/python benchmarks/debate_signals.py [--posts 200000] [--encode 1000]

- relevance rules: lines/s of ``RelevanceFilter.filter_table`` on synthetic demo posts (backfill needs >= 20k/s),
  rules alone and with the semantic second stage; precision/recall of both on the labelled sets, each named
  with its n (``benchmarks/bench_relevance.py`` has the second stage's own costs);
- entity tagging: posts/s of ``EntityTagger.tag_many``;
- stance + arguments: posts/s of the shared-embedding pass (the encoder dominates), and the stance head's
  held-out macro recall, expected calibration error and confusion matrix on each held-out file (``--dev`` adds
  e.g. realistic_dev.tsv as a development figure);
- arguments: recall ("the labelled argument is among the assigned ones") and arguments per post on
  tests/data/arguments.tsv, dev and held-out parts.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=200_000, help="demo posts for the rules' speed")
    parser.add_argument("--encode", type=int, default=1_000, help="posts for the stance/arguments speed")
    parser.add_argument("--dev", type=Path, action="append", default=[], help="more labelled sets to measure")
    args = parser.parse_args()

    from aimusic.cli.debate import relevance_figures, stance_figures
    from aimusic.core.topics import load_topics
    from aimusic.debate.arguments import ArgumentTagger
    from aimusic.debate.entities import EntityTagger
    from aimusic.debate.labelled import DATA_DIR, RELEVANCE_SET, load_labelled
    from aimusic.debate.relevance import RelevanceFilter
    from aimusic.sources.demo import generate_table
    from sentiment.stance import embed, load_stance

    topics = load_topics()
    table = generate_table(args.posts, seed=7)
    for name, semantic in (("rules", None), ("rules + second stage", "auto")):
        rules = RelevanceFilter(topics, semantic=semantic, broad=False)  # as backfill runs (goal >= 20k lines/s)
        started = time.perf_counter()
        kept, dropped = rules.filter_table(table)
        seconds = time.perf_counter() - started
        print(f"relevance {name}: {table.num_rows:,} demo posts in {seconds:.2f}s = "
              f"{table.num_rows / seconds:,.0f} lines/s ({dropped:,} dropped)")
    for path in (RELEVANCE_SET, DATA_DIR / "relevance_heldout.tsv", *args.dev):
        f = relevance_figures(path, None)
        for part in ("rules", "rules+semantic", "heldout"):
            if part in f:
                r = f[part]
                print(f"relevance {part:<15} on {path.name} (n={r['n']}): precision {r['precision']:.3f} "
                      f"recall {r['recall']:.3f}")

    texts = [t or "" for t in kept.column("text").to_pylist()]
    tagger = EntityTagger.from_topics(topics)
    started = time.perf_counter()
    tagger.tag_many(texts)
    print(f"entity tagging: {len(texts) / (time.perf_counter() - started):,.0f} posts/s")

    scorer = load_stance()
    arguments = ArgumentTagger.from_topics(topics)
    sample = texts[: args.encode]
    embed(sample[:8])  # load the encoder outside the timing
    started = time.perf_counter()
    vectors = embed(sample)
    encoded = time.perf_counter() - started
    scorer.score(sample, embeddings=vectors)
    arguments.assign(sample, vectors)
    total = time.perf_counter() - started
    print(f"stance + arguments: {len(sample)} posts in {total:.1f}s = {len(sample) / total:,.1f} posts/s "
          f"(encoding {encoded / total:.0%} of the time)")

    for path in (DATA_DIR / "stance_eval.tsv", DATA_DIR / "stance_dev_heldout.tsv", *args.dev):
        f = stance_figures(None, path)
        print(f"stance {f['model']} on {path.name} (n={f['n']}): macro recall {f['macro_recall']:.3f}, "
              f"ECE {f['ece']:.3f}, unclear {f['unclear']}, pro/anti confusions {f['pro_anti_confusions']}, "
              f"confusion {f['confusion']}")

    rows = load_labelled(DATA_DIR / "arguments.tsv")
    assigned = arguments.assign([e.text for e in rows])
    for part in ("dev", "heldout", "all"):
        idx = [i for i, e in enumerate(rows) if (part == "all" or e.split == part) and e.label != "none"]
        hit = sum(rows[i].label in assigned[i].arguments for i in idx)
        per_post = sum(len(assigned[i].arguments) for i in idx) / max(len(idx), 1)
        print(f"arguments {part:<8} n={len(idx)} recall={hit / max(len(idx), 1):.3f} "
              f"precision={hit / max(sum(len(assigned[i].arguments) for i in idx), 1):.3f} per_post={per_post:.2f}")


if __name__ == "__main__":
    main()

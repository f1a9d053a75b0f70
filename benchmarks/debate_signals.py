"""Speed and quality of the debate signals; prints figures (never asserts).

    .venv/bin/python benchmarks/debate_signals.py [--posts 200000] [--encode 1000]

- relevance rules: lines/s of ``RelevanceFilter.filter_table`` on synthetic demo posts (backfill needs >= 20k/s),
  and precision/recall on tests/data/relevance.tsv (all, dev, held-out);
- entity tagging: posts/s of ``EntityTagger.tag_many``;
- stance + arguments: posts/s of the shared-embedding pass (the encoder dominates), and the stance head's
  held-out macro recall and confusion matrix on tests/data/stance_eval.tsv;
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
    args = parser.parse_args()

    from aimusic.core.topics import load_topics
    from aimusic.debate.arguments import ArgumentTagger
    from aimusic.debate.entities import EntityTagger
    from aimusic.debate.labelled import DATA_DIR, RELEVANCE_SET, evaluate_relevance, load_labelled, multi_report
    from aimusic.debate.relevance import RelevanceFilter
    from aimusic.sources.demo import generate_table
    from sentiment.stance import STANCE_LABELS, embed, load_stance

    topics = load_topics()
    rules = RelevanceFilter(topics)
    table = generate_table(args.posts, seed=7)
    started = time.perf_counter()
    kept, dropped = rules.filter_table(table)
    seconds = time.perf_counter() - started
    print(f"relevance rules: {table.num_rows:,} demo posts in {seconds:.2f}s = {table.num_rows / seconds:,.0f} lines/s "
          f"({dropped:,} dropped)")
    for part, report in evaluate_relevance(rules.check, load_labelled(RELEVANCE_SET)).items():
        print(f"relevance quality {part:<8} {report.line()}")

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

    held = load_labelled(DATA_DIR / "stance_eval.tsv")
    labels = scorer.score([e.text for e in held]).labels
    report = multi_report([e.label for e in held], [lab or "neutral" for lab in labels], STANCE_LABELS)
    print(f"stance {scorer.model_id} on {report.n} held-out posts: macro recall {report.macro_recall:.3f}, "
          f"accuracy {report.accuracy:.3f}")
    print(report.table())

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

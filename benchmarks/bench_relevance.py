"""Cost of the two relevance stages; prints figures (never asserts).

    .venv/bin/python benchmarks/bench_relevance.py [--real ../shared/data/sentiment/train.tsv] [--n 20000]

- the rules alone and the rules with the second stage's pre-check, in microseconds per text, on ``--real``
  texts (real tweets about anything: a stand-in for the mixed stream a bulk import reads) and on the synthetic
  Reddit-comment lines of ``benchmarks/bench_backfill.py``;
- how many texts the pre-check sends to the classifier (the only ones embedded), and the classifier's texts/s,
  so the effect on ``aimusic backfill`` can be estimated for a stream with any share of such texts:
  lines/s with the second stage ~= 1 / (1 / rules_rate + share / classifier_rate).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _synthetic(n: int) -> list[str]:
    from benchmarks.bench_backfill import comment  # the benchmark's own generator

    rng = random.Random(7)
    return [comment(rng, i, 1_763_000_000)["body"] for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--real", type=Path, help="a labelled TSV of real texts (label and text columns)")
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--embed", type=int, default=300, help="texts for the classifier's speed")
    args = parser.parse_args()

    from aimusic.core.topics import load_topics
    from aimusic.debate.quickfilter import QuickRelevance
    from aimusic.debate.relevance import RelevanceFilter
    from aimusic.debate.semantic import load_semantic
    from sentiment.evaluate import read_tsv

    topics = load_topics()
    semantic = load_semantic()
    rules = QuickRelevance(RelevanceFilter(topics, semantic=None))
    streams = {"synthetic Reddit comments (bench_backfill)": _synthetic(args.n)}
    if args.real:
        texts = read_tsv(args.real, None).texts
        streams[f"{args.real.name} (real texts)"] = random.Random(0).sample(texts, min(args.n, len(texts)))
    for name, texts in streams.items():
        started = time.perf_counter()
        for t in texts:
            rules.could_match(t)
        rule_us = (time.perf_counter() - started) / len(texts) * 1e6
        both = RelevanceFilter(topics, semantic=semantic, broad=False)  # as aimusic backfill builds it
        quick = QuickRelevance(both)
        started = time.perf_counter()
        passing = [t for t in texts if quick.could_match(t)]
        quick_us = (time.perf_counter() - started) / len(texts) * 1e6
        ruled = [both.rules(t) for t in passing]
        unsure = [t for t, r in zip(passing, ruled, strict=True) if r.unsure]
        print(f"{name}: {len(texts):,} texts; pre-check {rule_us:.1f} us/text rules only, {quick_us:.1f} us/text "
              f"with the second stage's stems; {len(unsure):,} ({len(unsure) / len(texts):.2%}) go to the classifier")
        if semantic is not None and unsure:
            sample = unsure[: args.embed]
            semantic.probabilities(sample[:4])  # load the encoder outside the timing
            started = time.perf_counter()
            probs = semantic.probabilities([s + " " for s in sample])  # a space: not served from the cache
            seconds = time.perf_counter() - started
            kept = sum(p is not None and p >= semantic.threshold for p in probs)
            print(f"  classifier: {len(sample)} texts in {seconds:.1f}s = {len(sample) / seconds:,.0f} texts/s; "
                  f"{kept} of them over the threshold ({semantic.threshold})")


if __name__ == "__main__":
    main()

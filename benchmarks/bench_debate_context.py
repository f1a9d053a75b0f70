"""What reading sentiment with stance costs: ``minilm-debate`` against ``minilm-ft`` on posts about AI music.

    python benchmarks/bench_debate_context.py [--chunk 64]

Texts: every row of the labelled debate files in ``tests/data`` (``debate_train*.tsv``, ``debate_heldout*.tsv``:
posts about AI music and near misses, longer than tweets). Modes, interleaved chunk by chunk in one process
(see :mod:`benchlib`):

- ``minilm-ft``: the sentiment model alone (the baseline);
- ``minilm-debate``: the offline default, as ``aimusic eval`` and the monitor's scoring step run it: the
  relevance check, then the stance ``ensemble`` for the texts about AI music;
- ``head member``: the previous default ``minilm-debate@a2c3b3a27ead`` (until 28 November 2026): the ``minilm``
  stance head as its stance member (one encoder pass) and the relevance check without the broad class.

With ``--run`` it also times what a monitoring run does with each chunk, scoring and then the signals step's
stance (the default ``ensemble``, every text): ``run, head member`` (the stance read twice for posts about AI
music: by the head when scoring, by the ensemble for the signals) against ``run, minilm-debate`` (the
ensemble's results kept from scoring, read again only for the other texts).

The shared encoder's cache and the ensemble's kept results are emptied before every call, so each mode pays its
full work. Prints posts/s, the ratio to the baseline and the share of labels that differ from ``minilm-ft``'s.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import ROOT, agreement, interleave, load_average, pair, spread

MODES = ("minilm-ft", "minilm-debate", "head member")
RUN_MODES = ("run, head member", "run, minilm-debate")


def texts() -> list[str]:
    out: list[str] = []
    for path in sorted((ROOT / "tests" / "data").glob("debate_*.tsv")):
        with path.open(encoding="utf-8", newline="") as fh:
            out += [r["text"].replace("\\n", "\n") for r in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)]
    return out


def make(mode: str) -> tuple[Callable[[list[str]], list[str]], dict[str, Any]]:
    import sentiment.embedding as embedding
    from sentiment import LABELS, load_scorer
    from sentiment.debate_context import DebateContextScorer, _Gate
    from sentiment.stance import MinilmStanceScorer, load_stance
    from sentiment.stance_ens import forget_results

    name = mode.removeprefix("run, ")
    head = name == "head member"
    scorer = (DebateContextScorer(stance=MinilmStanceScorer(eager=False), gate=_Gate(broad=False)) if head
              else load_scorer(name))
    signals = load_stance() if mode.startswith("run, ") else None

    def score(batch: list[str]) -> list[str]:
        with embedding._CACHE_LOCK:
            embedding._CACHE.clear()
        forget_results()
        labels = [LABELS[i] for i in scorer.predict_proba(batch).argmax(axis=1)]
        if signals is not None:
            signals.predict_proba(batch)  # the signals step's stance of the same posts
        return labels

    return score, {"model_id": scorer.model_id}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument("--run", action="store_true", help="also time scoring + the signals step's stance")
    args = parser.parse_args()
    data = texts()
    print(f"{len(data)} texts from tests/data/debate_*.tsv; load average {load_average()}", flush=True)
    mixed = interleave(make, MODES, data, args.chunk)
    labels = {mode: make(mode)[0](data) for mode in MODES}
    if args.run:
        run = interleave(make, RUN_MODES, data, args.chunk)
        ratio, chunks = pair(run, "run, minilm-debate", "run, head member")
        print(f"a run's scoring + stance: head member {run['posts_per_s']['run, head member']:.1f} posts/s, "
              f"minilm-debate {run['posts_per_s']['run, minilm-debate']:.1f} posts/s = {ratio:.2f}x "
              f"(per chunk {spread(chunks)})", flush=True)
    for mode in MODES:
        rate = mixed["posts_per_s"][mode]
        if mode == "minilm-ft":
            print(f"{mode:22s} {rate:7.1f} posts/s (baseline)")
            continue
        ratio, chunks = pair(mixed, mode, "minilm-ft")
        changed = 1 - agreement(labels[mode], labels["minilm-ft"])
        print(f"{mode:22s} {rate:7.1f} posts/s = {ratio:.2f}x the baseline (per chunk {spread(chunks)}); "
              f"{changed:.1%} of labels differ from minilm-ft's")
    print(json.dumps({"load_average": load_average(), "posts_per_s": mixed["posts_per_s"]}))


if __name__ == "__main__":
    main()

"""What reading sentiment with stance costs: ``minilm-debate`` against ``minilm-ft`` on posts about AI music.

    python benchmarks/bench_debate_context.py [--chunk 64]

Texts: every row of the labelled debate files in ``tests/data`` (``debate_train*.tsv``, ``debate_heldout*.tsv``:
posts about AI music and near misses, longer than tweets). Modes, interleaved chunk by chunk in one process
(see :mod:`benchlib`):

- ``minilm-ft``: the sentiment model alone (the baseline);
- ``minilm-debate``: the offline default, as ``aimusic eval`` and the monitor's scoring step run it: the
  relevance check, then the stance head's encoder pass for the texts about AI music.

The shared encoder's cache is emptied before every call, so each mode pays its full encoder work (in a
monitoring run the signals step then finds those embeddings cached). Prints posts/s, the ratio to the baseline
and the share of labels that differ from ``minilm-ft``'s.
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

MODES = ("minilm-ft", "minilm-debate")


def texts() -> list[str]:
    out: list[str] = []
    for path in sorted((ROOT / "tests" / "data").glob("debate_*.tsv")):
        with path.open(encoding="utf-8", newline="") as fh:
            out += [r["text"].replace("\\n", "\n") for r in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)]
    return out


def make(mode: str) -> tuple[Callable[[list[str]], list[str]], dict[str, Any]]:
    import sentiment.embedding as embedding
    from sentiment import LABELS, load_scorer

    scorer = load_scorer(mode)

    def score(batch: list[str]) -> list[str]:
        with embedding._CACHE_LOCK:
            embedding._CACHE.clear()
        return [LABELS[i] for i in scorer.predict_proba(batch).argmax(axis=1)]

    return score, {"model_id": scorer.model_id}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunk", type=int, default=64)
    args = parser.parse_args()
    data = texts()
    print(f"{len(data)} texts from tests/data/debate_*.tsv; load average {load_average()}", flush=True)
    mixed = interleave(make, MODES, data, args.chunk)
    labels = {mode: make(mode)[0](data) for mode in MODES}
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

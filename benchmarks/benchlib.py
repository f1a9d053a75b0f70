"""Helpers shared by the scoring benchmarks: fair ratios on a shared machine, quality, peak memory.

Two phases per benchmark:

1. **alone**: each mode in its own child process loads, warms up and scores all texts once; this gives its
   labels (quality, agreement), its load time and its peak RSS (the child's own ``ru_maxrss``).
2. **interleaved**: one child process loads every mode of a group (a baseline and its candidates), warms each
   up, then scores the same texts in small chunks, the modes taking turns on every chunk (order rotated). A
   change of load on the machine then hits every mode alike; the ratio is the ratio of total times, and the
   spread of per-chunk ratios is printed with it.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VAL = ROOT.parent / "shared" / "data" / "sentiment" / "val.tsv"

#: mode name -> loads the model and returns (score: texts -> labels, info)
Maker = Callable[[str], tuple[Callable[[list[str]], list[str]], dict[str, Any]]]


def peak_rss_mb() -> float:
    """This process's peak resident memory (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_average() -> str:
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover
        return "?"


def alone(make: Maker, mode: str, texts: list[str]) -> dict[str, Any]:
    """Phase 1 in a child: load, warm up, score everything once."""
    started = time.perf_counter()
    score, info = make(mode)
    load_s = time.perf_counter() - started
    score(texts[:32])
    started = time.perf_counter()
    labels = score(texts)
    seconds = time.perf_counter() - started
    return {"mode": mode, **info, "n": len(texts), "load_s": round(load_s, 2),
            "posts_per_s_alone": len(texts) / seconds, "peak_rss_mb": round(peak_rss_mb()), "labels": labels}


def interleave(make: Maker, modes: Sequence[str], texts: list[str], chunk: int) -> dict[str, Any]:
    """Phase 2 in a child: every mode loaded, then the modes take turns on each chunk of texts."""
    scorers = {mode: make(mode)[0] for mode in modes}
    for score in scorers.values():
        score(texts[:32])
    seconds = dict.fromkeys(modes, 0.0)
    per_chunk: list[dict[str, float]] = []
    for k, start in enumerate(range(0, len(texts), chunk)):
        part = texts[start : start + chunk]
        order = list(modes[k % len(modes) :]) + list(modes[: k % len(modes)])
        times = {}
        for mode in order:
            t0 = time.perf_counter()
            scorers[mode](part)
            times[mode] = time.perf_counter() - t0
            seconds[mode] += times[mode]
        per_chunk.append(times)
    return {
        "modes": list(modes), "n": len(texts), "chunk": chunk,
        "posts_per_s": {m: len(texts) / s for m, s in seconds.items()},
        "chunk_seconds": {m: [t[m] for t in per_chunk] for m in modes},
    }


def pair(mixed: dict[str, Any], mode: str, baseline: str) -> tuple[float, list[float]]:
    """From one interleaved run: throughput ratio mode / baseline (total times) and the per-chunk ratios."""
    ratio = mixed["posts_per_s"][mode] / mixed["posts_per_s"][baseline]
    chunks = [b / a for a, b in zip(mixed["chunk_seconds"][mode], mixed["chunk_seconds"][baseline], strict=True)]
    return ratio, chunks


def run_child(script: str, only: str, extra: Sequence[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``script --only ONLY extra...`` and return the JSON object it prints last (or an ``error``)."""
    cmd = [sys.executable, script, "--only", only, *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        print(f"  {only}: FAILED\n{proc.stderr.strip()[-1500:]}", flush=True)
        return {"mode": only, "error": proc.stderr.strip()[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def spread(values: Sequence[float]) -> str:
    """``median [min-max]`` of per-chunk ratios."""
    if not values:
        return "-"
    return f"median {statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"


def agreement(a: Sequence[str], b: Sequence[str]) -> float:
    return sum(x == y for x, y in zip(a, b, strict=True)) / max(len(a), 1)

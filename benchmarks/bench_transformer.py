"""Transformer scorer vs the naive baseline, on a roberta-base-sized model and the same real tweets.

    .venv/bin/python benchmarks/bench_transformer.py [--n 1000] [--precisions fp32,bf16,int8]

The model: roberta-base's architecture and size (125M parameters) with random weights (cost does not depend
on weight values), the packaged MiniLM WordPiece tokenizer, built offline by
:func:`sentiment.synthetic.build_base_classifier` and saved to a temporary directory. It is then loaded

- by the naive baseline a user would write: ``pipeline("text-classification", model=dir)`` called on one
  post at a time (torch's default threads);
- by the project's scorer exactly as users run it: ``load_scorer("transformer:<dir>")`` (optionally
  ``?precision=bf16|int8``), one ``score()`` call per 1,000 posts like the pipeline's batches.

Each mode runs in its own process, so peak memory (max RSS) is per mode and no thread setting leaks from
one to the other. Texts: the first ``--n`` tweets of ``../shared/data/sentiment/val.tsv``. Prints a table
and, last, one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "sentiment" / "val.tsv"
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def texts_from(path: Path, n: int) -> list[str]:
    from sentiment.evaluate import read_tsv

    return read_tsv(path).texts[:n]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_naive(model_dir: str, texts: list[str]) -> dict:
    import torch
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    started = time.perf_counter()
    clf = pipeline("text-classification", model=model_dir)
    load = time.perf_counter() - started
    clf(texts[0])  # warm-up
    started = time.perf_counter()
    labels = [clf(t)[0]["label"] for t in texts]
    elapsed = time.perf_counter() - started
    return {"mode": "naive pipeline, one post per call", "posts_per_s": len(texts) / elapsed, "seconds": elapsed,
            "load_s": load, "threads": torch.get_num_threads(), "peak_rss_mb": peak_rss_mb(), "n": len(labels)}


def run_scorer(model_dir: str, texts: list[str], precision: str, chunk: int) -> dict:
    import torch

    from sentiment import load_scorer

    started = time.perf_counter()
    scorer = load_scorer(f"transformer:{model_dir}?precision={precision}")
    load = time.perf_counter() - started
    scorer.score(texts[:16])  # warm-up
    started = time.perf_counter()
    n = 0
    for i in range(0, len(texts), chunk):
        n += sum(1 for s in scorer.score(texts[i : i + chunk]).status if s == "scored")
    elapsed = time.perf_counter() - started
    return {"mode": f"TransformerScorer {precision}", "model_id": scorer.model_id, "posts_per_s": len(texts) / elapsed,
            "seconds": elapsed, "load_s": load, "threads": torch.get_num_threads(), "peak_rss_mb": peak_rss_mb(),
            "n": n, "batch_size": scorer.batch_size}


def child(args: argparse.Namespace) -> None:
    texts = texts_from(args.data, args.n)
    result = run_naive(args.model_dir, texts) if args.only == "naive" else run_scorer(
        args.model_dir, texts, args.only, args.chunk
    )
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="tweets to score (default 1000)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--precisions", default="auto,fp32,bf16,int8",
                        help="scorer precisions to measure (auto: what users get by default here)")
    parser.add_argument("--chunk", type=int, default=1000, help="posts per score() call")
    parser.add_argument("--model-dir", help="reuse a model built earlier (default: build one in a temp dir)")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--only", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        child(args)
        return
    if not args.data.exists():
        sys.exit(f"{args.data} not found: pass --data PATH/val.tsv")
    with tempfile.TemporaryDirectory(prefix="aimusic-bench-") as tmp:
        model_dir = args.model_dir
        if not model_dir:
            from sentiment.synthetic import build_base_classifier

            started = time.perf_counter()
            model_dir = str(build_base_classifier(Path(tmp) / "roberta-base-random"))
            print(f"built a random roberta-base-sized classifier in {time.perf_counter() - started:.0f}s: {model_dir}",
                  flush=True)
        modes = ([] if args.skip_naive else ["naive"]) + [p.strip() for p in args.precisions.split(",") if p.strip()]
        results = []
        for mode in modes:
            cmd = [sys.executable, __file__, "--only", mode, "--model-dir", model_dir, "--n", str(args.n),
                   "--data", str(args.data), "--chunk", str(args.chunk)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                print(f"{mode} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
                continue
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            results.append(result)
            print(f"  {result['mode']:<36} {result['posts_per_s']:7.1f} posts/s  "
                  f"peak RSS {result['peak_rss_mb']:6.0f} MB  ({result['seconds']:.1f}s, load {result['load_s']:.1f}s, "
                  f"{result['threads']} threads)", flush=True)
    naive = next((r for r in results if r["mode"].startswith("naive")), None)
    print(f"\n{args.n} tweets from {args.data.name}, roberta-base-sized model (random weights), "
          f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
    print(f"{'mode':<36} {'posts/s':>8} {'vs naive':>9} {'peak RSS MB':>12}")
    for r in results:
        ratio = r["posts_per_s"] / naive["posts_per_s"] if naive else float("nan")
        r["ratio_vs_naive"] = round(ratio, 2)
        print(f"{r['mode']:<36} {r['posts_per_s']:8.1f} {ratio:8.2f}x {r['peak_rss_mb']:12.0f}")
    print(json.dumps({"n": args.n, "cpus": os.cpu_count(), "results": results}))


if __name__ == "__main__":
    main()

"""The fine-tuned MiniLM (``minilm-ft``) against the embedding + head scorer (``minilm``): quality and speed.

    .venv/bin/python benchmarks/bench_finetune.py [--data OTHER.tsv ...] [--n 2000] [--threads 2]
        [--weights sentiment/weights/minilm_ft.npz] [--scorers minilm-ft,minilm]

For every labelled TSV (``../shared/data/sentiment/val.tsv`` first, then each ``--data``; a ``label`` or
``sentiment`` column and a ``text`` column) it prints each scorer's macro-averaged recall (TweetEval's metric,
``sklearn.metrics.recall_score(average="macro")`` over negative/neutral/positive), accuracy and macro F1.

Speed: posts/s of ``score()`` on the same first ``--n`` texts of val.tsv in chunks of 1,000 (as the pipeline
calls it), with ``--threads`` torch threads, after a warm-up; the head scorer's embedding cache is cleared
first so both do the full work. Each scorer runs in its own process, so peak RSS is per scorer. Prints a table
and, last, one JSON line with every figure. Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "sentiment" / "val.tsv"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
LABEL_COLUMNS = ("label", "sentiment")


def read_labelled(path: Path) -> tuple[list[str], list[str]]:
    """(texts, labels) from a TSV whose label column is ``label`` or ``sentiment``; other labels are skipped.

    As in :func:`sentiment.evaluate.read_tsv`, a last ``text`` column may itself contain tabs.
    """
    from sentiment.base import LABELS

    lines = path.read_text(encoding="utf-8-sig").splitlines()
    header = [h.strip().lower() for h in lines[0].split("\t")] if lines else []
    column = next((header.index(c) for c in LABEL_COLUMNS if c in header), None)
    if column is None or "text" not in header:
        raise SystemExit(f"{path}: needs a 'text' column and one of {LABEL_COLUMNS}, got {header}")
    ti = header.index("text")
    texts, labels = [], []
    for line in lines[1:]:
        parts = line.split("\t", len(header) - 1) if ti == len(header) - 1 else line.split("\t")
        if len(parts) < len(header):
            continue
        label, text = parts[column].strip().lower(), parts[ti]
        if label in LABELS and text.strip():
            texts.append(text)
            labels.append(label)
    return texts, labels


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load(name: str, weights: str | None, threads: int):
    import torch

    torch.set_num_threads(threads)
    if name == "minilm-ft":
        from sentiment.finetuned import MinilmFinetunedScorer

        return MinilmFinetunedScorer(weights, threads=threads, device="cpu")
    from sentiment import load_scorer

    return load_scorer(name)


def worker(name: str, weights: str | None, threads: int, n: int, datasets: list[str]) -> dict:
    """Runs in a child process: load, score every data set, time ``score()`` on the first ``n`` val texts."""
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score, recall_score

    from sentiment.base import LABELS

    started = time.perf_counter()
    scorer = load(name, weights, threads)
    load_s = time.perf_counter() - started

    def clear_cache() -> None:
        try:
            from sentiment import embedding

            with embedding._CACHE_LOCK:
                embedding._CACHE.clear()
        except ImportError:
            pass

    quality = []
    for path in datasets:
        texts, labels = read_labelled(Path(path))
        pred = []
        for i in range(0, len(texts), 1_000):
            pred.extend(scorer.score(texts[i : i + 1_000]).labels)
        keep = [i for i, p in enumerate(pred) if p is not None]
        y = [labels[i] for i in keep]
        p = [pred[i] for i in keep]
        quality.append({
            "data": str(path), "n": len(texts), "not_scored": len(texts) - len(keep),
            "macro_recall": round(float(recall_score(y, p, average="macro", labels=list(LABELS))), 4),
            "accuracy": round(float(accuracy_score(y, p)), 4),
            "macro_f1": round(float(f1_score(y, p, average="macro", labels=list(LABELS))), 4),
        })
    speed_texts = read_labelled(Path(datasets[0]))[0][:n]
    clear_cache()
    scorer.score(speed_texts[:32])  # warm-up
    clear_cache()
    started = time.perf_counter()
    for i in range(0, len(speed_texts), 1_000):
        scorer.score(speed_texts[i : i + 1_000])
    elapsed = time.perf_counter() - started
    import torch

    return {
        "scorer": name, "model_id": scorer.model_id, "load_s": round(load_s, 2), "quality": quality,
        "speed_n": len(speed_texts), "posts_per_s": round(len(speed_texts) / elapsed, 1),
        "threads": torch.get_num_threads(), "peak_rss_mb": round(peak_rss_mb(), 1),
        "mean_chars": round(float(np.mean([len(t) for t in speed_texts])), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", default=[], type=Path, help="more labelled TSVs to evaluate")
    parser.add_argument("--val", type=Path, default=DEFAULT_DATA, help=f"main TSV (default {DEFAULT_DATA})")
    parser.add_argument("--n", type=int, default=2_000, help="texts for the speed measurement")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--weights", help="minilm-ft weights file (default: the committed one)")
    parser.add_argument("--scorers", default="minilm-ft,minilm", help="comma-separated scorer names")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    datasets = [str(p) for p in [args.val, *args.data]]
    if args.worker:
        print(json.dumps(worker(args.worker, args.weights, args.threads, args.n, datasets)))
        return 0

    results = []
    for name in [s.strip() for s in args.scorers.split(",") if s.strip()]:
        cmd = [sys.executable, __file__, "--worker", name, "--val", str(args.val), "--n", str(args.n),
               "--threads", str(args.threads), *[a for p in args.data for a in ("--data", str(p))]]
        if args.weights:
            cmd += ["--weights", args.weights]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            print(f"{name}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
            results.append({"scorer": name, "error": proc.stderr.strip().splitlines()[-1:]})
            continue
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {args.threads} torch threads")
    print(f"{'scorer':<12} {'model id':<26} {'data':<18} {'n':>6} {'macro rec':>9} {'acc':>7} {'macro F1':>8}")
    for r in results:
        for q in r.get("quality", []):
            print(f"{r['scorer']:<12} {r['model_id']:<26} {Path(q['data']).name:<18} {q['n']:>6} "
                  f"{q['macro_recall']:>9.4f} {q['accuracy']:>7.4f} {q['macro_f1']:>8.4f}")
    print(f"\n{'scorer':<12} {'posts/s':>8} {'texts':>6} {'load s':>7} {'peak RSS MB':>12}")
    for r in results:
        if "posts_per_s" in r:
            print(f"{r['scorer']:<12} {r['posts_per_s']:>8.1f} {r['speed_n']:>6} {r['load_s']:>7.2f} "
                  f"{r['peak_rss_mb']:>12.1f}")
    print(json.dumps({"threads": args.threads, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Transformer scorer vs the batched ``pipeline()`` a careful user writes, at the same precision.

    .venv/bin/python benchmarks/bench_transformer.py [--n 500] [--rounds 2] [--modes ...]

The model: roberta-base's architecture and size (125M parameters) with RANDOM weights (real weights cannot be
downloaded here; cost does not depend on weight values), the packaged MiniLM WordPiece tokenizer, built
offline by :func:`sentiment.synthetic.build_base_classifier` into a temporary directory and loaded by path.
Because the weights are random, label agreement here checks numerical equivalence, not quality (the quality
cost of int8 on real weights is measured by ``benchmarks/bench_offline.py`` on the fine-tuned MiniLM).

Modes:

- ``pipeline-fp32``: the baseline, ``pipeline("text-classification", model=dir, batch_size=32,
  truncation=True)`` on the texts normalised as the model card asks (``@user``, ``http``), torch's threads;
- ``scorer-fp32``: ``load_scorer("transformer:<dir>?precision=fp32")`` as users run it (ONNX Runtime);
- ``scorer-torch-fp32``: the same with ``AIMUSIC_RUNTIME=torch`` (the PyTorch path of the scorer);
- ``pipeline-int8``: the int8 baseline, the same pipeline on the model after torch's dynamic quantisation
  (per-channel, the scorer's own former int8 path);
- ``scorer-int8``: ``precision=int8`` (ONNX Runtime's dynamic quantisation).

Phase 1: each mode alone in its own process over the first ``--n`` tweets of val.tsv (labels, load time, peak
RSS; the first scorer loads export the graphs, the ``(cached)`` runs load them as every later run does).
Phase 2: the fp32 modes in one process, then the int8 modes in another, taking turns on chunks of 50 tweets
(``benchmarks/benchlib.py``), which gives the throughput ratios. Tokenising is included everywhere. Prints a
table, the goal of issue 16 (>= 2x the batched pipeline at the same precision, >= 99% same labels) and one
JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchlib import VAL, Maker, agreement, alone, interleave, load_average, pair, run_child, spread

Score = Callable[[list[str]], list[str]]

FP32 = ("pipeline-fp32", "scorer-fp32", "scorer-torch-fp32")
INT8 = ("pipeline-int8", "scorer-int8")
BASELINE = {"scorer-fp32": "pipeline-fp32", "scorer-torch-fp32": "pipeline-fp32", "scorer-int8": "pipeline-int8"}
CHUNK = 50


def maker(model_dir: str) -> Maker:
    def make(mode: str) -> tuple[Score, dict[str, Any]]:
        if mode.startswith("pipeline"):
            return make_pipeline(model_dir, int8=mode.endswith("int8"))
        precision = "int8" if mode.endswith("int8") else "fp32"
        return make_scorer(model_dir, precision, "torch" if "torch" in mode else "auto")

    return make


def make_pipeline(model_dir: str, int8: bool) -> tuple[Score, dict[str, Any]]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
    from transformers.utils import logging as hf_logging

    from sentiment.preprocess import normalize_social

    hf_logging.set_verbosity_error()
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    if int8:
        import warnings

        from torch.ao.quantization import per_channel_dynamic_qconfig

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig},
                                                           dtype=torch.qint8)
    clf = pipeline("text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(model_dir),
                   batch_size=32, truncation=True)

    def score(texts: list[str]) -> list[str]:
        return [out["label"] for out in clf([normalize_social(t) for t in texts])]

    return score, {"threads": torch.get_num_threads(),
                   "model_id": f"pipeline(batch_size=32{', torch int8' if int8 else ''})"}


def make_scorer(model_dir: str, precision: str, runtime: str) -> tuple[Score, dict[str, Any]]:
    from sentiment.transformer import TransformerScorer

    scorer = TransformerScorer(model_dir, precision=precision, runtime=runtime)
    return (lambda texts: [str(x) for x in scorer.score(texts).labels]), {
        "threads": scorer.threads, "model_id": scorer.model_id, "runtime": scorer.runtime}


def child(only: str, model_dir: str, data: Path, n: int) -> dict:
    from sentiment.evaluate import read_tsv

    texts = read_tsv(data).texts[:n]
    if "," in only:
        return interleave(maker(model_dir), only.split(","), texts, CHUNK)
    out = alone(maker(model_dir), only.removesuffix(" (cached)"), texts)
    out["mode"] = only
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="tweets to score (default 500)")
    parser.add_argument("--data", type=Path, default=VAL)
    parser.add_argument("--model-dir", help="reuse a model built earlier (default: build one in a temp dir)")
    parser.add_argument("--only", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        print(json.dumps(child(args.only, args.model_dir, args.data, args.n)))
        return
    if not args.data.exists():
        sys.exit(f"{args.data} not found: pass --data PATH/val.tsv")
    with tempfile.TemporaryDirectory(prefix="aimusic-bench-") as tmp:
        model_dir = args.model_dir
        if not model_dir:
            from sentiment.synthetic import build_base_classifier

            started = time.perf_counter()
            model_dir = str(build_base_classifier(Path(tmp) / "roberta-base-random"))
            print(f"built a roberta-base-sized classifier with RANDOM weights in {time.perf_counter() - started:.0f}s "
                  "(real weights cannot be downloaded here)", flush=True)
        print(f"{args.n} tweets of {args.data.name}, {os.cpu_count()} CPUs, load average {load_average()} at start",
              flush=True)
        extra = ["--model-dir", model_dir, "--data", str(args.data), "--n", str(args.n)]
        env = {"AIMUSIC_CACHE_DIR": str(Path(tmp) / "cache")}
        single = {}
        for mode in ("pipeline-fp32", "scorer-fp32", "scorer-fp32 (cached)", "scorer-torch-fp32", "pipeline-int8",
                     "scorer-int8", "scorer-int8 (cached)"):
            single[mode] = r = run_child(__file__, mode, extra, env)
            if "error" not in r:
                print(f"  alone  {mode:<22} {r['posts_per_s_alone']:6.1f} posts/s  peak RSS {r['peak_rss_mb']:5.0f} MB"
                      f"  load {r['load_s']:.1f}s  (load average {load_average()})", flush=True)
        mixed = {**run_child(__file__, ",".join(FP32), extra, env)}
        mixed8 = run_child(__file__, ",".join(INT8), extra, env)
    if "error" in mixed or "error" in mixed8:
        sys.exit("an interleaved run failed")
    print(f"\ninterleaved in one process per precision, chunks of {CHUNK}, load average {load_average()} at the end")
    print(f"{'mode':<18} {'posts/s':>8} {'vs baseline':>12} {'per-chunk ratios':>28} {'same labels':>12} "
          f"{'peak RSS MB':>12} {'cached':>7}  model id")
    summary = {}
    for group in (mixed, mixed8):
        for mode in group["modes"]:
            one, base = single.get(mode, {}), BASELINE.get(mode)
            ratio, chunks = pair(group, mode, base) if base else (float("nan"), [])
            same = agreement(one["labels"], single[base]["labels"]) if base and "labels" in one else float("nan")
            cached = single.get(f"{mode} (cached)", {}).get("peak_rss_mb")
            summary[mode] = {"posts_per_s": round(group["posts_per_s"][mode], 1), "baseline": base,
                             "ratio_vs_baseline": round(ratio, 2), "chunk_ratios": [round(x, 2) for x in chunks],
                             "label_agreement_with_baseline": round(same, 4), "model_id": one.get("model_id"),
                             "runtime": one.get("runtime"), "peak_rss_mb_first_load": one.get("peak_rss_mb"),
                             "peak_rss_mb_cached": cached, "load_s": one.get("load_s"),
                             "load_s_cached": single.get(f"{mode} (cached)", {}).get("load_s")}
            print(f"{mode:<18} {group['posts_per_s'][mode]:8.1f} {ratio:11.2f}x {spread(chunks):>28} {same:12.2%} "
                  f"{one.get('peak_rss_mb', 0):12.0f} {cached or '':>7}  {one.get('model_id')}")
    if "labels" in single.get("scorer-int8", {}) and "labels" in single.get("scorer-fp32", {}):
        same = agreement(single["scorer-int8"]["labels"], single["scorer-fp32"]["labels"])
        summary["scorer-int8"]["label_agreement_with_scorer_fp32"] = round(same, 4)
        print(f"scorer int8 vs scorer fp32: {same:.2%} same labels (random weights: not a quality figure)")
    fp32 = summary["scorer-fp32"]
    met = fp32["ratio_vs_baseline"] >= 2 and fp32["label_agreement_with_baseline"] >= 0.99
    print(f"\ngoal (>= 2x the batched pipeline at the same precision, >= 99% same labels): fp32 "
          f"{fp32['ratio_vs_baseline']:.2f}x, {fp32['label_agreement_with_baseline']:.2%} same labels -> "
          f"{'met' if met else 'not met'}; random weights: agreement checks numerics, not quality")
    print(json.dumps({"n": args.n, "cpus": os.cpu_count(), "weights": "random", "load_average_end": load_average(),
                      "modes": summary}))


if __name__ == "__main__":
    main()

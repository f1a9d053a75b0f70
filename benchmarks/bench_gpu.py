"""GPU throughput of ``minilm-ft``, the offline default's sentiment model (needs a CUDA GPU; nothing depends on one).

    python benchmarks/bench_gpu.py [--val ../shared/data/sentiment/val.tsv] [--repeat 50] [--encoder DIR]

Scores the val.tsv tweets, repeated ``--repeat`` times (100,000 texts by default), with the merged fine-tuned model
on the GPU through :func:`sentiment.finetuned_torch.predict_logits` directly, so the scorer's de-duplication of
repeated texts does not apply: every text is computed. Prints, separately, the tokenising rate (text
preparation and the fast tokenizer, on one CPU thread) and the model's rate in fp32 (batches of 256) and with
fp16 autocast (batches of 1,024), and the share of fp16 labels equal to fp32's. ``--encoder`` points to a copy
of the packaged encoder on a machine where the package is not installed (the weights' fingerprint is not checked
here: throughput only).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    import torch

    from sentiment.finetuned import WEIGHTS_FILE, Adapter, tokenize
    from sentiment.finetuned_torch import build_model, predict_logits
    from sentiment.head import prepare

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--val", type=Path, default=ROOT.parent / "shared" / "data" / "sentiment" / "val.tsv")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--encoder", type=Path, help="encoder directory (default: the packaged one)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA GPU visible to torch: nothing to measure", file=sys.stderr)
        return 2
    model, tokenizer = build_model(Adapter.load(WEIGHTS_FILE), args.encoder, check_base=False)
    model = model.cuda()
    with args.val.open(encoding="utf-8", newline="") as fh:
        texts = [row[1] for row in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)][1:] * args.repeat
    started = time.perf_counter()
    ids = tokenize(tokenizer, prepare(texts, tokenizer, 126), 128)
    tokenising = len(ids) / (time.perf_counter() - started)
    print(f"{torch.cuda.get_device_name()}: {len(ids):,} texts; tokenising {tokenising:,.0f} texts/s (one CPU thread)")
    reference = None
    for batch, autocast in ((256, None), (1024, torch.float16)):
        predict_logits(model, ids[:2048], 0, batch_size=batch, device="cuda", autocast=autocast)  # warm-up
        torch.cuda.synchronize()
        started = time.perf_counter()
        logits = predict_logits(model, ids, 0, batch_size=batch, device="cuda", autocast=autocast)
        rate = len(ids) / (time.perf_counter() - started)
        name = "fp32" if autocast is None else "fp16 autocast"
        line = f"model only, {name}, batches of {batch}: {rate:,.0f} texts/s"
        if reference is None:
            reference = logits.argmax(1)
        else:
            line += f"; same labels as fp32: {(logits.argmax(1) == reference).mean():.2%}"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

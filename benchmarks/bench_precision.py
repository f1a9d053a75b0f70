"""Accuracy impact of reduced precision on a transformer with real weights.

    .venv/bin/python benchmarks/bench_precision.py [--data ../shared/data/sentiment/val.tsv]

twitter-roberta-base-sentiment-latest cannot be downloaded here, so the effect of ``precision=bf16`` and
``precision=int8`` (the transformer scorer's options) is measured on the one transformer with real weights we
have: the packaged all-MiniLM-L6-v2 encoder, run in fp32, under bfloat16 autocast (what ``bf16`` does) and
with dynamically quantised int8 linear layers (what ``int8`` does), each followed by the project's sentiment
head. Prints macro recall and accuracy on the TSV, agreement of labels with fp32, the embeddings' cosine
similarity to fp32 and encoding speed. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "sentiment" / "val.tsv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()

    import numpy as np
    import torch

    from sentiment.base import LABELS
    from sentiment.embedding import Encoder
    from sentiment.evaluate import metrics, read_tsv
    from sentiment.head import HEAD_FILE, Head, prepare
    from sentiment.transformer import configure_threads

    configure_threads()
    data = read_tsv(args.data)
    encoder = Encoder(runtime="torch", device="cpu").model  # the SentenceTransformer (PyTorch) itself
    head = Head.load(HEAD_FILE)
    texts = prepare(data.texts, encoder.tokenizer, int(encoder.max_seq_length) - 2)

    def run(model, autocast: bool) -> tuple[np.ndarray, float]:
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            vectors = model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True,
                                   show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float64), time.perf_counter() - started

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import per_channel_dynamic_qconfig

        quantised = torch.ao.quantization.quantize_dynamic(  # as precision=int8 does: per-channel weight scales
            copy.deepcopy(encoder), {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8
        )
    n_quantised = sum(1 for m in quantised.modules() if "quantized" in type(m).__module__)
    if not n_quantised:
        sys.exit("dynamic quantisation replaced no layer: the int8 figures would be fp32's")
    results = []
    reference = None
    for name, model, autocast in (("fp32", encoder, False), ("bf16", encoder, True), ("int8", quantised, False)):
        vectors, seconds = run(model, autocast)
        labels = head.predict_proba(vectors).argmax(axis=1)
        m = metrics(data.labels, [LABELS[i] for i in labels])
        if reference is None:
            reference = (vectors, labels)
        cos = (vectors * reference[0]).sum(axis=1)
        row = {
            "precision": name, "macro_recall": round(m["macro_recall"], 4), "accuracy": round(m["accuracy"], 4),
            "label_agreement_with_fp32": round(float((labels == reference[1]).mean()), 4),
            "min_cosine_to_fp32": round(float(cos.min()), 5), "mean_cosine_to_fp32": round(float(cos.mean()), 5),
            "posts_per_s": round(len(texts) / seconds, 1),
        }
        results.append(row)
        print(f"{name:5} macro recall {row['macro_recall']:.4f}  accuracy {row['accuracy']:.4f}  "
              f"agreement with fp32 {row['label_agreement_with_fp32']:.2%}  cosine min {row['min_cosine_to_fp32']:.4f} "
              f"mean {row['mean_cosine_to_fp32']:.5f}  {row['posts_per_s']:.0f} posts/s", flush=True)
    print(json.dumps({"data": str(args.data), "n": len(texts), "model": "all-MiniLM-L6-v2 + minilm head",
                      "results": results}))


if __name__ == "__main__":
    main()

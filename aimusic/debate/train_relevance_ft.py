"""Fine-tune the second relevance stage end to end: ``python -m aimusic.debate.train_relevance_ft``.

The logistic-regression head (:mod:`aimusic.debate.train_relevance`) reads embeddings trained for sentence
similarity; this trains the encoder itself (LoRA + LayerNorms + a linear head, the recipe of the stance and
sentiment fine-tunes, :mod:`sentiment.lora_training`) on the same labelled texts, and on held-out sets it ranks
unsure texts better (see docs/debate.md). Steps:

1. Training texts: exactly those of the head (:func:`aimusic.debate.train_relevance.training_rows`: the project's
   relevance, stance and debate files, plus ``--negatives`` texts as off-topic). Three classes: ``relevant``,
   ``near_miss`` (off-topic with an AI-ish or a music-ish word stem: most texts the second stage is asked about)
   and ``off_topic`` (neither); the decision uses P(relevant) only.
2. Out-of-fold probabilities by ``--folds`` (default 3) stratified folds, each fold's model trained like the
   final one (a 10% hold-out of the fold's training part chooses the epoch); a temperature fitted on them
   calibrates the final model (folded into its head); the three class thresholds are chosen on them exactly
   as for the head (:func:`aimusic.debate.train_relevance.class_thresholds`).
3. The final model on every text (10% held out to choose the epoch), written as
   ``sentiment/weights/relevance_ft.npz`` (the ``minilm-ft`` adapter format with ``task = relevance``, about
   1.3 MB; thresholds in its metadata) and ``relevance_ft.json`` (provenance and figures).
4. Only then the held-out sets and ``--dev`` files are measured (:func:`train_relevance.measure_heldout`).

On 2 CPU cores about 25 minutes for 3,900 texts (3 folds + the final model, 3 epochs each; one torch thread).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from aimusic.core.config import PROJECT_ROOT
from aimusic.debate import train_relevance as tr
from aimusic.debate.semantic import FT_FILE, RELEVANCE_CLASSES, FinetunedRelevance, ai_stem, music_stem, prepare
from aimusic.debate.training import file_record, softmax, temperature

log = logging.getLogger(__name__)

FOLDS = 3
#: the relevant class's column in the model's output
RELEVANT = RELEVANCE_CLASSES.index("relevant")


def class_labels(texts: list[str], y: np.ndarray) -> np.ndarray:
    """0 off_topic, 1 near_miss (off-topic with an AI-ish or music-ish stem), 2 relevant."""
    near = np.array([bool(ai_stem(t.lower()) or music_stem(t.lower())) for t in texts])
    return np.where(y, RELEVANT, np.where(near, RELEVANCE_CLASSES.index("near_miss"),
                                          RELEVANCE_CLASSES.index("off_topic")))


def _fit(ids: list[list[int]], y3: np.ndarray, idx: np.ndarray, *, recipe: Any, device: Any, pad_id: int,
         encoder_dir: Path) -> tuple[Any, Any]:
    """A fresh LoRA model trained on ``idx`` (10% of it held out to choose the epoch); (model, loop result)."""
    import torch

    from sentiment.finetuned_torch import SentimentNet, load_base
    from sentiment.lora_training import inject_lora, train_loop
    from sentiment.train_head import stratified_split

    torch.manual_seed(recipe.seed)
    encoder, _ = load_base(encoder_dir)
    inject_lora(encoder, recipe)
    model = SentimentNet(encoder).to(device)
    fit, hold = stratified_split(y3[idx], recipe.holdout, recipe.seed)
    loop = train_loop(model, ids, y3, idx[fit], idx[hold], recipe=recipe, dev=device, pad_id=pad_id, log_every=25)
    model.eval()
    return model, loop


def train(out_dir: Path | None = None, negatives: list[Path] | None = None, sample: int = 600,
          dev: list[Path] | None = None, *, folds: int = FOLDS, recipe: Any = None, device: str = "auto",
          threads: int | None = None, encoder_dir: Path | None = None) -> dict[str, Any]:
    import torch
    from sklearn.model_selection import StratifiedKFold

    from sentiment.finetuned import FORMAT, default_encoder_dir, encoder_fingerprint, tokenize
    from sentiment.finetuned_torch import export_adapter, load_base, predict_logits
    from sentiment.head import prepare as fit_tokens
    from sentiment.lora_training import Recipe, resolve_device

    started = time.perf_counter()
    recipe = recipe or Recipe(epochs=3, max_tokens=128, lr=4e-4, head_lr=1e-3)
    dev_ = resolve_device(device)
    if threads:
        torch.set_num_threads(threads)
    encoder_dir = Path(encoder_dir) if encoder_dir else default_encoder_dir()
    out = Path(out_dir) / FT_FILE.name if out_dir else FT_FILE
    negatives = negatives or []
    texts, communities, y, _ = tr.training_rows(negatives, sample)
    y3 = class_labels(texts, y)
    _, tokenizer = load_base(encoder_dir)
    pad_id = int(tokenizer.pad_token_id or 0)
    ids = tokenize(tokenizer, fit_tokens([prepare(t) for t in texts], tokenizer, recipe.max_tokens - 2),
                   recipe.max_tokens)
    log.info("%d texts (%d relevant, %d near misses, %d off-topic), %d folds, %s", len(texts), int(y.sum()),
             int((y3 == 1).sum()), int((y3 == 0).sum()), folds, dev_)

    oof = np.zeros((len(texts), len(RELEVANCE_CLASSES)), np.float64)
    fold_log = []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=tr.SEED)
    for k, (fit_idx, test_idx) in enumerate(splitter.split(np.zeros(len(y3)), y3), start=1):
        log.info("fold %d of %d: %d texts to fit, %d to predict", k, folds, len(fit_idx), len(test_idx))
        model, loop = _fit(ids, y3, fit_idx, recipe=recipe, device=dev_, pad_id=pad_id, encoder_dir=encoder_dir)
        oof[test_idx] = predict_logits(model, [ids[i] for i in test_idx], pad_id, device=dev_)
        fold_log.append({"fold": k, "chosen_epoch": loop.chosen["epoch"], "seconds": round(loop.seconds, 1)})
        del model
    temp = temperature(oof, y3)
    oof_p = softmax(oof / temp)[:, RELEVANT]
    chosen = tr.class_thresholds(oof_p, y, texts, communities)

    log.info("final model on all %d texts", len(texts))
    model, loop = _fit(ids, y3, np.arange(len(texts)), recipe=recipe, device=dev_, pad_id=pad_id,
                       encoder_dir=encoder_dir)
    with torch.no_grad():
        model.head.weight.div_(temp)
        model.head.bias.div_(temp)
    meta = {
        "format": FORMAT, "task": "relevance", "classes": list(RELEVANCE_CLASSES),
        "encoder_weights_sha256": encoder_fingerprint(encoder_dir),
        "pooling": "mean over the last hidden state, attention-mask weighted", "rank": recipe.rank,
        "alpha": recipe.alpha, "train_max_tokens": recipe.max_tokens, "seed": recipe.seed,
        "temperature": round(float(temp), 4), "threshold": chosen["threshold"] or 0.99,
        "threshold_named": chosen["threshold_named"] or 0.99, "threshold_broad": chosen["threshold_broad"],
    }
    adapter = export_adapter(model.cpu(), meta, dtype=recipe.export_dtype, layernorm=recipe.train_layernorm)
    sha = adapter.save(out)
    oof_pred = oof.argmax(axis=1) == RELEVANT
    record: dict[str, Any] = {
        "model": "relevance-ft", "file": out.name, "file_sha256": sha, "file_bytes": out.stat().st_size,
        "created": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "architecture": "all-MiniLM-L6-v2 encoder (LoRA merged at load) -> mean pooling -> linear layer to "
                        f"{', '.join(RELEVANCE_CLASSES)}; P(relevant) after temperature scaling",
        "input": "the text as aimusic.debate.semantic.prepare gives it (links -> http, @handles -> @user, first "
                 f"1,200 characters), at most {recipe.max_tokens} word pieces (head and tail)",
        "train": {"n": len(texts), "relevant": int(y.sum()), "near_miss": int((y3 == 1).sum()),
                  "off_topic": int((y3 == 0).sum()),
                  "files": [file_record(p, PROJECT_ROOT) for p in tr.TRAIN_FILES if p.exists()],
                  "relevance_tsv_part": "dev",
                  "negatives": [file_record(p, PROJECT_ROOT, sample=sample) for p in negatives]},
        "temperature": round(float(temp), 4), **chosen,
        "out_of_fold": {"folds": folds, "per_fold": fold_log,
                        "accuracy_relevant_vs_not": round(float((oof_pred == y).mean()), 4)},
        "final": {"chosen_epoch": loop.chosen["epoch"], "epochs": loop.selection},
        "recipe": {k: getattr(recipe, k) for k in ("epochs", "batch_size", "max_tokens", "rank", "alpha", "lr",
                                                    "head_lr", "seed", "holdout")},
        "device": str(dev_), "seconds": round(time.perf_counter() - started, 1),
        "reproduce": "python -m aimusic.debate.train_relevance_ft --negatives ../shared/data/sentiment/train.tsv "
                     "--negatives ../shared/data/stance/semeval2016_stance.tsv"
                     + "".join(f" --dev {p.name if p.is_absolute() else p}" for p in dev or []) + " --threads 1",
    }
    record["heldout"] = tr.measure_heldout(FinetunedRelevance(out, encoder_dir=encoder_dir), dev)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    tr.add_data_arguments(parser)
    parser.add_argument("--folds", type=int, default=FOLDS, help="folds for the out-of-fold probabilities")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--out-dir", type=Path, default=None, help="where relevance_ft.npz/.json go")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from sentiment.lora_training import Recipe

    recipe = Recipe(epochs=args.epochs, max_tokens=128, lr=4e-4, head_lr=1e-3, seed=args.seed)
    record = train(args.out_dir, args.negatives, args.sample, args.dev, folds=args.folds, recipe=recipe,
                   device=args.device, threads=args.threads)
    sys.stdout.write(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

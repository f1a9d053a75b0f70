"""The LoRA training pieces shared by the fine-tuning scripts (:mod:`sentiment.finetune` for sentiment,
:mod:`sentiment.finetune_stance` for stance): the recipe, LoRA injection, length-bucketed batches, the
training loop with epoch selection on a hold-out, and the figures it logs. Needs ``peft`` (``pip install -e
.[train]``) only for :func:`inject_lora`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sentiment.base import LABELS, ScorerError
from sentiment.evaluate import metrics
from sentiment.finetuned import TARGET_MODULES, Adapter, default_encoder_dir, encoder_fingerprint
from sentiment.finetuned_torch import SentimentNet, layernorm_params, pad_batch, predict_logits

log = logging.getLogger(__name__)

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


def score_logits(y_true: np.ndarray, logits: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import recall_score

    pred = logits.argmax(axis=1)
    m = metrics([LABELS[i] for i in y_true], [LABELS[i] for i in pred])
    m["macro_recall"] = float(recall_score(y_true, pred, average="macro", labels=list(range(len(LABELS)))))
    return m


def short_figures(m: dict[str, Any]) -> dict[str, float]:
    return {k: round(m[k], 4) for k in ("macro_recall", "accuracy", "macro_f1")}


def _fmt_s(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@dataclass
class LoopResult:
    """What :func:`train_loop` did: per-epoch hold-out figures, the chosen epoch, the schedule."""

    selection: list[dict[str, Any]]
    chosen: dict[str, Any]
    steps: int
    total: int
    warmup: int
    steps_per_epoch: int
    class_weights: list[float]
    seconds: float
    amp_dtype: torch.dtype | None


def train_loop(
    model: SentimentNet,
    ids: list[list[int]],
    y: np.ndarray,
    fit_idx: np.ndarray,
    hold_idx: np.ndarray,
    *,
    recipe: Recipe,
    dev: torch.device,
    pad_id: int,
    sample_weight: np.ndarray | None = None,
    log_every: int = 50,
    eval_batch_size: int = 128,
) -> LoopResult:
    """Train the model's trainable parameters on ``fit_idx`` (class-weighted cross-entropy, times
    ``sample_weight`` per text when given); keep the epoch with the best macro recall on ``hold_idx`` (its
    parameters are loaded back into ``model``)."""
    rng = np.random.default_rng(recipe.seed)
    lengths = np.array([len(s) for s in ids])
    trainable = [p for p in model.parameters() if p.requires_grad]
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
    w_t = torch.from_numpy(np.asarray(sample_weight, np.float32)) if sample_weight is not None else None

    def collate(batch: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        tokens, mask = pad_batch([ids[i] for i in batch], pad_id)
        return tokens, mask, y_t[batch], (w_t[batch] if w_t is not None else None)

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
        for tokens, mask, labels, weights in loader:
            tokens = tokens.to(dev, non_blocking=True)
            mask = mask.to(dev, non_blocking=True)
            labels = labels.to(dev, non_blocking=True)
            with torch.autocast("cuda", dtype=amp_dtype) if cuda else contextlib.nullcontext():
                logits = model(tokens, mask)
            if weights is None:
                loss = torch.nn.functional.cross_entropy(logits.float(), labels, weight=weight)
            else:  # the weighted mean cross_entropy takes, with each text's own weight folded in
                each = weight[labels] * weights.to(dev, non_blocking=True)
                loss = (torch.nn.functional.cross_entropy(logits.float(), labels, reduction="none") * each).sum() \
                    / each.sum()
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
        m = score_logits(y[hold_idx], hold_logits)
        row = {"epoch": epoch, "steps": step, "texts": seen, "train_loss": round(epoch_loss.item() / epoch_steps, 4),
               **short_figures(m), "seconds": round(time.perf_counter() - train_started, 1)}
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

    return LoopResult(selection, chosen, step, total, warmup, steps_per_epoch,
                      [round(float(w), 4) for w in weight.cpu()], train_seconds, amp_dtype)


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


def repin(path: Path, encoder_dir: Path | None = None) -> Adapter:
    """Pin an adapter trained against another copy of the encoder (e.g. the fp16 copy carried to a GPU machine,
    whose weights differ from the packaged fp32 ones by rounding) to the packaged encoder here: the old
    fingerprint is kept as ``trained_against_encoder_sha256``; the file is rewritten (its sha256 changes).
    Measure the file again afterwards: its figures belong to the encoder it now runs on."""
    adapter = Adapter.load(path)
    actual = encoder_fingerprint(Path(encoder_dir) if encoder_dir else default_encoder_dir())
    before = adapter.meta.get("encoder_weights_sha256", "")
    if before and before != actual:
        adapter.meta["trained_against_encoder_sha256"] = before
    adapter.meta["encoder_weights_sha256"] = actual
    adapter.save(path)
    return adapter


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when torch sees a GPU, else CPU; ``cuda`` without a GPU fails clearly."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ScorerError("device cuda: no CUDA device is visible to torch")
    return torch.device(name)


def write_repinned(path: Path, adapter: Adapter, figures: dict[str, Any], measured: str,
                   default: dict[str, Any] | None = None) -> dict[str, Any]:
    """After :func:`repin` and a new measurement: update the provenance file next to ``path`` (``default`` when
    there is none) with the new ``figures``, the file's new hash and both encoder fingerprints."""
    js = path.with_suffix(".json")
    record = json.loads(js.read_text(encoding="utf-8")) if js.exists() else dict(default or {})
    record.update(figures)
    record.update({
        "file_sha256": adapter.sha256, "file_bytes": path.stat().st_size,
        "encoder_weights_sha256": adapter.meta["encoder_weights_sha256"],
        "repinned": {"trained_against_encoder_sha256": adapter.meta.get("trained_against_encoder_sha256"),
                     "note": "trained on a GPU machine against an fp16 copy of the encoder; pinned to the packaged "
                             f"fp32 encoder and {measured} measured again with it"},
    })
    js.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record

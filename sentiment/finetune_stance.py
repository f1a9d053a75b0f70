"""Fine-tune all-MiniLM-L6-v2 for stance toward AI-generated music, target-aware: ``stance_ft.npz``.

    python -m sentiment.finetune_stance --semeval ../shared/data/stance/semeval2016_stance.tsv \\
        [--dev ../shared/data/debate/realistic_dev.tsv] [--epochs 4] [--seed 0] [--device auto]

What the linear stance head could not learn (it reads embeddings trained for sentence similarity, where "this
is theft" and "this is a tool" sit close), the encoder can, when it is trained end to end. Same recipe as the
sentiment fine-tune (:mod:`sentiment.finetune`: LoRA adapters + LayerNorms + a linear head, class-weighted
cross-entropy, length-bucketed batches), on pairs of a *target* and a text, written ``<target> [SEP] <text>``:

1. Training rows: the project's stance files (:data:`TRAIN_SETS`, written to mimic how people argue about AI
   music) with the AI-music target, and SemEval-2016 Task 6 tweets (train and val splits) with their own five
   targets, each weighted ``--semeval-weight`` (default 0.5), so the model learns what taking a side looks like
   without learning one debate's words only.
2. A stratified 10% of the *project* rows is held out: it chooses the epoch, then calibrates a temperature
   (folded into the head) and the ``unclear`` threshold (:func:`sentiment.train_stance.choose_unclear`).
3. Only then are the held-out files measured, never used above: :data:`HELDOUT_SETS` (written for the project
   apart from the training files), ``--dev`` files (e.g. the reworded real posts of ``realistic_dev.tsv``), and
   SemEval's test split (macro F1 of favor and against, its official figure).

Writes ``sentiment/weights/stance_ft.npz`` (about 1.3 MB; the ``minilm-ft`` adapter format with
``task = stance``: columns anti, neutral, pro in the positions of negative, neutral, positive) and
``stance_ft.json`` (provenance, figures and the data each was measured on).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aimusic.core.config import PROJECT_ROOT
from aimusic.debate.training import file_record, softmax, temperature
from sentiment.base import ScorerError
from sentiment.finetuned import FORMAT, WEIGHTS_DIR, Adapter, default_encoder_dir, encoder_fingerprint, tokenize
from sentiment.finetuned_torch import SentimentNet, export_adapter, load_base, predict_logits
from sentiment.head import prepare as fit_tokens
from sentiment.lora_training import Recipe, inject_lora, resolve_device, train_loop
from sentiment.stance import STANCE_LABELS, prepare, read_provenance
from sentiment.train_head import stratified_split
from sentiment.train_stance import HELDOUT_SETS, TARGETS, TRAIN_SETS, choose_unclear, figures, load_semeval

log = logging.getLogger(__name__)

WEIGHTS_NAME = "stance_ft.npz"
#: what the model reads for a post about AI music (the target half of the pair)
AI_MUSIC_TARGET = "AI-generated music"
SEP = " [SEP] "
MAX_TOKENS = 128
DEFAULT_RECIPE = Recipe(epochs=4, max_tokens=MAX_TOKENS, lr=4e-4, head_lr=1e-3)


def pair(text: str, target: str = AI_MUSIC_TARGET) -> str:
    """The text the stance model reads: ``<target> [SEP] <prepared text>``."""
    return f"{target}{SEP}{prepare(text)}"


def _project_rows(paths: tuple[Path, ...] | list[Path]) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    from sentiment.evaluate import read_tsv

    texts: list[str] = []
    labels: list[str] = []
    records = []
    for path in paths:
        if not path.exists():
            log.warning("%s is missing: left out", path)
            continue
        data = read_tsv(path, "stance")
        texts += data.texts
        labels += data.labels
        records.append(file_record(path, PROJECT_ROOT, n=len(data)))
    return texts, labels, records


def train(
    out_dir: Path = WEIGHTS_DIR,
    semeval: Path | None = None,
    dev: list[Path] | None = None,
    *,
    recipe: Recipe = DEFAULT_RECIPE,
    semeval_weight: float = 0.5,
    device: str = "auto",
    threads: int | None = None,
    train_sets: tuple[Path, ...] = TRAIN_SETS,
    heldout_sets: tuple[Path, ...] = HELDOUT_SETS,
    encoder_dir: Path | None = None,
) -> dict[str, Any]:
    started = time.perf_counter()
    dev_ = resolve_device(device)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(recipe.seed)
    encoder_dir = Path(encoder_dir) if encoder_dir else default_encoder_dir()
    out = Path(out_dir) / WEIGHTS_NAME

    texts, labels, train_records = _project_rows(train_sets)
    if not texts:
        raise ScorerError(f"no stance rows in {', '.join(str(p) for p in train_sets)}")
    n_project = len(texts)
    pairs = [pair(t) for t in texts]
    weights = [1.0] * n_project
    splits = load_semeval(semeval) if semeval else {}
    n_semeval = 0
    for part in ("train", "val"):
        s_texts, s_labels, s_targets = splits.get(part, ([], [], []))
        pairs += [pair(t, TARGETS[g]) for t, g in zip(s_texts, s_targets, strict=True)]
        labels += s_labels
        weights += [semeval_weight] * len(s_texts)
        n_semeval += len(s_texts)
    y = np.array([STANCE_LABELS.index(lab) for lab in labels])
    fit_p, hold_idx = stratified_split(y[:n_project], recipe.holdout, recipe.seed)
    fit_idx = np.concatenate([fit_p, np.arange(n_project, len(y))]) if semeval_weight > 0 else fit_p

    encoder, tokenizer = load_base(encoder_dir)
    pad_id = int(tokenizer.pad_token_id or 0)
    ids = tokenize(tokenizer, fit_tokens(pairs, tokenizer, recipe.max_tokens - 2), recipe.max_tokens)
    adapted = inject_lora(encoder, recipe)
    model = SentimentNet(encoder).to(dev_)
    log.info("%d project rows (%d held out), %d SemEval rows (weight %s), %s", n_project, len(hold_idx), n_semeval,
             semeval_weight, dev_)
    loop = train_loop(model, ids, y, fit_idx, hold_idx, recipe=recipe, dev=dev_, pad_id=pad_id,
                      sample_weight=np.array(weights), log_every=20)

    # calibrate on the hold-out: a temperature, folded into the head, then the "unclear" threshold
    hold_logits = predict_logits(model, [ids[i] for i in hold_idx], pad_id, device=dev_)
    temp = temperature(hold_logits, y[hold_idx])
    unclear_below = choose_unclear(softmax(hold_logits / temp), y[hold_idx])
    with torch.no_grad():
        model.head.weight.div_(temp)
        model.head.bias.div_(temp)
    meta = {
        "format": FORMAT, "task": "stance", "classes": list(STANCE_LABELS), "target": AI_MUSIC_TARGET,
        "separator": SEP.strip(), "encoder_weights_sha256": encoder_fingerprint(encoder_dir),
        "pooling": "mean over the last hidden state, attention-mask weighted", "rank": recipe.rank,
        "alpha": recipe.alpha, "train_max_tokens": recipe.max_tokens, "seed": recipe.seed,
        "temperature": round(float(temp), 4), "unclear_below": unclear_below,
    }
    adapter = export_adapter(model, meta, dtype=recipe.export_dtype, layernorm=recipe.train_layernorm)
    sha = adapter.save(out)
    record = measure(out, heldout_sets, dev or [], splits.get("test"), dev_, encoder_dir)
    record.update({
        "model": "stance-ft", "file": out.name, "file_sha256": sha, "file_bytes": out.stat().st_size,
        "created": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "input": f"'<target>{SEP}<text>' (text: links -> http, @handles -> @user); target for AI music: "
                 f"{AI_MUSIC_TARGET!r}",
        "train_set": {"files": train_records, "n": n_project,
                      "per_label": {lab: int((y[:n_project] == i).sum()) for i, lab in enumerate(STANCE_LABELS)},
                      "semeval": file_record(semeval, PROJECT_ROOT, splits=["train", "val"], n=n_semeval)
                      if semeval else None, "semeval_weight": semeval_weight},
        "selection": {"method": f"stratified {recipe.holdout:.0%} of the project rows ({len(hold_idx)}), best "
                      "macro recall per epoch; the same rows fit the temperature and the unclear threshold",
                      "epochs": loop.selection, "chosen_epoch": loop.chosen["epoch"],
                      "holdout": {k: loop.chosen[k] for k in ("macro_recall", "accuracy", "macro_f1")}},
        "temperature": round(float(temp), 4), "unclear_below": unclear_below,
        "recipe": {**{k: getattr(recipe, k) for k in ("epochs", "batch_size", "max_tokens", "rank", "alpha", "lr",
                                                        "head_lr", "seed")},
                   "adapted_layers": len(adapted), "steps": loop.steps, "class_weights": loop.class_weights},
        "device": str(dev_), "training_seconds": round(loop.seconds, 1),
        "seconds": round(time.perf_counter() - started, 1),
        "reproduce": "python -m sentiment.finetune_stance --semeval ../shared/data/stance/semeval2016_stance.tsv "
                     + "".join(f"--dev {p} " for p in dev or [])
                     + f"--epochs {recipe.epochs} --seed {recipe.seed} --semeval-weight {semeval_weight}",
    })
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def measure(out: Path, heldout_sets: tuple[Path, ...], dev: list[Path],
            semeval_test: tuple[list[str], list[str], list[str]] | None, device: torch.device,
            encoder_dir: Path | None = None) -> dict[str, Any]:
    """Figures of the written file, loaded as the scorer loads it (adapter merged, fp32)."""
    from sentiment.finetuned_torch import build_model

    adapter = Adapter.load(out)
    unclear_below = float(adapter.meta.get("unclear_below", 0.0))
    model, tokenizer = build_model(adapter, encoder_dir)
    model.to(device)
    pad_id = int(tokenizer.pad_token_id or 0)

    def probs(pairs: list[str]) -> np.ndarray:
        ids = tokenize(tokenizer, fit_tokens(pairs, tokenizer, MAX_TOKENS - 2), MAX_TOKENS)
        return softmax(predict_logits(model, ids, pad_id, device=device))

    sets: dict[str, Any] = {}
    all_t: list[str] = []
    all_l: list[str] = []
    for path in heldout_sets:
        texts, labels, _ = _project_rows([path])
        if texts:
            sets[path.name] = {"data": "sentences written for the project apart from the training files",
                               **figures(probs([pair(t) for t in texts]), labels, unclear_below)}
            all_t, all_l = all_t + texts, all_l + labels
    record: dict[str, Any] = {"heldout": {"data": "sentences written for the project apart from the training "
                                                  f"files ({' + '.join(sets)})",
                                          **figures(probs([pair(t) for t in all_t]), all_l, unclear_below),
                                          "sets": sets} if all_t else {}}
    for path in dev:
        texts, labels, _ = _project_rows([path])
        record["heldout"].setdefault("sets", {})[path.name] = {
            "data": "development set (reworded real posts), never trained or tuned on",
            **figures(probs([pair(t) for t in texts]), labels, unclear_below)}
    if semeval_test:
        from sklearn.metrics import f1_score

        texts, labels, targets = semeval_test
        p = probs([pair(t, TARGETS[g]) for t, g in zip(texts, targets, strict=True)])
        pred = [STANCE_LABELS[i] for i in p.argmax(axis=1)]
        record["semeval_test"] = {
            "n": len(texts), "data": "SemEval-2016 Task 6 test split (TweetEval), five other targets",
            "macro_f1_favor_against": round(float(f1_score(labels, pred, labels=["pro", "anti"], average="macro",
                                                           zero_division=0)), 4)}
    record["measured_file_sha256"] = adapter.sha256
    return record


def remeasure(path: Path, semeval: Path | None, dev: list[Path], device: str = "auto") -> dict[str, Any]:
    """Pin a file trained elsewhere (a GPU machine's fp16 copy of the encoder) to the packaged encoder, measure it
    again here and update its provenance: the figures then belong to the model as it runs here."""
    from sentiment.lora_training import repin, write_repinned

    before = read_provenance(path.with_suffix(".json"))
    missing = sorted(set(before.get("heldout", {}).get("sets", {})) - {p.name for p in (*HELDOUT_SETS, *dev)})
    if missing:  # the Debate view reads the real-post figure: never drop a measured set silently
        raise ScorerError(f"{path.with_suffix('.json')} records figures on {', '.join(missing)}: pass the same "
                          "file(s) with --dev to measure them again")
    if before.get("semeval_test") and not semeval:
        raise ScorerError("its provenance records a SemEval test figure: pass --semeval to measure it again")
    original = path.read_bytes()
    try:
        adapter = repin(path)
        splits = load_semeval(semeval) if semeval else {}
        figures = measure(path, HELDOUT_SETS, dev, splits.get("test"), resolve_device(device))
    except BaseException:
        path.write_bytes(original)  # the file and its provenance stay as they were
        raise
    return write_repinned(path, adapter, figures, "every figure", {"model": "stance-ft", "file": path.name})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sentiment.finetune_stance", description=__doc__.splitlines()[0])
    parser.add_argument("--semeval", type=Path, help="SemEval-2016 stance TSV (../shared/data/stance/"
                        "semeval2016_stance.tsv); without it, the project rows only")
    parser.add_argument("--semeval-weight", type=float, default=0.5)
    parser.add_argument("--dev", type=Path, action="append", default=[], help="labelled sets to measure only")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    parser.add_argument("--epochs", type=int, default=DEFAULT_RECIPE.epochs)
    parser.add_argument("--seed", type=int, default=DEFAULT_RECIPE.seed)
    parser.add_argument("--max-steps", type=int, help="stop after N optimiser steps (smoke tests)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--encoder", type=Path, help="encoder directory (default: the packaged all-MiniLM-L6-v2)")
    parser.add_argument("--remeasure", type=Path, metavar="NPZ", help="pin a file trained on another copy of the "
                        "encoder (a GPU machine's fp16 copy) to the packaged one and measure it again; no training")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from dataclasses import replace

    recipe = replace(DEFAULT_RECIPE, epochs=args.epochs, seed=args.seed, max_steps=args.max_steps)
    try:
        if args.remeasure:
            record = remeasure(args.remeasure, args.semeval, args.dev, args.device)
        else:
            record = train(args.out, args.semeval, args.dev, recipe=recipe, semeval_weight=args.semeval_weight,
                           device=args.device, threads=args.threads, encoder_dir=args.encoder)
    except ScorerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: record.get(k) for k in ("file", "file_sha256", "heldout", "semeval_test")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

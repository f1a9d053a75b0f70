"""``aimusic train`` (a custom head on the user's labels) and ``aimusic rescore --model custom:...`` (apply it).

:func:`train_model` is the plain function (tests and notebooks call it); the ``*_command`` functions print
through the consoles they are given and return an exit code (0 ok, 2 expected error), like
:mod:`aimusic.cli.sentiment`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from aimusic.core.config import ConfigError, resolve_db

log = logging.getLogger(__name__)

TASKS = ("sentiment", "stance", "relevance")


@dataclass
class TrainReport:
    model: str
    task: str
    n: int
    n_random: int
    per_class: dict[str, int]
    base: int
    cv_all: Any  # aimusic.debate.correction.Accuracy
    cv_random: Any | None
    c: float
    folds: int
    seconds: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)


def _expected() -> tuple[type[BaseException], ...]:
    from aimusic.store.db import StoreError
    from sentiment import ScorerError

    return (ConfigError, StoreError, ScorerError, FileNotFoundError, ValueError)


def read_base(path: Path, task: str) -> tuple[list[str], list[str]]:
    """A base training file: tab-separated with ``label`` and ``text`` columns (others ignored; ``\\n`` in a text
    is a line break); labels in the task's vocabulary or the model's (anti/pro, 0/1). Any bad line rejects it."""
    from aimusic.store.labels import MODEL_LABELS, normalise_label, to_model_label

    try:
        content = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise FileNotFoundError(f"cannot read --base {path}: {exc.strerror or exc}") from None
    rows = list(csv.reader(io.StringIO(content), delimiter="\t", quoting=csv.QUOTE_NONE))
    header = [h.strip().lower() for h in rows[0]] if rows else []
    if "label" not in header or "text" not in header:
        raise ValueError(f"--base {path}: the header must name 'label' and 'text' columns (tab-separated)")
    li, ti = header.index("label"), header.index("text")
    texts: list[str] = []
    labels: list[str] = []
    bad: list[str] = []
    for line_no, row in enumerate(rows[1:], start=2):
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) < len(header):
            bad.append(f"line {line_no}: {len(row)} fields, the header has {len(header)}")
            continue
        raw = row[li].strip().lower()
        label = raw if raw in MODEL_LABELS[task] else normalise_label(task, raw)
        if label is None:
            bad.append(f"line {line_no}: unknown {task} label {row[li]!r}")
            continue
        text = "\t".join(row[ti:]) if ti == len(header) - 1 else row[ti]  # a last text column may hold tabs
        texts.append(text.replace("\\n", "\n"))
        labels.append(label if label in MODEL_LABELS[task] else to_model_label(task, label))
    if bad:
        raise ValueError(f"--base {path}: {len(bad)} bad line(s): " + "; ".join(bad[:10]))
    return texts, labels


def _taken_versions(con: Any, task: str) -> set[int]:
    """Version numbers of custom models of ``task`` that already wrote rows (never issued again)."""
    from aimusic.store.label_queries import model_ids_like

    table = {"sentiment": "scores", "stance": "stances"}.get(task)
    if table is None:
        return set()
    names = model_ids_like(con, table, f"custom:{task}-v")
    return {int(m.group(1)) for name in names if (m := re.search(r"-v(\d+)$", name))}


def train_model(db: Path, task: str, *, base: Path | None = None, base_weight: float = 0.3, folds: int = 5,
                seed: int = 0) -> TrainReport:
    """Cross-validate, fit and register a custom head on the labels of ``task`` in database ``db``."""
    from aimusic.core.text import join_many
    from aimusic.debate.correction import accuracy
    from aimusic.store import labels as lab
    from aimusic.store.db import Store
    from aimusic.store.label_queries import training_posts
    from sentiment.custom import (
        TASK_LABELS,
        check_counts,
        cross_validate,
        featurize,
        key_digest,
        models_dir,
        register,
        train_final,
    )
    from sentiment.embedding import encoder_version

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: use one of {', '.join(TASKS)}")
    timings: dict[str, float] = {}
    started = time.perf_counter()
    store = Store(db)
    with store.connect() as con:
        posts = training_posts(con, task)
        taken = _taken_versions(con, task)
    texts = join_many(posts["title"].tolist(), posts["text"].tolist()) if len(posts) else []
    keep = [i for i, t in enumerate(texts) if t.strip()]
    posts = posts.iloc[keep].reset_index(drop=True)
    texts = [texts[i] for i in keep]
    y = np.array([lab.to_model_label(task, v) for v in posts["label"]], dtype=object).astype(str)
    per_class = check_counts(task, y)
    base_texts, base_y = read_base(base, task) if base else ([], [])
    timings["read"] = time.perf_counter() - started
    t0 = time.perf_counter()
    cache = models_dir(db) / ".cache"  # embeddings of labelled posts: training again embeds only new ones
    x = featurize(task, texts, cache)
    base_x = featurize(task, base_texts, cache) if base_texts else None
    timings["embed"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    oof = cross_validate(task, x, y, base_x=base_x, base_y=base_y, base_weight=base_weight, folds=folds, seed=seed)
    timings["cross_validate"] = time.perf_counter() - t0
    labels = TASK_LABELS[task]
    index = {name: i for i, name in enumerate(labels)}
    truth_i, pred_i = [index[v] for v in y], [index[v] for v in oof]
    cv_all = accuracy(truth_i, pred_i, labels, seed=seed)
    rand = posts["random"].to_numpy(dtype=bool)
    cv_random = accuracy(np.asarray(truth_i)[rand], np.asarray(pred_i)[rand], labels, seed=seed) if rand.any() else None
    t0 = time.perf_counter()
    head, c = train_final(task, x, y, base_x=base_x, base_y=base_y, base_weight=base_weight, seed=seed)
    timings["fit"] = time.perf_counter() - t0
    k = max(2, min(folds, min(per_class.values())))

    def figures(acc: Any) -> dict[str, Any] | None:
        if acc is None:
            return None
        return {"n": acc.n, "macro_recall": round(acc.macro_recall, 4),
                "macro_recall_interval": [round(acc.macro_recall_low, 4), round(acc.macro_recall_high, 4)],
                "accuracy": round(acc.accuracy, 4), "accuracy_interval": [round(acc.accuracy_low, 4),
                                                                          round(acc.accuracy_high, 4)],
                "level": acc.level, "confusion": acc.confusion.astype(int).tolist(), "labels": list(labels)}

    provenance: dict[str, Any] = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": str(Path(db).name),
        "encoder": encoder_version(),
        "features": "sentiment head text preparation" if task == "sentiment" else "stance head text preparation",
        "classifier": {"type": "logistic regression on standardised embeddings (scikit-learn LogisticRegressionCV)",
                       "class_weight": "balanced", "C": c, "C_grid": [0.003, 0.01, 0.03, 0.1, 0.3, 1.0],
                       "seed": seed},
        "training_labels": {"n": len(y), "per_class": per_class, "random": int(rand.sum()),
                            "active": int((~rand).sum()), "post_digests": [
                                key_digest(s, p) for s, p in zip(posts["source"], posts["post_id"], strict=True)]},
        "base": None if not base else {"file": str(base), "rows": len(base_y), "weight": base_weight,
                                       "sha256": hashlib.sha256(base.read_bytes()).hexdigest()},
        "cv": {"folds": k, "method": "stratified k-fold over the user's labels; base data only ever in training "
               "folds; C chosen inside each training fold", "all": figures(cv_all), "random": figures(cv_random)},
        "versions": {p: metadata.version(p) for p in ("scikit-learn", "numpy")},
    }
    mid = register(head, provenance, models_dir(db), taken=taken)
    timings["total"] = time.perf_counter() - started
    return TrainReport(mid, task, len(y), int(rand.sum()), per_class, len(base_y), cv_all, cv_random, c, k,
                       timings, provenance)


def _matrix(acc: Any, title: str) -> Table:
    table = Table(title=title)
    table.add_column("true \\ predicted")
    for label in acc.labels:
        table.add_column(label, justify="right")
    table.add_column("recall", justify="right")
    for i, label in enumerate(acc.labels):
        row = acc.confusion[i]
        recall = row[i] / row.sum() if row.sum() else float("nan")
        table.add_row(label, *(str(int(v)) for v in row), f"{recall:.2f}")
    return table


def train_command(db: Path, task: str, *, base: Path | None, base_weight: float, folds: int, seed: int,
                  console: Console, out: Console) -> int:
    try:
        report = train_model(db, task, base=base, base_weight=base_weight, folds=folds, seed=seed)
    except _expected() as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return 2
    s = report.seconds
    extra = f" + {report.base} base rows" if report.base else ""
    out.print(f"trained {report.model} on {report.n} labels ({report.n_random} random, {report.n - report.n_random} "
              f"active){extra} in {s['total']:.1f}s "
              f"(embeddings {s['embed']:.1f}s, {report.folds}-fold cross-validation {s['cross_validate']:.1f}s, "
              f"C={report.c:g})", soft_wrap=True, highlight=False)
    pct = round(report.cv_all.level * 100)
    out.print(f"cross-validated on all {report.task} labels: {report.cv_all.line()}", highlight=False)
    if report.cv_random is not None:
        out.print(f"cross-validated on the random-sample labels only (what the population sees): "
                  f"{report.cv_random.line()}", highlight=False)
    out.print(f"intervals: {pct}%, macro recall by bootstrap over the out-of-fold predictions, accuracy by Wilson",
              highlight=False)
    out.print(_matrix(report.cv_all, "out-of-fold confusion matrix, all labels (rows: your label)"))
    out.print(f"apply it: aimusic rescore --model {report.model} --db {db}", highlight=False, soft_wrap=True)
    return 0


def rescore_custom_command(db: Path, model: str, *, force: bool, limit: int | None, console: Console,
                           out: Console) -> int:
    """Apply a registered custom model to every stored post: sentiment heads write ``scores`` (through
    :func:`aimusic.pipeline.rescore.rescore`), stance heads write ``stances`` (through the signals step's
    writer); other models' rows are never touched."""
    from aimusic.store.db import Store
    from aimusic.store.label_queries import delete_model_rows
    from sentiment.custom import CustomStanceScorer, load_custom, models_dir

    try:
        scorer = load_custom(model, models_dir(db))
        store = Store(db)
        table = "stances" if isinstance(scorer, CustomStanceScorer) else "scores"
        before = _per_model(store, table)
        started = time.perf_counter()
        if isinstance(scorer, CustomStanceScorer):
            from aimusic.debate.signals import tag_arguments_and_stance

            if force:  # stance rows carry no re-score checkpoint: redo this model's rows from scratch
                delete_model_rows(store, "stances", scorer.model_id)
            _, done = tag_arguments_and_stance(store, None, scorer, limit=limit)
            left = None
        else:
            from aimusic.pipeline.rescore import rescore

            summary, left = rescore(store, scorer, force=force, limit=limit)
            done = summary.scored
        after = _per_model(store, table)
    except _expected() as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return 2
    elapsed = time.perf_counter() - started
    rest = f"; {left:,} left - run again to continue" if left else ""
    out.print(f"{table}: {done:,} posts scored with {scorer.model_id} in {elapsed:.1f}s{rest}", highlight=False)
    summary_table = Table(title=f"{table} per model (other models' rows are never changed)")
    for col in ("model", "before", "after"):
        summary_table.add_column(col, justify="left" if col == "model" else "right")
    for name in sorted(set(before) | set(after)):
        summary_table.add_row(name, f"{before.get(name, 0):,}", f"{after.get(name, 0):,}")
    out.print(summary_table)
    return 0


def _per_model(store: Any, table: str) -> dict[str, int]:
    from aimusic.store.label_queries import rows_per_model

    with store.connect() as con:
        return rows_per_model(con, table)


def train(
    task: Annotated[str, typer.Option("--task", help="sentiment, stance or relevance")],
    base: Annotated[Path | None, typer.Option("--base", help="extra training data: TSV with label and text "
                                              "columns (e.g. tests/data/stance_train.tsv), weighted")] = None,
    base_weight: Annotated[float, typer.Option("--base-weight", help="weight of each base row against one of "
                                               "your labels")] = 0.3,
    folds: Annotated[int, typer.Option(help="cross-validation folds")] = 5,
    seed: Annotated[int, typer.Option(help="random seed (folds, bootstrap)")] = 0,
    db: Annotated[Path | None, typer.Option("--db", help="DuckDB file (default: $AIMUSIC_DB, else "
                                            "data/aimusic.duckdb)")] = None,
) -> None:
    """Train a custom head on your labels (aimusic labels / the Label view): cross-validated macro recall with an
    interval and the confusion matrix, then a new versioned model custom:<task>-v<N> under models/ next to the
    database. Apply it with aimusic rescore --model custom:<task>-v<N>."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    console = Console(stderr=True)
    out = Console(width=max(Console().width, 110))
    raise typer.Exit(train_command(resolve_db(db), task, base=base, base_weight=base_weight, folds=folds, seed=seed,
                                   console=console, out=out))

"""The command-line side of the debate signals (``aimusic signals``, ``aimusic eval --task stance|relevance``).

Thin: the work is in :mod:`aimusic.debate.signals`, :mod:`sentiment.stance` and :mod:`aimusic.debate.labelled`;
these functions print figures and return an exit code.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from aimusic.debate.labelled import RELEVANCE_SET, evaluate_relevance, load_labelled, multi_report

STANCE_EVAL_SET = RELEVANCE_SET.with_name("stance_eval.tsv")


def eval_stance_command(data: Path | None, model: str | None, *, as_json: bool, console: Console, out: Console) -> int:
    """Macro recall, accuracy, per-class recall/precision and the confusion matrix of a stance model."""
    from sentiment.base import ScorerError
    from sentiment.stance import STANCE_LABELS, TRUSTED_MACRO_RECALL, load_stance

    path = data or STANCE_EVAL_SET
    try:
        examples = load_labelled(path)
        scorer = load_stance(model)
    except (OSError, ValueError, ScorerError) as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return 2
    unknown = sorted({e.label for e in examples} - set(STANCE_LABELS))
    if unknown:
        console.print(f"[bold red]error:[/] {path}: labels {unknown} are not stance labels {list(STANCE_LABELS)}")
        return 2
    started = time.perf_counter()
    batch = scorer.score([e.text for e in examples])
    seconds = time.perf_counter() - started
    predicted = [lab or "neutral" for lab in batch.labels]  # an unscorable post counts as a miss unless neutral
    report = multi_report([e.label for e in examples], predicted, STANCE_LABELS)
    figures = {
        "model": scorer.model_id,
        "data": str(path),
        "n": report.n,
        "macro_recall": round(report.macro_recall, 4),
        "accuracy": round(report.accuracy, 4),
        "recall": {lab: round(report.recall(lab), 4) for lab in STANCE_LABELS},
        "precision": {lab: round(report.precision(lab), 4) for lab in STANCE_LABELS},
        "confusion": [list(r) for r in report.matrix],
        "labels": list(STANCE_LABELS),
        "unscored": sum(1 for s in batch.status if s != "scored"),
        "posts_per_s": round(len(examples) / max(seconds, 1e-9), 1),
        "experimental": report.macro_recall < TRUSTED_MACRO_RECALL,
    }
    if as_json:
        out.print_json(json.dumps(figures))
        return 0
    out.print(f"stance model {scorer.model_id} on {path} ({report.n} posts, {figures['posts_per_s']} posts/s)")
    out.print(f"macro-averaged recall {report.macro_recall:.3f}, accuracy {report.accuracy:.3f}"
              + (f"  [yellow](experimental: below {TRUSTED_MACRO_RECALL:.2f})[/]" if figures["experimental"] else ""))
    table = Table(title="confusion matrix (rows: true label, columns: predicted)")
    table.add_column("true \\ predicted")
    for lab in STANCE_LABELS:
        table.add_column(lab, justify="right")
    table.add_column("recall", justify="right")
    table.add_column("precision", justify="right")
    for i, lab in enumerate(STANCE_LABELS):
        table.add_row(lab, *(str(v) for v in report.matrix[i]), f"{report.recall(lab):.3f}",
                      f"{report.precision(lab):.3f}")
    out.print(table)
    return 0


def eval_relevance_command(data: Path | None, topics_path: Path | None, *, as_json: bool, out: Console,
                           console: Console) -> int:
    """Precision and recall of the relevance rules on a labelled set (all rows, the dev and held-out parts)."""
    from aimusic.core.topics import TopicsError, load_topics
    from aimusic.debate.relevance import RelevanceFilter

    path = data or RELEVANCE_SET
    try:
        examples = load_labelled(path)
        rules = RelevanceFilter(load_topics(topics_path))
    except (OSError, ValueError, TopicsError) as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return 2
    reports = evaluate_relevance(rules.check, examples)
    if as_json:
        out.print_json(json.dumps({k: {"n": r.n, "precision": round(r.precision, 4), "recall": round(r.recall, 4),
                                       "tp": r.tp, "fp": r.fp, "fn": r.fn, "tn": r.tn} for k, r in reports.items()}))
        return 0
    for name, report in reports.items():
        out.print(f"{name:<8} {report.line()}")
    return 0


def signals_command(db: Path, topics_path: Path | None, stance_model: str | None, *, limit: int | None,
                    console: Console, out: Console) -> int:
    """Entities, arguments and stance for every stored post lacking them (resumable)."""
    from rich.progress import Progress

    from aimusic.core.topics import TopicsError, load_topics
    from aimusic.debate.signals import ArgumentTagger, count_pending, update_signals
    from aimusic.store.db import Store, StoreError
    from sentiment.base import ScorerError
    from sentiment.stance import load_stance

    try:
        store = Store(db)
        topics = load_topics(topics_path)
        no_encoder = (stance_model or "").strip().lower() in ("none", "off")
        tagger = ArgumentTagger.from_topics(topics, use_embeddings=not no_encoder) if topics.arguments else None
        args_model = tagger.model_id if tagger else None
        stance_id = None if no_encoder else load_stance(stance_model).model_id
        pending = count_pending(store, args_model, stance_id)
    except (StoreError, TopicsError, ScorerError) as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return 2
    total = min(pending, limit) if limit is not None else pending
    with Progress(console=console) as bar:
        task = bar.add_task("arguments and stance", total=total)
        summary = update_signals(store, topics, stance_model=stance_model, limit=limit,
                                 progress=lambda n: bar.advance(task, n))
    out.print(summary.line())
    return 0


def eval_task_command(task: str, data: Path | None, model: str | None, *, as_json: bool, console: Console,
                      out: Console) -> int:
    """``aimusic eval --task stance|relevance`` (``--model`` is the stance model; ignored for relevance)."""
    if task == "stance":
        return eval_stance_command(data, model, as_json=as_json, console=console, out=out)
    if task == "relevance":
        return eval_relevance_command(data, None, as_json=as_json, out=out, console=console)
    console.print(f"[bold red]error:[/] unknown task {task!r}: use sentiment, stance or relevance")
    return 2

"""What ``aimusic rescore``, ``aimusic eval`` and ``aimusic train-head`` do; :mod:`aimusic.cli.main` only wraps them.

Each function prints through the consoles it is given and returns an exit code (0 ok, 2 expected error with
a one-line message), so they are easy to test and never show a stack trace for expected problems.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from aimusic.core.config import ConfigError

log = logging.getLogger(__name__)


def _error(console: Console, message: str) -> int:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    return 2


def _expected() -> tuple[type[BaseException], ...]:
    from aimusic.store.db import StoreError
    from sentiment import ScorerError

    return (ConfigError, StoreError, ScorerError, FileNotFoundError)


def _models(store: Any) -> dict[str, int]:
    from aimusic.store.queries import scores_by_model

    return dict(sorted(scores_by_model(store)))


def rescore_command(
    db: Path, model: str, *, force: bool, limit: int | None, console: Console, out: Console
) -> int:
    """Score every post with ``model`` (see :func:`aimusic.pipeline.rescore.rescore`), with a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from aimusic.pipeline.rescore import count_pending, forced_since, load_multilingual, rescore
    from aimusic.store.db import Store
    from sentiment import load_scorer

    try:
        scorer = load_scorer(model)
        multilingual = load_multilingual()
        store = Store(db)
        before = _models(store)
        since, resumed = forced_since(store, scorer.model_id) if force else (None, False)
        pending = count_pending(store, scorer.model_id, since)
    except _expected() as exc:
        return _error(console, str(exc))
    if resumed:
        out.print(f"resuming the forced re-score with {scorer.model_id} started at {since}")
    total = pending if limit is None else min(pending, limit)
    note = f" (this run: at most {limit:,})" if limit else ""
    out.print(f"{pending:,} posts to score with {scorer.model_id}{note}")
    started = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(f"re-scoring with {scorer.model_id}", total=total)
        try:
            summary, left = rescore(
                store, scorer, force=force, multilingual=multilingual, limit=limit,
                progress=lambda n: bar.advance(task, n),
            )
        except _expected() as exc:
            bar.stop()
            return _error(console, f"{exc} (scores written so far are kept; run the same command again to resume)")
    elapsed = time.perf_counter() - started
    after = _models(store)
    out.print(
        f"scored {summary.scored:,} posts with {scorer.model_id} in {elapsed:.1f}s "
        f"({summary.scored / max(elapsed, 1e-9):,.0f}/s); {left:,} left"
        + (" - run the same command again to continue" if left else ""),
        soft_wrap=True,
    )
    if summary.multilingual:
        out.print(f"scored {summary.multilingual:,} posts in other languages with {summary.multilingual_model}")
    table = Table(title="scores per model (other models' rows are never changed)")
    for col in ("model", "before", "after"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name in sorted(set(before) | set(after)):
        table.add_row(name, f"{before.get(name, 0):,}", f"{after.get(name, 0):,}")
    out.print(table)
    return 0


def _print_report(result: dict[str, Any], out: Console) -> None:
    pct = lambda x: f"{x:.3f}"  # noqa: E731
    out.print(f"model        {result['model']} (loaded in {result['load_seconds']:.1f}s)")
    out.print(f"data         {result['data']}: {result['n']:,} rows scored"
              + (f", {result['rows_skipped']} skipped" if result["rows_skipped"] else "")
              + (f", {result['not_scored']} not scored" if result["not_scored"] else ""))
    ece = f"   ECE {pct(result['ece'])}" if result.get("ece") is not None else ""
    out.print(f"macro recall {pct(result['macro_recall'])} (over all {len(result['labels'])} classes)   accuracy "
              f"{pct(result['accuracy'])}   macro F1 {pct(result['macro_f1'])}{ece}   "
              f"{result['posts_per_s']:,} posts/s", soft_wrap=True)
    if result.get("absent"):
        out.print(f"[yellow]no {', '.join(result['absent'])} rows in this file: their recall counts as 0[/]")
    table = Table(title="per class")
    for col in ("class", "recall", "precision", "F1", "support"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for label in result["labels"]:
        table.add_row(label, pct(result["recall"][label]), pct(result["precision"][label]), pct(result["f1"][label]),
                      str(result["support"][label]))
    out.print(table)
    cm = Table(title="confusion matrix (rows: true label, columns: predicted)")
    cm.add_column("true \\ predicted")
    for label in result["labels"]:
        cm.add_column(label, justify="right")
    for label, row in zip(result["labels"], result["confusion"], strict=True):
        cm.add_row(label, *(str(v) for v in row))
    out.print(cm)


def eval_command(data: Path, model: str | None, *, as_json: bool, console: Console, out: Console,
                 label_column: str | None = None) -> int:
    """Evaluate ``model`` (default: what ``aimusic run`` would use here) on a labelled TSV (label column: ``label``,
    else ``sentiment``, or ``label_column``)."""
    from aimusic.pipeline.rescore import choose_scorer
    from sentiment.evaluate import evaluate, read_tsv

    try:
        dataset = read_tsv(data, "sentiment", label_column=label_column)
        started = time.perf_counter()
        scorer = choose_scorer(model)
        load_seconds = time.perf_counter() - started
        result = evaluate(scorer, dataset)
    except _expected() as exc:
        return _error(console, str(exc))
    result["load_seconds"] = round(load_seconds, 2)
    result["label_column"] = dataset.label_column
    if as_json:
        out.print(json.dumps(result, sort_keys=True), soft_wrap=True, highlight=False, markup=False)
    else:
        _print_report(result, out)
    return 0


def train_head_command(data: Path, out_file: Path | None, *, cache: bool, console: Console, out: Console) -> int:
    """Train the offline default's head (``sentiment.train_head``) and print what was written."""
    from sentiment.head import HEAD_FILE
    from sentiment.train_head import default_cache_dir, train

    target = out_file or HEAD_FILE
    try:
        record = train(data, out=target, provenance_out=target.with_suffix(".json"),
                       cache_dir=default_cache_dir() if cache else None)
    except _expected() as exc:
        return _error(console, str(exc))
    name = "minilm" if target.resolve() == HEAD_FILE.resolve() else f"minilm:{target}"
    out.print(f"wrote {target} (sha256 {record['file_sha256'][:12]}, C={record['classifier']['C']}) and "
              f"{target.with_suffix('.json')}; evaluate it with: aimusic eval --model {name} --data val.tsv",
              soft_wrap=True)
    return 0

"""``aimusic rescore``, ``eval``, ``train-head`` and ``signals``: the model commands (their work is in
:mod:`aimusic.cli.sentiment`, :mod:`aimusic.cli.debate` and :mod:`aimusic.cli.train`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aimusic.cli.common import DbOpt, ModelOpt, TopicsOpt, console, out, setup_logging
from aimusic.core.config import resolve_db


def rescore(
    model: Annotated[str, typer.Option("--model", help="the model to score everything with, e.g. minilm, vader, "
                                       "transformer:<hub id or path>, custom:<task>-v<N>")],
    force: Annotated[bool, typer.Option("--force", help="also redo posts that already have a current score from "
                                        "this model (resumable too)")] = False,
    limit: Annotated[int | None, typer.Option(help="score at most this many posts in this run")] = None,
    db: DbOpt = None,
) -> None:
    """Score every post with another model, incrementally and resumably; other models' rows stay as they are."""
    setup_logging()
    if model.strip().lower().startswith("custom:"):  # trained by `aimusic train`; stance ones write `stances`
        from aimusic.cli.train import rescore_custom_command

        raise typer.Exit(rescore_custom_command(resolve_db(db), model, force=force, limit=limit, console=console,
                                                out=out))
    from aimusic.cli.sentiment import rescore_command

    raise typer.Exit(rescore_command(resolve_db(db), model, force=force, limit=limit, console=console, out=out))


def evaluate(
    data: Annotated[Path, typer.Option("--data", help="a TSV you pass, with label and text columns (for --task "
                                       "stance and relevance the repository ships tests/data/stance_eval.tsv and "
                                       "tests/data/relevance.tsv)")],
    model: ModelOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the figures as one JSON object")] = False,
    task: Annotated[str, typer.Option("--task", help="sentiment, stance (--model ensemble, minilm-ft, minilm "
                                      "or nli:<hub id>) or relevance")] = "sentiment",
    label_column: Annotated[str | None, typer.Option(
        "--label-column", help="the column holding the labels (default: label, else the task's own column, e.g. "
        "relevant / sentiment / stance)")] = None,
) -> None:
    """Evaluate a model on labelled posts: macro recall, accuracy, macro F1, confusion matrix, posts/s."""
    setup_logging()
    if task != "sentiment":  # debate signals (aimusic.cli.debate)
        from aimusic.cli.debate import eval_task_command

        raise typer.Exit(eval_task_command(task, data, model, as_json=as_json, console=console, out=out,
                                           label_column=label_column))
    from aimusic.cli.sentiment import eval_command

    raise typer.Exit(eval_command(data, model, as_json=as_json, console=console, out=out, label_column=label_column))


def train_head(
    data: Annotated[Path, typer.Option("--data", help="a labelled TSV you pass (label and text columns)")],
    head_out: Annotated[Path | None, typer.Option("--out", help="head file (default sentiment/weights/"
                                                  "minilm_head.npz)")] = None,
    cache: Annotated[bool, typer.Option(help="cache the training embeddings under ~/.cache")] = True,
) -> None:
    """Train the offline default's classification head on MiniLM embeddings."""
    setup_logging()
    from aimusic.cli.sentiment import train_head_command

    raise typer.Exit(train_head_command(data, head_out, cache=cache, console=console, out=out))


def signals(
    db: DbOpt = None,
    topics: TopicsOpt = None,
    stance_model: Annotated[str | None, typer.Option(
        "--stance-model", help="ensemble (default: minilm-ft and minilm averaged), minilm-ft, minilm, nli:<hub id or "
        "dir>, or none (no encoder: arguments by keywords only)")] = None,
    limit: Annotated[int | None, typer.Option(help="process at most this many posts in this run")] = None,
) -> None:
    """Debate signals for stored posts lacking them: entities, arguments, stance.

    Resumable; the monitoring pass does this for new posts after scoring.
    """
    setup_logging()
    from aimusic.cli.debate import signals_command

    raise typer.Exit(signals_command(resolve_db(db), topics, stance_model, limit=limit, console=console, out=out))

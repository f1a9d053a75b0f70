"""``aimusic labels import|export|status``: the user's labels as files (see :mod:`aimusic.store.labels`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from aimusic.core.config import ConfigError, resolve_db

app = typer.Typer(
    help="Your labels of posts (sentiment, stance, relevance): import, export, counts. Label posts one by one in "
         "the dashboard's Label view; train on them with `aimusic train`.",
    no_args_is_help=True,
)
DbOpt = Annotated[
    Path | None, typer.Option("--db", help="DuckDB file (default: $AIMUSIC_DB, else data/aimusic.duckdb)")
]


def _consoles() -> tuple[Console, Console]:
    return Console(stderr=True), Console(width=max(Console().width, 110))


def _fail(console: Console, message: str) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True, markup=True)
    raise typer.Exit(2)


def _expected() -> tuple[type[BaseException], ...]:
    from aimusic.store.db import StoreError
    from aimusic.store.labels import LabelFileError

    return (ConfigError, StoreError, LabelFileError, OSError)


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="TSV: source, post_id, task, label[, labeller, picked, labelled_at]")],
    db: DbOpt = None,
) -> None:
    """Import a label file whole: any bad line (unknown post, task or label) rejects it, naming the lines."""
    from aimusic.store.db import Store
    from aimusic.store.labels import import_labels

    console, out = _consoles()
    try:
        result = import_labels(Store(resolve_db(db)), file)
    except _expected() as exc:
        _fail(console, str(exc).replace("[", "\\["))
    out.print(f"{file}: {result.rows} labels read, {result.new} new, {result.changed} changed, "
              f"{result.unchanged} already stored", highlight=False, soft_wrap=True)


@app.command()
def export(
    output: Annotated[Path, typer.Option("--out", help="TSV file to write")],
    db: DbOpt = None,
) -> None:
    """Write every label to a TSV that `aimusic labels import` reads back exactly."""
    from aimusic.store.db import Store
    from aimusic.store.labels import export_labels

    console, out = _consoles()
    try:
        rows = export_labels(Store(resolve_db(db), read_only=True), output)
    except _expected() as exc:
        _fail(console, str(exc))
    out.print(f"wrote {rows} labels to {output}", soft_wrap=True)


@app.command()
def status(db: DbOpt = None) -> None:
    """Labels per task, label, labeller and pick (random sample or active learning)."""
    from aimusic.store.db import Store
    from aimusic.store.labels import status as label_status

    console, out = _consoles()
    try:
        store = Store(resolve_db(db), read_only=True)
        with store.connect() as con:
            df = label_status(con)
    except _expected() as exc:
        _fail(console, str(exc))
    if df.empty:
        out.print("no labels yet: label posts in the dashboard's Label view or `aimusic labels import FILE.tsv`")
        return
    table = Table(title=f"{int(df['labels'].sum()):,} labels")
    for col in ("task", "label", "labeller", "picked", "labels"):
        table.add_column(col, justify="right" if col == "labels" else "left")
    for row in df.itertuples(index=False):
        table.add_row(row.task, row.label, row.labeller, row.picked, f"{row.labels:,}")
    out.print(table)
    totals = df.groupby(["task", "picked"])["labels"].sum()
    out.print("per task: " + "; ".join(f"{t} {p} {n:,}" for (t, p), n in totals.items()), highlight=False)

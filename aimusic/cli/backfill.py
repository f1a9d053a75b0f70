"""``aimusic backfill``: a progress bar per file and the summary (the work is in :mod:`aimusic.pipeline.backfill`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from aimusic.cli.common import DbOpt, ModelOpt, TopicsOpt, check_db, reported, setup_logging
from aimusic.cli.common import console as err_console
from aimusic.cli.common import out as std_out
from aimusic.core.config import resolve_db

if TYPE_CHECKING:  # the importer (pyarrow, DuckDB) loads when the command runs, not with --help
    from aimusic.core.topics import Topics
    from aimusic.pipeline.backfill import FileReport
    from aimusic.store.db import Store


def backfill_command(
    paths: list[Path],
    *,
    store: Store,
    topics: Topics,
    fmt: str,
    mapping: list[str] | None,
    source_name: str | None,
    force: bool,
    console: Console,
    out: Console,
    second_stage: bool = True,
    bulk: bool = True,
) -> tuple[int, list[FileReport]]:
    """Run the import with a progress bar; return (exit code, reports). 0: all read; 1: some file failed."""
    from aimusic.pipeline.backfill import BackfillOptions, backfill_paths, summary_line
    from aimusic.pipeline.backfill_formats import FORMATS, FormatError, parse_mapping

    if fmt not in FORMATS:
        console.print(f"[bold red]error:[/] --format {fmt!r}: one of {', '.join(FORMATS)}")
        return 2, []
    try:
        columns = parse_mapping(mapping)
    except FormatError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return 2, []
    options = BackfillOptions(
        fmt=fmt,
        mapping=columns,
        source_name=source_name,
        force=force,
        quarantine_dir=store.path.parent / "quarantine",
        second_stage=second_stage,
        bulk=bulk,
    )
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )

    def factory(path: Path):
        size = path.stat().st_size
        task = progress.add_task(path.name[:40], total=size)
        return lambda n: progress.advance(task, n)

    interrupted = False
    with progress:
        try:
            reports = backfill_paths(paths, store, topics, options, progress_factory=factory)
        except KeyboardInterrupt:
            interrupted = True
            reports = []
    if interrupted:
        console.print(
            "[yellow]interrupted: everything up to the last batch is committed. "
            "Run the same command again to resume.[/]"
        )
        return 130, reports
    for report in reports:
        out.print(summary_line(report), highlight=False, soft_wrap=True)
    if len(reports) > 1:
        totals = {k: sum(getattr(r, k) for r in reports) for k in ("lines", "relevant", "new", "duplicates", "bad")}
        out.print(
            f"total: {totals['lines']:,} lines read, {totals['relevant']:,} relevant, {totals['new']:,} new, "
            f"{totals['duplicates']:,} duplicates, {totals['bad']:,} bad",
            highlight=False,
        )
    failed = [r for r in reports if r.error and not r.completed]
    return (1 if failed else 0), reports


def backfill(
    paths: Annotated[list[Path], typer.Argument(help="dump or export files (.zst, .gz, .bz2, .xz or plain)")],
    fmt: Annotated[str, typer.Option("--format", help="auto, reddit, x, csv or jsonl")] = "auto",
    mapping: Annotated[
        list[str] | None, typer.Option("--map", help="COLUMN=FIELD for csv/jsonl, repeatable (e.g. body=text)")
    ] = None,
    source_name: Annotated[
        str | None, typer.Option("--source-name", help="source of csv/jsonl rows without a source column")
    ] = None,
    db: DbOpt = None,
    model: ModelOpt = None,
    score: Annotated[bool, typer.Option("--score/--no-score", help="score the imported posts afterwards")] = True,
    force: Annotated[bool, typer.Option("--force", help="read files already imported again")] = False,
    topics: TopicsOpt = None,
    second_stage: Annotated[bool, typer.Option(
        "--second-stage/--rules-only", help="also ask the semantic relevance stage about texts the rules leave "
        "unsure (slower: it embeds them); --rules-only keeps what the rules keep")] = True,
    reader: Annotated[str, typer.Option(
        "--reader", help="Reddit dumps: bulk (DuckDB reads every line, Python only candidates) or line")] = "bulk",
) -> None:
    """Import history (Reddit dumps, saved X API responses, CSV/JSONL): relevant posts only, resumable."""
    from aimusic.cli.run import score_db
    from aimusic.core.topics import load_topics
    from aimusic.store.db import Store

    setup_logging()
    check_db(db)
    if reader not in ("bulk", "line"):
        err_console.print(f"[bold red]error:[/] --reader {reader!r}: bulk or line")
        raise typer.Exit(2)
    with reported():
        target = resolve_db(db)
        code, _ = backfill_command(
            paths, store=Store(target), topics=load_topics(topics), fmt=fmt, mapping=mapping,
            source_name=source_name, force=force, console=err_console, out=std_out,
            second_stage=second_stage, bulk=reader == "bulk",
        )
    if code in (0, 1) and score:
        score_db(target, model)
    if code:
        raise typer.Exit(code)

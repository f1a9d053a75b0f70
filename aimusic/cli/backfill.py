"""The terminal side of ``aimusic backfill``: a progress bar per file and the summary (the work is in
:mod:`aimusic.pipeline.backfill`)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from aimusic.core.topics import Topics
from aimusic.pipeline.backfill import BackfillOptions, FileReport, backfill_paths, summary_line
from aimusic.pipeline.backfill_formats import FORMATS, FormatError, parse_mapping
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
) -> tuple[int, list[FileReport]]:
    """Run the import with a progress bar; return (exit code, reports). 0: all read; 1: some file failed."""
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

"""``aimusic export`` (posts or daily aggregates to CSV or Parquet) and ``aimusic forget`` (takedowns)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from aimusic.cli.common import DbOpt, check_out, csv_list, fail, out, reported
from aimusic.core.config import resolve_db, resolve_read_db

EXPORTS = ("posts", "daily")
FORMATS = ("csv", "parquet")


def export(
    what: Annotated[str, typer.Argument(help="posts or daily")],
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet")] = "csv",
    output: Annotated[Path | None, typer.Option("--out", help="file to write (default: data/exports/WHAT.FORMAT)")]
    = None,
    since: Annotated[str | None, typer.Option(help="first day, YYYY-MM-DD (UTC)")] = None,
    until: Annotated[str | None, typer.Option(help="last day, YYYY-MM-DD (UTC), inclusive")] = None,
    sources: Annotated[str | None, typer.Option(help="comma-separated sources")] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="whose scores to export (default: the model with the most scores in the "
                     "database)"),
    ] = None,
    raw: Annotated[bool, typer.Option("--raw", help="CSV without the spreadsheet formula guard")] = False,
    db: DbOpt = None,
) -> None:
    """Export posts (with their scores) or daily aggregates to CSV or Parquet.

    Written by DuckDB's COPY, one sentiment model per file. In CSV, list columns (terms, entities, arguments)
    are joined with "; "; Parquet keeps them as lists. Without --db, data/aimusic.duckdb is read, or
    data/demo.duckdb when only it exists.
    """
    from aimusic.core.config import EXPORTS_DIR
    from aimusic.debate.correction import add_adjusted_daily  # shares adjusted by the user's labels (issue 13)
    from aimusic.store.db import Store
    from aimusic.store.privacy import record_export
    from aimusic.store.queries import Filters
    from aimusic.store.queries import export as do_export

    if what not in EXPORTS:
        fail(f"unknown export {what!r}: use {' or '.join(EXPORTS)}")
    if fmt not in FORMATS:
        fail(f"unknown format {fmt!r}: use {' or '.join(FORMATS)}")
    try:
        filters = Filters(
            start=date.fromisoformat(since) if since else None,
            end=date.fromisoformat(until) if until else None,
            sources=tuple(csv_list(sources) or ()),
            model=model,
        )
    except ValueError as exc:
        fail(f"--since/--until: {exc}")
    target = output or EXPORTS_DIR / f"{what}.{fmt}"
    check_out(target)
    source, note = resolve_read_db(db)
    if note:
        out.print(note, highlight=False, soft_wrap=True)
    with reported():
        rows = do_export(Store(source, read_only=True), what, target, filters=filters, fmt=fmt, raw=raw,
                         adjust_daily=add_adjusted_daily)
        # the exports index lets `aimusic forget` find and clean files that hold a removed post
        record_export(Store(source), target, what, fmt, rows,
                      {"since": since, "until": until, "sources": sources, "model": model, "raw": raw})
    out.print(f"wrote {rows} rows from {source} to {target}", highlight=False, soft_wrap=True)


def forget(
    author: Annotated[str | None, typer.Option(help="remove every post of this author handle")] = None,
    post: Annotated[str | None, typer.Option(help="remove one post, given as SOURCE:POST_ID")] = None,
    source: Annotated[str | None, typer.Option(help="with --author: only on this source")] = None,
    keep_exports: Annotated[bool, typer.Option(help="do not rewrite export files that contain the data")] = False,
    db: DbOpt = None,
) -> None:
    """Takedown request: delete an author's or a post's data everywhere and keep it out from now on.

    Removes posts, scores and signals, rewrites indexed export files, and records a digest so that later
    runs and imports skip the data.
    """
    from aimusic.core.config import get_settings
    from aimusic.store.db import Store
    from aimusic.store.privacy import forget as do_forget

    if (author is None) == (post is None):
        fail("give exactly one of --author NAME or --post SOURCE:POST_ID")
    parsed = None
    if post is not None:
        src, sep, pid = post.partition(":")
        if not sep or not src or not pid:
            fail(f"--post must look like SOURCE:POST_ID (e.g. reddit:1abcde), got {post!r}")
        parsed = (src, pid)
    with reported():
        secret = get_settings().pseudonymize_key
        key = secret.get_secret_value() if secret else None
        result = do_forget(Store(resolve_db(db)), author=author, post=parsed, source=source,
                           pseudonymize_key=key, rewrite_exports=not keep_exports)
    removed = ", ".join(f"{t} {n}" for t, n in result.rows_by_table.items() if n) or "nothing stored"
    out.print(f"removed: {removed}; future runs and imports will skip it", highlight=False)
    for path in result.exports_rewritten:
        out.print(f"rewrote export without it: {path}", highlight=False)
    for path in result.exports_missing:
        out.print(f"[yellow]indexed export no longer exists (check copies elsewhere): {path}[/]", highlight=False)

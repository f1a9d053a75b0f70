"""``aimusic backfill``: import history from dump and export files, streaming, resumable, idempotent.

For each file: read it unit by unit (a line; a CSV row), keep what the relevance filter keeps (the same rules as
collection, behind a cheap exact pre-check, :mod:`aimusic.debate.quickfilter`), and write the kept posts in Arrow
batches through :meth:`aimusic.store.db.Store.upsert_posts`, every ``batch_lines`` units.
Memory stays bounded by one batch.

- **Idempotent.** Posts are keyed by (source, id). A row already in the database is only replaced by a copy
  captured later (``fetched_at``: the archive's ``retrieved_on``, else the file's modification time), so an old
  dump never overwrites fresher collected data, and re-importing a file adds and changes nothing.
- **Resumable.** The file's progress (units done, counts) is a cursor under source ``backfill``, keyed by a
  fingerprint of the file (size and its first and last MiB, so a renamed or moved file is recognised), and is
  committed in the same transaction as each batch. An interrupted import resumes after the last committed unit;
  a finished file is skipped unless ``force``.
- **Bad input is not fatal.** A unit that cannot be read is counted, a sample is written to a quarantine file
  (JSON lines: file, unit number, reason, the raw text cut to 2,000 characters), and the import goes on. A
  file that ends early (truncated download) keeps everything before the damage and says where it stopped.

No Prefect, no printing: :func:`backfill_paths` returns one :class:`FileReport` per file and reports progress
through a callback; the CLI draws the progress bar and the summary.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import lzma
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import zstandard

from aimusic.core.topics import Topics
from aimusic.debate.quickfilter import BulkPatterns, QuickRelevance
from aimusic.debate.relevance import RelevanceFilter
from aimusic.pipeline.backfill_bulk import BLOCK_BYTES, import_bulk
from aimusic.pipeline.backfill_formats import (
    FormatError,
    csv_rows,
    detect_format,
    parse_mapping,
    reader_for,
    x_json_units,
)
from aimusic.pipeline.backfill_units import Quarantine, UnitImporter, one_line
from aimusic.pipeline.dumpfiles import CountingReader, is_json_document, open_binary
from aimusic.store.db import Store

log = logging.getLogger(__name__)

CURSOR_SOURCE = "backfill"
BATCH_LINES = 50_000
PROGRESS_EVERY = 8_192  # units between progress callbacks

Progress = Callable[[int], None]  # bytes of the (compressed) file read since the last call


@dataclass
class BackfillOptions:
    fmt: str = "auto"
    mapping: dict[str, str] = field(default_factory=dict)
    source_name: str | None = None
    batch_lines: int = BATCH_LINES
    force: bool = False
    quarantine_dir: Path = Path("data/quarantine")
    bad_sample: int = 100  # bad units written to the quarantine file per import
    bulk: bool = True  # Reddit NDJSON dumps: DuckDB reads every line, Python only candidates (backfill_bulk)
    second_stage: bool = True  # the semantic relevance stage (when its model is here); False: rules only
    block_bytes: int = BLOCK_BYTES  # decompressed bytes per block of the bulk reader
    overlap: bool = True  # the second stage on a worker thread while reading goes on (backfill_units)


@dataclass
class FileReport:
    """What one file gave. ``lines``: units read by this call (lines; rows of a CSV; items of a JSON file)."""

    path: str
    format: str = ""
    fingerprint: str = ""
    lines: int = 0
    relevant: int = 0
    new: int = 0
    updated: int = 0
    duplicates: int = 0
    bad: int = 0
    not_posts: int = 0  # deleted/removed items and retweets: read, but nothing to store
    resumed_from: int = 0
    already_done: bool = False
    completed: bool = False
    interrupted: bool = False
    error: str | None = None
    quarantine: str | None = None
    seconds: float = 0.0
    reader: str = ""  # "bulk" or "line" (as `aimusic backfill --reader` names them)
    candidates: int = 0  # units handed to the per-line code (the bulk reader skips the rest)
    embedded: int = 0  # texts the second relevance stage embedded

    @property
    def lines_per_second(self) -> float:
        return self.lines / self.seconds if self.seconds > 0 else 0.0


# --- file identity and progress -------------------------------------------------------------------------------------


def fingerprint(path: Path, chunk: int = 1 << 20) -> str:
    """Identity of a file's content: its size and its first and last MiB (cheap even for 50 GB dumps)."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as fh:
        digest.update(fh.read(chunk))
        if size > chunk:
            fh.seek(max(size - chunk, chunk))
            digest.update(fh.read(chunk))
    return digest.hexdigest()[:32]


def progress_key(fp: str) -> str:
    return f"file:{fp}"


def load_progress(store: Store, fp: str) -> dict[str, Any]:
    raw = store.get_cursors(CURSOR_SOURCE).get(progress_key(fp))
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# --- the import ------------------------------------------------------------------------------------------------------


def _units(path: Path, fmt: str, stream: IO[bytes]) -> Iterator[Any]:
    if fmt == "csv":
        return csv_rows(stream, path)
    if fmt == "x" and is_json_document(path):
        return x_json_units(stream, path)
    return iter(stream)


@dataclass
class _At:
    """Where the reading stands: ``unit_no`` is the unit being handled (all before it are done)."""

    unit_no: int
    reported_bytes: int = 0


def _read_lines(path: Path, fmt: str, stream: IO[bytes], counter: CountingReader, importer: UnitImporter, at: _At,
                options: BackfillOptions, skip: int, progress: Progress | None) -> None:
    """The line reader: every unit through :meth:`UnitImporter.unit`."""
    report = importer.report
    unit_no = 0
    for unit in _units(path, fmt, stream):
        unit_no += 1
        at.unit_no = unit_no
        if progress is not None and unit_no % PROGRESS_EVERY == 0:
            progress(counter.count - at.reported_bytes)
            at.reported_bytes = counter.count
        if unit_no <= skip:
            continue
        report.lines += 1
        importer.unit(unit_no, unit)
        if unit_no % options.batch_lines == 0:
            importer.flush(done=False, units=unit_no, defer=True)


def _read_bulk(stream: IO[bytes], counter: CountingReader, patterns: BulkPatterns, importer: UnitImporter,
               at: _At, options: BackfillOptions, skip: int,
               progress: Progress | None) -> None:
    """The bulk reader (:mod:`aimusic.pipeline.backfill_bulk`): only the lines that may matter reach Python."""
    report = importer.report

    def read(lines: int) -> None:
        report.lines += lines
        if progress is not None:
            progress(counter.count - at.reported_bytes)
            at.reported_bytes = counter.count

    def at_line(unit_no: int) -> None:
        at.unit_no = unit_no

    import_bulk(
        stream, patterns, skip=skip, batch_lines=options.batch_lines, handle=importer.unit,
        flush=lambda units: importer.flush(done=False, units=units, defer=True), at_line=at_line, read=read,
        block_bytes=options.block_bytes,
    )


def backfill_file(
    path: Path,
    store: Store,
    checker: QuickRelevance,
    options: BackfillOptions,
    *,
    progress: Progress | None = None,
) -> FileReport:
    """Import one file; see the module docstring. Raises only on KeyboardInterrupt (after committing)."""
    path = Path(path)
    report = FileReport(path=str(path))
    started = time.perf_counter()
    try:
        report.fingerprint = fp = fingerprint(path)
        report.format = fmt = detect_format(path) if options.fmt == "auto" else options.fmt
        mtime = path.stat().st_mtime
        mtime_us = int(mtime * 1_000_000)
        reader = reader_for(fmt, options.mapping, options.source_name, fetched_at=datetime.fromtimestamp(mtime, UTC))
    except (OSError, FormatError) as exc:
        report.error = one_line(exc)
        return report
    state = {} if options.force else load_progress(store, fp)
    if state.get("done"):
        report.already_done = True
        report.completed = True
        report.seconds = time.perf_counter() - started
        return report
    skip = int(state.get("units") or 0)
    report.resumed_from = skip
    if checker.relevance.stage_two is not None:  # before anything of the import is open
        _prepare(checker.relevance.stage_two)
    quarantine = Quarantine(options.quarantine_dir, path, fp, options.bad_sample)
    importer = UnitImporter(
        store=store, checker=checker, reader=reader, report=report, quarantine=quarantine,
        cursor_key=(CURSOR_SOURCE, progress_key(fp)), cursor_base={"path": str(path), "format": fmt},
        mtime_us=mtime_us, overlap=options.overlap,
    )
    stage_two = checker.relevance.stage_two
    embedded_before = stage_two.embedded if stage_two is not None else 0
    patterns = checker.bulk_patterns() if options.bulk and fmt == "reddit" else None
    report.reader = "bulk" if patterns is not None else "line"
    at = _At(skip)
    stream, counter = open_binary(path)
    try:
        if patterns is not None:
            _read_bulk(stream, counter, patterns, importer, at, options, skip, progress)
        else:
            _read_lines(path, fmt, stream, counter, importer, at, options, skip, progress)
        importer.flush(done=True, units=at.unit_no)
        report.completed = True
    except KeyboardInterrupt:
        report.interrupted = True
        # the unit being handled may be half done: commit the others and read it again on resume (upserts are
        # idempotent, so its posts already pending are simply not new then)
        importer.flush(done=False, units=max(at.unit_no - 1, skip))
        raise
    except (OSError, EOFError, zstandard.ZstdError, lzma.LZMAError, FormatError, UnicodeDecodeError, csv.Error) as exc:
        report.error = f"stopped after line {at.unit_no:,}: {one_line(exc)} (everything before is kept)"
        importer.flush(done=False, units=max(at.unit_no - 1, skip))
    finally:
        importer.close()
        stream.close()
        quarantine.close()
        if quarantine.written:
            report.quarantine = str(quarantine.file)
        if progress is not None:
            progress(max(counter.count - at.reported_bytes, 0))
        report.candidates = importer.handed
        if stage_two is not None:
            report.embedded = stage_two.embedded - embedded_before
        report.seconds = time.perf_counter() - started
    return report


def _prepare(stage_two: Any) -> None:
    """Load the second stage before reading. Its first use on a machine exports the model to ONNX: that runs in a
    child process (:func:`sentiment.child_export.exports_in_child`), so the export's memory (about 400 MB) is never
    this import's, and before DuckDB and the reading hold theirs."""
    from sentiment import child_export

    with child_export.exports_in_child():
        stage_two.prepare()


def backfill_paths(
    paths: Iterable[Path],
    store: Store,
    topics: Topics,
    options: BackfillOptions,
    *,
    progress_factory: Callable[[Path], Progress | None] | None = None,
) -> list[FileReport]:
    """Import each file in turn; a file that cannot be read is reported and the others go on."""
    checker = QuickRelevance(RelevanceFilter(topics, semantic="auto" if options.second_stage else None, broad=False))
    reports = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            reports.append(FileReport(path=str(path), error="no such file"))
            continue
        progress = progress_factory(path) if progress_factory else None
        reports.append(backfill_file(path, store, checker, options, progress=progress))
    return reports


def summary_line(report: FileReport) -> str:
    """One line per file for the CLI and the logs."""
    if report.error and not report.lines:
        return f"{report.path}: {report.error}"
    if report.already_done:
        return f"{report.path}: already imported (use --force to read it again): nothing to do"
    parts = [
        f"{report.lines:,} lines read",
        f"{report.relevant:,} relevant",
        f"{report.new:,} new",
        f"{report.duplicates:,} duplicates",
        f"{report.bad:,} bad",
    ]
    if report.updated:
        parts.insert(3, f"{report.updated:,} updated")
    text = f"{report.path} [{report.format}]: " + ", ".join(parts)
    if report.resumed_from:
        text += f" (resumed after line {report.resumed_from:,})"
    if report.seconds > 0 and report.lines:
        text += f" in {report.seconds:.1f}s ({report.lines_per_second:,.0f} lines/s)"
    if report.quarantine:
        text += f"; bad lines sampled in {report.quarantine}"
    if report.error:
        text += f"; {report.error}"
    return text


__all__ = [
    "BackfillOptions",
    "FileReport",
    "backfill_file",
    "backfill_paths",
    "fingerprint",
    "load_progress",
    "parse_mapping",
    "summary_line",
]

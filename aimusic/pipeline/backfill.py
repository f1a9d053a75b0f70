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
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import zstandard
from pydantic import ValidationError

from aimusic.core.records import Post, posts_to_arrow
from aimusic.core.topics import Topics
from aimusic.debate.quickfilter import QuickRelevance
from aimusic.debate.relevance import RelevanceFilter
from aimusic.pipeline.backfill_formats import (
    BadUnit,
    FormatError,
    csv_rows,
    detect_format,
    parse_mapping,
    reader_for,
    x_json_units,
)
from aimusic.pipeline.dumpfiles import is_json_document, open_binary, safe_stem
from aimusic.store.db import Store

log = logging.getLogger(__name__)

CURSOR_SOURCE = "backfill"
BATCH_LINES = 50_000
RAW_SAMPLE = 2_000  # characters of a bad unit kept in the quarantine file
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


class _Quarantine:
    def __init__(self, directory: Path, path: Path, fp: str, limit: int) -> None:
        self.file = directory / f"{safe_stem(path)}-{fp[:8]}.jsonl"
        self.path = path
        self.limit = limit
        self.written = 0
        self._handle: IO[str] | None = None

    def add(self, unit: int, reason: str, raw: Any) -> None:
        if self.written >= self.limit:
            return
        if self._handle is None:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.file.open("a", encoding="utf-8")
        if isinstance(raw, bytes | bytearray):
            text = bytes(raw[: RAW_SAMPLE * 4]).decode("utf-8", errors="replace")
        elif isinstance(raw, str):
            text = raw
        else:
            text = json.dumps(raw, ensure_ascii=False, default=str)
        record = {"file": str(self.path), "unit": unit, "error": reason, "raw": text[:RAW_SAMPLE]}
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.written += 1

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


def _units(path: Path, fmt: str, stream: IO[bytes]) -> Iterator[Any]:
    if fmt == "csv":
        return csv_rows(stream, path)
    if fmt == "x" and is_json_document(path):
        return x_json_units(stream, path)
    return iter(stream)


def _fresher_only(store: Store, table: pa.Table) -> pa.Table:
    """Rows that are new, or captured later than the stored copy (an older copy never overwrites a newer one)."""
    if table.num_rows == 0:
        return table
    keys = table.select(["source", "post_id", "fetched_at"])
    with store.connect() as con:
        con.register("_bf_keys", keys)
        try:
            stale = con.sql(
                """SELECT k.source, k.post_id FROM _bf_keys k JOIN posts p
                   ON p.source = k.source AND p.post_id = k.post_id WHERE p.fetched_at >= k.fetched_at"""
            ).fetchall()
        finally:
            con.unregister("_bf_keys")
    if not stale:
        return table
    drop = set(stale)
    mask = [
        (s, p) not in drop
        for s, p in zip(table.column("source").to_pylist(), table.column("post_id").to_pylist(), strict=True)
    ]
    return table.filter(pa.array(mask, pa.bool_()))


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
        report.error = _one_line(exc)
        return report
    state = {} if options.force else load_progress(store, fp)
    if state.get("done"):
        report.already_done = True
        report.completed = True
        report.seconds = time.perf_counter() - started
        return report
    skip = int(state.get("units") or 0)
    report.resumed_from = skip
    quarantine = _Quarantine(options.quarantine_dir, path, fp, options.bad_sample)
    key = (CURSOR_SOURCE, progress_key(fp))
    pending: list[Post] = []
    waiting: list[tuple[Post, str | None]] = []  # posts the second relevance stage decides, in one batch per flush
    unit_no = 0
    reported_bytes = 0

    def flush(done: bool, units: int) -> None:
        """Commit the pending posts together with the file's progress (``units`` fully handled)."""
        nonlocal pending, waiting
        if waiting:
            decisions = checker.resolve([p.full_text for p, _ in waiting], [c for _, c in waiting])
            for (post, _), decision in zip(waiting, decisions, strict=True):
                if decision.relevant:
                    post.terms, post.relevance = decision.terms, decision.reason
                    pending.append(post)
                    report.relevant += 1
            waiting = []
        kept = len(pending)
        fresh = _fresher_only(store, posts_to_arrow(pending))
        pending = []
        cursor = {
            "path": str(path),
            "format": fmt,
            "units": units,
            "done": done,
            "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        result = store.upsert_posts(fresh, cursors={key: json.dumps(cursor)})
        report.new += result.new
        report.updated += result.updated
        report.duplicates += kept - result.new - result.updated

    stream, counter = open_binary(path)
    try:
        units = _units(path, fmt, stream)
        for unit in units:
            unit_no += 1
            if progress is not None and unit_no % PROGRESS_EVERY == 0:
                progress(counter.count - reported_bytes)
                reported_bytes = counter.count
            if unit_no <= skip:
                continue
            report.lines += 1
            if isinstance(unit, bytes) and not unit.strip():
                continue
            try:
                candidates = reader.candidates(unit)
            except BadUnit as exc:
                report.bad += 1
                quarantine.add(unit_no, str(exc), unit)
                continue
            for cand in candidates:
                decision = checker.decide(cand.title, cand.text, cand.community, defer=True)
                if decision is None:
                    continue
                try:
                    fields = cand.build()
                    if fields is None:
                        report.not_posts += 1
                        continue
                    post = _post(fields, decision.terms, mtime_us, decision.reason)
                except (BadUnit, ValidationError, ValueError, TypeError, KeyError) as exc:
                    report.bad += 1
                    quarantine.add(unit_no, _one_line(exc), unit)
                    continue
                if decision.stage == "pending":
                    waiting.append((post, cand.community))
                    continue
                pending.append(post)
                report.relevant += 1
            if unit_no % options.batch_lines == 0:
                flush(done=False, units=unit_no)
        flush(done=True, units=unit_no)
        report.completed = True
    except KeyboardInterrupt:
        report.interrupted = True
        # the unit being handled may be half done: commit the others and read it again on resume (upserts are
        # idempotent, so its posts already pending are simply not new then)
        flush(done=False, units=max(unit_no - 1, skip))
        raise
    except (OSError, EOFError, zstandard.ZstdError, FormatError, UnicodeDecodeError, csv.Error) as exc:
        report.error = f"stopped after line {unit_no:,}: {_one_line(exc)} (everything before is kept)"
        flush(done=False, units=max(unit_no - 1, skip))
    finally:
        stream.close()
        quarantine.close()
        if quarantine.written:
            report.quarantine = str(quarantine.file)
        if progress is not None:
            progress(max(counter.count - reported_bytes, 0))
        report.seconds = time.perf_counter() - started
    return report


def _post(fields: dict[str, Any] | Post, terms: list[str], mtime_us: int, relevance: str | None = None) -> Post:
    if isinstance(fields, Post):
        fields.terms = terms
        fields.relevance = relevance
        return fields
    values = dict(fields)
    stamp = values.pop("fetched_at", None)
    values["fetched_at"] = stamp if stamp is not None else mtime_us / 1_000_000
    values["terms"] = terms
    values["relevance"] = relevance
    return Post(**values)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())[:300]


def backfill_paths(
    paths: Iterable[Path],
    store: Store,
    topics: Topics,
    options: BackfillOptions,
    *,
    progress_factory: Callable[[Path], Progress | None] | None = None,
) -> list[FileReport]:
    """Import each file in turn; a file that cannot be read is reported and the others go on."""
    checker = QuickRelevance(RelevanceFilter(topics))
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

"""What ``aimusic backfill`` does with one unit (a line; a CSV row; an item of a JSON file), and with a batch.

Both readers of :mod:`aimusic.pipeline.backfill` (the line reader, and the bulk reader of
:mod:`aimusic.pipeline.backfill_bulk`, which hands over only the lines that may matter) go through
:class:`UnitImporter`, so a post is read, filtered, built, quarantined and committed the same way whichever
reader saw it.

The second relevance stage runs beside the reading: texts only it can decide are handed, :data:`RESOLVE_EVERY`
at a time, to one worker thread (the encoder, ONNX Runtime, releases the GIL) while the main thread reads on.
A batch of posts whose second-stage results are still out is committed at the next ``flush(defer=True)`` (or
any plain ``flush``), in order, after waiting for them: the rows, their order, the counts and the cursor
committed with each batch are those of running the stage in place (``overlap=False``).
"""

from __future__ import annotations

import json
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pyarrow as pa
from pydantic import ValidationError

from aimusic.core.records import Post, posts_to_arrow
from aimusic.debate.quickfilter import QuickRelevance
from aimusic.pipeline.backfill_formats import BadUnit
from aimusic.pipeline.dumpfiles import safe_stem
from aimusic.store.db import Store

if TYPE_CHECKING:
    from aimusic.pipeline.backfill import FileReport

RAW_SAMPLE = 2_000  # characters of a bad unit kept in the quarantine file
RESOLVE_EVERY = 256  # texts waiting for the second relevance stage that are embedded at once
IN_FLIGHT = 4  # batches of such texts handed to the worker and not yet done, at most (bounds memory)


class Quarantine:
    """The bad units of one file, the first ``limit`` of them written as JSON lines (file, unit number, reason, the
    raw text cut to :data:`RAW_SAMPLE` characters) to ``<directory>/<file>-<fingerprint>.jsonl``."""

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


def fresher_only(store: Store, table: pa.Table) -> pa.Table:
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


class UnitImporter:
    """Reads units into posts (``unit``) and commits them with the file's progress (``flush``)."""

    def __init__(self, *, store: Store, checker: QuickRelevance, reader: Any, report: FileReport,
                 quarantine: Quarantine, cursor_key: tuple[str, str], cursor_base: dict[str, Any],
                 mtime_us: int, overlap: bool = True) -> None:
        self.store = store
        self.checker = checker
        self.reader = reader
        self.report = report
        self.quarantine = quarantine
        self.cursor_key = cursor_key
        self.cursor_base = cursor_base
        self.mtime_us = mtime_us
        self.pending: list[Post | Future[list[Post]]] = []  # a future: the relevant posts of a second-stage batch
        self.waiting: list[tuple[Post, str | None]] = []  # posts the second relevance stage decides, in batches
        self.handed = 0  # units handed to this importer
        self.overlap = overlap  # the second stage on a worker thread (else in place)
        self._worker: ThreadPoolExecutor | None = None
        self._out: deque[Future[list[Post]]] = deque()  # handed to the worker, maybe not done
        self._commits: deque[tuple[list[Post | Future[list[Post]]], bool, int]] = deque()  # (batch, done, units)

    def unit(self, unit_no: int, unit: Any) -> None:
        """Read one unit (already counted in ``report.lines``); relevant posts join the pending batch."""
        self.handed += 1
        if isinstance(unit, bytes) and not unit.strip():
            return
        report = self.report
        try:
            candidates = self.reader.candidates(unit)
        except BadUnit as exc:
            report.bad += 1
            self.quarantine.add(unit_no, str(exc), unit)
            return
        for cand in candidates:
            decision = self.checker.decide(cand.title, cand.text, cand.community, defer=True)
            if decision is None:
                continue
            try:
                fields = cand.build()
                if fields is None:
                    report.not_posts += 1
                    continue
                post = make_post(fields, decision.terms, self.mtime_us, decision.reason)
            except (BadUnit, ValidationError, ValueError, TypeError, KeyError) as exc:
                report.bad += 1
                self.quarantine.add(unit_no, one_line(exc), unit)
                continue
            if decision.stage == "pending":
                self.waiting.append((post, cand.community))
                if len(self.waiting) >= RESOLVE_EVERY:
                    self._resolve()
                continue
            self.pending.append(post)
            report.relevant += 1

    def _resolve(self) -> None:
        """Hand the waiting posts to the second stage, as one batch; its relevant posts join the pending batch
        where they stand (on the worker thread when :attr:`overlap`)."""
        if not self.waiting:
            return
        if not self.overlap:
            kept = self._decide(self.waiting)
            self.waiting = []
            self.pending.extend(kept)
            self.report.relevant += len(kept)
            return
        while self._out and (len(self._out) >= IN_FLIGHT or self._out[0].done()):
            wait((self._out[0],))  # an error surfaces at the flush that commits this batch
            self._out.popleft()
        waiting, self.waiting = self.waiting, []
        if self._worker is None:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="aimusic-relevance")
        future = self._worker.submit(self._decide, waiting)
        self._out.append(future)
        self.pending.append(future)

    def _decide(self, waiting: list[tuple[Post, str | None]]) -> list[Post]:
        decisions = self.checker.resolve([p.full_text for p, _ in waiting], [c for _, c in waiting])
        kept = []
        for (post, _), decision in zip(waiting, decisions, strict=True):
            if decision.relevant:
                post.terms, post.relevance = decision.terms, decision.reason
                kept.append(post)
        return kept

    def flush(self, done: bool, units: int, *, defer: bool = False) -> None:
        """Commit the pending posts together with the file's progress (``units`` fully handled), after any
        batch left before. ``defer``: a batch still waiting for second-stage results is committed at the next
        flush instead (the reader goes on meanwhile)."""
        self._resolve()
        batch, self.pending = self.pending, []
        self._commits.append((batch, done, units))
        keep = 1 if defer and any(isinstance(p, Future) for p in batch) else 0
        while len(self._commits) > keep:
            batch, done, units = self._commits[0]
            posts = [q for p in batch for q in (p.result() if isinstance(p, Future) else (p,))]
            self._commits.popleft()
            self.report.relevant += sum(len(p.result()) for p in batch if isinstance(p, Future))
            self._commit(posts, done, units)

    def _commit(self, posts: list[Post], done: bool, units: int) -> None:
        kept = len(posts)
        fresh = fresher_only(self.store, posts_to_arrow(posts))
        cursor = {**self.cursor_base, "units": units, "done": done,
                  "updated_at": datetime.now(UTC).isoformat(timespec="seconds")}
        result = self.store.upsert_posts(fresh, cursors={self.cursor_key: json.dumps(cursor)})
        self.report.new += result.new
        self.report.updated += result.updated
        self.report.duplicates += kept - result.new - result.updated

    def close(self) -> None:
        """Stop the second-stage worker (what it has not started is dropped; what is not committed is read
        again on resume)."""
        if self._worker is not None:
            self._worker.shutdown(wait=True, cancel_futures=True)
            self._worker = None


def make_post(fields: dict[str, Any] | Post, terms: list[str], mtime_us: int, relevance: str | None = None) -> Post:
    """The Post of a relevant unit, with its matched terms, why it was kept, and when it was captured (the
    archive's ``fetched_at``, else the file's modification time ``mtime_us``)."""
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


def one_line(exc: BaseException) -> str:
    """A bad unit's reason in one line (the first field error of a validation error)."""
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())[:300]

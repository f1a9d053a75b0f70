"""The bulk reader of ``aimusic backfill`` for Reddit NDJSON dumps: DuckDB reads every line, Python only candidates.

The line reader (:mod:`aimusic.pipeline.backfill`) parses each line with orjson and asks the relevance filter
about it, about 50,000 lines/s. Most lines of a dump cannot be relevant, and this reader shows it in bulk:

1. the decompressed stream is cut into blocks of whole lines (:data:`BLOCK_BYTES`; a block never straddles a
   batch boundary, so progress is committed after the same lines as the line reader does);
2. a worker thread writes each block to a temporary file and has DuckDB's JSON reader parse it (``read_json``,
   columns ``title``, ``selftext``, ``body``, ``subreddit`` as JSON) and evaluate the vectorised pre-check of
   :meth:`aimusic.debate.quickfilter.QuickRelevance.bulk_patterns` on the joined text, while the main thread
   handles the block before;
3. the main thread hands the line reader's own per-line code (which runs the exact pre-check, the rules and the
   second stage) only the lines that may matter: lines the vectorised pre-check passes, lines of an on-topic
   community, and every line DuckDB cannot vouch for (a line not starting with ``{``, a title or text
   that is not a string, or any line of a block DuckDB rejects: the block is halved until the rejected lines
   are found). Python reads, counts and quarantines those exactly as before.

So the posts kept, their fields and their relevance reasons are the line reader's by construction; the pre-checks
are supersets of what the filter can keep. One known difference: DuckDB's JSON parser accepts trailing commas
and NaN/Infinity literals that Python's JSON readers refuse; such a line, when it cannot be relevant, is skipped
here instead of being counted as bad (JSON writers do not produce them).
"""

from __future__ import annotations

import lzma
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import zstandard

from aimusic.debate.quickfilter import BulkPatterns

BLOCK_BYTES = 8 << 20  # decompressed bytes per block (~6,000 Reddit comments)
MIN_SPLIT = 16  # a rejected piece of at most this many lines goes to Python whole
_READ_ERRORS = (OSError, EOFError, zstandard.ZstdError, lzma.LZMAError)
_BRACE = ord("{")
_NEWLINE = 10


@dataclass
class BulkStats:
    blocks: int = 0
    python_lines: int = 0  # lines handed to the per-line code
    routed: int = 0  # of those: lines sent without the exact pre-check (DuckDB could not vouch for them, or an
    #                  on-topic community)
    splits: int = 0  # DuckDB runs on halves of a rejected piece


@dataclass
class Block:
    """Whole lines of the file: ``first`` is the number (1-based) of the first; ``offsets`` the start of each line
    and the end (a line keeps its newline, as the line reader sees it)."""

    first: int
    data: bytes
    offsets: np.ndarray

    @property
    def lines(self) -> int:
        return len(self.offsets) - 1

    @property
    def last(self) -> int:
        return self.first + self.lines - 1

    def line(self, i: int) -> bytes:
        return self.data[int(self.offsets[i]) : int(self.offsets[i + 1])]


@dataclass
class Parsed:
    block: Block
    route: list[int] = field(default_factory=list)  # lines DuckDB cannot vouch for, and on-topic ones
    maybe: list[int] = field(default_factory=list)  # lines the vectorised pre-check passes
    chosen: list[int] = field(default_factory=list)  # both, in file order: what the per-line code reads


def _block(first: int, data: bytes) -> Block:
    ends = np.flatnonzero(np.frombuffer(data, np.uint8) == _NEWLINE) + 1
    parts = [np.zeros(1, np.int64), ends.astype(np.int64)]
    if not data.endswith(b"\n"):
        parts.append(np.array([len(data)], np.int64))
    return Block(first, data, np.concatenate(parts))


def _after_lines(data: bytes, k: int) -> int:
    """Position just after the ``k``-th newline of ``data`` (``k`` >= 1 and at most the newlines it has)."""
    pos = -1
    find = data.find
    for _ in range(k):
        pos = find(b"\n", pos + 1)
    return pos + 1


class LineBlocks:
    """Blocks of whole lines from a decompressed stream; lines up to ``skip`` are dropped, and no block crosses a
    multiple of ``batch_lines``. A read error ends the blocks after the last whole line read, then is raised."""

    def __init__(self, stream: IO[bytes], skip: int, batch_lines: int, block_bytes: int = BLOCK_BYTES) -> None:
        self.stream = stream
        self.skip = skip
        self.batch_lines = max(batch_lines, 1)
        self.block_bytes = block_bytes
        self.done = 0  # lines consumed so far, skipped ones included

    def __iter__(self) -> Iterator[Block]:
        rest = b""
        error: BaseException | None = None
        eof = False
        while not eof:
            parts, size = [rest], len(rest)
            while size < self.block_bytes:
                try:
                    chunk = self.stream.read1(self.block_bytes)  # type: ignore[attr-defined]
                except _READ_ERRORS as exc:
                    error, eof = exc, True
                    break
                if not chunk:
                    eof = True
                    break
                parts.append(chunk)
                size += len(chunk)
            data = b"".join(parts)
            end = data.rfind(b"\n") + 1
            if eof and error is None:
                end = len(data)  # the last line needs no newline
            data, rest = data[:end], data[end:]
            yield from self._cut(data)
        if error is not None:
            raise error

    def _cut(self, data: bytes) -> Iterator[Block]:
        while data:
            n = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
            if self.done < self.skip:
                k = self.skip - self.done
                if n <= k:
                    self.done += n
                    return
                data = data[_after_lines(data, k) :]
                self.done += k
                continue
            room = self.batch_lines - self.done % self.batch_lines
            if n > room:
                cut = _after_lines(data, room)
                piece, data = data[:cut], data[cut:]
            else:
                piece, data = data, b""
            block = _block(self.done + 1, piece)
            self.done += block.lines
            yield block


def _sql_text(pattern: str) -> str:
    return "'" + pattern.replace("'", "''") + "'"


class BlockParser:
    """DuckDB's side: which lines of a block Python must see. Owns an in-memory connection and a temporary folder
    (in ``/dev/shm`` when there is one); :meth:`close` removes both."""

    def __init__(self, patterns: BulkPatterns) -> None:
        self.patterns = patterns
        shm = Path("/dev/shm")
        base = str(shm) if shm.is_dir() and _writable(shm) else None
        self.folder = Path(tempfile.mkdtemp(prefix="aimusic-bulk-", dir=base))
        self.con = duckdb.connect(":memory:", config={"threads": 1, "enable_external_file_cache": False})
        self.stats = BulkStats()
        self._serial = 0
        self._on_topic: dict[str, bool] = {}
        p = patterns
        cand = [f"regexp_matches(t, {_sql_text(p.any_of)})"]
        if p.words and p.keys:
            cand.append(f"(regexp_matches(t, {_sql_text(p.words)}) AND regexp_matches(t, {_sql_text(p.keys)}))")
        if p.ai and p.music:
            cand.append(f"(regexp_matches(t, {_sql_text(p.ai)}) AND regexp_matches(t, {_sql_text(p.music)}))")
        odd = " OR ".join(f"coalesce(json_type({c}), 'NULL') NOT IN ('VARCHAR', 'NULL')"
                          for c in ("title", "selftext", "body"))
        self._select = f"""SELECT ({odd}) AS odd, ({" OR ".join(cand)}) AS cand, sub FROM (
            SELECT title, selftext, body, subreddit->>'$' AS sub,
                   concat_ws(chr(10), title->>'$', selftext->>'$', body->>'$') AS t
            FROM read_json(@PATH@, format='newline_delimited',
                           columns={{title: 'JSON', selftext: 'JSON', body: 'JSON', subreddit: 'JSON'}}))"""

    def close(self) -> None:
        self.con.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def parse(self, block: Block) -> Parsed:
        self.stats.blocks += 1
        out = Parsed(block)
        starts = np.frombuffer(block.data, np.uint8)[block.offsets[:-1]] if block.lines else np.zeros(0, np.uint8)
        routed = np.flatnonzero(starts != _BRACE)  # blank lines, arrays, null, leading spaces: Python decides
        data = block.data
        if len(routed):
            data = _with_placeholders(block, routed)
        self._classify(block, data, _offsets_of(block, routed), 0, block.lines, out)
        out.route = sorted(set(out.route) | {int(i) for i in routed})
        self.stats.routed += len(out.route)
        out.chosen = sorted(set(out.route) | set(out.maybe))
        return out

    def _classify(self, block: Block, data: bytes, offsets: np.ndarray, a: int, b: int, out: Parsed) -> None:
        """Lines ``a`` to ``b`` (excluded) of ``data`` (the block with placeholders, at ``offsets``)."""
        piece = data[int(offsets[a]) : int(offsets[b])]
        result = self._query(piece, b - a)
        if result is None:
            if b - a <= MIN_SPLIT:
                out.route.extend(range(a, b))
                return
            self.stats.splits += 2
            mid = (a + b) // 2
            self._classify(block, data, offsets, a, mid, out)
            self._classify(block, data, offsets, mid, b, out)
            return
        odd = result.column("odd").to_numpy(zero_copy_only=False)
        cand = result.column("cand").to_numpy(zero_copy_only=False)
        topic = self._topic_mask(result.column("sub"))
        out.route.extend(int(i) + a for i in np.flatnonzero(odd | topic))
        out.maybe.extend(int(i) + a for i in np.flatnonzero(cand & ~odd & ~topic))

    def _query(self, piece: bytes, lines: int) -> pa.Table | None:
        self._serial += 1
        path = self.folder / f"block-{self._serial}.ndjson"
        path.write_bytes(piece)
        try:
            table = self.con.sql(self._select.replace("@PATH@", _sql_text(str(path)))).to_arrow_table()
        except duckdb.Error:
            return None
        finally:
            path.unlink(missing_ok=True)
        return table if table.num_rows == lines else None

    def _topic_mask(self, subs: pa.ChunkedArray) -> np.ndarray:
        known = self._on_topic
        for value in pc.unique(subs).to_pylist():
            if value is not None and value not in known:
                known[value] = self.patterns.on_topic(value)
        topical = [v for v, yes in known.items() if yes]
        if not topical:
            return np.zeros(len(subs), bool)
        return pc.is_in(subs, value_set=pa.array(topical, pa.string())).to_numpy(zero_copy_only=False)


def _writable(folder: Path) -> bool:
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def _with_placeholders(block: Block, lines: np.ndarray) -> bytes:
    """The block with each of ``lines`` written as ``{}`` (DuckDB skips blank lines; the count must stay)."""
    parts, pos = [], 0
    for i in lines:
        parts.append(block.data[pos : int(block.offsets[i])])
        parts.append(b"{}\n")
        pos = int(block.offsets[i + 1])
    parts.append(block.data[pos:])
    return b"".join(parts)


def _offsets_of(block: Block, routed: np.ndarray) -> np.ndarray:
    """Line offsets of the block once ``routed`` lines are replaced by ``{}\\n`` (3 bytes each)."""
    if not len(routed):
        return block.offsets
    lengths = np.diff(block.offsets)
    lengths[routed] = 3
    return np.concatenate([np.zeros(1, np.int64), np.cumsum(lengths)])


def import_bulk(
    stream: IO[bytes],
    patterns: BulkPatterns,
    *,
    skip: int,
    batch_lines: int,
    handle: Callable[[int, bytes], None],
    flush: Callable[[int], None],
    at_line: Callable[[int], None],
    read: Callable[[int], None],
    block_bytes: int = BLOCK_BYTES,
) -> BulkStats:
    """Read ``stream`` in blocks; call ``handle(unit_no, line)`` for each line the per-line code must see (in file
    order), ``flush(units)`` after each block that ends a batch, ``at_line(unit_no)`` with the line being handled
    (everything before it is done) and ``read(lines)`` with the lines of each block. Read errors are raised
    after every whole line before them was handled."""
    parser = BlockParser(patterns)
    blocks = LineBlocks(stream, skip, batch_lines, block_bytes)
    it = iter(blocks)

    def job() -> Parsed | None:
        block = next(it, None)
        return None if block is None else parser.parse(block)

    try:
        with ThreadPoolExecutor(1, thread_name_prefix="aimusic-bulk") as pool:
            future = pool.submit(job)
            try:
                while (parsed := future.result()) is not None:
                    future = pool.submit(job)  # DuckDB reads the next block while Python handles this one
                    _handle(parsed, handle, at_line, parser.stats)
                    block = parsed.block
                    read(block.lines)
                    at_line(block.last)
                    if block.last % max(batch_lines, 1) == 0:
                        flush(block.last)
            finally:
                future.cancel()
        at_line(max(blocks.done, skip))
    finally:
        parser.close()
    return parser.stats


def _handle(parsed: Parsed, handle: Callable[[int, bytes], None], at_line: Callable[[int], None],
            stats: BulkStats) -> None:
    block = parsed.block
    for i in parsed.chosen:
        unit_no = block.first + i
        at_line(unit_no)
        handle(unit_no, block.line(i))
    stats.python_lines += len(parsed.chosen)

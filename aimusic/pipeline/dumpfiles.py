"""Opening dump and export files for ``aimusic backfill``: transparent decompression, byte counts, names.

Compression is read from the file's first bytes: zstd (Pushshift / Arctic Shift use windows of up to 2 GB,
hence ``max_window_size=2**31``), gzip, bz2 and xz. Streams are read in 1 MiB blocks; nothing holds a whole
file.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import re
from pathlib import Path
from typing import IO, Any

import zstandard

ZSTD_MAX_WINDOW = 2**31
COMPRESSED_SUFFIXES = (".zst", ".zstd", ".gz", ".bz2", ".xz")
_READ_SIZE = 1 << 20


class CountingReader(io.RawIOBase):
    """Wraps a binary file and counts the bytes read (compressed bytes, for the progress bar)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.raw.readinto(buffer)
        self.count += n or 0
        return n or 0

    def close(self) -> None:
        self.raw.close()
        super().close()


class ZstdReader(io.RawIOBase):
    """Decompresses zstd frames one after another, and fails on a file that ends inside a frame.

    (``ZstdDecompressor.stream_reader`` simply stops at a truncated frame, so a cut download would look complete.)
    """

    def __init__(self, raw: IO[bytes], read_size: int = _READ_SIZE) -> None:
        self.raw = raw
        self.read_size = read_size
        self._dctx = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
        self._dobj = self._new()
        self._in_frame = False
        self._out = memoryview(b"")
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._out:
            if self._done:
                return 0
            chunk = self.raw.read(self.read_size)
            if not chunk:
                self._done = True
                if self._in_frame:
                    raise zstandard.ZstdError("the file ends in the middle of a zstd frame (truncated download?)")
                return 0
            self._out = memoryview(self._feed(chunk))
        n = min(len(buffer), len(self._out))
        buffer[:n] = self._out[:n]
        self._out = self._out[n:]
        return n

    def _new(self) -> Any:
        # output in 1 MiB pieces: the default (128 KiB) makes decompressing twice as slow (many small joins)
        return self._dctx.decompressobj(write_size=_READ_SIZE)

    def _feed(self, data: bytes) -> bytes:
        parts = []
        while data:
            self._in_frame = True
            parts.append(self._dobj.decompress(data))
            if not self._dobj.eof:
                break
            data = self._dobj.unused_data  # the next frame starts here
            self._dobj = self._new()
            self._in_frame = False
        return b"".join(parts)

    def close(self) -> None:
        self.raw.close()
        super().close()


def compression(path: Path) -> str | None:
    with path.open("rb") as fh:
        magic = fh.read(6)
    if magic.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    if magic.startswith(b"\x1f\x8b"):
        return "gzip"
    if magic.startswith(b"BZh"):
        return "bz2"
    if magic.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    return None


def open_binary(path: Path) -> tuple[IO[bytes], CountingReader]:
    """A buffered, decompressed binary stream of ``path`` and the counter of raw bytes read."""
    counter = CountingReader(path.open("rb", buffering=0))
    kind = compression(path)
    if kind == "zstd":
        stream: IO[bytes] = ZstdReader(counter)  # type: ignore[assignment]
    elif kind == "gzip":
        stream = gzip.GzipFile(fileobj=counter)  # type: ignore[assignment]
    elif kind == "bz2":
        stream = bz2.BZ2File(counter)  # type: ignore[assignment]
    elif kind == "xz":
        stream = lzma.LZMAFile(counter)  # type: ignore[assignment]  # noqa: SIM115 - returned to the caller
    else:
        stream = counter  # type: ignore[assignment]
    return io.BufferedReader(stream, buffer_size=_READ_SIZE), counter  # type: ignore[arg-type]


def first_line(path: Path, limit: int = 1 << 20) -> bytes:
    """The first non-empty line (at most ``limit`` bytes of the decompressed start are looked at)."""
    stream, _ = open_binary(path)
    seen = 0
    try:
        while seen < limit:
            line = stream.readline(limit)
            if not line:
                return b""
            seen += len(line)
            if line.strip():
                return line
    except (OSError, EOFError, zstandard.ZstdError):
        return b""
    finally:
        stream.close()
    return b""


def plain_name(path: Path) -> str:
    """The file name in lower case without a compression suffix (``RC_2025-11.json.zst`` -> ``rc_2025-11.json``)."""
    name = path.name.lower()
    for suffix in COMPRESSED_SUFFIXES:
        name = name.removesuffix(suffix)
    return name


def is_json_document(path: Path) -> bool:
    """True for a (possibly compressed) ``.json`` file: one JSON value, not JSON lines."""
    return plain_name(path).endswith(".json")


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_stem(path: Path) -> str:
    return _SAFE.sub("_", path.name)[:80]

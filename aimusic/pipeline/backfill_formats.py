"""The file formats ``aimusic backfill`` reads, one reader each, streaming (nothing holds a whole file).

- ``reddit``: Reddit dump files (NDJSON, one submission or comment a line), as published by Pushshift and Arctic
  Shift (``RC_2025-11.zst``, ``RS_2025-11.zst``, ``<subreddit>_comments.zst``); mapped by
  :mod:`aimusic.sources.reddit_json`, the same mapping as the Reddit and Arctic Shift collectors.
- ``x``: X API v2 responses as users save them: a JSON file holding one response (``data`` + ``includes.users``)
  or a list of them, or JSONL with one response or one tweet a line.
- ``csv`` / ``jsonl``: any table of posts, with a column mapping (``--map column=field``) onto the Post fields.

Compression is read transparently from the file's first bytes (:mod:`aimusic.pipeline.dumpfiles`).

A reader turns one *unit* (a line; a CSV row; a tweet of a single-JSON file) into :class:`Candidate` objects:
the text the relevance filter reads, and a ``fields()`` call that builds the Post fields only for the few that
are kept. Units that cannot be read raise :class:`BadUnit`; the importer counts and quarantines them.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson

from aimusic.core.records import POST_COLUMNS, Post
from aimusic.pipeline.dumpfiles import first_line, plain_name
from aimusic.sources import reddit_json

FORMATS = ("auto", "reddit", "x", "csv", "jsonl")


class BadUnit(ValueError):
    """One line / row / item could not be read; the message says why (one line)."""


class FormatError(ValueError):
    """The file as a whole cannot be read in the requested format (the message says what to do)."""


@dataclass(slots=True)
class Candidate:
    """One post-to-be: what relevance needs, and a deferred build of the full fields."""

    title: str | None
    text: str
    community: str | None
    build: Callable[[], dict[str, Any] | Post | None]


def detect_format(path: Path) -> str:
    """``reddit``, ``x``, ``csv`` or ``jsonl`` from the file name and its first line."""
    name = plain_name(path)
    if name.endswith(".csv") or name.endswith(".tsv"):
        return "csv"
    line = first_line(path).strip()
    if not line:
        raise FormatError(f"{path}: empty or unreadable; pass --format")
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        stripped = line.lstrip()
        if stripped[:1] in (b"{", b"["):  # a pretty-printed JSON document
            return "x"
        if b"," in line or b"\t" in line:
            return "csv"
        raise FormatError(f"{path}: not JSON lines and not CSV; pass --format") from None
    if isinstance(obj, list):
        return "x"
    if isinstance(obj, dict):
        if "subreddit" in obj and ("body" in obj or "title" in obj or "selftext" in obj):
            return "reddit"
        if isinstance(obj.get("data"), list | dict) or "edit_history_tweet_ids" in obj or "author_id" in obj:
            return "x"
        return "jsonl"
    raise FormatError(f"{path}: the first line is JSON but not an object; pass --format")


# --- reddit ----------------------------------------------------------------------------------------------------


def _loads(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        try:  # orjson refuses lone surrogates ("\ud83d" without its pair); the stdlib reads them, clean_text fixes
            return json.loads(line.decode("utf-8", errors="replace"))
        except ValueError:
            raise BadUnit(f"not valid JSON ({str(exc).split(':')[0]})") from None


class RedditReader:
    name = "reddit"

    def candidates(self, unit: bytes) -> list[Candidate]:
        obj = _loads(unit)
        if not isinstance(obj, dict):
            raise BadUnit(f"expected a JSON object, got {type(obj).__name__}")
        if "body" in obj and "title" not in obj:
            text = obj["body"]
            title = None
        else:
            text = obj.get("selftext")
            title = obj.get("title")
            if title is not None and not isinstance(title, str):
                raise BadUnit(f"title is {type(title).__name__}, not text")
        if text is None:
            text = ""
        elif not isinstance(text, str):
            raise BadUnit(f"text is {type(text).__name__}, not text")
        community = obj.get("subreddit")
        return [Candidate(title, text, community if isinstance(community, str) else None, lambda: _reddit(obj))]


def _reddit(obj: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return reddit_json.item_fields(obj)
    except (KeyError, TypeError, ValueError) as exc:
        raise BadUnit(f"not a Reddit submission or comment: {exc}") from None


# --- X API v2 --------------------------------------------------------------------------------------------------


def _x_candidates(obj: Any, fetched_at: datetime | None) -> list[Candidate]:
    """Candidates of one response object (``data`` + ``includes``), a list of them, or one bare tweet.

    Tweets are normalised by the X collector's own :func:`aimusic.sources.x.normalize_tweet`, so a post from a
    saved response and the same post from the live API are one row.
    """
    from aimusic.sources.x import normalize_tweet

    if isinstance(obj, list):
        out: list[Candidate] = []
        for item in obj:
            out.extend(_x_candidates(item, fetched_at))
        return out
    if not isinstance(obj, dict):
        raise BadUnit(f"expected a JSON object, got {type(obj).__name__}")
    if "data" in obj or "includes" in obj or "meta" in obj:
        data = obj.get("data") or []
        tweets = [data] if isinstance(data, dict) else data
        if not isinstance(tweets, list):
            raise BadUnit("'data' is neither a tweet nor a list of tweets")
        includes = obj.get("includes") if isinstance(obj.get("includes"), dict) else {}
        users = {str(u.get("id")): u for u in includes.get("users") or [] if isinstance(u, dict)}
    else:
        tweets, users = [obj], {}
    out = []
    for tweet in tweets:
        if not isinstance(tweet, dict):
            raise BadUnit("a tweet that is not an object")
        note = tweet.get("note_tweet")
        text = note.get("text") if isinstance(note, dict) and note.get("text") else tweet.get("text")
        out.append(
            Candidate(
                None,
                text if isinstance(text, str) else "",
                None,
                lambda t=tweet: normalize_tweet(t, users, fetched_at=fetched_at),
            )
        )
    return out


class XReader:
    name = "x"

    def __init__(self, fetched_at: datetime | None = None) -> None:
        self.fetched_at = fetched_at

    def candidates(self, unit: bytes | Any) -> list[Candidate]:
        obj = _loads(unit) if isinstance(unit, bytes | bytearray) else unit
        return _x_candidates(obj, self.fetched_at)


def x_json_units(stream: IO[bytes], path: Path, max_bytes: int = 1 << 30) -> Iterator[Any]:
    """The units of a single-document X JSON file (the file is one JSON value: read whole, at most 1 GiB)."""
    raw = stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise FormatError(f"{path}: a single JSON document over 1 GiB; save the responses as JSONL instead")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FormatError(f"{path}: not valid JSON ({exc})") from None
    yield from obj if isinstance(obj, list) else [obj]


# --- generic CSV / JSONL with a column mapping ----------------------------------------------------------------------

#: columns understood without a mapping (besides the Post field names themselves)
ALIASES = {
    "id": "post_id",
    "body": "text",
    "content": "text",
    "message": "text",
    "selftext": "text",
    "created_utc": "created_at",
    "timestamp": "created_at",
    "date": "created_at",
    "time": "created_at",
    "username": "author",
    "user": "author",
    "screen_name": "author",
    "subreddit": "community",
    "likes": "score",
    "like_count": "score",
    "permalink": "url",
    "link": "url",
}
_FIELDS = set(POST_COLUMNS) - {"terms", "synthetic", "fetched_at"}
_FIELDS.add("fetched_at")


def parse_mapping(pairs: list[str] | None) -> dict[str, str]:
    """``["col=field", ...]`` -> {column: field}; unknown fields fail with the list of valid ones."""
    mapping: dict[str, str] = {}
    for pair in pairs or []:
        column, sep, target = pair.partition("=")
        column, target = column.strip(), target.strip()
        if not sep or not column or not target:
            raise FormatError(f"--map {pair!r}: expected COLUMN=FIELD, e.g. --map tweet_text=text")
        if target not in _FIELDS:
            raise FormatError(f"--map {pair!r}: {target!r} is not a post field; fields: {', '.join(sorted(_FIELDS))}")
        mapping[column] = target
    return mapping


class TableReader:
    """Rows of a CSV file or objects of a JSONL file, mapped onto Post fields."""

    def __init__(self, name: str, mapping: dict[str, str], source_name: str | None) -> None:
        self.name = name
        self.mapping = mapping
        self.source_name = source_name
        self._resolved: dict[str, str] | None = None

    def _resolve(self, columns: list[str]) -> dict[str, str]:
        resolved: dict[str, str] = {}
        taken = set(self.mapping.values())
        for column in columns:
            if column in self.mapping:
                resolved[column] = self.mapping[column]
        for column in columns:
            if column in resolved:
                continue
            target = column if column in _FIELDS else ALIASES.get(column.lower())
            if target and target not in taken:
                resolved[column] = target
                taken.add(target)
        missing = [f for f in ("post_id", "created_at", "text") if f not in taken]
        if missing:
            raise FormatError(
                f"no column for {', '.join(missing)} (columns: {', '.join(columns[:20])}); "
                "map them with --map COLUMN=FIELD"
            )
        if "source" not in taken and not self.source_name:
            raise FormatError("no source column: pass --source-name (e.g. --source-name forum)")
        return resolved

    def candidates(self, unit: bytes | dict[str, Any]) -> list[Candidate]:
        row = _loads(unit) if isinstance(unit, bytes | bytearray) else unit
        if not isinstance(row, dict):
            raise BadUnit(f"expected an object, got {type(row).__name__}")
        if self._resolved is None:
            self._resolved = self._resolve(list(row))
        values: dict[str, Any] = {}
        for column, target in self._resolved.items():
            value = row.get(column)
            if value is not None and value != "":
                values[target] = value
        text = values.get("text")
        title = values.get("title")
        if not isinstance(text, str) or (title is not None and not isinstance(title, str)):
            raise BadUnit("text is missing or not text")
        community = values.get("community")
        return [Candidate(title, text, str(community) if community else None, lambda: self._fields(values))]

    def _fields(self, values: dict[str, Any]) -> dict[str, Any]:
        if "post_id" not in values:
            raise BadUnit("no id")
        if "created_at" not in values:
            raise BadUnit("no time")
        out = {name: None for name in POST_COLUMNS if name not in ("terms", "synthetic")}
        out.update(values)
        out["source"] = str(values.get("source") or self.source_name)
        out["post_id"] = str(values["post_id"]).strip()
        out["kind"] = str(values.get("kind") or "post").lower()
        out["text"] = values["text"]
        try:
            out["created_at"] = reddit_json.epoch(values["created_at"])
        except (TypeError, ValueError) as exc:
            raise BadUnit(f"unreadable time {values['created_at']!r}: {exc}") from None
        for name in ("score", "replies", "reposts"):
            out[name] = reddit_json.count(values.get(name))
        nsfw = values.get("nsfw")
        out["nsfw"] = str(nsfw).strip().lower() in ("1", "true", "yes", "y", "t") if nsfw is not None else False
        stamp = values.get("fetched_at")
        try:
            out["fetched_at"] = reddit_json.epoch(stamp) if stamp is not None else None
        except (TypeError, ValueError):
            out["fetched_at"] = None
        for name in ("parent_id", "thread_id", "author", "title", "url", "lang", "community"):
            if out.get(name) is not None:
                out[name] = str(out[name])
        return out


def csv_rows(stream: IO[bytes], path: Path) -> Iterator[dict[str, str]]:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="")
    sample = text.read(64 * 1024)
    dialect: Any = csv.excel_tab if sample.count("\t") > sample.count(",") else csv.excel
    text_stream = _chain(sample, text)
    csv.field_size_limit(16 * 1024 * 1024)
    yield from csv.DictReader(text_stream, dialect=dialect)


def _chain(head: str, rest: IO[str]) -> Iterator[str]:
    """Lines of ``head`` followed by the rest of the stream (csv reads an iterator of lines)."""
    buffer = io.StringIO(head)
    pending = ""
    for line in buffer:
        if not line.endswith("\n"):
            pending = line
            break
        yield line
    first = True
    for line in rest:
        if first:
            line, first = pending + line, False
        yield line
    if first and pending:
        yield pending


def reader_for(
    fmt: str, mapping: dict[str, str], source_name: str | None, *, fetched_at: datetime | None = None
) -> Any:
    """The reader of ``fmt``; ``fetched_at`` (the file's time) dates posts whose format does not say."""
    if fmt == "reddit":
        return RedditReader()
    if fmt == "x":
        return XReader(fetched_at)
    if fmt in ("csv", "jsonl"):
        return TableReader(fmt, mapping, source_name)
    raise FormatError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")

"""Load and validate ``data/topics.toml``: what to track, where, and the dated events.

A syntax error names the line and column (from :mod:`tomllib`); a value of the wrong shape names the key,
its line, and the expected form. Source sections are kept as plain tables here and validated by each
source's own config model (see :func:`source_config`), so adding a platform touches only its module.
"""

from __future__ import annotations

import re
import tomllib
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aimusic.core.config import DEFAULT_TOPICS


class TopicsError(ValueError):
    """``topics.toml`` is missing or malformed; the message says where and what is expected."""


class Tracking(BaseModel):
    model_config = ConfigDict(extra="forbid")
    terms: list[str] = Field(min_length=1)


class Relevance(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ambiguous_terms: list[str] = Field(default_factory=list)
    context_terms: list[str] = Field(default_factory=list)
    exclude_terms: list[str] = Field(default_factory=list)
    on_topic_communities: list[str] = Field(default_factory=list)
    # debate signals (issue 9): generic AI phrases that count only with a music word, words that signal
    # another sense of an ambiguous name, and communities where ambiguous names are never about AI music
    music_only_terms: list[str] = Field(default_factory=list)
    music_context_terms: list[str] = Field(default_factory=list)
    off_context_terms: list[str] = Field(default_factory=list)
    off_topic_communities: list[str] = Field(default_factory=list)


class Entity(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    kind: str = "other"
    aliases: list[str] = Field(default_factory=list)


class Argument(BaseModel):
    """One recurring argument of the debate: matched by keywords and by similarity to its description."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    description: str = Field(min_length=1)
    keywords: list[str] = Field(default_factory=list)


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date: date
    title: str = Field(min_length=1)
    url: str | None = None


class Topics(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tracking: Tracking
    relevance: Relevance = Field(default_factory=Relevance)
    entities: list[Entity] = Field(default_factory=list)
    arguments: list[Argument] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)
    sources: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # validated by their owners: flows.deploy (schedules) and aimusic.ops.alerts (alert rules)
    schedules: dict[str, Any] = Field(default_factory=dict)
    alerts: dict[str, Any] = Field(default_factory=dict)
    path: Path | None = Field(default=None, exclude=True)

    def source_enabled(self, name: str) -> bool:
        section = self.sources.get(name)
        return bool(section is not None and section.get("enabled", True))


ConfigT = TypeVar("ConfigT", bound=BaseModel)


def _line_of(text: str, loc: list[str]) -> int | None:
    """Best-effort line of a key path such as ``events.3.date`` or ``sources.demo.posts``."""
    pos, found = 0, None
    for i, part in enumerate(loc):
        if part.isdigit():
            continue
        nth = int(loc[i + 1]) if i + 1 < len(loc) and loc[i + 1].isdigit() else 0
        pattern = re.compile(rf"^\s*(?:\[+\s*[\w.\"-]*\b{re.escape(part)}\b|\"?{re.escape(part)}\"?\s*=)", re.MULTILINE)
        matches = list(pattern.finditer(text, pos))
        if len(matches) <= nth:
            break
        found = matches[nth]
        pos = found.end()
    return text.count("\n", 0, found.start()) + 1 if found else None


def _describe(exc: ValidationError, text: str, path: Path, prefix: tuple[str, ...] = ()) -> str:
    lines = []
    for err in exc.errors():
        loc = [*prefix, *(str(p) for p in err["loc"])]
        key = ".".join(loc)
        line = _line_of(text, loc)
        where = f"{path}:{line}" if line else str(path)
        got = err.get("input")
        shown = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
        lines.append(f"{where}: key '{key}': {err['msg']}{shown}")
    return "invalid topics file:\n  " + "\n  ".join(lines)


def load_topics(path: str | Path | None = None) -> Topics:
    """Read and validate the topics file (default ``data/topics.toml``)."""
    file = Path(path) if path else DEFAULT_TOPICS
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TopicsError(f"topics file not found: {file} (copy the project's data/topics.toml)") from None
    except UnicodeDecodeError as exc:
        raise TopicsError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TopicsError(f"{file}: TOML syntax error: {exc}") from None
    try:
        topics = Topics.model_validate(raw)
    except ValidationError as exc:
        raise TopicsError(_describe(exc, text, file)) from None
    topics.path = file
    return topics


def source_config(topics: Topics, name: str, model: type[ConfigT]) -> ConfigT:
    """Validate the ``[sources.<name>]`` table with the source's own config model."""
    raw = topics.sources.get(name, {})
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        text = topics.path.read_text(encoding="utf-8") if topics.path and topics.path.exists() else ""
        raise TopicsError(_describe(exc, text, topics.path or Path("topics"), ("sources", name))) from None

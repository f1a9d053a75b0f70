"""The shape every source shares.

A source module defines a config model (its ``[sources.<name>]`` table), a client factory, a fetch generator
and pure ``normalize()`` functions (one raw API item -> :class:`~aimusic.core.records.Post`). It exposes one
:class:`Source` subclass registered in :mod:`aimusic.sources`.

``collect()`` yields :class:`Batch` objects: the posts of one page (or a few), how many raw items were read
and skipped, and the cursor values that become true once those posts are committed. The pipeline commits
posts and cursors in one transaction, so an interrupted run resumes where the committed data ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, ValidationError

from aimusic.core.config import Settings
from aimusic.core.records import Post
from aimusic.core.topics import Topics, source_config
from aimusic.sources.http import probe

log = logging.getLogger(__name__)

T = TypeVar("T")


class SourceConfig(BaseModel):
    """Keys every ``[sources.<name>]`` table accepts; sources subclass it with their own keys."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True


class SourceUnavailable(RuntimeError):
    """The source cannot run here (no credentials, no network): the message is the one-line reason."""


class SourceStopped(RuntimeError):
    """The source stopped early on purpose (rate limit with a long reset, cost cap): data so far is kept."""


@dataclass
class Batch:
    """One page of results. Sources produce ``posts``; bulk sources (demo, dump files) may hand an Arrow
    ``table`` with :data:`~aimusic.core.records.POST_SCHEMA` instead."""

    posts: list[Post] = field(default_factory=list)
    table: pa.Table | None = None
    fetched: int = 0  # raw items read from the API (or file)
    skipped: int = 0  # raw items that could not be normalised
    cursors: dict[str, str] = field(default_factory=dict)  # key -> value, committed with the posts
    notes: list[str] = field(default_factory=list)  # messages for the run summary


@dataclass
class CollectContext:
    """What a source gets for one run: config, settings, its committed cursors."""

    topics: Topics
    settings: Settings
    cursors: dict[str, str] = field(default_factory=dict)
    logger: logging.Logger | logging.LoggerAdapter = log


class Source:
    """Base class: subclasses set ``name`` and ``config_model`` and implement ``check`` and ``collect``."""

    name: ClassVar[str] = ""
    config_model: ClassVar[type[SourceConfig]] = SourceConfig
    #: a synthetic source writes to the demo database by default
    synthetic: ClassVar[bool] = False
    #: default cron schedule for ``aimusic serve``
    default_cron: ClassVar[str] = "0 */6 * * *"

    def config(self, topics: Topics) -> SourceConfig:
        return source_config(topics, self.name, self.config_model)

    def check(self, ctx: CollectContext) -> None:
        """Raise :class:`SourceUnavailable` with a one-line reason if this source cannot run."""

    def collect(self, ctx: CollectContext) -> Iterator[Batch]:
        raise NotImplementedError


def require_reachable(url: str, user_agent: str) -> None:
    """Raise :class:`SourceUnavailable` with the reason if ``url`` cannot be reached (see ``http.probe``)."""
    reason = probe([url], user_agent=user_agent).popitem()[1]
    if reason:
        raise SourceUnavailable(reason)


def normalize_items(
    items: Iterable[T], normalize: Callable[[T], Post | None], *, source: str, sample: int = 3
) -> tuple[list[Post], int, list[str]]:
    """Normalise raw items one by one; a bad item is counted and described, never fatal.

    ``normalize`` may return ``None`` for items that are deliberately not posts (e.g. a deleted stub):
    those are neither kept nor counted as skipped. Returns (posts, skipped, sample of problems).
    """
    posts: list[Post] = []
    problems: list[str] = []
    skipped = 0
    for item in items:
        try:
            post = normalize(item)
        except (ValidationError, KeyError, TypeError, ValueError, AttributeError) as exc:
            skipped += 1
            if len(problems) < sample:
                problems.append(f"{source}: skipped malformed item {_item_id(item)}: {_short(exc)}")
            continue
        if post is not None:
            posts.append(post)
    return posts, skipped, problems


def _item_id(item: Any) -> str:
    if isinstance(item, dict):
        for key in ("id", "objectID", "uri", "name"):
            if key in item:
                return repr(item[key])[:40]
    return f"({type(item).__name__})"


def _short(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
    return f"{type(exc).__name__}: {exc}"[:200]

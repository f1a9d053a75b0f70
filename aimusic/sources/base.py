"""The shape every source shares.

A source module (or folder) defines a config model (its ``[sources.<name>]`` table), a client factory whose
credentials are ordinary parameters (defaulting to the values in :class:`~aimusic.core.config.Settings`), a
fetch generator and pure ``normalize()`` functions (one raw API item -> :class:`~aimusic.core.records.Post`).
It exposes one :class:`Source` subclass, parameterised by its config model (``class XSource(Source[XConfig])``),
registered in :mod:`aimusic.sources`.

``collect()`` yields :class:`Batch` objects: the posts of one page (or a few), how many raw items were read
and skipped, and the cursor values that become true once those posts are committed. The pipeline commits
posts and cursors in one transaction, so an interrupted run resumes where the committed data ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar, get_args, get_origin

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, ValidationError

from aimusic.core.config import Settings
from aimusic.core.records import Post
from aimusic.core.topics import Topics, source_config
from aimusic.sources.errors import SourceStopped, SourceUnavailable
from aimusic.sources.http import probe

__all__ = [
    "Batch", "CollectContext", "Source", "SourceConfig", "SourceStopped", "SourceUnavailable", "normalize_items",
    "require_reachable", "total",
]

log = logging.getLogger(__name__)

T = TypeVar("T")


class SourceConfig(BaseModel):
    """Keys every ``[sources.<name>]`` table accepts; sources subclass it with their own keys."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True


ConfigT = TypeVar("ConfigT", bound=SourceConfig)


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


class Source(Generic[ConfigT]):
    """Base class: subclasses set ``name``, name their config model as the type argument
    (``class HackerNewsSource(Source[HackerNewsConfig])``) and implement ``check`` and ``collect``."""

    name: ClassVar[str] = ""
    #: the ``[sources.<name>]`` model: the type argument of the subclass (SourceConfig when it has none)
    config_model: type[ConfigT] = SourceConfig  # type: ignore[assignment]
    #: a synthetic source writes to the demo database by default
    synthetic: ClassVar[bool] = False
    #: default cron schedule for ``aimusic serve``
    default_cron: ClassVar[str] = "0 */6 * * *"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            if get_origin(base) is Source:
                (model,) = get_args(base)
                if isinstance(model, type) and issubclass(model, SourceConfig):
                    cls.config_model = model

    def config(self, topics: Topics) -> ConfigT:
        """This source's ``[sources.<name>]`` table, validated (:class:`~aimusic.core.topics.TopicsError`)."""
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


def total(*counts: Any) -> int | None:
    """The sum of the engagement counts that are present and readable (None when none is): reposts + quotes.

    Lenient like :class:`~aimusic.core.records.Post`'s counts: a value that is not a number counts as absent."""
    values = []
    for count in counts:
        try:
            values.append(int(float(count)))
        except (TypeError, ValueError, OverflowError):
            continue
    return sum(values) if values else None


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

"""The one record every source produces, and its Arrow form for bulk writes.

Sources turn one raw API item into a :class:`Post` with a pure ``normalize()`` function. Validation lives
here, once: ids become strings, timestamps become timezone-aware UTC, text is cleaned of bytes that would
poison storage or scoring (NUL, lone surrogates). A record that cannot be made valid raises
:class:`pydantic.ValidationError`, which collectors count as a skipped item.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import pyarrow as pa
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from aimusic.core.text import join_title_body

PostKind = Literal["post", "comment", "reply"]

_SURROGATES = re.compile("[\ud800-\udfff]")
_MAX_TEXT = 100_000  # characters kept per post; longer text is cut (and the scorer truncates further)


def clean_text(value: Any) -> str:
    """Return ``value`` as a string safe to store: no NUL bytes, no lone surrogates, at most 100k chars."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    text = str(value)
    if "\x00" in text:
        text = text.replace("\x00", "")
    if _SURROGATES.search(text):
        text = _SURROGATES.sub("\ufffd", text)
    return text[:_MAX_TEXT]


def to_utc(value: Any) -> datetime:
    """Parse a timestamp (datetime, epoch seconds as number or string, ISO 8601 string) into aware UTC."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, bool):
        raise ValueError("a boolean is not a timestamp")
    if isinstance(value, int | float):
        return _from_epoch(float(value))
    if isinstance(value, str):
        raw = value.strip()
        if not raw:
            raise ValueError("empty timestamp")
        try:
            number = float(raw)
        except ValueError:
            number = None
        if number is not None:
            return _from_epoch(number)
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    raise ValueError(f"cannot read a timestamp from {type(value).__name__}")


def _from_epoch(seconds: float) -> datetime:
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise ValueError("a timestamp must be a finite number")
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"timestamp {seconds!r} is out of range") from None


EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # before any platform we read existed: a placeholder, not a date
FUTURE_SLACK = timedelta(days=2)  # clocks differ; more than this ahead is bad data


def plausible_time(value: Any) -> datetime:
    """:func:`to_utc`, refusing placeholder dates (epoch 0 and anything before 2000) and the far future."""
    moment = to_utc(value)
    if moment < EARLIEST:
        raise ValueError(f"implausible timestamp {moment.isoformat()} (before 2000: a placeholder?)")
    if moment > datetime.now(UTC) + FUTURE_SLACK:
        raise ValueError(f"timestamp {moment.isoformat()} is in the future")
    return moment


def _id(value: Any) -> str:
    if value is None or isinstance(value, bool | float | dict | list):
        raise ValueError(f"an id must be a string or an integer, got {type(value).__name__}")
    text = clean_text(value).strip()
    if not text:
        raise ValueError("an id must not be empty")
    return text


def _opt_id(value: Any) -> str | None:
    return None if value is None or value == "" else _id(value)


def _opt_count(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return int(value)
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        return None


def _opt_text(value: Any) -> str | None:
    if value is None:
        return None
    text = clean_text(value).strip()
    return text or None


Id = Annotated[str, BeforeValidator(_id)]
OptId = Annotated[str | None, BeforeValidator(_opt_id)]
Count = Annotated[int | None, BeforeValidator(_opt_count)]
OptText = Annotated[str | None, BeforeValidator(_opt_text)]
UtcTime = Annotated[datetime, BeforeValidator(to_utc)]
PlausibleTime = Annotated[datetime, BeforeValidator(plausible_time)]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Post(BaseModel):
    """One post, comment or reply from any platform, normalised.

    Engagement means the same on every source: ``score`` is likes (Reddit: the vote score; Hacker News:
    points), ``replies`` the replies or comments, ``reposts`` everything that shares the post onward: reposts
    plus quotes where a platform has both (X: retweets + quotes; Bluesky: reposts + quotes; Mastodon: boosts +
    quotes), crossposts on Reddit, nothing (None) on Hacker News.
    """

    model_config = ConfigDict(frozen=False, extra="forbid")

    source: Id = Field(description="platform: reddit, x, hackernews, mastodon, bluesky, ...")
    post_id: Id = Field(description="the platform's own id (unique within source)")
    kind: PostKind = "post"
    parent_id: OptId = None
    thread_id: OptId = None
    created_at: PlausibleTime
    author: OptText = None
    title: OptText = None
    text: str = ""
    url: OptText = None
    lang: OptText = None
    score: Count = Field(default=None, description="score / likes / favourites")
    replies: Count = None
    reposts: Count = Field(default=None, description="reposts + quotes (retweets, boosts, crossposts)")
    community: OptText = Field(default=None, description="subreddit, instance, ...")
    terms: list[str] = Field(default_factory=list, description="tracked terms the text matched")
    relevance: str | None = Field(default=None, description="why it was kept: terms, community, thread, semantic")
    nsfw: bool = False
    synthetic: bool = Field(default=False, description="true for demo posts")
    fetched_at: UtcTime = Field(default_factory=utcnow)

    @field_validator("text", mode="before")
    @classmethod
    def _clean(cls, value: Any) -> str:
        return clean_text(value)

    @field_validator("kind", mode="before")
    @classmethod
    def _kind(cls, value: Any) -> str:
        return "post" if value is None else str(value).lower()

    @property
    def full_text(self) -> str:
        """Title and body together: what relevance and scoring read."""
        return join_title_body(self.title, self.text)


POST_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("post_id", pa.string()),
        ("kind", pa.string()),
        ("parent_id", pa.string()),
        ("thread_id", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("author", pa.string()),
        ("title", pa.string()),
        ("text", pa.string()),
        ("url", pa.string()),
        ("lang", pa.string()),
        ("score", pa.int64()),
        ("replies", pa.int64()),
        ("reposts", pa.int64()),
        ("community", pa.string()),
        ("terms", pa.list_(pa.string())),
        ("relevance", pa.string()),
        ("nsfw", pa.bool_()),
        ("synthetic", pa.bool_()),
        ("fetched_at", pa.timestamp("us", tz="UTC")),
    ]
)
POST_COLUMNS: tuple[str, ...] = tuple(POST_SCHEMA.names)


def posts_to_arrow(posts: Iterable[Post] | Sequence[Post]) -> pa.Table:
    """Column-wise conversion of records into an Arrow table with :data:`POST_SCHEMA`."""
    rows = [p.model_dump() for p in posts]
    columns = {name: [row[name] for row in rows] for name in POST_COLUMNS}
    return pa.table(columns, schema=POST_SCHEMA)

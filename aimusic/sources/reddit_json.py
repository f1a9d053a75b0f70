"""Reddit's own JSON objects (submissions and comments) -> the Post record's fields. Pure functions, no I/O.

The same objects come from the Reddit API (praw's raw JSON), the Arctic Shift API and the monthly dump files
(Pushshift and Arctic Shift), so the ``reddit`` and ``arcticshift`` sources and ``aimusic backfill`` all map
them here, and a post seen through several channels is one row with the same values:

- ``source = "reddit"``, ids without their type prefix (``abc`` for ``t3_abc``); a comment's ``thread_id`` is
  its post's id (from ``link_id``) and its ``parent_id`` the parent's id (post or comment);
- text as Reddit serves it (markdown, with Reddit's ``&amp;`` / ``&lt;`` / ``&gt;`` escapes); ``[deleted]`` /
  ``[removed]`` bodies are no text: a deleted comment is not a post (``None``), a submission keeps its title;
- a crosspost becomes its original (``crosspost_parent_list[0]``), or ``None`` if the original is not embedded;
- ``url`` is the permalink; old dumps without one get ``https://www.reddit.com/comments/<post id>/`` (a comment:
  ``.../comments/<post id>/_/<comment id>/``).

Dump quirks handled here: ``created_utc`` as a number or a string, ``author`` missing or ``[deleted]``,
``score`` null or a string. The functions return plain dicts (no pydantic), so the backfill can build Arrow
columns from millions of lines quickly; :func:`to_post` makes a validated :class:`~aimusic.core.records.Post`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aimusic.core.records import Post, to_utc

SOURCE = "reddit"
REDDIT_WEB = "https://www.reddit.com"
DELETED = frozenset({"[deleted]", "[removed]"})


class NotAPost(ValueError):
    """The object is malformed (no id, no time): counted as a bad item, never stored."""


def strip_fullname(value: Any) -> str | None:
    """``t3_abc`` -> ``abc``."""
    if not isinstance(value, str) or not value:
        return None
    if len(value) > 3 and value[0] == "t" and value[1].isdigit() and value[2] == "_":
        return value[3:]
    return value


def fullname(prefix: str, value: Any) -> str:
    """``t3_abc`` from ``abc`` or ``t3_abc`` (for lookups by fullname; stored ids carry no prefix)."""
    text = strip_fullname(value) if isinstance(value, str) else None
    if not text or not text.strip():
        raise NotAPost("missing id")
    return f"{prefix}_{text.strip()}"


def content(value: Any) -> str | None:
    """Text as posted, or ``None`` when absent, empty, or replaced by "[deleted]" / "[removed]"."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    text = value.strip()
    return None if not text or text in DELETED else value


def author_of(value: Any) -> str | None:
    return None if not isinstance(value, str) or value in DELETED or not value.strip() else value


def permalink(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return REDDIT_WEB + value if value.startswith("/") else value


def epoch(value: Any) -> float:
    """Seconds since the epoch from a number, a numeric string, or an ISO 8601 string."""
    if value is None or isinstance(value, bool):
        raise NotAPost("missing created_utc")
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return to_utc(value).timestamp()


def count(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        return None


def _id(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise NotAPost("missing id")
    text = str(value).strip()
    if not text:
        raise NotAPost("missing id")
    return text


def fetched_time(item: dict[str, Any]) -> float | None:
    """When the archive captured the item (``retrieved_on`` / ``retrieved_utc``), if it says."""
    for key in ("retrieved_on", "retrieved_utc"):
        value = item.get(key)
        if value is not None and not isinstance(value, bool):
            try:
                return epoch(value)
            except (TypeError, ValueError):
                continue
    return None


def is_comment(item: dict[str, Any]) -> bool:
    name = item.get("name")
    if isinstance(name, str) and name[:3] in ("t1_", "t3_"):
        return name.startswith("t1_")
    return "body" in item and "title" not in item


def submission_fields(item: dict[str, Any]) -> dict[str, Any] | None:
    """A submission -> Post fields (``created_at`` / ``fetched_at`` as epoch seconds); ``None`` if nothing is left."""
    if item.get("crosspost_parent"):
        originals = item.get("crosspost_parent_list")
        if isinstance(originals, list) and originals and isinstance(originals[0], dict):
            return submission_fields(originals[0])
        return None
    title = content(item.get("title"))
    text = content(item.get("selftext")) or ""
    if title is None and not text:
        return None
    post_id = _id(item.get("id") or strip_fullname(item.get("name")))
    return _fields(
        item, post_id, kind="post", parent_id=None, thread_id=None, title=title, text=text,
        url=permalink(item.get("permalink")) or f"{REDDIT_WEB}/comments/{post_id}/",
        replies=count(item.get("num_comments")), reposts=count(item.get("num_crossposts")),
        nsfw=item.get("over_18") is True,
    )


def comment_fields(item: dict[str, Any], *, nsfw: bool = False) -> dict[str, Any] | None:
    """A comment -> Post fields; ``None`` for a deleted or removed comment. ``nsfw``: the thread's flag, used
    when the comment carries no ``over_18`` of its own. Without a ``permalink`` (old dumps) the URL is built
    from ``link_id`` and ``id``."""
    if "body" not in item:
        raise KeyError("body")
    body = content(item["body"])
    if body is None:
        return None
    thread = strip_fullname(item.get("link_id"))
    if thread is None:
        raise ValueError("a comment without link_id")
    post_id = _id(item.get("id") or strip_fullname(item.get("name")))
    over_18 = item.get("over_18")
    return _fields(
        item, post_id, kind="comment", parent_id=strip_fullname(item.get("parent_id")) or thread, thread_id=thread,
        title=None, text=body, url=permalink(item.get("permalink")) or f"{REDDIT_WEB}/comments/{thread}/_/{post_id}/",
        replies=None, reposts=None, nsfw=over_18 if isinstance(over_18, bool) else nsfw,
    )


def _fields(item: dict[str, Any], post_id: str, **fields: Any) -> dict[str, Any]:
    """What submissions and comments share, with their own ``fields``."""
    return {
        "source": SOURCE,
        "post_id": post_id,
        "created_at": epoch(item.get("created_utc")),
        "author": author_of(item.get("author")),
        "lang": None,
        "score": count(item.get("score")),
        "community": item.get("subreddit") or None,
        "fetched_at": fetched_time(item),
        **fields,
    }


def item_fields(item: Any) -> dict[str, Any] | None:
    """A submission or a comment (the object, or a ``{"kind", "data"}`` thing) -> Post fields or ``None``."""
    if not isinstance(item, dict):
        raise TypeError(f"expected a JSON object, got {type(item).__name__}")
    if "kind" in item and isinstance(item.get("data"), dict):
        item = item["data"]
    return comment_fields(item) if is_comment(item) else submission_fields(item)


def to_post_kwargs(fields: dict[str, Any], *, fetched_at: datetime | None = None) -> dict[str, Any]:
    """Fields as keyword arguments for :class:`~aimusic.core.records.Post`; ``fetched_at`` overrides the
    archive's time."""
    values = dict(fields)
    stamp = values.pop("fetched_at", None)
    if fetched_at is not None:
        values["fetched_at"] = fetched_at
    elif stamp is not None:
        values["fetched_at"] = to_utc(stamp)
    return values


def to_post(fields: dict[str, Any], *, fetched_at: datetime | None = None) -> Post:
    """A validated Post from :func:`item_fields` output."""
    return Post(**to_post_kwargs(fields, fetched_at=fetched_at))

"""Reddit things (raw JSON) -> :class:`~aimusic.core.records.Post`. Pure functions, no I/O.

The field mapping (ids, deleted content, crossposts) lives in :mod:`aimusic.sources.reddit_json`, shared with
the arcticshift source and the dump backfill, so a post seen through the API, Arctic Shift and a dump file is
one row with the same values. This module only adds what the live API needs and checks for partial objects.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aimusic.core.records import Post, utcnow
from aimusic.sources import reddit_json


def _unwrap(item: Any, kind: str) -> dict:
    """The ``data`` of a ``{"kind": ..., "data": {...}}`` thing (or the data object itself)."""
    if not isinstance(item, dict):
        raise TypeError(f"expected a JSON object, got {type(item).__name__}")
    if "kind" in item and "data" in item:
        if item["kind"] != kind:
            raise ValueError(f"expected a {kind} thing, got {item['kind']!r}")
        data = item["data"]
        if not isinstance(data, dict):
            raise TypeError(f"{kind}.data is {type(data).__name__}, not an object")
        return data
    return item


def crosspost_parent(item: Any) -> str | None:
    """The original's fullname (``t3_...``) when ``item`` is a crosspost that does not embed its original."""
    data = item.get("data") if isinstance(item, dict) and "data" in item else item
    if not isinstance(data, dict) or not isinstance(data.get("crosspost_parent"), str):
        return None
    originals = data.get("crosspost_parent_list")
    if isinstance(originals, list) and originals and isinstance(originals[0], dict):
        return None
    parent = data["crosspost_parent"]
    return parent if parent.startswith("t3_") else f"t3_{parent}"


def bare_id(post_id: str) -> str:
    """Reddit's base-36 id of a stored post id (``t3_abc`` or ``abc``), as API paths want it."""
    return post_id.removeprefix("t3_")


def normalize_submission(item: Any, *, fetched_at: datetime | None = None) -> Post | None:
    """One raw submission (a ``t3`` thing or its ``data``) as a Post; None when nothing of it is left.

    * a crosspost becomes its original (``crosspost_parent_list[0]``), so a post shared to several
      subreddits is one row; without the embedded original it returns None (see :func:`crosspost_parent`);
    * "[deleted]" / "[removed]" bodies become empty text (the title stays public), a deleted author None;
    * ``over_18`` becomes ``nsfw``; title and self-text are kept apart (``title``, ``text``);
    * an object without ``id``, ``created_utc`` or ``title`` is malformed (raises: counted as skipped).
    """
    data = _unwrap(item, "t3")
    if "title" not in data:
        raise KeyError("title")
    fields = reddit_json.submission_fields(data)
    return None if fields is None else reddit_json.to_post(fields, fetched_at=fetched_at or utcnow())


def normalize_comment(item: Any, *, nsfw: bool = False, fetched_at: datetime | None = None) -> Post | None:
    """One raw comment (a ``t1`` thing or its ``data``) as a Post; None for a deleted or removed comment.

    ``thread_id`` is the post's id (from ``link_id``), ``parent_id`` the post's or parent comment's id.
    Comments in a thread carry no NSFW flag of their own, so ``nsfw`` is passed in from the post.
    """
    data = _unwrap(item, "t1")
    for key in ("body", "link_id", "created_utc"):
        if key not in data:
            raise KeyError(key)
    fields = reddit_json.comment_fields(data)
    if fields is None:
        return None
    post = reddit_json.to_post(fields, fetched_at=fetched_at or utcnow())
    if not isinstance(data.get("over_18"), bool):
        post.nsfw = nsfw
    return post


def things_data(things: list[Any]) -> list[Any]:
    """The ``data`` objects of things (so problems name the item's id); anything else is passed on as is."""
    return [t["data"] if isinstance(t, dict) and isinstance(t.get("data"), dict) else t for t in things]

"""X API v2 tweets (raw JSON of a search response) -> :class:`~aimusic.core.records.Post`. Pure functions.

What real responses need besides the field mapping:

* text is HTML-escaped by the API (``&amp;``, ``&lt;``, ``&gt;``): it is unescaped once (a tweet that says
  ``&amp;`` arrives as ``&amp;amp;`` and keeps its ``&amp;``);
* placeholders that stand where a post is not shown ("This account is temporarily unavailable because it
  violates the Twitter Media Policy", withheld, suspended, deleted...) are not posts: :func:`normalize_tweet`
  returns None and :func:`not_stored_reason` says why, so the run counts them;
* a tweet without ``created_at`` gets the time its Snowflake id carries;
* ``reposts`` is retweets + quotes (as on Bluesky; see :class:`~aimusic.core.records.Post`).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aimusic.core.records import Post, utcnow
from aimusic.sources.base import total
from aimusic.sources.x.config import NAME, NOT_A_LANGUAGE, TWITTER_EPOCH_MS

#: the texts X puts where a post is not shown: whole-text matches only, so a post quoting one is kept
_PLACEHOLDER = re.compile(
    r"(?:This (?:Tweet|Post|account|media)\b[^.]*?\b(?:unavailable|violated?|violates|withheld|suspended|"
    r"no longer exists|deleted|disabled)\b[^.]*\.\s*)+(?:Learn more\.?\s*)?(?:https?://\S+\s*)?",
    re.IGNORECASE,
)


def snowflake_time(tweet_id: str | int) -> datetime:
    """When a post with this id was created (X ids are Snowflakes: milliseconds since 2010-11-04 << 22)."""
    try:
        return datetime.fromtimestamp(((int(tweet_id) >> 22) + TWITTER_EPOCH_MS) / 1000, UTC)
    except (OverflowError, OSError) as exc:
        raise ValueError(f"id {str(tweet_id)[:30]} carries no time: {exc}") from None


def is_placeholder(text: str) -> bool:
    """Is ``text`` one of X's "this post/account is unavailable / withheld / ..." placeholders?"""
    return bool(_PLACEHOLDER.fullmatch(text.strip()))


def users_by_id(page: Mapping[str, Any]) -> dict[str, dict]:
    """``includes.users`` of a response page, by id (malformed entries ignored)."""
    includes = page.get("includes")
    users = includes.get("users") if isinstance(includes, dict) else None
    return {str(u["id"]): u for u in users or [] if isinstance(u, dict) and u.get("id") is not None}


def _refs(item: dict) -> dict[str, str]:
    refs = item.get("referenced_tweets") or []
    if not isinstance(refs, list):
        raise TypeError("referenced_tweets is not a list")
    return {str(r.get("type")): str(r.get("id")) for r in refs if isinstance(r, dict)}


def tweet_text(item: dict) -> str:
    """The full text of a tweet (``note_tweet.text`` for a long one), HTML-unescaped once."""
    note = item.get("note_tweet")
    text = note.get("text") if isinstance(note, dict) and note.get("text") else item["text"]
    if not isinstance(text, str):
        raise TypeError(f"text is {type(text).__name__}")
    return html.unescape(text)


def not_stored_reason(item: Any) -> str | None:
    """Why a well-formed item is not a post: "retweets", "withheld or unavailable placeholders", or None."""
    if not isinstance(item, dict):
        return None
    try:
        if "retweeted" in _refs(item):
            return "retweets"
        return "withheld or unavailable placeholders" if is_placeholder(tweet_text(item)) else None
    except (KeyError, TypeError):
        return None


def normalize_tweet(
    item: Any, users: Mapping[str, Mapping[str, Any]] | None = None, *, fetched_at: datetime | None = None
) -> Post | None:
    """One post of a search response (``data[i]``) as a Post; None for a retweet (never stored: the original
    is a post of its own, so nothing is counted twice) and for a placeholder (:func:`is_placeholder`).

    * ``post_id`` is the first id of ``edit_history_tweet_ids``: an edited post keeps one row, and its latest
      text replaces the old one;
    * a long post's full text comes from ``note_tweet.text``; text is HTML-unescaped once;
    * ``created_at`` from the item, or from the Snowflake id when the item has none;
    * ``author`` is the handle from ``includes.users`` (``users``), ``score`` likes, ``replies`` replies,
      ``reposts`` retweets + quotes; a reply has ``kind = "reply"``, its parent's id and its conversation as
      thread.
    """
    if not isinstance(item, dict):
        raise TypeError(f"expected a JSON object, got {type(item).__name__}")
    refs = _refs(item)
    if "retweeted" in refs:
        return None
    tweet_id = item["id"]
    if not isinstance(tweet_id, str | int) or isinstance(tweet_id, bool):
        raise TypeError(f"id is {type(tweet_id).__name__}")
    tweet_id = str(tweet_id)
    text = tweet_text(item)
    if is_placeholder(text):
        return None
    history = item.get("edit_history_tweet_ids")
    post_id = str(history[0]) if isinstance(history, list) and history else tweet_id
    author_id = item.get("author_id")
    user = (users or {}).get(str(author_id)) if author_id is not None else None
    handle = user.get("username") if isinstance(user, Mapping) else None
    metrics = item.get("public_metrics")
    metrics = metrics if isinstance(metrics, dict) else {}
    lang = item.get("lang")
    conversation = item.get("conversation_id")
    reply_to = refs.get("replied_to")
    return Post(
        source=NAME,
        post_id=post_id,
        kind="reply" if reply_to else "post",
        parent_id=reply_to,
        thread_id=str(conversation) if conversation and str(conversation) != post_id else None,
        created_at=item["created_at"] if "created_at" in item else snowflake_time(tweet_id),
        author=handle,
        text=text,
        url=f"https://x.com/{handle or 'i/web'}/status/{tweet_id}",
        lang=None if not isinstance(lang, str) or lang in NOT_A_LANGUAGE else lang,
        score=metrics.get("like_count"),
        replies=metrics.get("reply_count"),
        reposts=total(metrics.get("retweet_count"), metrics.get("quote_count")),
        nsfw=item.get("possibly_sensitive") is True,
        fetched_at=fetched_at or utcnow(),
    )

"""``[sources.reddit]``: the Reddit source's config model and its constants."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from aimusic.sources.base import SourceConfig

#: Reddit stops any listing (search, new, comments) after about this many items
LISTING_CAP = 1000
WATCH_MAX = 5000  # threads remembered for comment refreshes
MAX_NOTES = 6  # sample lines about malformed items per run
MORECHILDREN_BATCH = 100  # ids per /api/morechildren request
_SUBREDDIT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]{1,20}$")


class RedditConfig(SourceConfig):
    """``[sources.reddit]`` in data/topics.toml (every key is optional)."""

    subreddits: list[str] = Field(default_factory=list, description="searched for the tracked terms")
    on_topic_subreddits: list[str] = Field(default_factory=list, description="read whole: newest posts and comments")
    search_all: bool = Field(default=True, description="also search all of Reddit")
    terms: list[str] = Field(default_factory=list, description="search terms; empty = [tracking] terms")
    max_query_length: int = Field(default=512, ge=32, le=4096)
    overlap_minutes: float = Field(default=120, ge=0, description="re-read this far behind the last position")
    first_run_days: float = Field(default=7, gt=0, description="how far back a listing's first run reads")
    page_size: int = Field(default=100, ge=1, le=100)
    max_pages: int = Field(default=10, ge=1, description="pages per listing per run (10 x 100 = the ~1,000 cap)")
    comments: bool = Field(default=True, description="fetch the comment threads of relevant posts")
    subreddit_comments: bool = Field(default=True, description="read on-topic subreddits' comment streams")
    comment_sort: Literal["confidence", "top", "new", "controversial", "old", "qa"] = "confidence"
    comment_depth: int = Field(default=10, ge=1, le=10)
    comment_limit: int = Field(default=500, ge=1, le=500)
    replace_more_limit: int = Field(default=5, ge=0, description="'load more comments' requests per thread")
    replace_more_threshold: int = Field(default=0, ge=0, description="skip 'more' stubs hiding fewer comments")
    comment_refresh_hours: float = Field(default=48, ge=0, description="refresh threads younger than this")
    comment_refresh_every_hours: float = Field(default=6, gt=0, description="at most one refresh per interval")
    max_threads_per_run: int = Field(default=100, ge=0)
    include_nsfw: bool = Field(default=True, description="keep posts marked NSFW (stored with nsfw = true)")
    skip_authors: list[str] = Field(default_factory=lambda: ["AutoModerator"])
    rate_limit_max_wait: float = Field(default=60, ge=0, description="a 429 with a shorter reset is waited out")
    timeout: float = Field(default=16, gt=0, description="seconds per HTTP request")
    oauth_url: str = "https://oauth.reddit.com"
    reddit_url: str = "https://www.reddit.com"

    @field_validator("subreddits", "on_topic_subreddits")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        names = []
        for raw in value:
            name = raw.strip().removeprefix("/").removeprefix("r/").strip("/")
            if not _SUBREDDIT.match(name):
                raise ValueError(f"not a subreddit name: {raw!r}")
            names.append(name)
        return list(dict.fromkeys(names))


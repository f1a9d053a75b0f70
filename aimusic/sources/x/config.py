"""``[sources.x]``: the X source's config model and the API's constants."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from aimusic.sources.base import SourceConfig

NAME = "x"
MIN_PAGE = 10  # the API's smallest max_results
MAX_PAGE = 100
RECENT_WINDOW = timedelta(days=7)
WINDOW_MARGIN = timedelta(minutes=5)
TWITTER_EPOCH_MS = 1288834974657
TWEET_FIELDS = [
    "author_id", "conversation_id", "created_at", "lang", "public_metrics", "referenced_tweets",
    "possibly_sensitive", "edit_history_tweet_ids", "note_tweet", "in_reply_to_user_id",
]
USER_FIELDS = ["username", "name"]
#: X's language codes that are not languages (undetermined, no text, only hashtags/mentions/media/...)
NOT_A_LANGUAGE = frozenset({"und", "zxx", "qam", "qct", "qht", "qme", "qst", "art"})


class XConfig(SourceConfig):
    """``[sources.x]`` in data/topics.toml (every key is optional)."""

    terms: list[str] = Field(default_factory=list, description="search terms; empty = [tracking] terms")
    hashtags: bool = Field(default=True, description="also search multi-word terms as hashtags (#AIMusic)")
    languages: list[str] = Field(default_factory=list, description="lang: filter, e.g. ['en', 'es']; empty = all")
    exclude_replies: bool = False
    extra_query: str = Field(default="", description="operators appended to every query, e.g. -is:nullcast")
    max_query_length: int = Field(default=512, ge=64, le=4096)
    first_run_hours: float = Field(default=24, gt=0, le=168, description="how far back a query's first run reads")
    page_size: int = Field(default=100, ge=MIN_PAGE, le=MAX_PAGE)
    max_posts_per_run: int = Field(default=500, ge=0, description="posts read per run, never exceeded")
    max_posts_per_day: int = Field(default=2000, ge=0, description="posts read per UTC day, never exceeded")
    expand_authors: bool = Field(default=True, description="ask for author handles (user objects may be billed)")
    rate_limit_max_wait: float = Field(default=60, ge=0, description="a 429 with a shorter reset is waited out")
    retries: int = Field(default=3, ge=0, le=10, description="retries of 5xx answers and timeouts")
    retry_max_wait: float = Field(default=30, gt=0, description="longest backoff between retries, seconds")
    timeout: float = Field(default=30, gt=0, description="seconds per HTTP request")

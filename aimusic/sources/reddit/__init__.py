"""Reddit through praw: the tracked terms searched across Reddit and in chosen subreddits, on-topic subreddits
read whole, and the comment threads of relevant posts followed while they are young.

Shape (as every source, one module each): ``config`` (:class:`RedditConfig`, ``[sources.reddit]``, and the
constants), ``client`` (:class:`RedditCredentials`, :func:`make_client` and one request), ``listings`` and
``threads`` (fetch generators that yield the raw JSON Reddit returns), ``normalise`` (pure
:func:`normalize_submission` / :func:`normalize_comment`: one raw item -> :class:`~aimusic.core.records.Post`),
``run`` (one collection pass) and, here, :class:`RedditSource`. Credentials are a parameter of the source and
of :func:`make_client`; they default to REDDIT_* from :class:`~aimusic.core.config.Settings`.

praw does authentication (OAuth2, app-only or script), rate limiting (it sleeps on Reddit's
``x-ratelimit-*`` headers) and retries 5xx answers and timeouts twice; requests go through
``praw.Reddit.request`` so the normaliser sees Reddit's own JSON, not praw objects.

What a run reads (each listing newest first, ``sort=new``):

* ``search``: the OR-joined tracked terms (split to fit ``max_query_length``) across all of Reddit and within
  each of ``subreddits``;
* ``new`` and ``comments``: every post and every comment of ``on_topic_subreddits``;
* threads: the comments of relevant posts found by search (fetched once, then refreshed while the post is
  younger than ``comment_refresh_hours``), with ``comment_depth``, ``comment_limit`` and a ``replace_more_limit``
  budget of "load more comments" requests per thread.

Incremental: each listing has a cursor (the newest ``created_utc`` it has seen) keyed by listing and query,
committed with the posts; the next run reads down to that point minus ``overlap_minutes`` (search indexes
posts late). Reddit serves at most ~1,000 items of any listing: when a listing ends before the previous
run's position, the gap is reported in the run summary (run more often, narrow the terms, or fill it from the
Arctic Shift source). Comments inherit their thread's relevance: a thread is committed as one batch (post and
comments), and the relevance filter keeps comments whose thread's post is relevant.
"""

from __future__ import annotations

from collections.abc import Iterator

from aimusic.sources.base import Batch, CollectContext, Source
from aimusic.sources.errors import SourceUnavailable
from aimusic.sources.reddit.client import RedditCredentials, make_client
from aimusic.sources.reddit.config import RedditConfig
from aimusic.sources.reddit.listings import plan_listings, time_filter
from aimusic.sources.reddit.normalise import bare_id, crosspost_parent, normalize_comment, normalize_submission
from aimusic.sources.reddit.run import RedditRun

__all__ = [
    "RedditConfig", "RedditCredentials", "RedditRun", "RedditSource", "bare_id", "crosspost_parent", "make_client",
    "normalize_comment", "normalize_submission", "plan_listings", "time_filter",
]


class RedditSource(Source[RedditConfig]):
    """Reddit through praw (``[sources.reddit]``). ``credentials`` default to REDDIT_CLIENT_ID,
    REDDIT_CLIENT_SECRET, ... from the settings."""

    name = "reddit"
    default_cron = "0 */3 * * *"

    def __init__(self, credentials: RedditCredentials | None = None) -> None:
        self.credentials = credentials

    def check(self, ctx: CollectContext) -> None:
        cfg = self.config(ctx.topics)
        self._credentials(ctx)
        if not (cfg.search_all or cfg.subreddits or cfg.on_topic_subreddits):
            raise SourceUnavailable(
                "reddit: nothing to read (set subreddits, on_topic_subreddits or search_all in [sources.reddit])"
            )

    def collect(self, ctx: CollectContext) -> Iterator[Batch]:
        cfg = self.config(ctx.topics)
        reddit = make_client(
            self._credentials(ctx), oauth_url=cfg.oauth_url, reddit_url=cfg.reddit_url, timeout=cfg.timeout
        )
        yield from RedditRun(reddit, cfg, ctx).batches()

    def _credentials(self, ctx: CollectContext) -> RedditCredentials:
        return self.credentials or RedditCredentials.from_settings(ctx.settings)

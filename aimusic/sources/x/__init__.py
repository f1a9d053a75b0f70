"""X (Twitter) API v2 recent search through tweepy, with hard caps on posts read (X bills per post read).

Shape (as every source, one module each): ``config`` (:class:`XConfig`, ``[sources.x]``, and the API's
constants), ``client`` (:func:`make_client`, the read budget and :func:`fetch_pages`, a generator over
``tweepy.Paginator`` pages of ``search_recent_tweets``, raw JSON), ``queries`` (queries and their cursors),
``normalise`` (the pure :func:`normalize_tweet`), ``run`` (one pass) and, here, :class:`XSource`. The bearer
token is a parameter of the source and of :func:`make_client`; it defaults to X_BEARER_TOKEN from
:class:`~aimusic.core.config.Settings`.

* Queries: the tracked terms OR-joined (multi-word terms also as hashtags, ``"AI music" OR #AIMusic``), each
  query at most ``max_query_length`` characters (512 on the pay-per-use and Basic plans; more terms make more
  queries), with ``-is:retweet``: retweets are never read, so a post is never counted twice (and never billed
  twice); quotes and replies are posts of their own.
* Incremental: ``since_id`` per query. Recent search covers 7 days; a cursor older than that restarts at the
  window's start and says so. A run stopped mid-query (cap, rate limit, errors) records the unread stretch as
  a gap (``since_id``/``start_time`` to ``until_id``) that the next run reads first, so nothing in between is
  lost and nothing is read twice.
* Cost control: ``max_posts_per_run`` and ``max_posts_per_day`` (UTC day, counted in the cursors table under
  ``reads:YYYY-MM-DD``, committed with the posts) are never exceeded: before each request the page size is cut
  to what is left, and collection stops cleanly (status partial, a note in the run summary) when less than one
  page (10 posts, the API's minimum) remains.
* The shared retry policy (:mod:`aimusic.sources.ratelimit`): a 429 whose reset is at most
  ``rate_limit_max_wait`` seconds away is waited out; a longer one (or one without a reset time) stops the
  source until the next run. 5xx answers and timeouts are retried with exponential backoff, ``retries`` times
  (429s count against the same tries), then the source stops with a note; data read so far is kept and the
  cursors resume from it.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import SecretStr

from aimusic.sources.base import Batch, CollectContext, Source
from aimusic.sources.errors import SourceUnavailable
from aimusic.sources.querybuild import query_key
from aimusic.sources.x.client import bearer_token, fetch_pages, make_client
from aimusic.sources.x.config import MIN_PAGE, NAME, XConfig
from aimusic.sources.x.normalise import is_placeholder, normalize_tweet, snowflake_time, users_by_id
from aimusic.sources.x.queries import QueryState, build_queries
from aimusic.sources.x.run import XRun

__all__ = [
    "QueryState", "XConfig", "XRun", "XSource", "bearer_token", "build_queries", "fetch_pages", "is_placeholder",
    "make_client", "normalize_tweet", "query_key", "snowflake_time", "users_by_id",
]


class XSource(Source[XConfig]):
    """X API v2 recent search (``[sources.x]``). ``token`` defaults to X_BEARER_TOKEN from the settings."""

    name = NAME
    default_cron = "0 */6 * * *"

    def __init__(self, token: SecretStr | str | None = None) -> None:
        self.token = SecretStr(token) if isinstance(token, str) else token

    def check(self, ctx: CollectContext) -> None:
        cfg = self.config(ctx.topics)
        self._token(ctx)
        if cfg.max_posts_per_run < MIN_PAGE or cfg.max_posts_per_day < MIN_PAGE:
            raise SourceUnavailable(
                f"x: max_posts_per_run / max_posts_per_day below {MIN_PAGE} (the API's smallest page): nothing can "
                "be read"
            )

    def collect(self, ctx: CollectContext) -> Iterator[Batch]:
        cfg = self.config(ctx.topics)
        client = make_client(self._token(ctx), timeout=cfg.timeout)
        yield from XRun(client, cfg, ctx).batches()

    def _token(self, ctx: CollectContext) -> SecretStr:
        return self.token if self.token is not None else bearer_token(ctx.settings)

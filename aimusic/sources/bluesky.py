"""Bluesky through the ``atproto`` SDK: ``app.bsky.feed.searchPosts`` with ``since``/``until`` and cursors.

Post search needs a logged-in account (the public AppView answers 403): a handle and an *app password*
(Settings > Privacy and security > App passwords), parameters of :class:`BlueskySource` that default to
``BLUESKY_HANDLE`` and ``BLUESKY_APP_PASSWORD`` from the settings (environment or ``.env``). Without them the
source is skipped with one line. The password is only handed to the SDK's login; it is never logged or
stored, and the session lives in memory for one run.

One query per tracked term (``queries`` overrides), sorted ``latest``. The time since the cursor is cut into
windows (``window_hours``), oldest first; each window is paged with the API's cursor and its end becomes the
query's cursor once its posts are committed. The search cursor does not promise to reach every hit of a big
window, so windows are kept small; ``max_pages_per_window`` bounds the pages read in one.

Each raw post view is parsed on its own with the SDK's own model (``app.bsky.feed.defs#postView``), so one
malformed item is skipped and counted instead of failing the page. Links keep their full URL: the text shows
them shortened (``example.com/some/pa...``) and the full one is in the record's link facets.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from pydantic import Field, SecretStr

from aimusic.core.config import Settings
from aimusic.core.records import Post
from aimusic.sources.base import Batch, CollectContext, Source, SourceConfig, require_reachable, total
from aimusic.sources.errors import SourceStopped, SourceUnavailable
from aimusic.sources.http import LoopGuard, ServerError
from aimusic.sources.ratelimit import RetryPolicy
from aimusic.sources.windowed import RepeatedPage, collect_windows

SOURCE = "bluesky"
NSFW_LABELS = frozenset({"porn", "sexual", "nudity", "graphic-media", "gore"})


class BlueskyConfig(SourceConfig):
    service: str = Field(default="https://bsky.social", description="PDS / entryway to log in to")
    queries: list[str] | None = Field(default=None, description="search queries; default: the tracking terms")
    lang: str | None = Field(default=None, description="only posts in this language (e.g. en)")
    initial_days: float = Field(default=7, gt=0, description="how far back the first run goes")
    window_hours: float = Field(default=24, gt=0, description="time slice per query (oldest first)")
    overlap_minutes: float = Field(default=30, ge=0, description="re-read before the cursor (late indexing)")
    page_size: int = Field(default=100, ge=1, le=100, description="posts per request (the API's maximum: 100)")
    max_pages_per_window: int = Field(default=10, ge=1, description="the search cursor's reach in one slice")
    max_requests: int = Field(default=500, ge=1, description="per run; the rest is picked up next run")
    max_wait_seconds: float = Field(default=120, ge=0, description="longest rate-limit wait slept through")


# --- client ------------------------------------------------------------------------------------------------------


def credentials(
    settings: Settings, handle: str | None = None, app_password: SecretStr | str | None = None
) -> tuple[str, SecretStr]:
    """The handle and app password given, else BLUESKY_HANDLE / BLUESKY_APP_PASSWORD from ``settings``;
    :class:`SourceUnavailable` with a one-line reason when either is missing."""
    handle = (handle if handle is not None else settings.bluesky_handle or "").strip().lstrip("@")
    password = app_password if app_password is not None else settings.bluesky_app_password
    if isinstance(password, str):
        password = SecretStr(password)
    if not handle or password is None or not password.get_secret_value().strip():
        raise SourceUnavailable(
            "no credentials: set BLUESKY_HANDLE and BLUESKY_APP_PASSWORD (an app password) in the environment or .env"
        )
    return handle, password


def make_client(
    handle: str, app_password: SecretStr, service: str, *, user_agent: str, request: Any = None, timeout: float = 20.0
) -> Any:  # atproto.Client; the SDK is imported lazily so a missing package only disables this source
    """A logged-in :class:`atproto.Client`. ``request`` (an ``atproto_client.request.Request``) is for tests."""
    import httpx
    from atproto import Client
    from atproto_client.exceptions import AtProtocolError, UnauthorizedError
    from atproto_client.request import Request

    transport = request or Request(timeout=httpx.Timeout(timeout, connect=5.0))
    transport.add_additional_header("User-Agent", user_agent)
    client = Client(base_url=service, request=transport)
    try:
        client.login(handle, app_password.get_secret_value(), fetch_bsky_profile=False)
    except UnauthorizedError:
        raise SourceUnavailable(f"Bluesky login refused for {handle}: check BLUESKY_APP_PASSWORD") from None
    except AtProtocolError as exc:
        raise SourceUnavailable(f"Bluesky login failed for {handle}: {_error_text(exc)}") from None
    return client


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())[:160]


def _stamp(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def search_page(client: Any, params: dict[str, Any], *, max_attempts: int = 4, max_wait: float = 120.0) -> dict:
    """One ``searchPosts`` call as raw JSON, under the shared retry policy (5xx/network errors, short 429 waits)."""
    from atproto_client import models
    from atproto_client.exceptions import NetworkError, RateLimitExceededError, RequestException

    query = models.AppBskyFeedSearchPosts.Params(**params)
    policy = RetryPolicy(max_attempts=max_attempts, max_wait=max_wait, retry_on=(ServerError,))

    def call() -> dict:
        try:
            response = client.invoke_query("app.bsky.feed.searchPosts", params=query)
        except RateLimitExceededError as exc:
            headers = exc.response.headers if exc.response is not None else {}
            raise policy.too_many_requests(headers, host="Bluesky") from None
        except NetworkError as exc:  # transport failures, 502
            raise ServerError(f"Bluesky request failed: {_error_text(exc)}") from None
        except RequestException as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status is not None and status >= 500:
                raise ServerError(f"Bluesky answered HTTP {status}", status=status) from None
            raise
        content = response.content
        if not isinstance(content, dict):
            raise ServerError("Bluesky answered without a JSON object")
        return content

    return policy.call(call, what="Bluesky search")


def fetch_window(
    client: Any,
    query: str,
    start: int,
    end: int,
    *,
    cfg: BlueskyConfig,
    budget: list[int],
    search: Callable[..., dict] = search_page,
) -> Iterator[list[Any]]:
    """Pages of raw post views for ``query`` posted in ``[start, end)``."""
    guard = LoopGuard()
    cursor: str | None = None
    for _ in range(cfg.max_pages_per_window):
        if budget[0] <= 0:
            raise SourceStopped("bluesky: request budget for this run used up (max_requests); resumes next run")
        budget[0] -= 1
        params: dict[str, Any] = {
            "q": query,
            "sort": "latest",
            "since": _stamp(start),
            "until": _stamp(end),
            "limit": cfg.page_size,
        }
        if cfg.lang:
            params["lang"] = cfg.lang
        if cursor:
            params["cursor"] = cursor
        content = search(client, params, max_wait=cfg.max_wait_seconds)
        posts = content.get("posts")
        if not isinstance(posts, list) or not posts:
            return
        signature = tuple(str(p.get("uri")) if isinstance(p, dict) else "?" for p in posts)
        if guard.repeated(signature):
            raise RepeatedPage(f"Bluesky returned the same page again for {query!r}; stopped paging this window")
        yield posts
        next_cursor = content.get("cursor")
        if not next_cursor or next_cursor == cursor:
            return
        cursor = str(next_cursor)


# --- normalize -----------------------------------------------------------------------------------------------------


def normalize_post(raw: dict[str, Any]) -> Post | None:
    """One raw ``postView`` (the JSON the API returns) -> Post, parsed with the SDK's model."""
    from atproto_client import models
    from atproto_client.exceptions import ModelError
    from atproto_client.models.dot_dict import DotDict
    from atproto_client.models.utils import get_or_create

    if not isinstance(raw, dict):
        raise TypeError(f"expected a post view object, got {type(raw).__name__}")
    try:
        view = get_or_create(raw, models.AppBskyFeedDefs.PostView)
    except ModelError as exc:
        raise ValueError(" ".join(str(exc).split())[:160]) from None
    if not isinstance(view, models.AppBskyFeedDefs.PostView):
        raise ValueError("not a post view")
    record = view.record
    if isinstance(record, models.AppBskyFeedPost.Record):
        text, created, langs, reply = record.text, record.created_at, record.langs, record.reply
        parent = reply.parent.uri if reply else None
        root = reply.root.uri if reply else None
    else:  # the SDK could not type the record (a DotDict): read what is there, fail on what is missing
        data = record.to_dict() if isinstance(record, DotDict) else record
        if not isinstance(data, dict):
            raise TypeError("post record is not an object")
        text, created, langs = data["text"], data["createdAt"], data.get("langs")
        reply = data.get("reply")
        parent = reply["parent"]["uri"] if reply else None
        root = reply["root"]["uri"] if reply else None
    try:
        created_at = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
    except ValueError:
        created_at = datetime.fromisoformat(str(view.indexed_at).replace("Z", "+00:00"))
    record_json = raw.get("record")
    if isinstance(record_json, dict):
        text = expand_links(text, record_json.get("facets"))
    handle = view.author.handle
    rkey = view.uri.rsplit("/", 1)[-1]
    labels = {label.val for label in (view.labels or [])}
    return Post(
        source=SOURCE,
        post_id=view.uri,
        kind="reply" if parent else "post",
        parent_id=parent,
        thread_id=root or view.uri,
        created_at=created_at,
        author=handle,
        text=text or "",
        url=f"https://bsky.app/profile/{handle}/post/{rkey}",
        lang=langs[0] if langs else None,
        score=view.like_count,
        replies=view.reply_count,
        reposts=total(view.repost_count, view.quote_count),
        nsfw=bool(labels & NSFW_LABELS),
    )


_LINK = "app.bsky.richtext.facet#link"
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def expand_links(text: str, facets: Any) -> str:
    """``text`` with every link the app shows shortened (``example.com/some/pa...``) replaced by the full URL of
    its link facet. Facets locate their text by UTF-8 byte offsets; a facet that does not fit is ignored."""
    if not text or not isinstance(facets, list):
        return text
    data = text.encode("utf-8")
    links = sorted((span for span in map(_link_span, facets) if span and span[1] <= len(data)), reverse=True)
    bound = len(data)
    for start, end, uri in links:  # from the end, so the offsets before each replacement stay valid
        if end > bound:
            continue  # overlaps the facet after it
        bound = start
        try:
            shown = data[start:end].decode("utf-8")
        except UnicodeDecodeError:
            continue
        if _shortened(shown, uri):
            data = data[:start] + uri.encode("utf-8") + data[end:]
    return data.decode("utf-8")


def _link_span(facet: Any) -> tuple[int, int, str] | None:
    """(byteStart, byteEnd, uri) of a link facet, or None."""
    if not isinstance(facet, dict) or not isinstance(facet.get("index"), dict):
        return None
    start, end = facet["index"].get("byteStart"), facet["index"].get("byteEnd")
    if type(start) is not int or type(end) is not int or not 0 <= start < end:
        return None
    features = facet.get("features")
    for feature in features if isinstance(features, list) else []:
        if isinstance(feature, dict) and feature.get("$type", _LINK) == _LINK and isinstance(feature.get("uri"), str):
            return start, end, feature["uri"]
    return None


def _shortened(shown: str, uri: str) -> bool:
    """Is ``shown`` the app's short form of ``uri`` (no scheme, path cut with an ellipsis)?"""
    stem = shown.strip()
    stem = stem.removesuffix("...") if stem.endswith("...") else stem.removesuffix("…")
    return bool(stem) and shown != uri and (_SCHEME.sub("", uri).startswith(stem) or uri.startswith(stem))


# --- the source ----------------------------------------------------------------------------------------------------


class BlueskySource(Source[BlueskyConfig]):
    """Posts from Bluesky search matching the tracked terms (``[sources.bluesky]``).

    ``handle`` and ``app_password`` default to BLUESKY_HANDLE / BLUESKY_APP_PASSWORD from the settings;
    ``request`` (an ``atproto_client.request.Request``) replaces the SDK's HTTP transport (tests)."""

    name = SOURCE
    default_cron = "30 */2 * * *"

    def __init__(
        self, handle: str | None = None, app_password: SecretStr | str | None = None, *, request: Any = None
    ) -> None:
        self.handle, self.app_password, self.request = handle, app_password, request

    def check(self, ctx: CollectContext) -> None:
        credentials(ctx.settings, self.handle, self.app_password)
        require_reachable(self.config(ctx.topics).service, ctx.settings.user_agent)

    def collect(self, ctx: CollectContext) -> Iterator[Batch]:
        from atproto_client.exceptions import AtProtocolError

        cfg = self.config(ctx.topics)
        handle, password = credentials(ctx.settings, self.handle, self.app_password)
        client = make_client(handle, password, cfg.service, user_agent=ctx.settings.user_agent, request=self.request)
        yield from collect_windows(
            ctx,
            cfg,
            source=SOURCE,
            window_seconds=int(cfg.window_hours * 3600),
            fetch=lambda query, lo, hi, budget: fetch_window(client, query, lo, hi, cfg=cfg, budget=budget),
            normalize=normalize_post,
            item_key=lambda post: post.get("uri"),
            failures=(ServerError, AtProtocolError),
        )

"""Mastodon: public hashtag timelines (``GET /api/v1/timelines/tag/<tag>``) on a list of instances.

Most instances serve hashtag timelines without a login; some answer 401 (or nothing) unless a token is sent.
Tokens are a parameter of :class:`MastodonSource` (instance -> token); by default they come from the settings
(:attr:`~aimusic.core.config.Settings.mastodon_tokens`), which read them from the environment or ``.env``
(never from topics.toml) as ``MASTODON_TOKEN_<INSTANCE>`` (``MASTODON_TOKEN_MASTODON_SOCIAL`` for
mastodon.social), or under another ``MASTODON_TOKEN_...`` name given in ``[sources.mastodon.token_env]``. Being
settings, they are redacted from logs and run reports. A read-only token (scope ``read:statuses``) is enough.

Paging (40 statuses a page at most) follows the API: the first run walks back from the newest status with
``max_id`` until ``initial_days`` or ``max_pages``; later runs walk forward from the newest status committed
with ``min_id``, page by page, so each page's posts are committed with the cursor that covers them.
Cursors are kept per (instance, tag).

One status federated to several instances has a different local ``id`` on each, but the same ActivityPub
``uri``: the ``uri`` is the post id here, so it is stored once. Content is HTML and is converted to text.
Instances that refuse (401/403), fail, or return nothing are named in the run notes; the others go on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from pydantic import Field, SecretStr, field_validator

from aimusic.core.config import Settings, mastodon_token_key
from aimusic.core.records import Post, to_utc
from aimusic.sources.base import Batch, CollectContext, Source, SourceConfig, normalize_items, total
from aimusic.sources.errors import SourceStopped, SourceUnavailable
from aimusic.sources.htmltext import html_to_text
from aimusic.sources.http import ApiClient, HttpError, LoopGuard, probe
from aimusic.sources.ratelimit import RateLimited, describe_error, now_epoch

SOURCE = "mastodon"
PAGE_LIMIT = 40  # the API's maximum for timelines
TOKEN_PREFIX = "MASTODON_TOKEN_"


class MastodonConfig(SourceConfig):
    instances: list[str] = Field(default_factory=lambda: ["mastodon.social"], min_length=1)
    hashtags: list[str] = Field(default_factory=lambda: ["AIMusic"], min_length=1)
    token_env: dict[str, str] = Field(
        default_factory=dict,
        description="instance -> name of the environment variable holding its token (MASTODON_TOKEN_...)",
    )
    initial_days: float = Field(default=7, gt=0, description="how far back the first run walks")
    max_pages: int = Field(default=10, ge=1, description="pages per (instance, tag) per run")
    page_size: int = Field(default=PAGE_LIMIT, ge=1, le=PAGE_LIMIT)
    requests_per_second: float = Field(default=1.0, gt=0)
    max_wait_seconds: float = Field(default=120, ge=0)

    @field_validator("instances")
    @classmethod
    def _hosts(cls, values: list[str]) -> list[str]:
        out = []
        for value in values:
            raw = value.strip()
            host = urlsplit(raw if "://" in raw else f"https://{raw}").hostname
            if not host or "." not in host:
                raise ValueError(f"not an instance host name: {value!r}")
            out.append(host.lower())
        return list(dict.fromkeys(out))

    @field_validator("hashtags")
    @classmethod
    def _tags(cls, values: list[str]) -> list[str]:
        out = []
        for value in values:
            tag = value.strip().lstrip("#")
            if not re.fullmatch(r"\w+", tag):
                raise ValueError(f"not a hashtag: {value!r}")
            out.append(tag)
        return list(dict.fromkeys(out))

    @field_validator("token_env")
    @classmethod
    def _token_names(cls, value: dict[str, str]) -> dict[str, str]:
        for instance, name in value.items():
            if not re.fullmatch(rf"{TOKEN_PREFIX}[A-Z0-9_]+", name.strip()):
                raise ValueError(
                    f"token_env for {instance!r}: {name!r} must be an upper-case name starting with {TOKEN_PREFIX} "
                    "(the settings read those as secrets, so logs and reports never show them)"
                )
        return {host.strip().lower(): name.strip() for host, name in value.items()}


# --- credentials ---------------------------------------------------------------------------------------------


def token_variable(instance: str, cfg: MastodonConfig) -> str:
    """The environment variable that holds ``instance``'s token."""
    return cfg.token_env.get(instance) or TOKEN_PREFIX + mastodon_token_key(instance)


def instance_token(instance: str, cfg: MastodonConfig, settings: Settings) -> SecretStr | None:
    """``instance``'s token from the settings (its ``MASTODON_TOKEN_...`` variable), or None."""
    token = settings.mastodon_tokens.get(token_variable(instance, cfg).removeprefix(TOKEN_PREFIX))
    return token if token is not None and token.get_secret_value().strip() else None


# --- client and fetch ------------------------------------------------------------------------------------------


def make_client(instance: str, cfg: MastodonConfig, user_agent: str, token: SecretStr | None) -> ApiClient:
    headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else None
    return ApiClient(
        f"https://{instance}",
        user_agent=user_agent,
        min_interval=1.0 / cfg.requests_per_second,
        max_wait=cfg.max_wait_seconds,
        headers=headers,
    )


def id_key(status_id: Any) -> tuple[int, str]:
    """Sort key for status ids: numeric snowflakes (Mastodon) and fixed-width sortable ids (ULIDs, flakes)."""
    text = str(status_id)
    return (len(text), text)


def _link_param(response: requests.Response, rel: str, name: str) -> str | None:
    url = response.links.get(rel, {}).get("url")
    if not url:
        return None
    match = re.search(rf"[?&]{name}=([^&]+)", url)
    return match.group(1) if match else None


def fetch_backward(
    client: ApiClient, tag: str, *, page_size: int, max_pages: int, oldest: datetime
) -> Iterator[tuple[list[Any], requests.Response]]:
    """Newest first: pages of raw statuses going back until ``oldest`` or ``max_pages``."""
    guard = LoopGuard()
    max_id: str | None = None
    for _ in range(max_pages):
        params: dict[str, Any] = {"limit": page_size}
        if max_id:
            params["max_id"] = max_id
        page, response = _page(client, tag, params)
        if not page:
            return
        ids = tuple(str(s.get("id")) for s in page if isinstance(s, dict))
        if guard.repeated(ids):
            raise _Repeated(tag)
        yield page, response
        next_id = _link_param(response, "next", "max_id") or (min(ids, key=id_key) if ids else None)
        if not next_id or next_id == max_id or _older_than(page, oldest) or len(page) < page_size:
            return
        max_id = next_id


def fetch_forward(
    client: ApiClient, tag: str, since_id: str, *, page_size: int, max_pages: int
) -> Iterator[tuple[list[Any], str]]:
    """Pages of statuses newer than ``since_id``, oldest page first, each with the newest id it covers."""
    guard = LoopGuard()
    min_id = since_id
    for _ in range(max_pages):
        page, response = _page(client, tag, {"limit": page_size, "min_id": min_id})
        if not page:
            return
        ids = tuple(str(s.get("id")) for s in page if isinstance(s, dict))
        if guard.repeated(ids):
            raise _Repeated(tag)
        newest = _link_param(response, "prev", "min_id") or (max(ids, key=id_key) if ids else None)
        if not newest or id_key(newest) <= id_key(min_id):
            raise _Repeated(tag)
        yield page, newest
        if len(page) < page_size:
            return
        min_id = newest


class _Repeated(RuntimeError):
    pass


def _page(client: ApiClient, tag: str, params: dict[str, Any]) -> tuple[list[Any], requests.Response]:
    data, response = client.get_json(f"api/v1/timelines/tag/{quote(tag)}", params)
    if not isinstance(data, list):
        message = data.get("error") if isinstance(data, dict) else None
        raise HttpError(f"{client.host} answered without a list of statuses" + (f": {message}" if message else ""))
    return data, response


def _older_than(page: list[Any], oldest: datetime) -> bool:
    for status in page:
        try:
            if to_utc(status["created_at"]) < oldest:
                return True
        except (KeyError, TypeError, ValueError):
            continue
    return False


# --- normalize ---------------------------------------------------------------------------------------------------


def _host(url: Any) -> str | None:
    return urlsplit(str(url)).hostname if url else None


def normalize_status(status: dict[str, Any]) -> Post | None:
    """One Mastodon Status -> Post, keyed by the status ``uri`` (the same on every instance it federated to).

    A boost is folded into the status it boosts. Statuses without text (media only) are kept with empty text
    only when they have a content warning; otherwise they are not posts for our purpose (``None``).
    """
    if status.get("reblog"):
        status = status["reblog"]
    uri = status["uri"]
    if not isinstance(uri, str) or not uri.strip():
        raise ValueError("status without a uri")
    account = status["account"]
    acct = str(account.get("acct") or account["username"])
    if "@" not in acct:
        home = _host(account.get("url")) or _host(uri)
        acct = f"{acct}@{home}" if home else acct
    text = html_to_text(status.get("content"))
    spoiler = (status.get("spoiler_text") or "").strip() or None
    if not text and not spoiler:
        return None
    return Post(
        source=SOURCE,
        post_id=uri,
        kind="reply" if status.get("in_reply_to_id") else "post",
        created_at=status["created_at"],
        author=acct,
        title=spoiler,
        text=text,
        url=status.get("url") or uri,
        lang=status.get("language"),
        score=status.get("favourites_count"),
        replies=status.get("replies_count"),
        reposts=total(status.get("reblogs_count"), status.get("quotes_count")),
        community=_host(uri),
        nsfw=bool(status.get("sensitive")),
    )


# --- the source ------------------------------------------------------------------------------------------------


class MastodonSource(Source[MastodonConfig]):
    """Statuses from public hashtag timelines on the configured instances (``[sources.mastodon]``).

    ``tokens`` (instance -> access token) default to the settings' ``MASTODON_TOKEN_<INSTANCE>`` values."""

    name = SOURCE
    default_cron = "20 */2 * * *"

    def __init__(self, tokens: Mapping[str, SecretStr | str] | None = None) -> None:
        self.tokens = None if tokens is None else {h.lower(): _secret(t) for h, t in tokens.items()}

    def token(self, instance: str, cfg: MastodonConfig, settings: Settings) -> SecretStr | None:
        if self.tokens is not None:
            return self.tokens.get(instance)
        return instance_token(instance, cfg, settings)

    def _reachable(self, cfg: MastodonConfig, user_agent: str) -> tuple[list[str], dict[str, str]]:
        results = probe([f"https://{i}/" for i in cfg.instances], user_agent=user_agent)
        down = {host: reason for host, reason in results.items() if reason}
        return [i for i in cfg.instances if i not in down], down

    def check(self, ctx: CollectContext) -> None:
        cfg = self.config(ctx.topics)
        up, down = self._reachable(cfg, ctx.settings.user_agent)
        if not up:
            hosts = ", ".join(down)
            reason = next(iter(down.values())) if len(down) == 1 else f"no instance reachable ({hosts}; no network?)"
            raise SourceUnavailable(reason)

    def collect(self, ctx: CollectContext) -> Iterator[Batch]:
        cfg = self.config(ctx.topics)
        up, down = self._reachable(cfg, ctx.settings.user_agent)
        if down:
            yield Batch(notes=[f"{reason}: skipped" for reason in down.values()])
        seen: set[str] = set()  # status uris already taken this run (federated copies on other instances)
        oldest = datetime.fromtimestamp(now_epoch() - cfg.initial_days * 86_400, tz=UTC)
        failures: list[str] = []  # instances stopped by errors, rate limits: the run is partial
        for instance in up:
            variable = token_variable(instance, cfg)
            client = make_client(instance, cfg, ctx.settings.user_agent, self.token(instance, cfg, ctx.settings))
            yield from self._instance(ctx, cfg, client, instance, variable, seen, oldest, failures)
        if failures:
            raise SourceStopped("; ".join(failures))

    def _instance(
        self,
        ctx: CollectContext,
        cfg: MastodonConfig,
        client: ApiClient,
        instance: str,
        variable: str,
        seen: set[str],
        oldest: datetime,
        failures: list[str],
    ) -> Iterator[Batch]:
        got = 0
        empty: list[str] = []
        for tag in cfg.hashtags:
            key = f"{instance}#{tag.lower()}"
            since = ctx.cursors.get(key)
            before = got
            try:
                if since:
                    for page, newest in fetch_forward(
                        client, tag, since, page_size=cfg.page_size, max_pages=cfg.max_pages
                    ):
                        got += len(page)
                        yield self._batch(page, seen, {key: newest}, instance)
                else:
                    newest_id: str | None = None
                    pages = fetch_backward(client, tag, page_size=cfg.page_size, max_pages=cfg.max_pages, oldest=oldest)
                    for page, _ in pages:
                        got += len(page)
                        ids = [str(s.get("id")) for s in page if isinstance(s, dict) and s.get("id") is not None]
                        if newest_id is None and ids:
                            newest_id = max(ids, key=id_key)
                        yield self._batch(page, seen, {}, instance)
                    # the newest id becomes the cursor once the whole walk back is committed
                    if newest_id:
                        yield Batch(cursors={key: newest_id})
                if got == before and not since:
                    empty.append(f"#{tag}")
            except _Repeated:
                yield Batch(notes=[f"{instance} returned the same page again for #{tag}; stopped paging it"])
            except RateLimited as exc:
                failures.append(f"{instance}: {exc}; the rest of this instance waits for the next run")
                return
            except HttpError as exc:
                if exc.status in (401, 403):
                    yield Batch(
                        notes=[
                            f"{instance}: HTTP {exc.status} for hashtag timelines (this instance wants a login: "
                            f"set {variable} to an access token)"
                        ]
                    )
                    return
                if exc.status == 404:
                    yield Batch(notes=[f"{instance}: no hashtag timeline for #{tag} (HTTP 404)"])
                    continue
                failures.append(f"{instance}: {describe_error(exc)}; skipped this instance until the next run")
                return
            except requests.RequestException as exc:
                failures.append(f"{instance}: {describe_error(exc)} after retries; skipped until the next run")
                return
        if empty and len(empty) == len(cfg.hashtags):
            yield Batch(notes=[f"{instance}: returned no statuses for {', '.join(empty)} (empty or restricted)"])
        ctx.logger.info("mastodon: %s: %d statuses in %d requests", instance, got, client.requests)

    def _batch(self, page: list[Any], seen: set[str], cursors: dict[str, str], instance: str) -> Batch:
        fresh = []
        duplicates = 0
        for status in page:
            uri = _uri(status)
            if uri and uri in seen:
                duplicates += 1
                continue
            if uri:
                seen.add(uri)
            fresh.append(status)
        posts, skipped, problems = normalize_items(fresh, normalize_status, source=f"{SOURCE} {instance}")
        return Batch(posts=posts, fetched=len(page), skipped=skipped, cursors=dict(cursors), notes=problems)


def _secret(value: SecretStr | str) -> SecretStr:
    return value if isinstance(value, SecretStr) else SecretStr(value)


def _uri(status: Any) -> str | None:
    if not isinstance(status, dict):
        return None
    inner = status.get("reblog") if isinstance(status.get("reblog"), dict) else status
    uri = inner.get("uri")
    return uri if isinstance(uri, str) and uri else None

"""Reddit's JSON API through praw: credentials, the client, and one request. No normalisation here.

praw (prawcore) authenticates, throttles on Reddit's ``x-ratelimit-*`` headers and retries 5xx answers and
timeouts twice; :func:`get_json` adds the shared rate-limit policy for a 429 that still gets through (wait when
the reset is short, otherwise :class:`~aimusic.sources.ratelimit.RateLimited`) and turns rejected credentials
into :class:`~aimusic.sources.errors.SourceUnavailable`. Everything returned is Reddit's own JSON
(``raw_json=1``), so the pure normalisers and the test fixtures share one format.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import praw
import prawcore
from pydantic import SecretStr

from aimusic.core.config import Settings, get_settings
from aimusic.sources.errors import SourceUnavailable
from aimusic.sources.ratelimit import RetryPolicy

log = logging.getLogger(__name__)


class MalformedResponse(ValueError):
    """Reddit answered with JSON of an unexpected shape."""


@dataclass(frozen=True)
class RedditCredentials:
    """An OAuth app's credentials; username and password only for a "script" app acting as its owner."""

    client_id: str
    client_secret: SecretStr
    user_agent: str
    username: str | None = None
    password: SecretStr | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> RedditCredentials:
        """Read REDDIT_* settings; raise :class:`SourceUnavailable` with a one-line reason if incomplete."""
        client_id, secret = settings.reddit_client_id, settings.reddit_client_secret
        missing = [
            name
            for name, value in (("REDDIT_CLIENT_ID", client_id), ("REDDIT_CLIENT_SECRET", secret))
            if not value or (isinstance(value, SecretStr) and not value.get_secret_value())
        ]
        if missing or not client_id or secret is None:
            raise SourceUnavailable(
                f"reddit: no API credentials ({', '.join(missing)} not set in the environment or .env); Reddit "
                "approves API access case by case, see docs/sources.md (the arcticshift source needs no keys)"
            )
        if bool(settings.reddit_username) != bool(settings.reddit_password):
            names = ("REDDIT_USERNAME", "REDDIT_PASSWORD")
            given, absent = names if settings.reddit_username else names[::-1]
            raise SourceUnavailable(f"reddit: {given} is set but {absent} is not (set both, or neither)")
        return cls(
            client_id=client_id,
            client_secret=secret,
            user_agent=settings.reddit_user_agent or settings.user_agent,
            username=settings.reddit_username,
            password=settings.reddit_password,
        )


def make_client(
    credentials: RedditCredentials | None = None,
    *,
    settings: Settings | None = None,
    oauth_url: str = "https://oauth.reddit.com",
    reddit_url: str = "https://www.reddit.com",
    timeout: float = 16,
) -> praw.Reddit:
    """A read-only praw client. Credentials default to REDDIT_* from the environment / .env.

    No request is made here; the first request fetches the OAuth token.
    """
    creds = credentials or RedditCredentials.from_settings(settings or get_settings())
    return praw.Reddit(
        client_id=creds.client_id,
        client_secret=creds.client_secret.get_secret_value(),
        user_agent=creds.user_agent,
        username=creds.username,
        password=creds.password.get_secret_value() if creds.password else None,
        oauth_url=oauth_url.rstrip("/"),
        reddit_url=reddit_url.rstrip("/"),
        timeout=timeout,
        check_for_updates=False,
        check_for_async=False,
    )


def get_json(reddit: praw.Reddit, path: str, params: dict[str, Any], *, rate_limit_max_wait: float = 60) -> Any:
    """GET ``path`` through praw (auth, rate limiter, retries) and return Reddit's JSON.

    A 429 with a reset of at most ``rate_limit_max_wait`` seconds is waited out (twice at most); a longer one,
    or one without a reset time, raises :class:`~aimusic.sources.ratelimit.RateLimited`. Rejected credentials
    raise :class:`SourceUnavailable`.
    """
    policy = RetryPolicy(max_attempts=3, max_wait=rate_limit_max_wait, default_wait=None)

    def call() -> Any:
        try:
            return reddit.request(method="GET", path=path, params=params)
        except prawcore.TooManyRequests as exc:
            headers = exc.response.headers if exc.response is not None else {}
            raise policy.too_many_requests(headers, host="reddit") from None
        except prawcore.OAuthException as exc:
            raise SourceUnavailable(
                f"reddit: Reddit rejected the login ({exc.error}): check REDDIT_USERNAME and REDDIT_PASSWORD"
            ) from None
        except (prawcore.InvalidToken, KeyError) as exc:
            # prawcore maps a 401 without a www-authenticate header to a KeyError
            if isinstance(exc, KeyError) and exc.args != (401,):
                raise
            raise SourceUnavailable(_REJECTED) from None
        except prawcore.ResponseException as exc:
            if exc.response is not None and exc.response.status_code == 401:
                raise SourceUnavailable(_REJECTED) from None
            raise

    return policy.call(call, what=f"reddit {path}")


_REJECTED = "reddit: Reddit rejected the credentials (401): check REDDIT_CLIENT_ID and REDDIT_CLIENT_SECRET"


def describe(payload: Any) -> str:
    if isinstance(payload, dict):
        return f"an object with keys {sorted(payload)[:5]}"
    return type(payload).__name__

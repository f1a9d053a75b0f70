"""Send alerts to a webhook or to any channel Apprise supports, configured by ``AIMUSIC_ALERT_URLS``.

``AIMUSIC_ALERT_URLS`` holds one or more URLs separated by commas or whitespace:

- ``http://...`` / ``https://...``: a webhook; the digest is POSTed as JSON with ``text`` (markdown, so Slack-
  and Mattermost-style incoming webhooks show it as is), ``title`` and ``alerts`` (structured: kind, scope,
  day, message, figures, top posts). Retried with exponential backoff and jitter on connection errors,
  429 and 5xx.
- anything else is an Apprise URL (``slack://...``, ``discord://...``, ``tgram://...``, ``mailto://...``,
  ``json://...``; see https://github.com/caronc/apprise/wiki): the markdown digest goes through Apprise.

URLs carry tokens: they are a secret setting, never logged (only their scheme and host) and never stored.
A failed delivery is logged and recorded on the alert, never raised: alerts must not break a run.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from aimusic.ops.detection import Alert, scope_label

log = logging.getLogger(__name__)

TIMEOUT = 10.0
USER_AGENT = "aimusic-monitor alerts"


def split_urls(value: str | None) -> list[str]:
    return [u for u in re.split(r"[\s,]+", value or "") if u]


def describe_url(url: str) -> str:
    """Scheme and host only: safe to log."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}"


def digest_markdown(alerts: Sequence[Alert], *, posts_per_alert: int = 5) -> tuple[str, str]:
    """Title and markdown body: each alert's message and the top posts behind it."""
    title = f"aimusic-monitor: {len(alerts)} alert{'s' if len(alerts) != 1 else ''}"
    lines: list[str] = []
    for a in alerts:
        lines.append(f"**{a.title}**")
        lines.append(a.message)
        for p in a.top_posts[:posts_per_alert]:
            text = " ".join(str(p.get("text") or "").split())
            text = text if len(text) <= 200 else text[:199] + "…"
            link = f" [{p.get('source')}]({p['url']})" if p.get("url") else f" ({p.get('source')})"
            label = f" [{p['label']}]" if p.get("label") else ""
            lines.append(f"- {text}{link} · engagement {p.get('engagement', 0)}{label}")
        lines.append("")
    return title, "\n".join(lines).strip() + "\n"


def webhook_payload(alerts: Sequence[Alert]) -> dict:
    title, body = digest_markdown(alerts)
    return {
        "title": title,
        "text": f"*{title}*\n{body}",
        "alerts": [
            {
                "kind": a.kind,
                "scope": a.scope,
                "scope_label": scope_label(a.scope),
                "day": a.day.isoformat(),
                "window_start": a.window_start.isoformat(),
                "window_end": a.window_end.isoformat(),
                "observed": a.observed,
                "expected": a.expected,
                "low": a.low,
                "high": a.high,
                "score": a.score,
                "direction": a.direction,
                "posts": a.posts,
                "model": a.model,
                "message": a.message,
                "top_posts": a.top_posts,
            }
            for a in alerts
        ],
    }


class _Retryable(RuntimeError):
    pass


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, _Retryable | requests.ConnectionError | requests.Timeout)


@retry(
    retry=retry_if_exception(_retryable),
    stop=stop_after_attempt(3),
    wait=wait_exponential_jitter(initial=1, max=20, jitter=1),
    reraise=True,
)
def _post(url: str, payload: dict, timeout: float) -> None:
    resp = requests.post(url, json=payload, timeout=timeout, headers={"User-Agent": USER_AGENT})
    if resp.status_code == 429 or resp.status_code >= 500:
        raise _Retryable(f"HTTP {resp.status_code}")
    if resp.status_code >= 400:
        raise RuntimeError(f"HTTP {resp.status_code}")


def _send_apprise(url: str, title: str, body: str) -> None:
    import apprise

    app = apprise.Apprise()
    if not app.add(url):
        raise RuntimeError("not a valid Apprise URL")
    if not app.notify(body=body, title=title, body_format=apprise.NotifyFormat.MARKDOWN):
        raise RuntimeError("Apprise could not deliver (see its log lines above)")


@dataclass
class Delivery:
    sent: list[str] = field(default_factory=list)  # described URLs (scheme://host)
    failed: list[str] = field(default_factory=list)  # "scheme://host: reason"

    @property
    def ok(self) -> bool:
        return bool(self.sent) and not self.failed

    def summary(self) -> str:
        if not self.sent and not self.failed:
            return "no alert URLs configured (AIMUSIC_ALERT_URLS)"
        parts = [f"sent to {len(self.sent)} of {len(self.sent) + len(self.failed)} channel(s)"]
        parts += [f"failed {f}" for f in self.failed]
        return "; ".join(parts)


def deliver(alerts: Sequence[Alert], urls: Sequence[str], *, timeout: float = TIMEOUT) -> Delivery:
    """Send one digest of ``alerts`` to every URL; failures are logged and reported, never raised."""
    result = Delivery()
    if not alerts or not urls:
        return result
    title, body = digest_markdown(alerts)
    payload = webhook_payload(alerts)
    for url in urls:
        safe = describe_url(url)
        try:
            if urlsplit(url).scheme in ("http", "https"):
                _post(url, payload, timeout)
            else:
                _send_apprise(url, title, body)
        except Exception as exc:  # a channel failing must not stop the others or the run
            reason = _reason(exc, url)
            log.warning("alert delivery to %s failed: %s", safe, reason)
            result.failed.append(f"{safe}: {reason}")
        else:
            log.info("sent %d alert(s) to %s", len(alerts), safe)
            result.sent.append(safe)
    return result


def _reason(exc: BaseException, url: str) -> str:
    text = f"{type(exc).__name__}: {exc}" if not isinstance(exc, _Retryable | RuntimeError) else str(exc)
    # exceptions may quote the URL, its path or its query, which carry the token
    parts = urlsplit(url)
    for secret in (url, parts.path + ("?" + parts.query if parts.query else ""), parts.path, parts.query,
                   parts.password or ""):
        if secret and secret != "/":
            text = text.replace(secret, "/***")
    return text[:300]


def sample_alert() -> Alert:
    """A clearly labelled test alert for ``aimusic alerts --test``."""
    from datetime import UTC, datetime, timedelta

    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return Alert(
        kind="volume_spike", scope="test", day=end.date(), window_start=end - timedelta(hours=24), window_end=end,
        observed=0, expected=0, low=None, high=None, score=0.0, direction="up", posts=0, model=None,
        message="Test alert from `aimusic alerts --test`: delivery works. Nothing happened.",
        top_posts=[{"source": "test", "text": "This is where the most engaged posts behind an alert appear.",
                    "url": None, "engagement": 0, "label": None}],
    )

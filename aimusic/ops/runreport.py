"""What a monitoring run reports: its outcome (ok / partially failed / failed), the markdown of its Prefect
artifact (fetched / new / skipped / failed per source and the sentiment of the new posts), and the alerts it
raised. Pure functions (the read is :func:`aimusic.store.queries.new_post_sentiment`); no Prefect here
(:mod:`flows.monitor` publishes the result).

Messages and errors pass through :func:`redact`, which removes every configured secret value, so a token that
an exception happens to quote never reaches Prefect's database, the UI or a webhook.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from aimusic.core.config import Settings
from aimusic.core.config import secret_values as config_secret_values

#: per-source run statuses that count as a failure of the run
FAILED = "failed"


def secret_values(settings: Settings | None) -> list[str]:
    return [] if settings is None else config_secret_values(settings)


def redact(text: str | None, settings: Settings | None) -> str | None:
    """``text`` with every secret setting's value replaced by ``***``."""
    if not text:
        return text
    for secret in secret_values(settings):
        text = text.replace(secret, "***")
    return text


@dataclass(frozen=True)
class Outcome:
    """The run's Prefect state: ``Completed``, ``Partially failed`` (a Completed state with that name),
    ``Failed`` (every source that ran failed, or nothing could be collected) or ``Skipped``."""

    state: str
    message: str


def run_outcome(rows: Sequence[dict[str, Any]], *, problems: Sequence[str] = ()) -> Outcome:
    """Decide the state from the per-source rows (``runs`` rows) and run-level problems (scoring, alerts)."""
    failed = [r for r in rows if r.get("status") == FAILED]
    ran = [r for r in rows if r.get("status") != "skipped"]
    skipped = [r for r in rows if r.get("status") == "skipped"]
    partial = [r for r in rows if r.get("status") == "partial"]
    new = sum(int(r.get("new") or 0) for r in rows)
    parts = [f"{len(ran)} source(s) ran, {new} new post(s)"]
    if failed:
        parts.append("failed: " + ", ".join(f"{r['source']} ({_short(r.get('error'))})" for r in failed))
    if partial:
        parts.append("stopped early or skipped items: " + ", ".join(r["source"] for r in partial))
    if skipped:
        parts.append("not run: " + ", ".join(r["source"] for r in skipped))
    parts += list(problems)
    message = "; ".join(parts)
    if ran and len(failed) == len(ran):
        return Outcome("Failed", message)
    if failed or problems:
        return Outcome("Partially failed", message)
    return Outcome("Completed", message)


def _short(text: str | None, n: int = 120) -> str:
    text = " ".join((text or "unknown error").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def run_markdown(
    *,
    run_id: str,
    db: str,
    model: str | None,
    outcome: Outcome,
    rows: Sequence[dict[str, Any]],
    sentiment: pd.DataFrame | None = None,
    alerts: Sequence[str] = (),
    settings: Settings | None = None,
) -> str:
    """The run artifact: outcome, a per-source table, the new posts' sentiment, and alerts raised."""
    lines = [
        f"## aimusic-monitor run `{run_id[:8]}`: {outcome.state}",
        "",
        f"Database `{db}`, sentiment model `{model or 'none'}`.",
        "",
        "### Sources",
        "",
    ]
    lines += _table(
        ["source", "status", "fetched", "new", "updated", "irrelevant", "skipped", "failed", "scored", "note"],
        (
            [
                r["source"], r["status"], r.get("fetched", 0), r.get("new", 0), r.get("updated", 0),
                r.get("irrelevant", 0), r.get("skipped", 0), "yes" if r.get("status") == FAILED else "",
                r.get("scored", 0), _short(redact(r.get("error"), settings), 200) if r.get("error") else "",
            ]
            for r in rows
        ),
    )
    lines += ["", "### Sentiment of the new posts", ""]
    if sentiment is None or sentiment.empty:
        lines.append("No new posts in this run.")
    else:
        total = sentiment[["new", "scored", "negative", "neutral", "positive"]].sum()
        body = [
            [r.source, r.new, r.scored, r.negative, r.neutral, r.positive, _net(r.net)]
            for r in sentiment.itertuples(index=False)
        ]
        net = (total.positive - total.negative) / total.scored if total.scored else None
        body.append(["**all**", total.new, total.scored, total.negative, total.neutral, total.positive, _net(net)])
        lines += _table(["posts from", "new", "scored", "negative", "neutral", "positive", "net"], body)
    lines += ["", "### Alerts", ""]
    lines += [f"- {_cell(redact(a, settings))}" for a in alerts] or ["None raised by this run."]
    lines += ["", f"_{_cell(redact(outcome.message, settings))}_", ""]
    return "\n".join(lines)


def _net(value: Any) -> str:
    if value is None or pd.isna(value):
        return ""
    return f"{float(value):+.2f}"


def artifact_key(deployment: str | None) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes): one history per deployment."""
    slug = re.sub(r"[^a-z0-9]+", "-", (deployment or "adhoc").lower()).strip("-") or "adhoc"
    return f"aimusic-run-{slug}"[:100]

"""The ``alerts`` table and the reads alert detection needs: named queries, no detection logic.

:mod:`aimusic.ops.alerts` turns these rows into :class:`aimusic.ops.detection.Alert` objects and back; the
dashboard and ``aimusic alerts`` read :func:`alerts_frame`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from aimusic.store.db import Store
from aimusic.store.queries import engagement_sql

log = logging.getLogger(__name__)

ALERT_COLUMNS = [
    "kind", "scope", "day", "window_start", "window_end", "observed", "expected", "low", "high", "score",
    "direction", "posts", "model", "message", "top_posts", "run_id",
]
ALERTS_SCHEMA = pa.schema(
    [
        ("kind", pa.string()), ("scope", pa.string()), ("day", pa.date32()),
        ("window_start", pa.timestamp("us", tz="UTC")), ("window_end", pa.timestamp("us", tz="UTC")),
        ("observed", pa.float64()), ("expected", pa.float64()), ("low", pa.float64()), ("high", pa.float64()),
        ("score", pa.float64()), ("direction", pa.string()), ("posts", pa.int64()), ("model", pa.string()),
        ("message", pa.string()), ("top_posts", pa.string()), ("run_id", pa.string()),
    ]
)
AlertKey = tuple[str, str, date]  # kind, scope, day


def hourly_counts(store: Store, start: datetime, end: datetime, model: str | None) -> pd.DataFrame:
    """Hourly post counts and sentiment labels (of ``model``) per source in [start, end): columns source,
    hour, posts, scored, positive, negative."""
    return store.query(
        """SELECT p.source, date_trunc('hour', p.created_at) AS hour, count(*) AS posts,
                  count(s.label) AS scored,
                  count(*) FILTER (WHERE s.label = 'positive') AS positive,
                  count(*) FILTER (WHERE s.label = 'negative') AS negative
           FROM posts p
           LEFT JOIN scores s ON s.source = p.source AND s.post_id = p.post_id AND s.model = ?
           WHERE p.created_at >= ? AND p.created_at < ?
           GROUP BY ALL""",
        [model, start, end],
    )


def first_post_times(store: Store) -> dict[str, datetime]:
    """Each source's first post: the start of its history."""
    df = store.query("SELECT source, min(created_at) AS first FROM posts GROUP BY source")
    return {str(s): pd.Timestamp(t).to_pydatetime().astimezone(UTC) for s, t in df.itertuples(index=False)}


def top_posts(
    store: Store, *, start: datetime, end: datetime, scope: str, model: str | None, label: str | None, limit: int
) -> list[dict[str, Any]]:
    """The most engaged posts of ``scope`` (a source, or ``all``) in [start, end), only those labelled ``label``
    by ``model`` when a label is given: source, post_id, created_at (ISO text), author, url, text, engagement,
    label."""
    df = store.query(
        f"""SELECT p.source, p.post_id, p.created_at, p.author, p.url, left(coalesce(p.title || ' - ', '') ||
                   p.text, 280) AS text, {engagement_sql("p")} AS engagement, s.label
            FROM posts p
            LEFT JOIN scores s ON s.source = p.source AND s.post_id = p.post_id AND s.model = ?
            WHERE p.created_at >= ? AND p.created_at < ? AND (? = 'all' OR p.source = ?)
              AND (?::VARCHAR IS NULL OR s.label = ?)
            ORDER BY engagement DESC, p.created_at DESC
            LIMIT ?""",
        [model, start, end, scope, scope, label, label, limit],
    )
    rows = df.to_dict("records")
    for row in rows:
        row["created_at"] = pd.Timestamp(row["created_at"]).isoformat()
        row["engagement"] = int(row["engagement"])
    return rows


def insert_alerts(store: Store, rows: Sequence[dict[str, Any]], cooldown: timedelta) -> set[AlertKey]:
    """Insert alert rows (:data:`ALERT_COLUMNS`, ``top_posts`` a list) that are new for their (kind, scope, day)
    and not within ``cooldown`` after an alert of the same kind and scope on another day; return the keys
    inserted."""
    if not rows:
        return set()
    with store.connect() as con:
        fresh = []
        for row in rows:
            recent = con.execute(
                """SELECT count(*) FROM alerts WHERE kind = ? AND scope = ? AND window_end > ?
                   AND window_end <= ? AND day <> ?""",
                [row["kind"], row["scope"], row["window_end"] - cooldown, row["window_end"], row["day"]],
            ).fetchall()[0][0]
            if recent:
                log.info("alert %s/%s within the cooldown of an earlier one: not raised again", row["kind"],
                         row["scope"])
                continue
            fresh.append({**row, "top_posts": json.dumps(row["top_posts"], ensure_ascii=False, default=str)})
        if not fresh:
            return set()
        con.register("_alerts_in", pa.Table.from_pylist(fresh, schema=ALERTS_SCHEMA))
        inserted = con.execute(
            f"""INSERT INTO alerts ({", ".join(ALERT_COLUMNS)}, created_at)
                SELECT {", ".join(ALERT_COLUMNS)}, now() FROM _alerts_in
                ON CONFLICT DO NOTHING RETURNING kind, scope, day"""
        ).fetchall()
        con.unregister("_alerts_in")
    return set(inserted)


def mark_delivered(store: Store, keys: Sequence[AlertKey], outcome: str, delivered: bool) -> None:
    """Record how the notification for these alerts went (never the URLs: they carry tokens)."""
    if not keys:
        return
    with store.connect() as con:
        for kind, scope, day in keys:
            con.execute(
                """UPDATE alerts SET delivery = ?, delivered_at = CASE WHEN ? THEN now() ELSE delivered_at END
                   WHERE kind = ? AND scope = ? AND day = ?""",
                [outcome[:2000], delivered, kind, scope, day],
            ).fetchall()


def alerts_frame(
    con: duckdb.DuckDBPyConnection,
    *,
    start: date | None = None,
    end: date | None = None,
    kinds: Sequence[str] = (),
    scopes: Sequence[str] = (),
    limit: int = 500,
) -> pd.DataFrame:
    """Stored alerts, newest first, over an open (read-only is enough) connection; an empty frame if the
    database predates alerts. For the dashboard and the CLI.

    Columns: kind, scope, day, window_start, window_end, observed, expected, low, high, score, direction,
    posts, model, message, top_posts (a list of dicts: source, post_id, created_at, author, url, text,
    engagement, label), run_id, created_at, delivered_at, delivery.
    """
    columns = [*ALERT_COLUMNS, "created_at", "delivered_at", "delivery"]
    exists = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'alerts'").fetchall()[0][0]
    if not exists:
        return pd.DataFrame(columns=columns)
    clauses, params = ["TRUE"], []
    for clause, value in (("day >= ?", start), ("day <= ?", end)):
        if value:
            clauses.append(clause)
            params.append(value)
    for clause, values in (("list_contains(?, kind)", kinds), ("list_contains(?, scope)", scopes)):
        if values:
            clauses.append(clause)
            params.append(list(values))
    df = con.execute(
        f"""SELECT {", ".join(columns)} FROM alerts WHERE {" AND ".join(clauses)}
            ORDER BY window_end DESC, kind, scope LIMIT ?""",
        [*params, int(limit)],
    ).df()
    df["top_posts"] = [json.loads(v) if v else [] for v in df["top_posts"]]
    df["day"] = pd.to_datetime(df["day"]).dt.date  # a DATE arrives as a timestamp
    return df


def undelivered_rows(store: Store, since: datetime) -> list[dict[str, Any]]:
    """Alert rows (:data:`ALERT_COLUMNS`, ``top_posts`` decoded, missing numbers as ``None``) raised since
    ``since`` whose delivery was never attempted, oldest first; replayed alerts (run_id ``scan``) excluded."""
    df = store.query(
        f"""SELECT {", ".join(ALERT_COLUMNS)} FROM alerts
            WHERE delivery IS NULL AND created_at >= ? AND coalesce(run_id, '') <> 'scan'
            ORDER BY created_at, kind, scope""",
        [since],
    )
    rows = []
    for row in df.to_dict("records"):
        row["top_posts"] = json.loads(row["top_posts"]) if row["top_posts"] else []
        for key in ("window_start", "window_end"):
            row[key] = pd.Timestamp(row[key]).to_pydatetime().astimezone(UTC)
        row["day"] = pd.Timestamp(row["day"]).date()
        for key in ("low", "high", "expected"):
            if row[key] is not None and pd.isna(row[key]):
                row[key] = None
        row["posts"] = int(row["posts"] or 0)
        rows.append(row)
    return rows

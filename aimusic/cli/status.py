"""``aimusic status`` (what the database holds, the last run per source) and ``aimusic alerts``."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from aimusic.cli.common import DbOpt, TopicsOpt, fail, out, reported, setup_logging
from aimusic.core.config import resolve_db, resolve_read_db

STATUS_TABLES = ("posts", "scores", "runs", "cursors", "events")


def _when(value: Any) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM`` (UTC); empty when missing."""
    import pandas as pd

    if value is None or pd.isna(value):
        return ""
    return pd.Timestamp(value).tz_convert(UTC).strftime("%Y-%m-%d %H:%M")


def _count(value: Any) -> str:
    import pandas as pd

    return "" if value is None or pd.isna(value) else f"{int(value):,}"


def status(db: DbOpt = None) -> None:
    """Last run per source, row counts and database size."""
    from aimusic.store.db import Store
    from aimusic.store.queries import last_runs, scores_by_model

    target, note = resolve_read_db(db)
    with reported():
        store = Store(target, read_only=True)
        runs = last_runs(store)
        counts = {t: store.count(t) for t in STATUS_TABLES}
        models = scores_by_model(store)
        size = store.file_size()
    if note:
        out.print(note, highlight=False, soft_wrap=True)
    out.print(f"database {target} ({size / 1e6:.1f} MB)", highlight=False, soft_wrap=True)
    out.print("rows: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()), soft_wrap=True)
    if models:
        out.print("scores by model: " + ", ".join(f"{m} {n:,}" for m, n in models), highlight=False, soft_wrap=True)
    if runs.empty:
        out.print("no runs yet: `aimusic run` records one row per source")
        return
    table = Table(title="last run per source", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("source", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("started (UTC)", no_wrap=True)
    for col in ("fetched", "new", "scored"):
        table.add_column(col, justify="right", no_wrap=True)
    for row in runs.itertuples(index=False):
        table.add_row(row.source, row.status, _when(row.started_at), *(_count(getattr(row, c)) for c in
                                                                        ("fetched", "new", "scored")))
    out.print(table)
    for row in runs.itertuples(index=False):
        if row.note:  # rows written before 0.2 may repeat the source's name in front of the reason
            note = row.note.removeprefix(f"{row.source}: ")
            out.print(f"{row.source}: {note}", highlight=False)


def alerts(
    db: DbOpt = None,
    days: Annotated[int, typer.Option(help="show alerts of the last N days")] = 30,
    scan_from: Annotated[
        str | None, typer.Option(help="replay detection for each day from YYYY-MM-DD (stored, not sent)")
    ] = None,
    scan_to: Annotated[str | None, typer.Option(help="last day to replay (default: yesterday, UTC)")] = None,
    test: Annotated[bool, typer.Option("--test", help="send a sample alert to AIMUSIC_ALERT_URLS and report")] = False,
    topics: TopicsOpt = None,
) -> None:
    """List stored alerts (volume spikes, sentiment shifts); replay detection over history; test delivery."""
    setup_logging()
    from aimusic.core.config import get_settings
    from aimusic.core.topics import load_topics
    from aimusic.ops.alert_rules import load_rules
    from aimusic.ops.alerts import list_alerts, scan
    from aimusic.store.db import Store
    from aimusic.store.queries import pick_model

    if test:
        from aimusic.ops.notify import deliver, sample_alert, split_urls

        secret = get_settings().alert_urls
        urls = split_urls(secret.get_secret_value() if secret else None)
        if not urls:
            fail("AIMUSIC_ALERT_URLS is not set (in .env or the environment)")
        result = deliver([sample_alert()], urls)
        out.print(result.summary())
        raise typer.Exit(0 if result.ok else 1)
    with reported(ValueError):
        if scan_from:
            target = resolve_db(db)
            store = Store(target)
            start = date.fromisoformat(scan_from)
            end = date.fromisoformat(scan_to) if scan_to else datetime.now(UTC).date() - timedelta(days=1)
            found = scan(store, start, end, model=pick_model(store), rules=load_rules(load_topics(topics)))
            out.print(f"replayed {start} to {end}: {len(found)} new alert(s) stored (none sent)")
            since = start
        else:
            target, note = resolve_read_db(db)
            if note:
                out.print(note, highlight=False, soft_wrap=True)
            store = Store(target, read_only=True)
            since = datetime.now(UTC).date() - timedelta(days=days)
        df = list_alerts(store, start=since)
    if df.empty:
        out.print(f"no alerts since {since}")
        return
    table = Table(title=f"{len(df)} alert(s) since {since} ({target})")
    for col in ("day", "kind", "scope", "alert", "sent"):
        table.add_column(col)
    for row in df.itertuples(index=False):
        table.add_row(f"{row.day:%Y-%m-%d}", row.kind, row.scope, row.message, row.delivery or "")
    out.print(table)

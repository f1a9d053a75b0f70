"""Scheduled housekeeping flows: the daily export and the weekly maintenance.

- :func:`export_flow` (daily): ``daily.csv`` and ``daily.parquet`` with the daily aggregates of the whole
  history (posts, authors, sentiment counts and net sentiment per day and source; one model), replaced
  atomically, and ``posts/posts-<day>.parquet`` with the previous UTC day's posts and their scores.
- :func:`maintenance_flow` (weekly): scores every post that lacks a current score from the default model
  (after a model upgrade, or posts a failed run left unscored) with the monitor's own scoring step, then
  compacts the database (:mod:`aimusic.ops.compact`).

Both hold the database's run lock, like the monitor flow, so they never overlap a monitoring run.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.states import Completed

from aimusic.core.config import EXPORTS_DIR, get_settings, resolve_db
from aimusic.debate.correction import add_adjusted_daily
from aimusic.ops.compact import compact
from aimusic.ops.runlock import run_lock
from aimusic.store.db import Store
from aimusic.store.privacy import record_export
from aimusic.store.queries import Filters, export
from flows.monitor import PrefectSteps
from flows.retry import io_task

log = logging.getLogger(__name__)


def _replace_atomically(store: Store, what: str, target: Path, filters: Filters, fmt: str) -> int:
    """Write to a temporary file next to ``target`` and rename it into place: readers never see half a file."""
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        rows = export(store, what, tmp, filters=filters, fmt=fmt, adjust_daily=add_adjusted_daily)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return rows


def write_exports(store: Store, out_dir: Path, *, day: date, model: str | None = None) -> dict[str, int]:
    """The daily aggregates (whole history, CSV and Parquet) and ``day``'s posts (Parquet); rows per file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, int] = {}
    for fmt in ("csv", "parquet"):
        target = out_dir / f"daily.{fmt}"
        written[str(target)] = _replace_atomically(store, "daily", target, Filters(model=model), fmt)
    posts_dir = out_dir / "posts"
    posts_dir.mkdir(exist_ok=True)
    target = posts_dir / f"posts-{day.isoformat()}.parquet"
    filters = Filters(start=day, end=day, model=model)
    rows = _replace_atomically(store, "posts", target, filters, "parquet")
    written[str(target)] = rows
    _index_export(store, target, rows, filters)
    return written


def _index_export(store: Store, target: Path, rows: int, filters: Filters) -> None:
    """List a posts export in the privacy index, so a takedown (`aimusic forget`) rewrites it too."""
    record_export(store, target, "posts", "parquet", rows, {"since": filters.start, "until": filters.end})


@io_task("export")
def export_task(db: str, out_dir: str, day: date, model: str | None) -> dict[str, int]:
    return write_exports(Store(db), Path(out_dir), day=day, model=model)


@flow(name="aimusic-export", log_prints=False)
def export_flow(
    db: str | None = None,
    out_dir: str | None = None,
    day: date | None = None,
    model: str | None = None,
    lock_wait: float | None = None,
) -> dict[str, int]:
    """Daily export to ``data/exports/`` (see the module docstring). ``day`` defaults to yesterday (UTC)."""
    logger = get_run_logger()
    target = resolve_db(db)
    if not target.exists():
        return Completed(name="Skipped", message=f"{target} does not exist yet: nothing to export", data={})
    wait = get_settings().run_lock_wait if lock_wait is None else float(lock_wait)
    day = day or (datetime.now(UTC).date() - timedelta(days=1))
    with run_lock(target, wait, what="daily export") as lock:
        if not lock.acquired:
            message = f"skipped: {lock.describe_holder()} held {target.name} for {lock.waited:.0f}s"
            logger.warning(message)
            return Completed(name="Skipped", message=message, data={})
        written = export_task(str(target), str(Path(out_dir) if out_dir else EXPORTS_DIR), day, model)
    for path, rows in written.items():
        logger.info("wrote %d rows to %s", rows, path)
    return written


@io_task("compact")
def compact_task(db: str, force: bool) -> dict:
    result = compact(db, force=force)
    get_run_logger().info(result.line())
    return asdict(result)


@flow(name="aimusic-maintenance", log_prints=False)
def maintenance_flow(
    db: str | None = None,
    model: str | None = None,
    rescore: bool = True,
    compact_db: bool = True,
    force_compact: bool = False,
    lock_wait: float | None = None,
) -> dict:
    """Weekly maintenance: re-score what lacks the default model's score, then compact the database."""
    logger = get_run_logger()
    settings = get_settings()
    target = resolve_db(db)
    if not target.exists():
        return Completed(name="Skipped", message=f"{target} does not exist yet", data={})
    wait = settings.run_lock_wait if lock_wait is None else float(lock_wait)
    result: dict = {"db": str(target)}
    with run_lock(target, wait, what="weekly maintenance") as lock:
        if not lock.acquired:
            message = f"skipped: {lock.describe_holder()} held {target.name} for {lock.waited:.0f}s"
            logger.warning(message)
            return Completed(name="Skipped", message=message, data=result)
        if rescore:  # the monitor's own scoring step: same model choice, languages and multilingual pass
            model_id, counts = PrefectSteps(settings).score(str(target), model)
            result["model"], result["rescored"] = model_id, sum(counts.values())
            logger.info("scored %d posts with %s", result["rescored"], result["model"])
        if compact_db:
            result["compact"] = compact_task(str(target), force_compact)
    return result

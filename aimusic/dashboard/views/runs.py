"""Runs: what ran, what was skipped and why, and what failed in each source's last run (said in the view, not only
in a table column), counts, data freshness, and a warning for every source that has not delivered for longer
than its schedule. Skipped is not healthy: the page is green only when every source ran and delivered on time."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from aimusic.dashboard import freshness
from aimusic.dashboard.context import ViewContext
from aimusic.dashboard.widgets import download_frame, md_escape
from aimusic.store import dashboard_queries as q

TITLE = "Runs"
NEEDS_POSTS = False

#: table columns in reading order: what happened and why first, the counts after
RUN_COLUMNS = {
    "source": st.column_config.TextColumn("Source", width=95, pinned=True),
    "status": st.column_config.TextColumn("Status", width=70),
    "error": st.column_config.TextColumn("Reason or error", width="large"),
    "finished_at": st.column_config.DatetimeColumn("Finished (UTC)", format="YYYY-MM-DD HH:mm", timezone="UTC"),
    "new": st.column_config.NumberColumn("New", format="localized"),
    "fetched": st.column_config.NumberColumn("Fetched", format="localized"),
    "updated": st.column_config.NumberColumn("Updated", format="localized"),
    "irrelevant": st.column_config.NumberColumn("Off-topic", format="localized"),
    "skipped": st.column_config.NumberColumn("Bad items", format="localized"),
    "scored": st.column_config.NumberColumn("Scored", format="localized"),
    "freshness": st.column_config.TextColumn("Freshness", width="medium"),
    "last_delivery": st.column_config.DatetimeColumn("Last delivery (UTC)", format="YYYY-MM-DD HH:mm",
                                                     timezone="UTC"),
    "schedule": st.column_config.TextColumn("Schedule"),
    "runs": st.column_config.NumberColumn("Runs"),
    "failures": st.column_config.NumberColumn("Failures"),
    "started_at": st.column_config.DatetimeColumn("Started (UTC)", format="YYYY-MM-DD HH:mm", timezone="UTC"),
    "seconds": st.column_config.NumberColumn("Seconds"),
    "model": st.column_config.TextColumn("Model"),
}
RAN = ("ok", "partial")


def _ts(value: object) -> datetime | None:
    if value is None or pd.isna(value):
        return None
    ts = pd.Timestamp(value)
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()


def render(ctx: ViewContext, now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    latest: pd.DataFrame = ctx.file(q.runs_latest)
    if latest.empty:
        st.info("No runs are recorded in this database yet. `aimusic run` records one row per source and run "
                "(posts written by `aimusic demo` are not runs).")
    else:
        checks = [
            freshness.check(row.source, freshness.schedule_for(row.source, ctx.topics), _ts(row.last_delivery), now)
            for row in latest.itertuples()
        ]
        _summary(latest, checks)
        table = latest.assign(
            error=latest["error"].fillna(""),
            schedule=[f"{c.cron} ({c.every})" if c.every else "not scheduled" for c in checks],
            freshness=[("LATE: " if c.late else "") + c.message for c in checks],
        )
        st.subheader("Last run per source")
        shown = table[[c for c in RUN_COLUMNS if c in table.columns]]
        st.dataframe(shown, hide_index=True, width="stretch", column_config=RUN_COLUMNS)
        download_frame(shown, ctx, "runs-latest")
        grace = freshness.GRACE.total_seconds() / 3600
        st.caption(f"Checked at {now:%Y-%m-%d %H:%M} UTC. A source is late when no run has ended ok or partial "
                   f"since its schedule's next time after the last delivery, plus {grace:g} h for the run itself. "
                   "Synthetic sources (demo) are not scheduled.")

        failures = ctx.file(q.runs_recent, 50, True)
        st.subheader("Failures")
        if failures.empty:
            st.caption("No failed runs recorded.")
        else:
            shown_f = failures[[c for c in RUN_COLUMNS if c in failures.columns]]
            st.dataframe(shown_f, hide_index=True, width="stretch", column_config=RUN_COLUMNS)
            download_frame(shown_f, ctx, "runs-failures")

        with st.expander("Recent runs (last 200)"):
            recent = ctx.file(q.runs_recent, 200, False)
            shown_r = recent[[c for c in RUN_COLUMNS if c in recent.columns]]
            st.dataframe(shown_r, hide_index=True, width="stretch", column_config=RUN_COLUMNS)
            download_frame(shown_r, ctx, "runs-recent")

    st.subheader("Data freshness per platform")
    newest: pd.DataFrame = ctx.file(q.newest_posts)
    if newest.empty:
        st.caption("No posts stored yet.")
        return
    cfg = {
        "source": st.column_config.TextColumn("Platform"),
        "posts": st.column_config.NumberColumn("Posts", format="localized"),
        "newest_post": st.column_config.DatetimeColumn("Newest post (UTC)", format="YYYY-MM-DD HH:mm", timezone="UTC"),
        "last_fetched": st.column_config.DatetimeColumn("Last fetched (UTC)", format="YYYY-MM-DD HH:mm",
                                                        timezone="UTC"),
        "last_written": st.column_config.DatetimeColumn("Last written (UTC)", format="YYYY-MM-DD HH:mm",
                                                        timezone="UTC"),
    }
    st.dataframe(newest, hide_index=True, width="stretch", column_config=cfg)
    download_frame(newest, ctx, "freshness")


def _summary(latest: pd.DataFrame, checks: list[freshness.Freshness]) -> None:
    """Say, above any table, what each source's last run did: ran, skipped (and why), failed; and who is late."""
    ran = latest[latest["status"].isin(RAN)]
    skipped = latest[latest["status"] == "skipped"]
    failed = latest[latest["status"] == "failed"]
    late = [c for c in checks if c.late]
    ran_text = ", ".join(f"{md_escape(r.source)} ({r.status}, {0 if pd.isna(r.new) else int(r.new):,} new)"
                         for r in ran.itertuples())
    parts = [f"**Ran ({len(ran)}):** " + (ran_text or "none")]
    if len(skipped):
        parts.append(f"**Skipped ({len(skipped)}):** " + ", ".join(md_escape(x) for x in skipped["source"]))
    if len(failed):
        parts.append(f"**Failed ({len(failed)}):** " + ", ".join(md_escape(x) for x in failed["source"]))
    st.markdown("Last run of each source. " + " · ".join(parts))
    for c in late:
        st.error(f"Late: {md_escape(c.message)}.", icon=":material/schedule:")
    for row in failed.itertuples():
        st.error(f"{md_escape(row.source)}: the last run failed: {md_escape(row.error or 'no message')}",
                 icon=":material/error:")
    if len(skipped):
        reasons = "\n".join(f"- **{md_escape(r.source)}**: {md_escape(_reason(r.source, r.error))}"
                             for r in skipped.itertuples())
        only = " Only synthetic demo posts were collected." if len(ran) and set(ran["source"]) == {"demo"} else ""
        st.warning(f"{len(skipped)} of {len(latest)} sources were skipped in their last run, so they collected "
                   f"nothing.{only} Why:\n{reasons}", icon=":material/block:")
    if not late and failed.empty and skipped.empty:
        st.success("Every source ran in its last run, none failed, and every scheduled source delivered on time.",
                   icon=":material/check:")


def _reason(source: str, error: object) -> str:
    """The skip reason without a repeated source prefix ("reddit: no API credentials" for reddit)."""
    text = str(error or "no reason recorded")
    return text[len(source) + 2:] if text.startswith(f"{source}: ") else text

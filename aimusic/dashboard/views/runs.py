"""Runs: the last run of each source, counts, failures and their messages, data freshness, and a warning for
every source that has not delivered for longer than its schedule."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from aimusic.dashboard import freshness
from aimusic.dashboard.context import ViewContext
from aimusic.dashboard.widgets import download_frame, md_escape

TITLE = "Runs"
NEEDS_POSTS = False

RUN_COLUMNS = {
    "source": st.column_config.TextColumn("Source"),
    "status": st.column_config.TextColumn("Status"),
    "started_at": st.column_config.DatetimeColumn("Started (UTC)", format="YYYY-MM-DD HH:mm", timezone="UTC"),
    "finished_at": st.column_config.DatetimeColumn("Finished (UTC)", format="YYYY-MM-DD HH:mm", timezone="UTC"),
    "seconds": st.column_config.NumberColumn("Seconds"),
    "fetched": st.column_config.NumberColumn("Fetched", format="localized"),
    "new": st.column_config.NumberColumn("New", format="localized"),
    "updated": st.column_config.NumberColumn("Updated", format="localized"),
    "irrelevant": st.column_config.NumberColumn("Off-topic", format="localized"),
    "skipped": st.column_config.NumberColumn("Bad items", format="localized"),
    "scored": st.column_config.NumberColumn("Scored", format="localized"),
    "last_delivery": st.column_config.DatetimeColumn("Last delivery (UTC)", format="YYYY-MM-DD HH:mm",
                                                     timezone="UTC"),
    "schedule": st.column_config.TextColumn("Schedule"),
    "freshness": st.column_config.TextColumn("Freshness", width="medium"),
    "runs": st.column_config.NumberColumn("Runs"),
    "failures": st.column_config.NumberColumn("Failures"),
    "error": st.column_config.TextColumn("Message", width="large"),
    "model": st.column_config.TextColumn("Model"),
}


def _ts(value: object) -> datetime | None:
    if value is None or pd.isna(value):
        return None
    ts = pd.Timestamp(value)
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()


def render(ctx: ViewContext, now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    latest: pd.DataFrame = ctx.file("runs_latest")
    if latest.empty:
        st.info("No runs are recorded in this database yet. `aimusic run` records one row per source and run "
                "(posts written by `aimusic demo` are not runs).")
    else:
        checks = [
            freshness.check(row.source, freshness.schedule_for(row.source, ctx.topics), _ts(row.last_delivery), now)
            for row in latest.itertuples()
        ]
        late = [c for c in checks if c.late]
        for c in late:
            st.error(f"Late: {md_escape(c.message)}.", icon=":material/schedule:")
        failing = latest[latest["status"] == "failed"]
        for row in failing.itertuples():
            st.warning(f"{md_escape(row.source)}: the last run failed: {md_escape(row.error or 'no message')}",
                       icon=":material/error:")
        if not late and failing.empty:
            st.success("Every scheduled source delivered on time and no last run failed.", icon=":material/check:")
        table = latest.assign(
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

        failures = ctx.file("runs_recent", 50, True)
        st.subheader("Failures")
        if failures.empty:
            st.caption("No failed runs recorded.")
        else:
            shown_f = failures[[c for c in RUN_COLUMNS if c in failures.columns]]
            st.dataframe(shown_f, hide_index=True, width="stretch", column_config=RUN_COLUMNS)
            download_frame(shown_f, ctx, "runs-failures")

        with st.expander("Recent runs (last 200)"):
            recent = ctx.file("runs_recent", 200, False)
            shown_r = recent[[c for c in RUN_COLUMNS if c in recent.columns]]
            st.dataframe(shown_r, hide_index=True, width="stretch", column_config=RUN_COLUMNS)
            download_frame(shown_r, ctx, "runs-recent")

    st.subheader("Data freshness per platform")
    newest: pd.DataFrame = ctx.file("newest_posts")
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

"""Alerts: volume spikes and net-sentiment shifts raised after runs (aimusic/ops/alerts.py), with the posts behind
each. Listed for the sidebar's date window; they do not depend on the other filters."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from aimusic.dashboard.context import ViewContext
from aimusic.dashboard.widgets import download_frame
from aimusic.ops.alerts import scope_label
from aimusic.store.alerts import alerts_frame

TITLE = "Alerts"
NEEDS_POSTS = False
SHOWN = 30  # alerts drawn with their posts; the table below lists every alert in the window

KINDS = {"volume_spike": "Volume spike", "sentiment_shift": "Sentiment shift"}
TABLE_COLUMNS = {
    "day": st.column_config.DateColumn("Day (UTC)"),
    "kind": st.column_config.TextColumn("Kind"),
    "scope": st.column_config.TextColumn("Scope"),
    "observed": st.column_config.NumberColumn("Observed", format="%.2f"),
    "expected": st.column_config.NumberColumn("Usual", format="%.2f"),
    "score": st.column_config.NumberColumn("Robust z", format="%.1f"),
    "message": st.column_config.TextColumn("Alert", width="large"),
    "delivery": st.column_config.TextColumn("Sent"),
}
POST_COLUMNS = {
    "created_at": st.column_config.DatetimeColumn("Posted (UTC)", format="YYYY-MM-DD HH:mm", timezone="UTC"),
    "source": st.column_config.TextColumn("Source"),
    "text": st.column_config.TextColumn("Post", width="large"),
    "engagement": st.column_config.NumberColumn("Engagement", format="localized"),
    "label": st.column_config.TextColumn("Sentiment"),
    "url": st.column_config.LinkColumn("Link", display_text="open"),
}


def render(ctx: ViewContext) -> None:
    f = ctx.filters
    picked = st.pills("Kind", list(KINDS), format_func=KINDS.get, selection_mode="multi", default=list(KINDS),
                      key="alert-kinds")
    df = ctx.file(alerts_frame, start=f.start, end=f.end, kinds=tuple(picked or ()), limit=2000)
    st.caption(
        f"Alerts for {ctx.window_text()}. A run raises a volume spike when the last 24 h hold far more posts than "
        "the same hours of the same weekday in past weeks, and a sentiment shift when net sentiment leaves its "
        "range of the last weeks (thresholds: [alerts] in data/topics.toml). Sent to AIMUSIC_ALERT_URLS."
    )
    if df.empty:
        st.info(
            "No alerts in this window. They are raised after each monitoring run (`aimusic run`, or scheduled by "
            "`aimusic serve`); `aimusic alerts --scan-from YYYY-MM-DD` replays detection over stored history.",
            icon=":material/notifications_off:",
        )
        return
    cols = st.columns(3)
    cols[0].metric("Alerts", f"{len(df):,}")
    cols[1].metric("Volume spikes", f"{int((df['kind'] == 'volume_spike').sum()):,}")
    cols[2].metric("Sentiment shifts", f"{int((df['kind'] == 'sentiment_shift').sum()):,}")
    for row in df.head(SHOWN).itertuples(index=False):
        icon = ":material/trending_up:" if row.direction == "up" else ":material/trending_down:"
        with st.expander(f"{row.day} · {KINDS.get(row.kind, row.kind)} · {scope_label(row.scope)}", icon=icon):
            st.write(row.message)
            posts = pd.DataFrame(row.top_posts)
            if posts.empty:
                st.caption("No posts to show for this alert.")
            else:
                shown = posts[[c for c in POST_COLUMNS if c in posts.columns]]
                st.dataframe(shown, hide_index=True, width="stretch", column_config=POST_COLUMNS)
            if row.delivery:
                st.caption(f"Delivery: {row.delivery}")
    if len(df) > SHOWN:
        st.caption(f"The {SHOWN} most recent alerts are shown above; the table lists all {len(df):,}.")
    table = df[list(TABLE_COLUMNS)]
    st.dataframe(table, hide_index=True, width="stretch", column_config=TABLE_COLUMNS)
    download_frame(table, ctx, "alerts")

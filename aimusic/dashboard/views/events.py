"""Events: the dated timeline events (from data/topics.toml and added here) that the time charts draw."""

from __future__ import annotations

import streamlit as st

from aimusic.dashboard.context import ViewContext
from aimusic.dashboard.widgets import download_frame, event_form

TITLE = "Events"
NEEDS_POSTS = False


def render(ctx: ViewContext) -> None:
    events = ctx.events(in_window=False)
    st.caption("Events are drawn as dashed rules on the time charts. Those from data/topics.toml (origin "
               "`topics`) are edited there; those added below are stored in the database's events table.")
    if ctx.topics_problem:
        st.warning(f"data/topics.toml could not be read, so its events are missing: {ctx.topics_problem}")
    if events.empty:
        st.info("No timeline events yet.")
    else:
        st.dataframe(
            events, hide_index=True, width="stretch",
            column_config={"date": st.column_config.DateColumn("Date (UTC)"),
                           "title": st.column_config.TextColumn("Event", width="large"),
                           "url": st.column_config.LinkColumn("Link", display_text="open"),
                           "origin": st.column_config.TextColumn("Origin")},
        )
        download_frame(events, ctx, "events")
    event_form(ctx)

"""Voices: the most active and the most engaged authors and communities (subreddits, instances), with their
sentiment mix."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from aimusic.dashboard import charts
from aimusic.dashboard.charts import SENTIMENT_COLORS
from aimusic.dashboard.context import ViewContext
from aimusic.dashboard.widgets import chart, download_frame, no_posts_in_filters

TITLE = "Voices"
TOP = 20
RANKS = {"most active": "posts", "most engaged": "engagement"}

COLUMNS = {
    "source": st.column_config.TextColumn("Source"),
    "author": st.column_config.TextColumn("Author"),
    "community": st.column_config.TextColumn("Community"),
    "posts": st.column_config.NumberColumn("Posts", format="localized"),
    "authors": st.column_config.NumberColumn("Authors", format="localized"),
    "engagement": st.column_config.NumberColumn("Engagement", format="localized"),
    "net": st.column_config.NumberColumn("Net sentiment", format="%+.2f"),
    "share_negative": st.column_config.ProgressColumn("Negative", format="percent", min_value=0, max_value=1,
                                                      color=SENTIMENT_COLORS["negative"]),
    "share_neutral": st.column_config.ProgressColumn("Neutral", format="percent", min_value=0, max_value=1,
                                                     color="#8C8C8C"),
    "share_positive": st.column_config.ProgressColumn("Positive", format="percent", min_value=0, max_value=1,
                                                      color=SENTIMENT_COLORS["positive"]),
    "scored": st.column_config.NumberColumn("Scored", format="localized"),
}


def _voices(ctx: ViewContext, by: str, order: str) -> None:
    df: pd.DataFrame = ctx.facts("voices", ctx.filters, by, order, TOP)
    if df.empty:
        st.caption(f"No {by} information in the posts under these filters.")
        return
    shown = df[[c for c in COLUMNS if c in df.columns]]
    st.dataframe(shown, hide_index=True, width="stretch", column_config=COLUMNS)
    download_frame(shown, ctx, f"voices-{by}-{order}")
    if ctx.model is not None and df["scored"].sum():
        labelled = df.assign(who=df[by].astype(str) + " (" + df["source"] + ")")
        chart(charts.mix_bars(labelled, "who", by.capitalize()))


def render(ctx: ViewContext) -> None:
    totals = ctx.facts("totals", ctx.filters)
    if not totals[totals["window"] == "current"]["posts"].sum():
        no_posts_in_filters()
        return
    rank = st.segmented_control(
        "Rank by", list(RANKS), default="most active", required=True, key="rank", bind="query-params",
        help="most active: by number of posts; most engaged: by likes/score + replies + reposts",
    )
    order = RANKS.get(rank or "most active", "posts")
    st.caption(f"Top {TOP} under the current filters, {ctx.window_text()}. Handles are per platform.")
    st.subheader("Authors")
    _voices(ctx, "author", order)
    st.subheader("Communities")
    st.caption("Subreddits, Mastodon instances and other communities the platforms report.")
    _voices(ctx, "community", order)

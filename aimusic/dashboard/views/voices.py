"""Voices: the most active and the most engaged authors and communities (subreddits, instances), with their
sentiment mix."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from aimusic.dashboard import charts
from aimusic.dashboard.charts import SENTIMENT_COLORS
from aimusic.dashboard.context import ViewContext
from aimusic.dashboard.widgets import chart, download_frame, no_posts_in_filters
from aimusic.store import dashboard_queries as q
from aimusic.store import dashboard_voices

TITLE = "Voices"
TOP = 20
RANKS = {"most active": "posts", "most engaged": "engagement"}

SHARE = {"format": "percent", "min_value": 0, "max_value": 1, "width": 105}
#: fits the page; the CSV download keeps every column (neutral share, scored posts)
COLUMNS = {
    "source": st.column_config.TextColumn("Source", width=85),
    "author": st.column_config.TextColumn("Author", width=150, pinned=True),
    "community": st.column_config.TextColumn("Community", width=170, pinned=True),
    "posts": st.column_config.NumberColumn("Posts", format="localized", width=65),
    "authors": st.column_config.NumberColumn("Authors", format="localized", width=70),
    "engagement": st.column_config.NumberColumn("Engagement", format="localized", width=90),
    "net": st.column_config.NumberColumn("Net sentiment", format="%+.2f", width=95),
    "share_negative": st.column_config.ProgressColumn("Negative", color=SENTIMENT_COLORS["negative"], **SHARE),
    "share_positive": st.column_config.ProgressColumn("Positive", color=SENTIMENT_COLORS["positive"], **SHARE),
}
CSV_EXTRA = ["share_neutral", "scored", "negative", "neutral", "positive"]


def _voices(ctx: ViewContext, by: str, order: str) -> None:
    df: pd.DataFrame = ctx.posts(dashboard_voices.voices, ctx.filters, ctx.model, by, order, TOP)
    if df.empty:
        st.caption(f"No {by} information in the posts under these filters.")
        return
    shown = df[[c for c in COLUMNS if c in df.columns]]
    st.dataframe(shown, hide_index=True, width="stretch", column_config=COLUMNS)
    download_frame(df[[*shown.columns, *CSV_EXTRA]], ctx, f"voices-{by}-{order}")
    if ctx.model is not None and df["scored"].sum():
        labelled = df.assign(who=df[by].astype(str) + " (" + df["source"] + ")")
        st.markdown(f"**Sentiment mix of each {by}**, in the table's order")
        chart(charts.mix_bars(labelled, "who", by.capitalize()))


def render(ctx: ViewContext) -> None:
    totals = ctx.facts(q.totals, ctx.filters)
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

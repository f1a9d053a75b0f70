"""Posts: the posts behind the current filters (searchable, sortable, linked to the originals, with sentiment and
confidence), downloads of all of them, and the window's most engaged positive and negative posts."""

from __future__ import annotations

import dataclasses

import pandas as pd
import streamlit as st

from aimusic.dashboard.context import ViewContext
from aimusic.dashboard.data import POST_SORTS
from aimusic.dashboard.widgets import download_frame, download_posts, no_posts_in_filters

TITLE = "Posts"
ROW_CHOICES = (100, 500, 1000, 5000)

COLUMNS = {
    "created_at": st.column_config.DatetimeColumn("Posted (UTC)", format="YYYY-MM-DD HH:mm", timezone="UTC"),
    "source": st.column_config.TextColumn("Source"),
    "author": st.column_config.TextColumn("Author"),
    "community": st.column_config.TextColumn("Community"),
    "text": st.column_config.TextColumn("Text", width="large"),
    "sentiment": st.column_config.TextColumn("Sentiment"),
    "confidence": st.column_config.ProgressColumn("Confidence", format="%.2f", min_value=0.0, max_value=1.0,
                                                  help="Probability the model gives its label", color="#0072B2"),
    "engagement": st.column_config.NumberColumn("Engagement", format="localized",
                                                help="likes/score + replies + reposts"),
    "url": st.column_config.LinkColumn("Original", display_text="open"),
    "lang": st.column_config.TextColumn("Lang"),
    "kind": st.column_config.TextColumn("Kind"),
}


def _table(df: pd.DataFrame, height: int | None = None) -> pd.DataFrame:
    shown = df[[c for c in COLUMNS if c in df.columns]]
    st.dataframe(shown, hide_index=True, width="stretch", column_config=COLUMNS,
                 **({"height": height} if height else {}))
    return shown


def render(ctx: ViewContext) -> None:
    c1, c2, c3 = st.columns([3, 1.3, 0.7])
    query = c1.text_input("Search the text", key="q", bind="query-params",
                          placeholder="a word or phrase, case-insensitive")
    sort = c2.selectbox("Order", list(POST_SORTS), key="sort", bind="query-params")
    limit = c3.selectbox("Rows", ROW_CHOICES, index=1, key="rows", bind="query-params")
    filters = dataclasses.replace(ctx.filters, search=query.strip() or None)
    count = ctx.file("posts_count", filters)
    if not count:
        no_posts_in_filters()
        return
    page = ctx.posts_page(filters, sort, limit)
    searched = f", text search: {filters.search!r}" if filters.search else ""
    st.caption(
        f"{count:,} posts match ({ctx.window_text()}{searched}); showing {len(page):,}, {sort} first. "
        f"Sort any column by clicking its header. Sentiment from {ctx.model or 'no model yet'}."
    )
    shown = _table(page, height=420)
    d1, d2 = st.columns([1, 2])
    with d1:
        download_frame(shown, ctx, "posts-shown", f"These {len(shown):,} rows (CSV)")
    with d2:
        download_posts(ctx, filters, count)

    st.subheader("Most engaged posts of the window")
    st.caption("By likes/score + replies + reposts, under the sidebar filters (the text search does not apply).")
    left, right = st.columns(2)
    for col, label in ((left, "positive"), (right, "negative")):
        with col:
            st.markdown(f"**Most engaged {label} posts**")
            top = ctx.top_posts(ctx.filters, label, 10)
            if top.empty:
                st.caption(f"No {label} posts in the window.")
                continue
            shown_top = _table(top[["created_at", "source", "author", "text", "engagement", "confidence", "url"]])
            download_frame(shown_top, ctx, f"top-{label}")

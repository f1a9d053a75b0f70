"""Posts: the posts behind the current filters (searchable, sortable, linked to the originals, with sentiment and
confidence), downloads of all of them, and the window's most engaged positive and negative posts."""

from __future__ import annotations

import dataclasses

import pandas as pd
import streamlit as st

from aimusic.dashboard.context import ViewContext
from aimusic.dashboard.widgets import download_frame, download_posts, no_posts_in_filters
from aimusic.store import dashboard_posts as posts
from aimusic.store.dashboard_posts import POST_SORTS

TITLE = "Posts"
ROW_CHOICES = (100, 500, 1000, 5000)

#: the table's columns, in order: what a reader scans first (time, source, sentiment, its confidence and the
#: link) before the text, so they stay on screen; the text takes the remaining width
COLUMNS = {
    "created_at": st.column_config.DatetimeColumn("Posted (UTC)", format="YYYY-MM-DD HH:mm", timezone="UTC",
                                                  width=125),
    "source": st.column_config.TextColumn("Source", width=80),
    "sentiment": st.column_config.TextColumn("Sentiment", width=75),
    "confidence": st.column_config.ProgressColumn("Confidence", format="%.2f", min_value=0.0, max_value=1.0,
                                                  help="Probability the model gives its label", color="#0072B2",
                                                  width=95),
    "url": st.column_config.LinkColumn("Original", display_text="open", width=65),
    "text": st.column_config.TextColumn("Text", width="large"),
    "engagement": st.column_config.NumberColumn("Engagement", format="localized",
                                                help="likes/score + replies + reposts", width=90),
    "author": st.column_config.TextColumn("Author", width=120),
    "community": st.column_config.TextColumn("Community", width=120,
                                             help="Subreddit, instance, ...; empty where the platform has none"),
    "lang": st.column_config.TextColumn("Lang", width=50),
    "kind": st.column_config.TextColumn("Kind", width=65),
}


def _table(df: pd.DataFrame, height: int | None = None, order: list[str] | None = None) -> pd.DataFrame:
    shown = df[order or [c for c in COLUMNS if c in df.columns]]
    if "community" in shown:  # a platform without communities: an empty cell, not "None"
        shown = shown.assign(community=shown["community"].fillna(""))
    if "sentiment" in shown:  # no label: the model did not score it (language, empty text) or nothing scored yet
        shown = shown.assign(sentiment=shown["sentiment"].fillna("not scored"))
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
    count = ctx.file(posts.posts_count, filters)
    if not count:
        no_posts_in_filters()
        return
    page = ctx.posts(posts.posts_page, filters, ctx.model, sort, limit)
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
    for label in ("positive", "negative"):
        st.markdown(f"**Most engaged {label} posts**")
        top = ctx.posts(posts.top_posts, ctx.filters, ctx.model, label, 10)
        if top.empty:
            st.caption(f"No {label} posts in the window.")
            continue
        shown_top = _table(top, order=["created_at", "source", "engagement", "confidence", "url", "text", "author"])
        download_frame(shown_top, ctx, f"top-{label}")

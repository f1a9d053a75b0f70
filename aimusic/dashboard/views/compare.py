"""Compare: platforms side by side, and tracked entities side by side (volume, net sentiment, trend).

An entity is what ``posts.entities`` says a post mentions (the aliases of ``[[entities]]`` in topics.toml found
in its text): the same definition as the sidebar's entity filter and the Debate view."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from aimusic.dashboard import charts
from aimusic.dashboard.charts import SENTIMENT_COLORS
from aimusic.dashboard.context import ViewContext
from aimusic.dashboard.widgets import chart, download_frame, no_posts_in_filters
from aimusic.store import dashboard_queries as q

TITLE = "Compare"

SHARE = {"format": "percent", "min_value": 0, "max_value": 1, "width": 95}
#: the table fits the page: a combined interval column, compact numbers (the CSV keeps every column)
TABLE_COLUMNS = {
    "group": st.column_config.TextColumn("", width=130, pinned=True),
    "posts": st.column_config.NumberColumn("Posts", format="localized", width=65),
    "posts_change_pct": st.column_config.NumberColumn("Posts vs prev.", format="%+.0f%%", width=80,
                                                      help="Change against the previous window of the same length"),
    "authors": st.column_config.NumberColumn("Authors", format="localized", width=65),
    "net": st.column_config.NumberColumn("Net sentiment", format="%+.2f", width=85),
    "interval": st.column_config.TextColumn("95% interval", width=105),
    "net_change": st.column_config.NumberColumn("Net vs prev.", format="%+.2f", width=75),
    "share_negative": st.column_config.ProgressColumn("Negative", color=SENTIMENT_COLORS["negative"], **SHARE),
    "share_positive": st.column_config.ProgressColumn("Positive", color=SENTIMENT_COLORS["positive"], **SHARE),
}
#: without a previous window (or no posts in it) the change columns are left out rather than shown empty
CHANGE_COLUMNS = ("posts_change_pct", "net_change")
CSV_COLUMNS = ["group", "posts", "prev_posts", "posts_change_pct", "authors", "engagement", "scored", "negative",
               "neutral", "positive", "net", "net_low", "net_high", "prev_net", "net_change", "share_negative",
               "share_neutral", "share_positive"]


def _interval(table: pd.DataFrame) -> pd.Series:
    return pd.Series(
        [f"{lo:+.2f} to {hi:+.2f}" if pd.notna(lo) else "" for lo, hi in zip(table["net_low"], table["net_high"],
                                                                              strict=True)],
        index=table.index, dtype=object,
    )


def _section(ctx: ViewContext, by: str, noun: str) -> None:
    table: pd.DataFrame = ctx.facts(q.compare, ctx.filters, by)
    if table.empty:
        st.info(f"No posts mention a tracked {noun} under these filters.")
        return
    columns = [c for c in TABLE_COLUMNS if c not in CHANGE_COLUMNS or table[c].notna().any()]
    shown = table.assign(interval=_interval(table))[columns]
    st.dataframe(shown, hide_index=True, width="stretch", column_config=TABLE_COLUMNS)
    download_frame(table[CSV_COLUMNS], ctx, f"compare-{by}")
    # groups split the posts thinly: weekly points unless the reader asked for days
    bucket = "day" if ctx.state.bucket == "day" else "week"
    series = ctx.facts(q.compare_series, ctx.filters, by, bucket)
    st.markdown(f"**Posts {charts.per_bucket(bucket)}**")
    chart(charts.group_lines(series, bucket, "posts", f"Posts {charts.per_bucket(bucket)}", ctx.events()))
    st.markdown("**Net sentiment with its 95% interval**")
    if ctx.model is None:
        st.caption("No sentiment scores yet (run `aimusic score`).")
    else:
        chart(charts.group_net_facets(series, bucket, columns=3))
    download_frame(
        series[["bucket", "group", "posts", "scored", "negative", "neutral", "positive", "net", "net_low", "net_high",
                "enough"]],
        ctx, f"compare-{by}-series",
    )


def render(ctx: ViewContext) -> None:
    st.caption(f"{ctx.window_text()}. Trend columns (\"vs prev.\") compare with the previous window of the same "
               "length when it holds posts; grey points mark buckets with too few scored posts for a reliable "
               "figure.")
    totals = ctx.facts(q.totals, ctx.filters)
    if not totals[totals["window"] == "current"]["posts"].sum():
        no_posts_in_filters()
        return
    st.subheader("Platforms side by side")
    _section(ctx, "source", "platform")
    st.subheader("Tracked entities side by side")
    st.caption(
        "A post counts for every entity it mentions (the aliases of `[[entities]]` in data/topics.toml found in its "
        "text, stored in posts.entities), so one post can count for several."
        + (f" Filtered to: {', '.join(ctx.filters.entities)}." if ctx.filters.entities else "")
    )
    if not ctx.info.get("entities"):
        st.info("No stored post mentions a tracked entity yet. `aimusic signals` tags the posts of a database "
                "collected before entity tagging.")
        return
    _section(ctx, "entity", "entity")

"""Compare: platforms side by side, and tracked entities side by side (volume, net sentiment, trend)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from aimusic.dashboard import charts
from aimusic.dashboard.charts import SENTIMENT_COLORS
from aimusic.dashboard.context import ViewContext
from aimusic.dashboard.widgets import chart, download_frame, no_posts_in_filters

TITLE = "Compare"

TABLE_COLUMNS = {
    "group": st.column_config.TextColumn("", width="medium"),
    "posts": st.column_config.NumberColumn("Posts", format="localized"),
    "posts_change_pct": st.column_config.NumberColumn("Posts vs previous", format="%+.1f%%"),
    "authors": st.column_config.NumberColumn("Authors", format="localized"),
    "net": st.column_config.NumberColumn("Net sentiment", format="%+.2f"),
    "net_low": st.column_config.NumberColumn("95% from", format="%+.2f"),
    "net_high": st.column_config.NumberColumn("95% to", format="%+.2f"),
    "net_change": st.column_config.NumberColumn("Net vs previous", format="%+.2f"),
    "share_negative": st.column_config.ProgressColumn("Negative", format="percent", min_value=0, max_value=1,
                                                      color=SENTIMENT_COLORS["negative"]),
    "share_positive": st.column_config.ProgressColumn("Positive", format="percent", min_value=0, max_value=1,
                                                      color=SENTIMENT_COLORS["positive"]),
    "scored": st.column_config.NumberColumn("Scored", format="localized"),
}


def _section(ctx: ViewContext, by: str, noun: str) -> None:
    table: pd.DataFrame = ctx.facts("compare", ctx.filters, by)
    if table.empty:
        st.info(f"No posts mention a tracked {noun} under these filters.")
        return
    shown = table[list(TABLE_COLUMNS)]
    st.dataframe(shown, hide_index=True, width="stretch", column_config=TABLE_COLUMNS)
    download_frame(shown, ctx, f"compare-{by}")
    # groups split the posts thinly: weekly points unless the reader asked for days
    bucket = "day" if ctx.state.bucket == "day" else "week"
    series = ctx.facts("compare_series", ctx.filters, by, bucket)
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
    st.caption(f"{ctx.window_text()}. Trend columns compare with the previous window of the same length; "
               "grey points mark buckets with too few scored posts for a reliable figure.")
    totals = ctx.facts("totals", ctx.filters)
    if not totals[totals["window"] == "current"]["posts"].sum():
        no_posts_in_filters()
        return
    st.subheader("Platforms side by side")
    _section(ctx, "source", "platform")
    st.subheader("Tracked entities side by side")
    if not ctx.emap.tracked:
        st.info("No entity in data/topics.toml has an alias among the tracked terms, so none can be compared yet.")
    else:
        _section(ctx, "entity", "entity")
    if ctx.emap.untracked:
        st.caption(
            "A post counts for an entity when a tracked term it matched is one of the entity's aliases. Not "
            f"compared because none of their aliases is a tracked term: {', '.join(ctx.emap.untracked)} (add an "
            "alias to [tracking].terms in data/topics.toml to follow them)."
        )

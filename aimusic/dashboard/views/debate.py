"""Debate: who is for and who is against AI music, over time, by platform and entity, and the arguments each
side uses most. Stance is separate from sentiment; it is marked "experimental" (with its measured macro recall)
while the model's held-out macro-averaged recall is below 0.70 or unmeasured.
Queries: :mod:`aimusic.store.debate_queries`."""

from __future__ import annotations

import json
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from aimusic.dashboard.context import CACHE_TTL_SECONDS, ViewContext
from aimusic.dashboard.db import read_connection
from aimusic.dashboard.widgets import chart, download_frame, no_posts_in_filters
from aimusic.store import debate_queries as debate
from aimusic.store.queries import Filters

TITLE = "Debate"

STANCE_COLORS = {"anti": "#c0392b", "neutral": "#9e9e9e", "pro": "#2e86c1"}
SHARE = {"min_value": 0, "max_value": 1, "format": "percent"}
GROUP_COLUMNS = {
    "group": st.column_config.TextColumn("", width="medium"),
    "posts": st.column_config.NumberColumn("Posts", format="localized"),
    "scored": st.column_config.NumberColumn("With stance", format="localized"),
    "share_pro": st.column_config.ProgressColumn("Pro", color=STANCE_COLORS["pro"], **SHARE),
    "share_anti": st.column_config.ProgressColumn("Anti", color=STANCE_COLORS["anti"], **SHARE),
    "share_neutral": st.column_config.ProgressColumn("Neutral/mixed", **SHARE),
    "net_stance": st.column_config.NumberColumn("Pro minus anti", format="%+.2f"),
}
ARGUMENT_COLUMNS = {
    "argument": st.column_config.TextColumn("Argument", width="medium"),
    "posts": st.column_config.NumberColumn("Posts", format="localized"),
    "share": st.column_config.ProgressColumn("Share of tagged posts", **SHARE),
    "net_sentiment": st.column_config.NumberColumn("Net sentiment", format="%+.2f"),
    "share_pro": st.column_config.ProgressColumn("Pro", color=STANCE_COLORS["pro"], **SHARE),
    "share_anti": st.column_config.ProgressColumn("Anti", color=STANCE_COLORS["anti"], **SHARE),
}


def _key(args: tuple[Any, ...]) -> str:
    return json.dumps([a.cache_key() if isinstance(a, Filters) else a for a in args], default=str)


@st.cache_data(max_entries=256, ttl=CACHE_TTL_SECONDS, show_spinner=False)
def _query(fn: str, db: str, version_key: str, args_key: str, _args: tuple[Any, ...]) -> Any:
    with read_connection(db) as con:
        return getattr(debate, fn)(con, *_args)


def _q(ctx: ViewContext, fn: str, *args: Any) -> Any:
    """``aimusic.store.debate_queries.<fn>(read_only_connection, *args)``, cached by data version and arguments."""
    return _query(fn, ctx.path, ctx.version.key(), _key(args), args)


def _bucket(ctx: ViewContext) -> str:
    return ctx.bucket if ctx.bucket in debate.BUCKETS else "week"


def _quality_note(quality: dict[str, Any]) -> None:
    recall = quality["macro_recall"]
    measured = f"macro-averaged recall {recall:.2f} on {quality['n']} held-out posts" if recall is not None else (
        "not measured on the project's held-out set")
    if quality["experimental"]:
        st.warning(f"Stance is **experimental**: model `{quality['model']}`, {measured} (trusted from "
                   f"{quality['threshold']:.2f}). Read shares as rough indications.", icon=":material/science:")
    else:
        st.caption(f"Stance model `{quality['model']}`: {measured}. Stance is the position taken on AI music "
                   "(pro, anti, neutral or mixed), not the tone of the post.")


def _stance_area(df: pd.DataFrame, bucket: str) -> alt.Chart:
    long = df[["bucket", "anti", "neutral", "pro"]].melt(
        id_vars=["bucket"], var_name="stance", value_name="posts"
    )
    long["bucket"] = pd.to_datetime(long["bucket"])
    long["order"] = long["stance"].map({"pro": 0, "neutral": 1, "anti": 2})
    return alt.Chart(long).mark_area().encode(
        x=alt.X("bucket:T", title=bucket.capitalize(), axis=alt.Axis(format="%d %b %Y", labelOverlap=True)),
        y=alt.Y("posts:Q", stack="normalize", title="Share of posts with a stance", axis=alt.Axis(format="%")),
        color=alt.Color("stance:N", title="Stance", scale=alt.Scale(domain=list(STANCE_COLORS),
                                                                    range=list(STANCE_COLORS.values()))),
        order=alt.Order("order:Q"),
        tooltip=[alt.Tooltip("bucket:T", title=bucket.capitalize()), "stance:N", alt.Tooltip("posts:Q", format=",")],
    ).properties(height=260)


def _side_bars(df: pd.DataFrame) -> alt.Chart:
    return alt.Chart(df).mark_bar().encode(
        y=alt.Y("argument:N", sort="-x", title=None),
        x=alt.X("share:Q", title="Share of the side's posts", axis=alt.Axis(format="%")),
        color=alt.Color("stance:N", scale=alt.Scale(domain=list(STANCE_COLORS), range=list(STANCE_COLORS.values())),
                        legend=None),
        tooltip=["stance:N", "argument:N", alt.Tooltip("posts:Q", format=","), alt.Tooltip("share:Q", format=".0%")],
    ).properties(height=150)


def render(ctx: ViewContext) -> None:
    models = _q(ctx, "current_models")
    stance_model, args_model = models["stance"], models["arguments"]
    cover = _q(ctx, "coverage", ctx.filters, stance_model, args_model)
    if not cover["posts"]:
        no_posts_in_filters()
        return
    if stance_model is None and args_model is None:
        st.info("No debate signals yet: run `aimusic signals` (the monitoring run computes them for new posts).")
        return
    st.caption(
        f"{ctx.window_text()}. {cover['stance']:,} of {cover['posts']:,} posts have a stance, {cover['arguments']:,} "
        f"were checked for arguments, {cover['with_entities']:,} mention a tracked entity."
        + (f" {cover['untagged']:,} posts wait for entity tagging." if cover["untagged"] else "")
    )
    bucket = _bucket(ctx)
    if stance_model is not None:
        _quality_note(debate.stance_quality(stance_model))
        st.subheader("Pro vs anti over time")
        series = _q(ctx, "stance_over_time", ctx.filters, stance_model, bucket)
        if series["scored"].sum():
            chart(_stance_area(series, bucket))
            download_frame(series, ctx, "debate-stance-over-time")
        for by, title in (("source", "By platform"), ("entity", "By entity")):
            st.subheader(title)
            table = _q(ctx, "stance_by", ctx.filters, stance_model, by)
            if table.empty:
                st.info("No post under these filters mentions a tracked entity." if by == "entity" else "No posts.")
                continue
            st.dataframe(table[list(GROUP_COLUMNS)], hide_index=True, width="stretch", column_config=GROUP_COLUMNS)
            download_frame(table, ctx, f"debate-stance-by-{by}")
    if args_model is None:
        return
    st.subheader("The arguments each side uses most")
    if stance_model is not None:
        sides = _q(ctx, "arguments_by_stance", ctx.filters, args_model, stance_model, 5)
        cols = st.columns(2)
        for col, side in zip(cols, ("pro", "anti"), strict=True):
            part = sides[sides["stance"] == side]
            with col:
                st.markdown(f"**{side.capitalize()}**")
                if part.empty:
                    st.caption("No posts on this side carry an argument.")
                else:
                    chart(_side_bars(part))
        download_frame(sides, ctx, "debate-arguments-by-stance")
    st.subheader("Arguments: share and sentiment")
    summary = _q(ctx, "arguments_summary", ctx.filters, args_model, stance_model, ctx.model)
    if summary.empty:
        st.info("No post under these filters makes one of the configured arguments.")
        return
    st.dataframe(summary[list(ARGUMENT_COLUMNS)], hide_index=True, width="stretch", column_config=ARGUMENT_COLUMNS)
    download_frame(summary, ctx, "debate-arguments")
    over_time = _q(ctx, "arguments_over_time", ctx.filters, args_model, bucket)
    if not over_time.empty:
        data = over_time.assign(bucket=pd.to_datetime(over_time["bucket"]))
        chart(alt.Chart(data).mark_line(point=True).encode(
            x=alt.X("bucket:T", title=bucket.capitalize()),
            y=alt.Y("share:Q", title="Share of tagged posts", axis=alt.Axis(format="%")),
            color=alt.Color("group:N", title="Argument"),
            tooltip=["group:N", alt.Tooltip("bucket:T"), alt.Tooltip("share:Q", format=".0%"),
                     alt.Tooltip("posts:Q", format=",")],
        ).properties(height=260))
    st.caption(f"Arguments ({args_model}) come from data/topics.toml: keywords, or the closest description by "
               "sentence-embedding similarity. A post can make up to three.")

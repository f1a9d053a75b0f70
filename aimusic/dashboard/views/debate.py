"""Debate: who is for and who is against AI music, over time, by platform and entity, and the arguments each
side uses most. Stance is separate from sentiment; it is marked "experimental" (with its measured macro recall)
while the model's held-out macro-averaged recall is below 0.70 or unmeasured.
Queries: :mod:`aimusic.store.debate_queries` (run through the view context, cached by data version)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from aimusic.dashboard import charts
from aimusic.dashboard.accuracy import adjusted_mix
from aimusic.dashboard.charts import STANCE_COLORS
from aimusic.dashboard.context import ViewContext
from aimusic.dashboard.widgets import chart, download_frame, no_posts_in_filters
from aimusic.store import debate_queries as debate

TITLE = "Debate"

SHARE = {"min_value": 0, "max_value": 1, "format": "percent", "width": 110}
GROUP_COLUMNS = {
    "group": st.column_config.TextColumn("", width=150, pinned=True),
    "posts": st.column_config.NumberColumn("Posts", format="localized", width=70),
    "scored": st.column_config.NumberColumn("With stance", format="localized", width=85),
    "share_pro": st.column_config.ProgressColumn("Pro", color=STANCE_COLORS["pro"], **SHARE),
    "share_anti": st.column_config.ProgressColumn("Anti", color=STANCE_COLORS["anti"], **SHARE),
    "share_neutral": st.column_config.ProgressColumn("Neutral/mixed", color=STANCE_COLORS["neutral"], **SHARE),
    "net_stance": st.column_config.NumberColumn("Pro minus anti", format="%+.2f", width=95),
}
ARGUMENT_COLUMNS = {
    "argument": st.column_config.TextColumn("Argument", width=190, pinned=True),
    "posts": st.column_config.NumberColumn("Posts", format="localized", width=70),
    "share": st.column_config.ProgressColumn("Share of tagged posts", color="#8C8C8C", **SHARE),
    "net_sentiment": st.column_config.NumberColumn("Net sentiment", format="%+.2f", width=90),
    "share_pro": st.column_config.ProgressColumn("Pro", color=STANCE_COLORS["pro"], **SHARE),
    "share_anti": st.column_config.ProgressColumn("Anti", color=STANCE_COLORS["anti"], **SHARE),
}


def _bucket(ctx: ViewContext) -> str:
    """Stance and arguments split the posts thinly: weeks unless the reader asked for days (as Compare does)."""
    return "day" if ctx.state.bucket == "day" else "week"


def _quality_note(quality: dict[str, Any]) -> None:
    from sentiment.stance import measured_for  # what each figure was measured on (the head's provenance)

    recall = quality["macro_recall"]
    sets = (measured_for(quality["model"]) if quality["model"] else {}).get("sets", {})
    real = next((f for f in sets.values() if "real posts" in str(f.get("data", ""))), None)
    measured = (f"macro-averaged recall {recall:.2f} on {quality['n']} held-out sentences written for the project"
                + (f", {real['macro_recall']:.2f} on {real['n']} reworded real posts" if real else "")
                ) if recall is not None else "not measured on held-out data"
    # trusted only if the figure on real posts also reaches the bar (sentences written for the project are easier)
    if quality["experimental"] or (real is not None and real["macro_recall"] < quality["threshold"]):
        st.warning(f"Stance is **experimental**: model `{quality['model']}`, {measured} (trusted from "
                   f"{quality['threshold']:.2f}). Read shares as rough indications.", icon=":material/science:")
    else:
        st.caption(f"Stance model `{quality['model']}`: {measured}. Stance is the position taken on AI music "
                   "(pro, anti, neutral or mixed), not the tone of the post.")


def render(ctx: ViewContext) -> None:
    models = ctx.file(debate.current_models)
    stance_model, args_model = models["stance"], models["arguments"]
    cover = ctx.file(debate.coverage, ctx.filters, stance_model, args_model)
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
    events = ctx.events()
    if stance_model is not None:
        _stance(ctx, stance_model, bucket, events)
    if args_model is not None:
        _arguments(ctx, args_model, stance_model, bucket, events)


def _stance(ctx: ViewContext, stance_model: str, bucket: str, events: pd.DataFrame) -> None:
    _quality_note(debate.stance_quality(stance_model))
    st.subheader(f"Pro vs anti over time, {charts.per_bucket(bucket)}")
    series = ctx.file(debate.stance_over_time, ctx.filters, stance_model, bucket)
    if series["scored"].sum():
        if not adjusted_mix(ctx, "stance", stance_model, series, bucket, events):  # issue 13: corrected for errors
            chart(charts.stance_area(series, bucket, events))
        unclear = int(series["unclear"].sum()) if "unclear" in series else 0
        share = unclear / max(unclear + int(series["scored"].sum()), 1)
        st.caption("Share of the posts with a stance. Dashed rules: timeline events (hover the triangles)."
                   + (f" Not counted: {unclear:,} posts ({share:.0%}) the model was unsure about (`unclear`)."
                      if unclear else ""))
        download_frame(series, ctx, "debate-stance-over-time")
    for by, title in (("source", "By platform"), ("entity", "By entity")):
        st.subheader(title)
        table = ctx.file(debate.stance_by, ctx.filters, stance_model, by)
        if table.empty:
            st.info("No post under these filters mentions a tracked entity." if by == "entity" else "No posts.")
            continue
        st.dataframe(table[list(GROUP_COLUMNS)], hide_index=True, width="stretch", column_config=GROUP_COLUMNS)
        download_frame(table, ctx, f"debate-stance-by-{by}")


def _arguments(ctx: ViewContext, args_model: str, stance_model: str | None, bucket: str,
               events: pd.DataFrame) -> None:
    st.subheader("The arguments each side uses most")
    if stance_model is not None:
        sides = ctx.file(debate.arguments_by_stance, ctx.filters, args_model, stance_model, 5)
        cols = st.columns(2, gap="large")
        for col, side in zip(cols, ("pro", "anti"), strict=True):
            part = sides[sides["stance"] == side]
            with col:
                st.markdown(f"**{side.capitalize()}**: share of the side's posts making each argument")
                if part.empty:
                    st.caption("No posts on this side carry an argument.")
                else:
                    chart(charts.side_bars(part))
        download_frame(sides, ctx, "debate-arguments-by-stance")
    st.subheader("Arguments: share and sentiment")
    summary = ctx.file(debate.arguments_summary, ctx.filters, args_model, stance_model, ctx.model)
    if summary.empty:
        st.info("No post under these filters makes one of the configured arguments.")
        return
    st.dataframe(summary[list(ARGUMENT_COLUMNS)], hide_index=True, width="stretch", column_config=ARGUMENT_COLUMNS)
    download_frame(summary, ctx, "debate-arguments")
    over_time = ctx.file(debate.arguments_over_time, ctx.filters, args_model, bucket)
    if not over_time.empty:
        st.markdown(f"**Each argument's share of the tagged posts, {charts.per_bucket(bucket)}**")
        chart(charts.argument_heatmap(over_time, bucket, events))
        download_frame(over_time, ctx, "debate-arguments-over-time")
    st.caption(f"Arguments ({args_model}) come from data/topics.toml: keywords, or the closest description by "
               "sentence-embedding similarity. A post can make up to three. Darker cells: a larger share; dashed "
               "rules: timeline events.")

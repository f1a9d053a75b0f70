"""Overview: headline figures for the window against the previous one, volume by source, net sentiment with its
95% interval, the sentiment mix over time, and the timeline events drawn on every time chart."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from aimusic.dashboard import charts
from aimusic.dashboard.accuracy import adjusted_mix
from aimusic.dashboard.context import ViewContext
from aimusic.dashboard.widgets import (
    chart,
    download_frame,
    event_form,
    fmt_net,
    no_posts_in_filters,
    pct_change,
    unscored_notice,
)
from aimusic.store import dashboard_queries as q
from aimusic.store.dashboard_queries import MIN_SCORED, ROLLING_DAYS

TITLE = "Overview"
#: the Overview's sentiment lines over daily buckets (bound to the URL as ``smooth``): the rolling mean or none
ROLLING, DAILY = f"{ROLLING_DAYS}-day mean", "daily only"
EVERY = {"day": "daily", "week": "weekly"}


def _headline(ctx: ViewContext, totals: pd.DataFrame) -> pd.Series:
    cur = totals[totals["window"] == "current"].iloc[0]
    prev_rows = totals[totals["window"] == "previous"]
    prev = prev_rows.iloc[0] if not prev_rows.empty else None
    previous = ctx.filters.previous_window()
    versus = f" vs the previous {ctx.filters.days} days" if previous else ""
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Posts", f"{int(cur['posts']):,}", pct_change(cur["posts"], prev["posts"]) if prev is not None else None,
              help=f"Posts matching the filters in the window{versus}.")
    c2.metric("Authors", f"{int(cur['authors']):,}",
              pct_change(cur["authors"], prev["authors"]) if prev is not None else None,
              help="Distinct author handles (per platform handles are counted as written).")
    net_delta = None
    if prev is not None and cur["scored"] and prev["scored"]:
        net_delta = f"{cur['net'] - prev['net']:+.2f}"
    c3.metric("Net sentiment", fmt_net(cur["net"]), net_delta,
              help="Share of positive posts minus share of negative posts among scored posts: from -1 (all "
                   "negative) to +1 (all positive). The change is in the same units.")
    scored_share = cur["scored"] / cur["posts"] if cur["posts"] else 0
    c4.metric("Scored posts", f"{int(cur['scored']):,}", help=f"{scored_share:.0%} of the posts have a label from "
              f"{ctx.model or 'no model yet'}; posts in languages the model does not read stay unscored.")
    lines = [f"Window: {ctx.window_text()}."]
    if previous:
        lines.append(f"Changes compare with {previous.start:%d %b %Y} to {previous.end:%d %b %Y}"
                     + ("" if prev is not None and prev["posts"] else " (no posts then)") + ".")
    if cur["scored"]:
        lines.append(f"Net sentiment {fmt_net(cur['net'])}, 95% interval {fmt_net(cur['net_low'])} to "
                     f"{fmt_net(cur['net_high'])} (model {ctx.model}).")
    st.caption(" ".join(lines))
    return cur


def render(ctx: ViewContext) -> None:
    totals = ctx.facts(q.totals, ctx.filters)
    cur = totals[totals["window"] == "current"].iloc[0]
    if not cur["posts"]:
        no_posts_in_filters()
        _events_section(ctx)
        return
    _headline(ctx, totals)
    download_frame(totals, ctx, "headline", "Headline figures (CSV)")

    bucket = ctx.bucket
    series = ctx.facts(q.series, ctx.filters, bucket)
    events = ctx.events()
    by_source = series[series["source"].notna()]
    overall = series[series["source"].isna()].drop(columns=["source"])

    st.subheader(f"Volume by source, {charts.per_bucket(bucket)}")
    chart(charts.volume_chart(by_source, bucket, events))
    st.caption(f"Dashed rules: timeline events ({len(events)} in the window; hover the triangles).")
    download_frame(by_source[["bucket", "source", "posts"]], ctx, "volume")

    if not unscored_notice(ctx):
        _sentiment(ctx, overall, bucket, events)
    _events_section(ctx)


def _smoothing(bucket: str) -> bool:
    """Whether to draw the rolling mean (the default over daily buckets; the reader may switch it off)."""
    if bucket != "day":
        return False
    picked = st.segmented_control(
        "Sentiment lines", [ROLLING, DAILY], default=ROLLING, required=True, key="smooth", bind="query-params",
        help=f"Daily figures are noisy: the {ROLLING_DAYS}-day mean pools each day's scored posts with those of the "
             f"{ROLLING_DAYS - 1} days before it, and is drawn over the daily values.",
    )
    return picked != DAILY


def _model_quality(model: str | None) -> None:
    """What the sentiment model's shipped figures say, each naming its data (never a bare accuracy)."""
    from sentiment.quality import measured_sentiment

    if not model:
        return
    figures = measured_sentiment(model)
    known = (f"macro-averaged recall measured on other data: {'; '.join(figures)}" if figures
             else "no held-out figure ships with it")
    st.caption(f"Sentiment model `{model}`: {known}. Your posts may differ: labels of a random sample (Label view) "
               "measure it on them.")


def _sentiment(ctx: ViewContext, overall: pd.DataFrame, bucket: str, events: pd.DataFrame) -> None:
    st.subheader("Net sentiment")
    rolling = ctx.facts(q.sentiment_rolling, ctx.filters, ROLLING_DAYS) if _smoothing(bucket) else None
    thin = int((~overall["enough"]).sum())
    if not overall["enough"].any() and (rolling is None or not rolling["enough"].any()):
        st.info(f"Too few scored posts for a reliable line: every {bucket} has fewer than {MIN_SCORED}. "
                "Widen the window, switch to weekly buckets or relax the filters.")
    chart(charts.net_chart(overall, bucket, events, rolling))
    if rolling is not None:
        st.caption(
            f"**Shown: the {ROLLING_DAYS}-day rolling mean** (line and band: net sentiment of the scored posts of "
            f"each day and the {ROLLING_DAYS - 1} days before it, with its 95% interval) over the daily values "
            f"(dots; {thin} day(s) with fewer than {MIN_SCORED} scored posts in grey). Dashed rules: timeline "
            "events. Net sentiment = positive share - negative share."
        )
    else:
        st.caption(
            f"**Shown: {EVERY.get(bucket, bucket)} values.** Line and band: net sentiment and its 95% interval "
            f"(Newcombe's score interval for a difference of two proportions). {thin} {bucket}(s) with fewer than "
            f"{MIN_SCORED} scored posts are grey dots, left out of the line. Dashed rules: timeline events (hover "
            "the triangles)."
        )
    _model_quality(ctx.model)
    columns = ["bucket", "posts", "scored", "negative", "neutral", "positive", "net", "net_low", "net_high", "enough"]
    download_frame(overall[columns], ctx, "net-sentiment")
    if rolling is not None:
        download_frame(rolling[["bucket", "days_pooled", *columns[1:]]], ctx, "net-sentiment-rolling",
                       f"{ROLLING_DAYS}-day means (CSV)")

    st.subheader("Sentiment mix")
    mix = rolling if rolling is not None else overall
    scored = mix[mix["scored"] > 0]
    if not adjusted_mix(ctx, "sentiment", ctx.model, scored, bucket, events):  # issue 13: corrected for errors
        chart(charts.share_chart(scored, bucket, events, rolling=rolling is not None))
    every = EVERY.get(bucket, bucket)
    st.caption(f"**Shown: {ROLLING_DAYS}-day rolling shares** (each day pools the scored posts of the "
               f"{ROLLING_DAYS} days ending on it)." if rolling is not None else f"**Shown: {every} shares.**")
    download_frame(
        scored[["bucket", "scored", "negative", "neutral", "positive", "share_negative", "share_neutral",
                "share_positive"]],
        ctx, "sentiment-mix",
    )


def _events_section(ctx: ViewContext) -> None:
    events = ctx.events()
    with st.expander(f"Timeline events in the window ({len(events)})", expanded=False):
        if events.empty:
            st.caption("No events in this window. Events come from data/topics.toml and from this form.")
        else:
            st.dataframe(events, hide_index=True, width="stretch",
                         column_config={"date": st.column_config.DateColumn("Date (UTC)"),
                                        "url": st.column_config.LinkColumn("Link", display_text="open")})
            download_frame(events, ctx, "events-in-window")
        event_form(ctx)

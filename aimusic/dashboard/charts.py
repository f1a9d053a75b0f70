"""Altair charts for the dashboard: colour-blind-safe palettes, labelled axes with units, times in UTC.

Pure chart builders (DataFrame in, ``alt.Chart`` out); no Streamlit, no queries. Dates are passed to Vega-Lite
as ISO strings and drawn on UTC scales, so what a reader sees is the UTC day whatever the browser's zone.
Timeline events are drawn as dashed rules with a marker on top whose tooltip gives the date and title.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd

from aimusic.store.dashboard_queries import MIN_SCORED, ROLLING_DAYS

# Okabe & Ito (2008), the palette designed to stay distinct for the common colour-vision deficiencies
OKABE_ITO = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"]
SOURCE_COLORS = {
    "reddit": "#D55E00", "x": "#000000", "bluesky": "#56B4E9", "mastodon": "#CC79A7", "hackernews": "#E69F00",
    "arcticshift": "#009E73", "demo": "#999999",
}
SENTIMENT_COLORS = {"negative": "#D55E00", "neutral": "#B0B0B0", "positive": "#0072B2"}
THIN_COLOR = "#9E9E9E"
EVENT_COLOR = "#555555"
HEIGHT = 260


def bucket_title(bucket: str) -> str:
    return {"week": "Week starting (UTC)", "month": "Month (UTC)"}.get(bucket, "Day (UTC)")


def per_bucket(bucket: str) -> str:
    return {"week": "per week", "month": "per month"}.get(bucket, "per day")


def color_scale(groups: Sequence[str]) -> alt.Scale:
    """Stable colours: known sources keep theirs; other groups take the Okabe-Ito colours in order."""
    domain = list(dict.fromkeys(groups))
    used = {SOURCE_COLORS[g] for g in domain if g in SOURCE_COLORS}
    spare = iter([c for c in OKABE_ITO if c not in used])
    colours = [SOURCE_COLORS.get(g) or next(spare, "#777777") for g in domain]
    return alt.Scale(domain=domain, range=colours)


def _x(bucket: str, field: str = "bucket") -> alt.X:
    return alt.X(
        f"{field}:T", title=bucket_title(bucket), scale=alt.Scale(type="utc"),
        axis=alt.Axis(format="%d %b %Y", labelAngle=0, labelOverlap=True),
    )


def _iso(df: pd.DataFrame, column: str = "bucket") -> pd.DataFrame:
    out = df.copy()
    out[column] = pd.to_datetime(out[column]).dt.strftime("%Y-%m-%d")
    return out


def events_layer(events: pd.DataFrame | None, *, field: str = "bucket") -> alt.Chart | None:
    """Dashed vertical rules at the events' dates, with a hoverable marker at the top."""
    if events is None or events.empty:
        return None
    ev = pd.DataFrame({field: pd.to_datetime(events["date"]).dt.strftime("%Y-%m-%d"), "event": events["title"]})
    ev["date"] = ev[field]
    x = alt.X(f"{field}:T", scale=alt.Scale(type="utc"))
    tooltip = [alt.Tooltip("date:N", title="Event date (UTC)"), alt.Tooltip("event:N", title="Event")]
    rule = alt.Chart(ev).mark_rule(color=EVENT_COLOR, strokeDash=[4, 3], strokeWidth=1.2).encode(x=x, tooltip=tooltip)
    marker = alt.Chart(ev).mark_point(shape="triangle-down", size=90, filled=True, color=EVENT_COLOR, y=6).encode(
        x=x, tooltip=tooltip
    )
    return alt.layer(rule, marker)


def _with_events(chart: alt.Chart, events: pd.DataFrame | None) -> alt.Chart:
    layer = events_layer(events)
    return alt.layer(chart, layer) if layer is not None else chart


def volume_chart(df: pd.DataFrame, bucket: str, events: pd.DataFrame | None = None) -> alt.Chart:
    """Stacked bars: posts per day or week, one colour per source. ``df``: bucket, source, posts."""
    data = _iso(df)
    bars = alt.Chart(data).mark_bar().encode(
        x=_x(bucket),
        y=alt.Y("sum(posts):Q", title=f"Posts {per_bucket(bucket)}", stack="zero"),
        color=alt.Color("source:N", title="Source", scale=color_scale(sorted(data["source"].unique()))),
        order=alt.Order("source:N"),
        tooltip=[
            alt.Tooltip("bucket:N", title=bucket_title(bucket)), alt.Tooltip("source:N", title="Source"),
            alt.Tooltip("posts:Q", title="Posts", format=","),
        ],
    ).properties(height=HEIGHT)
    return _with_events(bars, events)


def net_chart(
    df: pd.DataFrame, bucket: str, events: pd.DataFrame | None = None, rolling: pd.DataFrame | None = None
) -> alt.Chart:
    """Net sentiment with its 95% interval.

    Without ``rolling``: the line and band join the buckets with at least MIN_SCORED scored posts; thinner
    buckets are grey dots outside them. With ``rolling`` (:func:`~aimusic.store.dashboard_queries.sentiment_rolling`):
    the daily values are light dots and the line and band are the rolling figure. ``df``: bucket, net, net_low,
    net_high, scored, enough."""
    data = _iso(df)
    thin = f"fewer than {MIN_SCORED} scored"
    data["reliability"] = data["enough"].map({True: "enough posts", False: thin})
    y_scale = alt.Scale(domain=[-1, 1])
    tooltip = [
        alt.Tooltip("bucket:N", title=bucket_title(bucket)),
        alt.Tooltip("net:Q", title="Net sentiment", format="+.2f"),
        alt.Tooltip("net_low:Q", title="95% interval from", format="+.2f"),
        alt.Tooltip("net_high:Q", title="95% interval to", format="+.2f"),
        alt.Tooltip("scored:Q", title="Scored posts", format=","),
    ]
    y_title = "Net sentiment (pos. - neg. share)"
    if rolling is not None:
        solid = _iso(rolling)
        solid = solid[solid["enough"]]
        line_tooltip = [alt.Tooltip("bucket:N", title="Last day (UTC)"),
                        alt.Tooltip("net:Q", title=f"{ROLLING_DAYS}-day net sentiment", format="+.2f"),
                        alt.Tooltip("net_low:Q", title="95% interval from", format="+.2f"),
                        alt.Tooltip("net_high:Q", title="95% interval to", format="+.2f"),
                        alt.Tooltip("scored:Q", title=f"Scored posts in {ROLLING_DAYS} days", format=",")]
        points = alt.Chart(data).mark_circle(size=18, opacity=0.45).encode(
            x=_x(bucket), y=alt.Y("net:Q", scale=y_scale),
            color=alt.Color("reliability:N", title="Daily value",
                            scale=alt.Scale(domain=["enough posts", thin], range=["#56B4E9", THIN_COLOR])),
            tooltip=tooltip,
        )
    else:
        solid = data[data["enough"]]
        line_tooltip = tooltip
        points = alt.Chart(data).mark_circle(size=36).encode(
            x=_x(bucket), y=alt.Y("net:Q", scale=y_scale),
            color=alt.Color("reliability:N", title="Bucket",
                            scale=alt.Scale(domain=["enough posts", thin],
                                            range=[SENTIMENT_COLORS["positive"], THIN_COLOR])),
            tooltip=tooltip,
        )
    band = alt.Chart(solid).mark_area(opacity=0.22, color=SENTIMENT_COLORS["positive"]).encode(
        x=_x(bucket), y=alt.Y("net_low:Q", scale=y_scale), y2="net_high:Q"
    )
    line = alt.Chart(solid).mark_line(color=SENTIMENT_COLORS["positive"], strokeWidth=2.2).encode(
        x=_x(bucket), y=alt.Y("net:Q", scale=y_scale, title=y_title, axis=alt.Axis(format="+.1f")),
        tooltip=line_tooltip,
    )
    zero = alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule(color="#777777", strokeWidth=0.8).encode(y="y:Q")
    chart = alt.layer(band, points, line, zero).properties(height=HEIGHT)
    return _with_events(chart, events)


def share_chart(df: pd.DataFrame, bucket: str, events: pd.DataFrame | None = None, *, rolling: bool = False
                ) -> alt.Chart:
    """Share of negative / neutral / positive among scored posts, stacked to 100%.
    ``df``: bucket, negative, neutral, positive (counts; with ``rolling``, the pooled counts of the rolling
    window ending on each day)."""
    long = _iso(df[["bucket", "negative", "neutral", "positive"]]).melt(
        id_vars=["bucket"], value_vars=["negative", "neutral", "positive"], var_name="sentiment", value_name="posts"
    )
    order = {"negative": 0, "neutral": 1, "positive": 2}
    long["order"] = long["sentiment"].map(order)
    area = alt.Chart(long).mark_area().encode(
        x=_x(bucket),
        y=alt.Y("posts:Q", stack="normalize", axis=alt.Axis(format="%"),
                title=f"Share, {ROLLING_DAYS}-day rolling" if rolling else "Share of scored posts"),
        color=alt.Color("sentiment:N", title="Sentiment",
                        scale=alt.Scale(domain=list(SENTIMENT_COLORS), range=list(SENTIMENT_COLORS.values()))),
        order=alt.Order("order:Q"),
        tooltip=[alt.Tooltip("bucket:N", title="Last day (UTC)" if rolling else bucket_title(bucket)),
                 alt.Tooltip("sentiment:N", title="Sentiment"),
                 alt.Tooltip("posts:Q", title=f"Posts in {ROLLING_DAYS} days" if rolling else "Posts", format=",")],
    ).properties(height=HEIGHT)
    return _with_events(area, events)


def group_lines(df: pd.DataFrame, bucket: str, value: str, title: str, events: pd.DataFrame | None = None,
                fmt: str = ",") -> alt.Chart:
    """One line per group (source or entity). ``df``: bucket, group, ``value``."""
    data = _iso(df)
    groups = list(dict.fromkeys(data["group"]))
    line = alt.Chart(data).mark_line(point=True).encode(
        x=_x(bucket),
        y=alt.Y(f"{value}:Q", title=title),
        color=alt.Color("group:N", title="", scale=color_scale(groups)),
        tooltip=[alt.Tooltip("bucket:N", title=bucket_title(bucket)), alt.Tooltip("group:N", title=""),
                 alt.Tooltip(f"{value}:Q", title=title, format=fmt)],
    ).properties(height=HEIGHT)
    return _with_events(line, events)


def group_net_facets(df: pd.DataFrame, bucket: str, columns: int = 3) -> alt.Chart:
    """Net sentiment with its interval, one small panel per group; thin buckets greyed."""
    data = _iso(df)
    data["reliability"] = data["enough"].map({True: "enough posts", False: f"fewer than {MIN_SCORED} scored"})
    y_scale = alt.Scale(domain=[-1, 1])
    x = alt.X("bucket:T", title=bucket_title(bucket), scale=alt.Scale(type="utc"),
              axis=alt.Axis(format="%d %b", labelAngle=0, labelOverlap=True, tickCount=4))
    base = alt.Chart(data)
    band = base.transform_filter("datum.enough").mark_area(opacity=0.22, color=SENTIMENT_COLORS["positive"]).encode(
        x=x, y=alt.Y("net_low:Q", scale=y_scale), y2="net_high:Q"
    )
    line = base.transform_filter("datum.enough").mark_line(color=SENTIMENT_COLORS["positive"]).encode(
        x=x, y=alt.Y("net:Q", scale=y_scale, title="Net sentiment", axis=alt.Axis(format="+.1f"))
    )
    points = base.mark_circle(size=22).encode(
        x=x, y=alt.Y("net:Q", scale=y_scale),
        color=alt.Color("reliability:N", title="Bucket",
                        scale=alt.Scale(domain=["enough posts", f"fewer than {MIN_SCORED} scored"],
                                        range=[SENTIMENT_COLORS["positive"], THIN_COLOR])),
        tooltip=[alt.Tooltip("group:N", title=""), alt.Tooltip("bucket:N", title=bucket_title(bucket)),
                 alt.Tooltip("net:Q", title="Net sentiment", format="+.2f"),
                 alt.Tooltip("net_low:Q", title="95% interval from", format="+.2f"),
                 alt.Tooltip("net_high:Q", title="95% interval to", format="+.2f"),
                 alt.Tooltip("scored:Q", title="Scored posts", format=",")],
    )
    return alt.layer(band, line, points, data=data).properties(height=130, width=190).facet(
        facet=alt.Facet("group:N", title=None, sort=list(dict.fromkeys(data["group"]))), columns=columns
    ).configure_legend(orient="bottom")


def _labels_axis(title: str | None) -> alt.Axis:
    """A band axis that shows every label in full (no truncation, none hidden for overlap)."""
    return alt.Axis(title=title, labelLimit=0, labelOverlap=False, labelFontSize=12, labelPadding=6)


def mix_bars(df: pd.DataFrame, label_column: str, title: str) -> alt.Chart:
    """Horizontal bars of the sentiment mix (share of scored posts) per row label, in the frame's order."""
    long = df[[label_column, "negative", "neutral", "positive"]].melt(
        id_vars=[label_column], value_vars=["negative", "neutral", "positive"], var_name="sentiment", value_name="posts"
    )
    long["order"] = long["sentiment"].map({"negative": 0, "neutral": 1, "positive": 2})
    return alt.Chart(long).mark_bar().encode(
        y=alt.Y(f"{label_column}:N", sort=list(df[label_column]), axis=_labels_axis(title)),
        x=alt.X("posts:Q", stack="normalize", title="Share of scored posts (%)", axis=alt.Axis(format="%")),
        color=alt.Color("sentiment:N", title="Sentiment", legend=alt.Legend(orient="top"),
                        scale=alt.Scale(domain=list(SENTIMENT_COLORS), range=list(SENTIMENT_COLORS.values()))),
        order=alt.Order("order:Q"),
        tooltip=[alt.Tooltip(f"{label_column}:N", title=title), alt.Tooltip("sentiment:N", title="Sentiment"),
                 alt.Tooltip("posts:Q", title="Posts", format=",")],
    ).properties(height=alt.Step(22))


# --- debate --------------------------------------------------------------------------------------------------
STANCE_COLORS = {"anti": "#D55E00", "neutral": "#B0B0B0", "pro": "#0072B2"}


def stance_area(df: pd.DataFrame, bucket: str, events: pd.DataFrame | None = None) -> alt.Chart:
    """Share of anti / neutral / pro among posts with a stance, stacked to 100%. ``df``: bucket, anti, neutral,
    pro (counts)."""
    long = _iso(df[["bucket", "anti", "neutral", "pro"]]).melt(
        id_vars=["bucket"], var_name="stance", value_name="posts"
    )
    long["order"] = long["stance"].map({"pro": 0, "neutral": 1, "anti": 2})
    area = alt.Chart(long).mark_area().encode(
        x=_x(bucket),
        y=alt.Y("posts:Q", stack="normalize", title="Share of posts with a stance", axis=alt.Axis(format="%")),
        color=alt.Color("stance:N", title="Stance",
                        scale=alt.Scale(domain=list(STANCE_COLORS), range=list(STANCE_COLORS.values()))),
        order=alt.Order("order:Q"),
        tooltip=[alt.Tooltip("bucket:N", title=bucket_title(bucket)), alt.Tooltip("stance:N", title="Stance"),
                 alt.Tooltip("posts:Q", title="Posts", format=",")],
    ).properties(height=HEIGHT)
    return _with_events(area, events)


def side_bars(df: pd.DataFrame) -> alt.Chart:
    """Horizontal bars, one per argument with its full name: the share of one side's posts making it.
    ``df``: stance, argument, posts, share."""
    return alt.Chart(df).mark_bar().encode(
        y=alt.Y("argument:N", sort="-x", axis=_labels_axis(None)),
        x=alt.X("share:Q", title="Share of the side's posts", axis=alt.Axis(format="%", tickCount=4)),
        color=alt.Color("stance:N", scale=alt.Scale(domain=list(STANCE_COLORS), range=list(STANCE_COLORS.values())),
                        legend=None),
        tooltip=[alt.Tooltip("stance:N", title="Side"), alt.Tooltip("argument:N", title="Argument"),
                 alt.Tooltip("posts:Q", title="Posts", format=","), alt.Tooltip("share:Q", format=".0%")],
    ).properties(height=alt.Step(24))


def argument_heatmap(df: pd.DataFrame, bucket: str, events: pd.DataFrame | None = None) -> alt.Chart:
    """One row per argument, one cell per time bucket, coloured by the share of that bucket's tagged posts making
    the argument. ``df``: bucket, group (argument), posts, share."""
    data = _iso(df)
    step = {"day": pd.DateOffset(days=1), "week": pd.DateOffset(days=7), "month": pd.DateOffset(months=1)}[bucket]
    data["end"] = (pd.to_datetime(data["bucket"]) + step).dt.strftime("%Y-%m-%d")
    order = list(data.groupby("group")["posts"].sum().sort_values(ascending=False).index)
    cells = alt.Chart(data).mark_rect().encode(
        x=_x(bucket), x2="end:T",
        y=alt.Y("group:N", sort=order, axis=_labels_axis(None)),
        color=alt.Color("share:Q", title="Share of tagged posts", scale=alt.Scale(scheme="blues"),
                        legend=alt.Legend(format="%", orient="top", gradientLength=220)),
        tooltip=[alt.Tooltip("group:N", title="Argument"), alt.Tooltip("bucket:N", title=bucket_title(bucket)),
                 alt.Tooltip("share:Q", title="Share of tagged posts", format=".0%"),
                 alt.Tooltip("posts:Q", title="Posts", format=",")],
    ).properties(height=alt.Step(26))
    return _with_events(cells, events)

"""Measured accuracy and error-corrected shares in the dashboard (issue 13).

- :func:`accuracy_panel` / :func:`accuracy_table`: a model's macro-averaged recall and accuracy on the user's
  random-sample labels, with intervals and n; below :data:`MIN_RANDOM_LABELS` a sentence instead of a number.
- :func:`adjusted_mix`: the shares of a task's classes over time adjusted for the measured confusion matrix
  (:mod:`aimusic.debate.correction`), with intervals; the default once enough random labels exist, with a
  switch back to the view's raw chart. A caption always says which series is drawn.

Reads go through read-only connections (the kept one, :mod:`aimusic.store.read_keeper`) and are cached by (database,
data version, labels version, task, model, the counts drawn); the labels version is one cheap query per rerun, so a
label added in the Label view shows up at once.
"""

from __future__ import annotations

import json

import altair as alt
import pandas as pd
import streamlit as st

from aimusic.dashboard.charts import SENTIMENT_COLORS, bucket_title, events_layer
from aimusic.dashboard.context import CACHE_TTL_SECONDS, ViewContext
from aimusic.dashboard.widgets import chart, download_frame
from aimusic.debate.correction import (
    DEFAULT_LEVEL,
    MIN_RANDOM_LABELS,
    Measured,
    adjusted_frame,
    measure,
)
from aimusic.store import labels as lab
from aimusic.store.dashboard_facts import read
from sentiment.custom import models_dir

COLORS = {"sentiment": SENTIMENT_COLORS, "stance": {"anti": "#D55E00", "neutral": "#B0B0B0", "pro": "#0072B2"}}
ADJUSTED = "Adjusted for measured errors"
RAW = "Raw (classify and count)"


def labels_version(db: str) -> str:
    """The labels' version (``none`` on a database without the labels table): one cheap query, not cached."""
    return read(db, lab.version)


@st.cache_data(max_entries=64, ttl=CACHE_TTL_SECONDS, show_spinner=False)
def _measured(db: str, version_key: str, labels_key: str, task: str, model: str) -> Measured | None:
    if labels_key == "none":
        return None
    return read(db, measure, task, model, models_dir(db))


def measured(ctx: ViewContext, task: str, model: str | None, labels_key: str | None = None) -> Measured | None:
    """The model's :class:`~aimusic.debate.correction.Measured` on the random-sample labels (cached)."""
    if model is None:
        return None
    return _measured(ctx.path, ctx.version.key(), labels_key or labels_version(ctx.path), task, model)


def _interval(value: float, low: float, high: float) -> str:
    return f"{value:.2f} ({low:.2f}-{high:.2f})"


def accuracy_panel(ctx: ViewContext, task: str, model: str | None, labels_key: str | None = None) -> Measured | None:
    """Macro recall and accuracy of ``model`` on the random-sample labels of ``task``, or why not yet."""
    m = measured(ctx, task, model, labels_key)
    if model is None:
        return None
    if m is None or not m.enough:
        have = 0 if m is None else m.n
        st.info(f"Measured accuracy of `{model}` ({task}): not enough labels yet - {have} random-sample label(s) "
                f"with a prediction from this model, {MIN_RANDOM_LABELS} needed. Label posts of the random sample in "
                "the Label view.", icon=":material/rule:")
        return m
    acc = m.accuracy
    assert acc is not None
    pct = round(acc.level * 100)
    cols = st.columns(3)
    cols[0].metric("Macro recall (measured)", f"{acc.macro_recall:.2f}",
                   help=f"{pct}% interval {acc.macro_recall_low:.2f}-{acc.macro_recall_high:.2f} (bootstrap). Mean "
                        "of the per-class recalls: 0.33 is chance for three classes.")
    cols[1].metric("Accuracy (measured)", f"{acc.accuracy:.2f}",
                   help=f"{pct}% interval {acc.accuracy_low:.2f}-{acc.accuracy_high:.2f} (Wilson).")
    cols[2].metric("Random-sample labels", f"{m.n:,}")
    st.caption(f"Measured accuracy of `{model}` ({task}) on your random-sample labels: "
               f"macro recall {_interval(acc.macro_recall, acc.macro_recall_low, acc.macro_recall_high)}, accuracy "
               f"{_interval(acc.accuracy, acc.accuracy_low, acc.accuracy_high)}, {pct}% intervals, n={m.n} "
               f"({m.source_note()}).")
    return m


def accuracy_table(ctx: ViewContext, task: str, models: list[str], labels_key: str | None = None) -> pd.DataFrame:
    """One row per model: n and the measured figures (empty where n is below the minimum)."""
    rows = []
    for model in models:
        m = measured(ctx, task, model, labels_key)
        acc = m.accuracy if m is not None else None
        rows.append({
            "model": model, "random labels": 0 if m is None else m.n,
            "macro recall": None if acc is None else round(acc.macro_recall, 3),
            "macro recall interval": None if acc is None else f"{acc.macro_recall_low:.2f}-{acc.macro_recall_high:.2f}",
            "accuracy": None if acc is None else round(acc.accuracy, 3),
            "accuracy interval": None if acc is None else f"{acc.accuracy_low:.2f}-{acc.accuracy_high:.2f}",
            "note": f"needs {MIN_RANDOM_LABELS} random-sample labels" if acc is None else (
                m.source_note() if m is not None else ""),
        })
    return pd.DataFrame(rows)


@st.cache_data(max_entries=64, ttl=CACHE_TTL_SECONDS, show_spinner=False)
def _adjusted(db: str, version_key: str, labels_key: str, task: str, model: str, counts_key: str,
              _counts: pd.DataFrame, _measured: Measured) -> pd.DataFrame:
    return adjusted_frame(_counts, _measured)


def _shares_chart(frame: pd.DataFrame, kind: str, labels: tuple[str, ...], colors: dict[str, str], bucket: str,
                  events: pd.DataFrame | None, title: str) -> alt.Chart:
    rows = []
    for name in labels:
        part = frame[["bucket"]].copy()
        part["class"] = name
        part["share"] = frame[f"{kind}_{name}"]
        part["low"] = frame[f"{kind}_{name}_low"]
        part["high"] = frame[f"{kind}_{name}_high"]
        rows.append(part)
    long = pd.concat(rows, ignore_index=True).dropna(subset=["share"])
    long["bucket"] = pd.to_datetime(long["bucket"]).dt.strftime("%Y-%m-%d")
    x = alt.X("bucket:T", title=bucket_title(bucket), scale=alt.Scale(type="utc"),
              axis=alt.Axis(format="%d %b %Y", labelAngle=0, labelOverlap=True))
    color = alt.Color("class:N", title="", scale=alt.Scale(domain=list(labels),
                                                           range=[colors.get(n, "#777777") for n in labels]))
    band = alt.Chart(long).mark_area(opacity=0.18).encode(x=x, y=alt.Y("low:Q"), y2="high:Q", color=color)
    line = alt.Chart(long).mark_line(point=True).encode(
        x=x, y=alt.Y("share:Q", title=title, axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
        color=color,
        tooltip=[alt.Tooltip("bucket:N", title=bucket_title(bucket)), alt.Tooltip("class:N", title=""),
                 alt.Tooltip("share:Q", format=".1%"), alt.Tooltip("low:Q", format=".1%", title="interval from"),
                 alt.Tooltip("high:Q", format=".1%", title="to")],
    )
    layers = [band, line]
    rules = events_layer(events) if events is not None and not events.empty else None
    if rules is not None:
        layers.append(rules)
    return alt.layer(*layers).properties(height=260)


def adjusted_mix(ctx: ViewContext, task: str, model: str | None, counts: pd.DataFrame, bucket: str,
                 events: pd.DataFrame | None = None) -> bool:
    """The measured accuracy of ``model`` and, once enough random-sample labels exist, the shares of ``counts``
    (``bucket`` and one count column per class, in the model's vocabulary) adjusted for its measured errors, with
    intervals, a CSV download and a switch back to raw. Returns True when it drew the adjusted chart; False when
    the caller should draw its raw chart (a caption here already says the shares are raw and why)."""
    labels_key = labels_version(ctx.path)
    m = accuracy_panel(ctx, task, model, labels_key)
    pct = round(DEFAULT_LEVEL * 100)
    names = lab.MODEL_LABELS[task]
    raw_note = (f"Showing RAW shares: posts classified by `{model}` and counted, not corrected for the model's "
                "errors.")
    if m is None or not m.enough or model is None:
        st.caption(f"{raw_note} Adjusted shares become the default once {MIN_RANDOM_LABELS} random-sample labels "
                   "exist (Label view).")
        return False
    picked = st.segmented_control("Shares", [ADJUSTED, RAW], default=ADJUSTED, required=True, key=f"shares-{task}",
                                  label_visibility="collapsed") or ADJUSTED
    if picked == RAW:
        st.caption(f"{raw_note} Switch to Adjusted for the shares corrected with the measured confusion matrix.")
        return False
    data = counts[["bucket", *names]].reset_index(drop=True)
    data = data[data[list(names)].sum(axis=1) > 0].reset_index(drop=True)
    counts_key = json.dumps(data.astype(str).values.tolist())
    frame = _adjusted(ctx.path, ctx.version.key(), labels_key, task, model, counts_key, data, m)
    chart(_shares_chart(frame, "adjusted", names, COLORS.get(task, {}), bucket, events, "Adjusted share (%)"))
    unlabelled = [n for i, n in enumerate(names) if (m.truth == i).sum() == 0]
    extra = (f" No random-sample label is {', '.join(unlabelled)}: its errors are assumed to be zero."
             if unlabelled else "")
    st.caption(f"**Showing ADJUSTED shares**: the shares of posts classified by `{model}`, corrected for its "
               f"confusion matrix measured on {m.n} random-sample labels (adjusted classify and count, constrained to "
               f"valid shares). Bands: {pct}% bootstrap intervals over the labelled sample and the counts.{extra} "
               "Switch to Raw to compare.")
    download_frame(frame, ctx, f"{task}-shares-adjusted", "Raw and adjusted shares (CSV)")
    return True

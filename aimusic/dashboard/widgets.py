"""Small Streamlit pieces the views share: download buttons, headline figures, messages, the event form."""

from __future__ import annotations

import dataclasses
import math
import re
import tempfile
from datetime import date
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from aimusic.dashboard.context import ViewContext, clear_caches
from aimusic.store.dashboard_facts import add_event
from aimusic.store.db import Store, StoreError
from aimusic.store.queries import Filters, export, guard_csv_frame

EMPTY_HELP = (
    "Collect posts with `aimusic run` (every source that can run here; credentials go in `.env`), or try the "
    "dashboard on synthetic posts with `aimusic demo` (written to `data/demo.duckdb`): this page shows the posts "
    "by itself when they land."
)


def md_escape(text: object) -> str:
    """Text from posts, APIs or users, safe to put inside Streamlit markdown (no links, images or emphasis)."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~$:])", r"\\\1", str(text))


# --- downloads -----------------------------------------------------------------------------------------------
def frame_csv(df: pd.DataFrame) -> bytes:
    """CSV of a displayed frame, with the spreadsheet formula guard on text cells."""
    return guard_csv_frame(df).to_csv(index=False).encode("utf-8")


def download_frame(df: pd.DataFrame, ctx: ViewContext, name: str, label: str = "Download CSV") -> None:
    """A CSV download of exactly ``df`` (what the chart or table above shows). Generated on click."""
    frozen = df.copy()
    st.download_button(
        label, data=lambda: frame_csv(frozen), file_name=f"{ctx.file_stem(name)}.csv", mime="text/csv",
        on_click="ignore", key=f"dl-{name}", icon=":material/download:", disabled=frozen.empty,
    )


def posts_export_bytes(db: str, filters: Filters, model: str | None, fmt: str) -> bytes:
    """Every post matching ``filters`` (the export's columns, the model's scores), as CSV or Parquet bytes."""
    with tempfile.TemporaryDirectory(prefix="aimusic-dl-") as tmp:
        out = Path(tmp) / f"posts.{fmt}"
        export(Store(db, read_only=True), "posts", out, filters=dataclasses.replace(filters, model=model), fmt=fmt)
        return out.read_bytes()


def download_posts(ctx: ViewContext, filters: Filters, count: int) -> None:
    """CSV and Parquet downloads of all ``count`` posts matching ``filters`` (generated on click)."""
    db, model = ctx.path, ctx.model
    cols = st.columns(2)
    for col, fmt, mime in zip(cols, ("csv", "parquet"), ("text/csv", "application/vnd.apache.parquet"), strict=True):
        with col:
            st.download_button(
                f"All {count:,} posts ({fmt.upper()})",
                data=lambda fmt=fmt: posts_export_bytes(db, filters, model, fmt),
                file_name=f"{ctx.file_stem('posts')}.{fmt}", mime=mime, on_click="ignore",
                key=f"dl-posts-{fmt}", icon=":material/download:", disabled=count == 0,
            )


# --- charts and figures --------------------------------------------------------------------------------------
def chart(c: alt.Chart) -> None:
    st.altair_chart(c, width="stretch")


def fmt_net(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:+.2f}"


def pct_change(now: float, before: float) -> str | None:
    if not before:
        return None
    return f"{(now - before) / before * 100:+.1f}%"


# --- messages ------------------------------------------------------------------------------------------------
def no_posts_in_filters() -> None:
    st.info("No posts match these filters. Widen the date range or clear some filters in the sidebar.")


def unscored_notice(ctx: ViewContext) -> bool:
    """Say so (and return True) when no sentiment model has scored this database."""
    if ctx.model is None:
        st.warning("No post has a sentiment score yet, so sentiment charts are empty. Score the stored posts "
                   "with `aimusic score` (or run `aimusic run`, which scores what it collects).")
        return True
    return False


# --- events --------------------------------------------------------------------------------------------------
def event_form(ctx: ViewContext, *, default_day: date | None = None) -> None:
    """Add a dated timeline event; it is stored in the database's ``events`` table and drawn at once."""
    added = st.session_state.pop("_event_added", None)
    if added:
        st.success(f"Event added: {md_escape(added)}")
    with st.form("add-event", clear_on_submit=True, border=True):
        st.markdown("**Add a timeline event**")
        c1, c2 = st.columns([1, 3])
        when = c1.date_input("Date (UTC)", value=default_day or ctx.filters.end or date.today(), key="event-date",
                             format="YYYY-MM-DD")
        title = c2.text_input("What happened", max_chars=300, key="event-title",
                              placeholder="e.g. Spotify starts labelling AI-generated tracks")
        url = st.text_input("Link to a source (optional)", key="event-url", placeholder="https://...")
        if st.form_submit_button("Add event", icon=":material/add:"):
            try:
                add_event(ctx.path, when, title, url or None)
            except ValueError as exc:
                st.error(str(exc))
            except StoreError as exc:
                st.error(f"The event could not be saved: {exc}")
            else:
                clear_caches()
                st.session_state["_event_added"] = f"{when:%d %b %Y}: {title.strip()}"
                st.rerun()

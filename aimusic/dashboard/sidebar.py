"""The sidebar: the filters every view shares, bound to the page's URL (``bind="query-params"``).

A bound selection widget writes its options' *displayed* text into the URL, so bound widgets here show their
raw values (source names, language codes), which keeps links short and readable.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import streamlit as st

from aimusic.dashboard.state import BUCKET_CHOICES, FilterState, Options


def _window(picked: object, default: tuple[date | None, date | None]) -> tuple[date | None, date | None]:
    """A complete (start, end) from the date widget; while only one end is picked, the last complete range."""
    if isinstance(picked, Sequence) and len(picked) == 2:
        st.session_state["_last_dates"] = (picked[0], picked[1])
        return picked[0], picked[1]
    return st.session_state.get("_last_dates", default)


def _follow_new_days(default: tuple[date | None, date | None]) -> None:
    """When newer days land while the page is open (a monitoring pass), a window that was the default becomes
    the new default, and one that ended on the data's last day ends on the new last day (its start kept); a
    window the user ended earlier stays. Runs before the date widget, so it may set the widget's state."""
    drawn = st.session_state.get("_drawn_default")
    st.session_state["_drawn_default"] = default
    current = st.session_state.get("dates")
    if drawn is None or drawn == default or default[1] is None or not isinstance(current, Sequence):
        return
    current = tuple(current)
    if current == tuple(drawn):
        st.session_state["dates"] = default
    elif len(current) == 2 and current[1] == drawn[1] and current[0] is not None and current[0] <= default[1]:
        st.session_state["dates"] = (current[0], default[1])


def _reset(options: Options) -> None:
    start, end = options.default_window()
    st.session_state["dates"] = (start, end)
    for key in ("source", "entity", "term", "lang"):
        st.session_state[key] = []
    st.session_state["min_engagement"] = 0
    st.session_state["bucket"] = "auto"
    if options.models:
        st.session_state["model"] = options.models[0]


def filter_sidebar(options: Options) -> FilterState:
    """Draw the filters; return what they say."""
    sb = st.sidebar
    sb.header("Filters")
    default = options.default_window()
    _follow_new_days(default)
    picked = sb.date_input(
        "Dates (UTC, both days included)", value=default, min_value=options.first_day, max_value=options.last_day,
        key="dates", bind="query-params", format="YYYY-MM-DD",
        help="Defaults to all the data when it spans up to a year, else its last 365 days. Changes are measured "
             "against the window of the same length just before.",
    )
    start, end = _window(picked, default)
    sources = sb.multiselect("Sources", options.sources, key="source", bind="query-params", placeholder="All sources")
    entities = sb.multiselect(
        "Entities", options.entities, key="entity", bind="query-params", placeholder="Any entity",
        help="Posts that mention any of these entities (posts.entities: the aliases of [[entities]] in "
             "data/topics.toml found in the text). Entity views then show only the selected entities.",
    )
    terms = sb.multiselect(
        "Tracked terms", options.terms, key="term", bind="query-params", placeholder="Any term",
        help="Posts that matched any of these tracked terms. With entities too, posts must match both.",
    )
    langs = sb.multiselect(
        "Languages", options.langs, key="lang", bind="query-params", placeholder="All languages",
        help="ISO 639-1 codes as the platforms or the language detector report them; und = unknown.",
    )
    model = None
    if options.models:
        model = sb.selectbox(
            "Sentiment model", options.models, key="model", bind="query-params",
            help="Series never mix models: every sentiment figure comes from this model. Default: the model "
                 "with the most scores.",
        )
    else:
        sb.caption("Sentiment model: no scores yet. A monitoring pass scores its posts after collecting them, and "
                   "this page shows them when they land; `aimusic score` scores stored posts.")
    min_engagement = sb.number_input(
        "Minimum engagement", min_value=0, value=0, step=1, key="min_engagement", bind="query-params",
        help="likes/score + replies + reposts",
    )
    bucket = sb.segmented_control(
        "Time buckets", list(BUCKET_CHOICES), default="auto", required=True, key="bucket", bind="query-params",
        help="auto: days (with a 7-day rolling mean) for windows up to a year, weeks beyond. Weeks start on "
             "Monday.",
    )
    sb.button("Reset filters", on_click=_reset, args=(options,), icon=":material/restart_alt:")
    sb.caption("The address bar holds these filters and the view: copy it to bookmark or share exactly this view.")
    return FilterState(
        start=start, end=end, sources=tuple(sources), entities=tuple(entities), terms=tuple(terms),
        langs=tuple(langs), model=model, min_engagement=int(min_engagement or 0), bucket=bucket or "auto",
    )

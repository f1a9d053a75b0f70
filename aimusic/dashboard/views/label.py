"""Label: teach the classifiers. One post at a time with its context, one click (or key) per label, skip, undo.

Two queues, kept apart: the **random sample** (a stratified random order of all posts, by source and month:
:func:`aimusic.store.labels.random_order`) gives the only labels used to measure accuracy and correct shares,
so those estimates stay unbiased; **least sure** (the posts the current model gives the lowest top
probability) gives labels that teach a new model the most, and are used for training only. A post labelled from
the second queue that the random order reaches later is counted in the random sample too (it was drawn).

The sidebar filters do not apply here: the random sample is drawn from every post in the database. The view
writes one label per click through a short read-write connection (retried while another process writes).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from aimusic.dashboard.accuracy import accuracy_panel, accuracy_table, labels_version
from aimusic.dashboard.context import CACHE_TTL_SECONDS, ViewContext
from aimusic.dashboard.widgets import md_escape
from aimusic.store import debate_queries
from aimusic.store import label_queries as lq
from aimusic.store import labels as lab
from aimusic.store.dashboard_facts import read
from aimusic.store.db import Store, StoreError

TITLE = "Label"
NEEDS_POSTS = True
TARGET = 200  # random-sample labels the analyst workflow asks for
BUTTONS: dict[str, list[tuple[str, str]]] = {
    "sentiment": [("negative", "Negative"), ("neutral", "Neutral"), ("positive", "Positive")],
    "stance": [("against", "Against AI music"), ("neutral", "Neutral or mixed"), ("for", "For AI music")],
    "relevance": [("irrelevant", "Not about AI music"), ("relevant", "About AI music")],
}
QUEUES = {"random": "Random sample (measures accuracy)", "active": "Least sure (trains models)"}
ORDER_CHUNK = 2000


def _state() -> dict:
    return st.session_state.setdefault("label_view", {"skipped": set(), "undo": [], "note": None})


def _write(fn, *args, **kwargs) -> None:
    """Run a store write, retried while this process's own read connections are open."""
    retrying = Retrying(retry=retry_if_exception(lambda e: isinstance(e, StoreError) and "configuration" in str(e)),
                        stop=stop_after_delay(15), wait=wait_exponential(multiplier=0.02, max=0.5), reraise=True)
    for attempt in retrying:
        with attempt:
            fn(*args, **kwargs)


def _store_label(db: str, key: tuple[str, str], task: str, label: str, labeller: str, picked: str,
                 previous: tuple[str, str] | None) -> None:
    try:
        _write(lab.add_label, Store(db), key[0], key[1], task, label, labeller=labeller, picked=picked)
    except StoreError as exc:
        _state()["note"] = f"Not stored: {exc}"
        return
    state = _state()
    state["undo"].append((key, task, labeller, previous))
    state["note"] = f"Stored: {key[0]}:{key[1]} is {label} ({picked} pick)."


def _skip(key: tuple[str, str]) -> None:
    state = _state()
    state["skipped"].add(key)
    state["note"] = f"Skipped {key[0]}:{key[1]} for this session."


def _undo(db: str) -> None:
    state = _state()
    if not state["undo"]:
        return
    key, task, labeller, previous = state["undo"].pop()
    try:
        if previous is None:
            _write(lab.delete_label, Store(db), key[0], key[1], task, labeller)
        else:
            _write(lab.add_label, Store(db), key[0], key[1], task, previous[0], labeller=labeller, picked=previous[1])
    except StoreError as exc:
        state["note"] = f"Undo failed: {exc}"
        return
    state["skipped"].discard(key)
    state["note"] = f"Undone: {key[0]}:{key[1]}."


@st.cache_data(max_entries=16, ttl=CACHE_TTL_SECONDS, show_spinner=False)
def _order(db: str, version_key: str, limit: int) -> list[tuple[str, str]]:
    return list(read(db, lq.random_order, limit).itertuples(index=False, name=None))


def _model_for(ctx: ViewContext, task: str) -> str | None:
    if task == "sentiment":
        return ctx.model
    if task == "stance":
        return read(ctx.path, debate_queries.current_models)["stance"]
    return None


def _next_random(ctx: ViewContext, task: str, labeller: str, mine: pd.DataFrame) -> tuple[str, str] | None:
    done = {(r.source, r.post_id): r.picked for r in mine.itertuples(index=False)}
    skipped = _state()["skipped"]
    limit = ORDER_CHUNK
    while True:
        order = _order(ctx.path, ctx.version.key(), limit)
        promote = []
        for key in order:
            picked = done.get(key)
            if picked == "active":  # drawn by the random order after an active pick: it belongs to the sample
                promote.append(key)
                continue
            if picked is None and key not in skipped:
                if promote:
                    _write(lab.set_picked, Store(ctx.path), promote, task, labeller, "random")
                return key
        if promote:
            _write(lab.set_picked, Store(ctx.path), promote, task, labeller, "random")
        if len(order) < limit:
            return None
        limit *= 2


def _next_active(ctx: ViewContext, task: str, labeller: str, model: str | None) -> tuple[str, str] | None:
    skipped = _state()["skipped"]
    picks = read(ctx.path, lq.active_candidates, task, model, labeller, limit=len(skipped) + 20)
    for key in picks[["source", "post_id"]].itertuples(index=False, name=None):
        if key not in skipped:
            return key
    return None


def _show_post(post: dict) -> None:
    where = " · ".join(str(x) for x in (post["source"], post.get("community"), post.get("kind")) if x)
    when = pd.Timestamp(post["created_at"]).strftime("%d %b %Y %H:%M UTC")
    with st.container(border=True):
        st.caption(f"{md_escape(where)} · {when} · {md_escape(post['post_id'])}")
        if post.get("parent_title") or post.get("parent_text"):
            parent = post.get("parent_title") or ""
            body = (post.get("parent_text") or "")[:400]
            st.caption("In reply to: " + md_escape(f"{parent} {body}".strip()))
        elif post.get("parent_id"):
            st.caption(f"In reply to {md_escape(post['parent_id'])} (not stored)")
        if post.get("title"):
            st.markdown(f"**{md_escape(post['title'])}**")
        st.markdown(md_escape(post.get("text") or "(no text)"))
        if post.get("url"):
            st.link_button("Open the post", str(post["url"]), icon=":material/open_in_new:")


def render(ctx: ViewContext) -> None:
    st.caption("Teach the classifiers: label posts one at a time. Random-sample labels measure each model's "
               "accuracy and correct the shares on Overview and Debate; least-sure labels train better models "
               "(`aimusic train`). The sidebar filters do not apply here.")
    cols = st.columns([2, 2, 1])
    task = cols[0].segmented_control("Task", list(BUTTONS), default="sentiment", required=True, key="label_task",
                                     format_func=str.capitalize) or "sentiment"
    queue = cols[1].segmented_control("Queue", list(QUEUES), default="random", required=True, key="label_queue",
                                      format_func=QUEUES.get) or "random"
    labeller = " ".join(cols[2].text_input("Labeller", value="me", key="label_labeller").split()) or "me"
    state = _state()
    labels_key = labels_version(ctx.path)
    if labels_key == "none":  # a database from before the labels table: opening it for writing migrates it
        _write(Store, ctx.path)
        labels_key = labels_version(ctx.path)
    mine = read(ctx.path, lq.labelled_keys, task, labeller)
    everyone = read(ctx.path, lab.resolved, task)
    n_random = int((mine["picked"] == "random").sum())
    n_active = int((mine["picked"] == "active").sum())
    in_sample = int(everyone["random"].sum()) if len(everyone) else 0
    st.progress(min(n_random / TARGET, 1.0),
                text=f"Random sample: {n_random} of {TARGET} labelled by {labeller} · least sure: {n_active} · "
                     f"{len(everyone)} posts labelled for {task} by anyone ({in_sample} in the random sample)")
    if state["note"]:
        st.caption(state["note"])
    model = _model_for(ctx, task)
    if queue == "active" and task == "relevance":
        st.info("Least-sure picks need a model with probabilities: sentiment and stance only. Use the random sample.")
        key = None
    elif queue == "active":
        key = _next_active(ctx, task, labeller, model)
        if model is None:
            st.info(f"No {task} model has scored posts yet, so there is nothing to rank by certainty.")
        else:
            st.caption(f"Least sure first, by `{model}`.")
    else:
        key = _next_random(ctx, task, labeller, mine)
    if key is None:
        st.success("Nothing left in this queue.")
    else:
        post = read(ctx.path, lq.post_context, *key)
        if post is not None:
            _show_post(post)
            current = mine[(mine["source"] == key[0]) & (mine["post_id"] == key[1])]
            previous = None if current.empty else (current["label"].iloc[0], current["picked"].iloc[0])
            buttons = st.columns(len(BUTTONS[task]) + 2)
            for i, (value, text) in enumerate(BUTTONS[task]):
                buttons[i].button(f"{text} ({i + 1})", key=f"label-{value}", type="primary", shortcut=str(i + 1),
                                  on_click=_store_label, args=(ctx.path, key, task, value, labeller, queue, previous),
                                  width="stretch")
            buttons[-2].button("Skip (s)", key="label-skip", shortcut="s", on_click=_skip, args=(key,),
                               width="stretch")
    st.button("Undo (u)", key="label-undo", shortcut="u", on_click=_undo, args=(ctx.path,),
              disabled=not state["undo"])
    _summary(ctx, task, everyone, labels_key)


def _summary(ctx: ViewContext, task: str, everyone: pd.DataFrame, labels_key: str) -> None:
    st.subheader("Labels so far")
    if everyone.empty:
        st.caption(f"No {task} labels yet.")
    else:
        counts = everyone.assign(sample=everyone["random"].map({True: "random sample", False: "least sure"}))
        st.dataframe(counts.groupby(["sample", "label"]).size().rename("posts").reset_index(), hide_index=True)
    st.subheader("Measured accuracy")
    models = read(ctx.path, lq.models_for, task)
    if not models:
        st.caption(f"No model has {task} predictions yet.")
        return
    current = _model_for(ctx, task) or models[0]
    accuracy_panel(ctx, task, current, labels_key)
    table = accuracy_table(ctx, task, models, labels_key)
    if len(models) > 1 and table["macro recall"].notna().any():
        st.dataframe(table, hide_index=True)
        st.caption("Every model with predictions, on your random-sample labels only (95% intervals; macro recall by "
                   "bootstrap, accuracy by Wilson). A custom model's own training labels count by their "
                   "cross-validated predictions, never in-sample.")

"""Shared by the dashboard's tests: a seeded demo database (relevance-filtered, entity-tagged, VADER-scored, as
`aimusic run` leaves it), the independent pandas side of the comparisons, and debate signals written directly."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from aimusic.core.topics import load_topics
from aimusic.debate.relevance import RelevanceFilter
from aimusic.debate.signals import tag_entities
from aimusic.pipeline.collect import score_posts
from aimusic.sources.demo import event_dates, generate_table
from aimusic.store.db import Store
from sentiment import load_scorer

END = date(2026, 2, 28)
MODEL = "vader-3.3.2"
STANCE_MODEL = "test-stance"
ARGUMENTS_MODEL = "test-arguments"


def seed(path: Path, n: int, *, seed_value: int = 11, days: int = 120, synthetic: bool = True,
         scored: bool = True, offset: int = 0, end: date = END) -> Store:
    """``n`` demo posts, relevance-filtered (so ``terms`` is filled) and entity-tagged (``posts.entities``) as a
    monitoring run leaves them, then scored by VADER."""
    topics = load_topics()
    table = generate_table(n + offset, seed=seed_value, end=end, days=days, events=event_dates(topics)).slice(offset)
    if not synthetic:
        table = table.set_column(table.schema.get_field_index("synthetic"), "synthetic",
                                 pa.array(np.zeros(table.num_rows, dtype=bool)))
    table, _ = RelevanceFilter(topics).filter_table(table)
    store = Store(path)
    store.upsert_posts(table)
    tag_entities(store, topics)
    if synthetic:
        store.set_meta("contains_demo", "true")
    if scored:
        score_posts(store, load_scorer("vader"))
    return store


def working_copy(seeded: Path, tmp_path: Path) -> Path:
    """A per-test copy of a module's seeded database (tests that write must not touch the shared one)."""
    target = tmp_path / "copy.duckdb"
    shutil.copy(seeded, target)
    return target


def add_signals(path: Path) -> None:
    """Stance and argument rows for every post, derived from the post id (no model needed): enough for the Debate
    view's queries, which only count them."""
    now = datetime.now(UTC)
    third = "CAST(hash(post_id || ?) % 3 AS BIGINT) + 1"  # one of three, by a hash of the id (salted per table)
    with duckdb.connect(str(path)) as con:
        con.execute(
            f"""INSERT INTO stances SELECT source, post_id, ?, ['anti', 'neutral', 'pro'][{third}],
                       0.3, 0.3, 0.4, 'scored', text_md5, ?
                FROM posts""", [STANCE_MODEL, "s", now])
        con.execute(
            f"""INSERT INTO post_arguments SELECT source, post_id, ?,
                       [['Quality'], ['Jobs and royalties', 'Quality'], []][{third}], [], [], text_md5, ?
                FROM posts""", [ARGUMENTS_MODEL, "a", now])


def frame(path: Path) -> pd.DataFrame:
    """Posts with their label, read straight from the file (the independent side of the comparisons)."""
    with duckdb.connect(str(path), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        df = con.execute(
            """SELECT p.*, s.label FROM posts p
               LEFT JOIN scores s ON s.source = p.source AND s.post_id = p.post_id AND s.model = ?""", [MODEL]
        ).df()
    df["day"] = df["created_at"].dt.tz_convert("UTC").dt.date
    df["engagement"] = df[["score", "replies", "reposts"]].fillna(0).sum(axis=1)
    return df


def in_window(df: pd.DataFrame, start: date, end: date) -> pd.DataFrame:
    return df[(df["day"] >= start) & (df["day"] <= end)]


def mentions(df: pd.DataFrame, entities: set[str]) -> pd.Series:
    """Whether each post's stored entities include any of ``entities``."""
    return df["entities"].map(lambda es: es is not None and bool(set(es) & entities))

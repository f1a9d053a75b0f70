"""Named reads over the labels and the stored predictions: the Label view's queues (the stratified random order,
the least-sure picks), a post's context, the pairs that measure a model, the posts to train on, and the rows a
custom model wrote (see :mod:`aimusic.store.labels` for the labels themselves)."""

from __future__ import annotations

import duckdb
import pandas as pd
import pyarrow as pa

from aimusic.store.db import Store
from aimusic.store.labels import ORDER_SALT, RELEVANCE_FILTER, resolved, to_model_label


def _predictions(task: str) -> tuple[str, str]:
    """(table, confidence expression) of the stored predictions for ``task``."""
    if task == "sentiment":
        return "scores", "greatest(s.negative, s.neutral, s.positive)"
    if task == "stance":
        return "stances", 'greatest(s."anti", s.neutral, s.pro)'
    raise ValueError(f"{task} has no stored predictions with probabilities")


def evaluation_pairs(con: duckdb.DuckDBPyConnection, task: str, model: str) -> pd.DataFrame:
    """The random-sample labels of ``task`` with ``model``'s prediction on the same posts: source, post_id,
    truth, predicted (both in the vocabulary of :data:`aimusic.store.labels.MODEL_LABELS`). Posts the model did
    not score are left out."""
    labels = resolved(con, task, random_only=True)
    if labels.empty:
        return pd.DataFrame(columns=["source", "post_id", "truth", "predicted"])
    labels["truth"] = [to_model_label(task, lab) for lab in labels["label"]]
    keys = pa.Table.from_pandas(labels[["source", "post_id", "truth"]], preserve_index=False)
    con.register("_truth", keys)
    try:
        if task == "relevance":
            if model != RELEVANCE_FILTER:
                raise ValueError(f"relevance is measured for {RELEVANCE_FILTER!r} only")
            sql = """SELECT t.source, t.post_id, t.truth, 'relevant' AS predicted FROM _truth t
                     JOIN posts p ON p.source = t.source AND p.post_id = t.post_id"""
            df = con.execute(sql).df()
        else:
            table, _ = _predictions(task)
            df = con.execute(
                f"""SELECT t.source, t.post_id, t.truth, s.label AS predicted FROM _truth t
                    JOIN {table} s ON s.source = t.source AND s.post_id = t.post_id
                    WHERE s.model = ? AND s.status = 'scored' AND s.label IS NOT NULL
                    ORDER BY t.source, t.post_id""",
                [model],
            ).df()
    finally:
        con.unregister("_truth")
    return df


def models_for(con: duckdb.DuckDBPyConnection, task: str) -> list[str]:
    """The models with stored predictions for ``task``, most rows first."""
    if task == "relevance":
        return [RELEVANCE_FILTER]
    table, _ = _predictions(task)
    return [r[0] for r in con.execute(
        f"SELECT model FROM {table} GROUP BY model ORDER BY count(*) DESC, max(scored_at) DESC").fetchall()]


def training_posts(con: duckdb.DuckDBPyConnection, task: str) -> pd.DataFrame:
    """Every labelled post of ``task`` (one label per post, see :func:`resolved`) with its title and text."""
    labels = resolved(con, task)
    if labels.empty:
        return labels.assign(title=[], text=[], lang=[])
    con.register("_lab", pa.Table.from_pandas(labels, preserve_index=False))
    try:
        return con.execute(
            """SELECT l.source, l.post_id, l.label, l.random, p.title, p.text, p.lang FROM _lab l
               JOIN posts p ON p.source = l.source AND p.post_id = l.post_id ORDER BY l.source, l.post_id"""
        ).df()
    finally:
        con.unregister("_lab")


def random_order(con: duckdb.DuckDBPyConnection, limit: int, salt: str = ORDER_SALT) -> pd.DataFrame:
    """The first ``limit`` posts of the stratified random order: source, post_id.

    Strata are (source, month). Within a stratum posts are ordered by an MD5 of their key (random, but the same
    on every machine); across strata, post number r of a stratum of n posts sits at (r - 0.5) / n, so every
    prefix of the order is a proportionally allocated stratified sample: each source and month is represented
    in proportion to its posts, and estimates need no weights.
    """
    return con.execute(
        """WITH s AS (
               SELECT source, post_id, date_trunc('month', created_at) AS month,
                      md5(? || source || chr(31) || post_id) AS h FROM posts),
             r AS (
               SELECT source, post_id, h, row_number() OVER (PARTITION BY source, month ORDER BY h) AS rn,
                      count(*) OVER (PARTITION BY source, month) AS n FROM s)
           SELECT source, post_id FROM r ORDER BY (rn - 0.5) / n, h LIMIT ?""",
        [salt, int(limit)],
    ).df()


def active_candidates(con: duckdb.DuckDBPyConnection, task: str, model: str | None, labeller: str,
                      limit: int = 50) -> pd.DataFrame:
    """Unlabelled posts (for ``task`` by ``labeller``) the model is least sure of: source, post_id, confidence
    (the highest class probability), lowest first."""
    if model is None or task not in ("sentiment", "stance"):
        return pd.DataFrame(columns=["source", "post_id", "confidence"])
    table, confidence = _predictions(task)
    return con.execute(
        f"""SELECT s.source, s.post_id, {confidence} AS confidence FROM {table} s
            WHERE s.model = ? AND s.status = 'scored' AND NOT EXISTS (
              SELECT 1 FROM labels l WHERE l.source = s.source AND l.post_id = s.post_id AND l.task = ?
                AND l.labeller = ?)
            ORDER BY confidence, s.source, s.post_id LIMIT ?""",
        [model, task, labeller, int(limit)],
    ).df()


def labelled_keys(con: duckdb.DuckDBPyConnection, task: str, labeller: str) -> pd.DataFrame:
    """source, post_id, label, picked of ``labeller``'s labels for ``task``."""
    return con.execute(
        "SELECT source, post_id, label, picked FROM labels WHERE task = ? AND labeller = ?", [task, labeller]
    ).df()


def post_context(con: duckdb.DuckDBPyConnection, source: str, post_id: str) -> dict[str, object] | None:
    """What the Label view shows of a post: its fields and, when stored, its parent's title and text."""
    df = con.execute(
        """SELECT p.source, p.post_id, p.kind, p.created_at, p.author, p.title, p.text, p.url, p.community, p.lang,
                  p.parent_id, q.title AS parent_title, q.text AS parent_text
           FROM posts p LEFT JOIN posts q ON q.source = p.source AND q.post_id = p.parent_id
           WHERE p.source = ? AND p.post_id = ?""",
        [source, post_id],
    ).df()
    return None if df.empty else df.iloc[0].to_dict()


# --- rows written by a model (custom models: versions, before/after counts, forced re-scores) -----------------
PREDICTION_TABLES = ("scores", "stances")


def rows_per_model(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, int]:
    """Rows per model in ``scores`` or ``stances``."""
    if table not in PREDICTION_TABLES:
        raise ValueError(f"unknown predictions table {table!r}")
    return {str(m): int(n) for m, n in con.execute(
        f"SELECT model, count(*) FROM {table} GROUP BY model ORDER BY model").fetchall()}


def model_ids_like(con: duckdb.DuckDBPyConnection, table: str, prefix: str) -> list[str]:
    """Model ids in ``scores`` or ``stances`` that start with ``prefix`` (e.g. ``custom:sentiment-v``)."""
    if table not in PREDICTION_TABLES:
        raise ValueError(f"unknown predictions table {table!r}")
    return [str(r[0]) for r in con.execute(
        f"SELECT DISTINCT model FROM {table} WHERE starts_with(model, ?)", [prefix]).fetchall()]


def delete_model_rows(store: Store, table: str, model: str) -> int:
    """Remove one model's rows from ``scores`` or ``stances`` (a forced re-score of that model); others stay."""
    if table not in PREDICTION_TABLES:
        raise ValueError(f"unknown predictions table {table!r}")
    with store.connect() as con:
        return int(con.execute(f"DELETE FROM {table} WHERE model = ?", [model]).fetchone()[0])

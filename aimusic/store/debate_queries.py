"""Queries for the debate view: stance over time, by platform and entity, and the arguments each side uses.

Plain functions over a DuckDB connection (no Streamlit), filtered by :class:`aimusic.store.queries.Filters` on the
``posts`` table, each returning a small DataFrame (the aggregation happens in SQL). A series reads one stance
model and one argument taxonomy at a time (:func:`current_models`), never a mix.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pandas as pd

from aimusic.store.queries import CURRENT_ARGUMENTS_MODEL, CURRENT_STANCE_MODEL, Filters

BUCKETS = ("day", "week", "month")


def current_models(con: duckdb.DuckDBPyConnection) -> dict[str, str | None]:
    """The stance model with most rows and the most recently tagged argument taxonomy (``None`` if none)."""
    stance = con.execute(CURRENT_STANCE_MODEL).fetchall()
    arguments = con.execute(CURRENT_ARGUMENTS_MODEL).fetchall()
    return {"stance": stance[0][0] if stance else None, "arguments": arguments[0][0] if arguments else None}


def coverage(con: duckdb.DuckDBPyConnection, filters: Filters, stance_model: str | None,
             arguments_model: str | None) -> dict[str, int]:
    """How many posts in the filters have a stance label, an argument row, entities."""
    where, params = filters.where("p")
    row = con.execute(
        f"""SELECT count(*) AS posts,
                   count(st.label) AS stance,
                   count(pa.post_id) AS arguments,
                   count(*) FILTER (WHERE len(coalesce(p.entities, [])) > 0) AS with_entities,
                   count(*) FILTER (WHERE p.entities_key IS NULL) AS untagged
            FROM posts p
            LEFT JOIN stances st ON st.source = p.source AND st.post_id = p.post_id AND st.model = ?
            LEFT JOIN post_arguments pa ON pa.source = p.source AND pa.post_id = p.post_id AND pa.model = ?
            WHERE {where}""",
        [stance_model, arguments_model, *params],
    ).fetchone()
    return dict(zip(["posts", "stance", "arguments", "with_entities", "untagged"], (int(v) for v in row), strict=True))


def _shares(df: pd.DataFrame) -> pd.DataFrame:
    total = df["scored"].where(df["scored"] > 0)
    for label in ("anti", "neutral", "pro"):
        df[f"share_{label}"] = df[label] / total
    df["net_stance"] = (df["pro"] - df["anti"]) / total
    return df


# shares are over posts with a side; posts the model was unsure about (``unclear``) are counted apart
_COUNTS = """count(*) FILTER (WHERE st.label IN ('anti', 'neutral', 'pro')) AS scored,
             count(*) FILTER (WHERE st.label = 'unclear') AS unclear,
             count(*) FILTER (WHERE st.label = 'anti') AS anti,
             count(*) FILTER (WHERE st.label = 'neutral') AS neutral,
             count(*) FILTER (WHERE st.label = 'pro') AS pro"""


def stance_over_time(con: duckdb.DuckDBPyConnection, filters: Filters, stance_model: str | None,
                     bucket: str = "week") -> pd.DataFrame:
    """bucket, posts, scored, anti, neutral, pro, share_*, net_stance (pro minus anti share)."""
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {BUCKETS}")
    where, params = filters.where("p")
    df = con.execute(
        f"""SELECT CAST(date_trunc('{bucket}', p.created_at) AS DATE) AS bucket, count(*) AS posts, {_COUNTS}
            FROM posts p
            LEFT JOIN stances st ON st.source = p.source AND st.post_id = p.post_id AND st.model = ?
            WHERE {where} GROUP BY ALL ORDER BY bucket""",
        [stance_model, *params],
    ).df()
    return _shares(df)


def stance_by(con: duckdb.DuckDBPyConnection, filters: Filters, stance_model: str | None,
              by: str = "source") -> pd.DataFrame:
    """group, posts, scored, anti, neutral, pro, share_*, net_stance per platform (``source``) or ``entity``."""
    where, params = filters.where("p")
    if by == "source":
        group, source = "p.source", "posts p"
    elif by == "entity":
        group, source = "e.entity", "posts p, unnest(coalesce(p.entities, []::VARCHAR[])) AS e(entity)"
        if filters.entities:  # filtered to entities: only those are groups (a Suno post may also name Udio)
            where, params = f"{where} AND list_contains(?, e.entity)", [*params, list(filters.entities)]
    else:
        raise ValueError("by must be 'source' or 'entity'")
    df = con.execute(
        f"""SELECT {group} AS "group", count(*) AS posts, {_COUNTS}
            FROM {source}
            LEFT JOIN stances st ON st.source = p.source AND st.post_id = p.post_id AND st.model = ?
            WHERE {where} GROUP BY ALL ORDER BY posts DESC, "group" """,
        [stance_model, *params],
    ).df()
    return _shares(df)


def arguments_summary(con: duckdb.DuckDBPyConnection, filters: Filters, arguments_model: str | None,
                      stance_model: str | None, sentiment_model: str | None) -> pd.DataFrame:
    """Per argument: posts, share of tagged posts, sentiment (net, negative/positive shares) and stance mix."""
    where, params = filters.where("p")
    df = con.execute(
        f"""WITH tagged AS (
                SELECT p.source, p.post_id, pa.arguments
                FROM posts p JOIN post_arguments pa
                  ON pa.source = p.source AND pa.post_id = p.post_id AND pa.model = ?
                WHERE {where}),
              n AS (SELECT count(*) AS tagged FROM tagged)
            SELECT a.argument, count(*) AS posts, any_value(n.tagged) AS tagged,
                   count(s.label) AS sentiment_scored,
                   count(*) FILTER (WHERE s.label = 'negative') AS negative,
                   count(*) FILTER (WHERE s.label = 'positive') AS positive,
                   {_COUNTS}
            FROM tagged t, unnest(t.arguments) AS a(argument), n
            LEFT JOIN scores s ON s.source = t.source AND s.post_id = t.post_id AND s.model = ?
            LEFT JOIN stances st ON st.source = t.source AND st.post_id = t.post_id AND st.model = ?
            GROUP BY a.argument ORDER BY posts DESC, a.argument""",
        [arguments_model, *params, sentiment_model, stance_model],
    ).df()
    df["share"] = df["posts"] / df["tagged"].where(df["tagged"] > 0)
    scored = df["sentiment_scored"].where(df["sentiment_scored"] > 0)
    df["net_sentiment"] = (df["positive"] - df["negative"]) / scored
    return _shares(df)


def arguments_by_stance(con: duckdb.DuckDBPyConnection, filters: Filters, arguments_model: str | None,
                        stance_model: str | None, top: int = 5) -> pd.DataFrame:
    """The arguments each side uses most: stance, argument, posts, share (of that side's tagged posts), rank."""
    where, params = filters.where("p")
    return con.execute(
        f"""WITH side AS (
                SELECT st.label AS stance, pa.arguments
                FROM posts p
                JOIN stances st ON st.source = p.source AND st.post_id = p.post_id AND st.model = ?
                JOIN post_arguments pa ON pa.source = p.source AND pa.post_id = p.post_id AND pa.model = ?
                WHERE {where} AND st.label IS NOT NULL),
              totals AS (SELECT stance, count(*) AS side_posts FROM side GROUP BY stance),
              counted AS (
                SELECT s.stance, a.argument, count(*) AS posts
                FROM side s, unnest(s.arguments) AS a(argument) GROUP BY ALL)
            SELECT c.stance, c.argument, c.posts, c.posts / t.side_posts AS share,
                   row_number() OVER (PARTITION BY c.stance ORDER BY c.posts DESC, c.argument) AS rank
            FROM counted c JOIN totals t USING (stance)
            QUALIFY rank <= ?
            ORDER BY c.stance, rank""",
        [stance_model, arguments_model, *params, int(top)],
    ).df()


def arguments_over_time(con: duckdb.DuckDBPyConnection, filters: Filters, arguments_model: str | None,
                        bucket: str = "week") -> pd.DataFrame:
    """bucket, group (argument), posts, share (of the bucket's tagged posts)."""
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {BUCKETS}")
    where, params = filters.where("p")
    return con.execute(
        f"""WITH tagged AS (
                SELECT CAST(date_trunc('{bucket}', p.created_at) AS DATE) AS bucket, pa.arguments
                FROM posts p JOIN post_arguments pa
                  ON pa.source = p.source AND pa.post_id = p.post_id AND pa.model = ?
                WHERE {where}),
              totals AS (SELECT bucket, count(*) AS tagged FROM tagged GROUP BY bucket)
            SELECT t.bucket, a.argument AS "group", count(*) AS posts, count(*) / any_value(x.tagged) AS share
            FROM tagged t, unnest(t.arguments) AS a(argument)
            JOIN totals x ON x.bucket = t.bucket
            GROUP BY t.bucket, a.argument ORDER BY t.bucket, posts DESC""",
        [arguments_model, *params],
    ).df()


def stance_quality(model: str | None) -> dict[str, Any]:
    """What is known of the stance model's quality: ``macro_recall`` on the held-out set when measured, and
    ``experimental`` (True until it reaches :data:`sentiment.stance.TRUSTED_MACRO_RECALL`)."""
    from sentiment.stance import TRUSTED_MACRO_RECALL, measured_for

    figures = measured_for(model) if model else {}
    recall = figures.get("macro_recall")
    return {
        "model": model,
        "macro_recall": recall,
        "n": figures.get("n"),
        "experimental": recall is None or recall < TRUSTED_MACRO_RECALL,
        "threshold": TRUSTED_MACRO_RECALL,
    }

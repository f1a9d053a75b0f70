"""The Posts view's ranked lists kept in the database file: for each sentiment model, each ordering of the Posts
view but "oldest" (newest, most engaged, most negative, most positive) and each day, the :data:`K_DAY` posts of that
day that rank highest, with the columns the sidebar filters on and the model's label. A page of posts is then
picked from a few hundred thousand rows instead of a join of every post with its score, and its texts read by the
posts' row ids (checked against the keys: a row id that no longer holds that post falls back to a search by
time). No Streamlit here.

Orderings are ``value DESC, created_at DESC, source, post_id`` (``value``: the label's probability, the
engagement or the time): the same total order as the Posts view. A page taken from
the lists (filters applied to them) is exact when it is full and its last post ranks at or above the cut (the
last listed post) of every day of the window whose list was cut; a short page is exact when no day of the window
was cut (and, for the sentiment orderings, which list scored posts only, never: unscored posts would follow).
:func:`page` checks this and answers ``None`` otherwise, and the caller reads the posts instead.

Maintenance (:func:`fill`) follows the daily summary: the lists of the days it recomputes are recomputed, in the
same transaction (:mod:`aimusic.store.dashboard_summary`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd

if TYPE_CHECKING:  # imported by the schema's migrations, so nothing of the store at run time
    from aimusic.store.queries import Filters

#: the posts each day's list keeps (the Posts view's default page is 500 rows)
K_DAY = 500

#: ordering -> the value it ranks by (descending), over the candidate rows ``c`` ("oldest", rarely asked for, has
#: no list: it reads the posts)
VALUES = {
    "newest": "epoch_us(c.created_at)::DOUBLE",
    "most engaged": "c.engagement::DOUBLE",
    "most negative": "c.negative",
    "most positive": "c.positive",
}
SENTIMENT = ("most negative", "most positive")
ORDER = "value DESC, created_at DESC, source, post_id"

#: part of migration 11 (:data:`aimusic.store.dashboard_summary.TABLES_11`): as released; a later change to these
#: tables needs a new migration, not an edit here
TABLES = (
    """CREATE TABLE dash_top (
        model VARCHAR NOT NULL, rank_by VARCHAR NOT NULL, day INTEGER NOT NULL, value DOUBLE NOT NULL,
        created_at TIMESTAMPTZ NOT NULL, source VARCHAR NOT NULL, post_id VARCHAR NOT NULL, lang VARCHAR NOT NULL,
        entities VARCHAR[] NOT NULL, terms VARCHAR[], engagement BIGINT NOT NULL, label VARCHAR,
        confidence DOUBLE, post_rowid BIGINT NOT NULL)""",
    """CREATE TABLE dash_top_cut (
        model VARCHAR NOT NULL, rank_by VARCHAR NOT NULL, day INTEGER NOT NULL, value DOUBLE NOT NULL,
        created_at TIMESTAMPTZ NOT NULL, source VARCHAR NOT NULL, post_id VARCHAR NOT NULL)""",
)
#: the tables :func:`fill` writes, one row set per day
DAY_TABLES = ("dash_top", "dash_top_cut")

#: the candidate rows of one model (``?``: the model): the summary's posts in scope (``_dash_p``) with that model's
#: scores (``_dash_s``), both made by :mod:`aimusic.store.dashboard_summary`
_CANDIDATES = """
    SELECT p.source, p.post_id, p.post_rowid, p.created_at, p.day, p.lang, p.entities, p.terms, p.engagement,
           s.label, s.negative, s.positive, greatest(s.negative, s.neutral, s.positive) AS confidence
    FROM _dash_p p
    LEFT JOIN (SELECT * FROM _dash_s WHERE model = ?) s ON s.source = p.source AND s.post_id = p.post_id"""

#: the page's last post ``?`` x4 (value, created_at, source, post_id) ranks at or above the cut ``k``
_AT_OR_ABOVE = """(?::DOUBLE > k.value OR (?::DOUBLE = k.value AND (?::TIMESTAMPTZ > k.created_at
    OR (?::TIMESTAMPTZ = k.created_at AND (?::VARCHAR < k.source
        OR (?::VARCHAR = k.source AND ?::VARCHAR <= k.post_id))))))"""


def models(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The models with lists: every model with a label in ``scores``. The lists of a model are kept for every day
    or for none: a model seen for the first time gets its lists for every day at once."""
    return [m for (m,) in con.execute(
        "SELECT DISTINCT model FROM scores WHERE label IS NOT NULL ORDER BY model").fetchall()]


def fill(con: duckdb.DuckDBPyConnection, only: list[str] | None = None) -> None:
    """The lists of the days of the summary's posts in scope (``_dash_p``: every post of those days, whose old
    rows were deleted; ``_dash_s``: their scores), for every model or ``only`` these."""
    for model in models(con) if only is None else only:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _dash_c AS {_CANDIDATES}", [model])
        for rank_by, value in VALUES.items():
            # each day's first K_DAY in the list order, with a bounded heap per day (no sort of every post)
            con.execute(
                f"""CREATE OR REPLACE TEMP TABLE _dash_r AS
                    SELECT day, n, unnest(top) AS t, unnest(range(1, len(top) + 1)) AS rn FROM (
                        SELECT c.day, count(*) AS n,
                               min_by(struct_pack(source := c.source, post_id := c.post_id, value := {value}),
                                      struct_pack(a := -({value}), b := -epoch_us(c.created_at), c := c.source,
                                                  d := c.post_id), ?) AS top
                        FROM _dash_c c WHERE {value} IS NOT NULL GROUP BY c.day)""",
                [K_DAY],
            )
            con.execute(
                """INSERT INTO dash_top
                   SELECT ?, ?, c.day, r.t.value, c.created_at, c.source, c.post_id, c.lang, c.entities, c.terms,
                          c.engagement, c.label, c.confidence, c.post_rowid
                   FROM _dash_r r JOIN _dash_c c ON c.source = r.t.source AND c.post_id = r.t.post_id""",
                [model, rank_by],
            )
            con.execute(  # the last listed post of each day that has more posts than its list
                """INSERT INTO dash_top_cut
                   SELECT ?, ?, c.day, r.t.value, c.created_at, c.source, c.post_id
                   FROM _dash_r r JOIN _dash_c c ON c.source = r.t.source AND c.post_id = r.t.post_id
                   WHERE r.rn = ? AND r.n > ?""",
                [model, rank_by, K_DAY, K_DAY],
            )
    con.execute("DROP TABLE IF EXISTS _dash_c")
    con.execute("DROP TABLE IF EXISTS _dash_r")


# --- reading -------------------------------------------------------------------------------------------------
def _where(filters: Filters) -> tuple[str, list[Any]]:
    from aimusic.store.dashboard_queries import summary_where  # here: dashboard_queries imports this module's importers

    return summary_where(filters, "t", engagement="engagement")  # the lists keep each post's exact engagement


def page(con: duckdb.DuckDBPyConnection, filters: Filters, model: str | None, rank_by: str, limit: int,
         label: str | None = None) -> pd.DataFrame | None:
    """The keys, times, labels and label probabilities (``source, post_id, created_at, sentiment, confidence``,
    and ``post_rowid``: the post's row id when the list was made, a hint that :func:`page`'s caller verifies)
    of the first ``limit`` posts in ``rank_by`` order under ``filters`` (no text search; with the model's
    ``label`` only, when given), or ``None`` when the lists cannot tell them exactly (read the posts instead)."""
    from aimusic.store.dashboard_queries import day_number  # here, like summary_where in _where

    if filters.search or model is None or limit <= 0 or rank_by not in VALUES:
        return None
    if not con.execute("SELECT count(*) FROM dash_daily WHERE model = ?", [model]).fetchall()[0][0]:
        return None  # a model without lists
    where, params = _where(filters)
    if label:
        where, params = f"{where} AND t.label = ?", [*params, label]
    df = con.execute(
        f"""SELECT t.source, t.post_id, t.created_at, t.label AS sentiment, t.confidence, t.post_rowid, t.value
            FROM dash_top t
            WHERE t.model = ? AND t.rank_by = ? AND {where} ORDER BY t.{ORDER.replace(', ', ', t.')} LIMIT ?""",
        [model, rank_by, *params, int(limit)],
    ).df()
    days = ["k.day >= ?" if filters.start else "TRUE", "k.day <= ?" if filters.end else "TRUE"]
    dparams = [day_number(d) for d in (filters.start, filters.end) if d]
    if len(df) < limit:  # short: exact only when no day of the window was cut (and unscored posts cannot follow)
        if rank_by in SENTIMENT and not label:
            return None
        check, cparams = "TRUE", []
    else:
        last = df.iloc[-1]
        when = last["created_at"].to_pydatetime()
        check = f"NOT {_AT_OR_ABOVE}"
        cparams = [last["value"], last["value"], when, when, last["source"], last["source"], last["post_id"]]
    cut = con.execute(
        f"""SELECT count(*) FROM dash_top_cut k WHERE k.model = ? AND k.rank_by = ? AND {days[0]} AND {days[1]}
            AND {check}""",
        [model, rank_by, *dparams, *cparams],
    ).fetchall()[0][0]
    return None if cut else df.drop(columns="value")

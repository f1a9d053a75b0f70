"""The sentiment step over a store: choose the model, fill languages, score, route other languages, re-score.

- :func:`choose_scorer`: ``--model``, else ``AIMUSIC_MODEL``, else the best default that loads here
  (:func:`sentiment.load_default`, which says in one line when it falls back). A model that was *named*
  and cannot load is an error, never a silent fallback.
- :func:`score_store`: detect missing languages, score every post lacking a current score from the model,
  then, when ``AIMUSIC_MULTILINGUAL_MODEL`` is set, score the posts the main model declined for their
  language (status ``language``) with the multilingual model, under that model's own id.
- :func:`rescore`: the same for another model (``aimusic rescore --model NAME``): incremental and resumable,
  since a post counts as done once a score from that model on its current text is committed; rows of
  other models are never touched (scores are keyed by post *and* model). ``force=True`` re-scores even
  posts that already have a current score from the model: the start time is kept in ``meta`` until the
  pass completes, so an interrupted forced pass resumes where it stopped.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa

from aimusic.core.config import Settings, get_settings
from aimusic.pipeline.collect import score_posts
from aimusic.pipeline.languages import fill_languages
from aimusic.store.db import Store
from sentiment import Scorer, ScorerError, load_default, load_scorer

log = logging.getLogger(__name__)

_POST_COLUMNS = "p.source, p.post_id, p.title, p.text, p.lang, p.text_md5"


@dataclass
class ScoreSummary:
    model: str
    per_source: Counter[str] = field(default_factory=Counter)
    multilingual_model: str | None = None
    multilingual: int = 0
    languages: dict[str, int] = field(default_factory=dict)

    @property
    def scored(self) -> int:
        return sum(self.per_source.values())


def choose_scorer(model: str | None = None, settings: Settings | None = None) -> Scorer:
    """The scorer named by ``model`` or ``AIMUSIC_MODEL``, else the best default that loads here."""
    name = model or (settings or get_settings()).model
    return load_scorer(name) if name else load_default()


def load_multilingual(settings: Settings | None = None) -> Scorer | None:
    """The configured multilingual scorer (``AIMUSIC_MULTILINGUAL_MODEL``), or ``None`` (one warning line if it
    is configured but cannot load: other languages then stay unscored, status ``language``)."""
    name = (settings or get_settings()).multilingual_model
    if not name:
        return None
    if name.startswith("transformer") and "languages=" not in name:
        name += ("&" if "?" in name else "?") + "languages=any"
    try:
        scorer = load_scorer(name)
    except ScorerError as exc:
        log.warning(
            "multilingual model %s cannot load (%s); posts in other languages stay unscored (status 'language')",
            name, " ".join(str(exc).split()),
        )
        return None
    if scorer.languages is not None and scorer.languages <= {"en"}:
        log.warning("AIMUSIC_MULTILINGUAL_MODEL=%s is an English-only model: ignored", name)
        return None
    return scorer


def _select(store: Store, sql: str, params: list) -> Callable[[int], pa.Table]:
    def select(limit: int) -> pa.Table:
        with store.connect() as con:
            return con.sql(f"SELECT {_POST_COLUMNS} {sql} LIMIT ?", params=[*params, limit]).to_arrow_table()

    return select


_STALE = """FROM posts p WHERE NOT EXISTS (
              SELECT 1 FROM scores s WHERE s.source = p.source AND s.post_id = p.post_id
                AND s.model = ? AND s.text_md5 = p.text_md5 AND s.scored_at >= CAST(? AS TIMESTAMPTZ))"""
_GATED = """FROM posts p JOIN scores g
              ON g.source = p.source AND g.post_id = p.post_id AND g.model = ? AND g.status = 'language'
                 AND g.text_md5 = p.text_md5
            WHERE NOT EXISTS (
              SELECT 1 FROM scores s WHERE s.source = p.source AND s.post_id = p.post_id
                AND s.model = ? AND s.text_md5 = p.text_md5)"""


def count_pending(store: Store, model_id: str, since: str | None = None) -> int:
    """Posts without a current score from ``model_id`` (scored at or after ``since``, when given)."""
    if since is None:
        return store.count_unscored(model_id)
    with store.connect() as con:
        return int(con.execute(f"SELECT count(*) {_STALE}", [model_id, since]).fetchone()[0])


def score_store(
    store: Store,
    scorer: Scorer,
    *,
    multilingual: Scorer | None = None,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
    since: str | None = None,
    batch_size: int = 2_000,
) -> ScoreSummary:
    """Languages, then ``scorer`` over posts lacking its current score (or, with ``since``, scored before it),
    then ``multilingual`` over the posts ``scorer`` declined for their language."""
    summary = ScoreSummary(model=scorer.model_id)
    summary.languages = fill_languages(store)
    select = _select(store, _STALE, [scorer.model_id, since]) if since is not None else None
    summary.per_source = score_posts(
        store, scorer, batch_size=batch_size, limit=limit, progress=progress, select=select
    )
    if multilingual is not None and scorer.languages is not None and multilingual.model_id != scorer.model_id:
        left = None if limit is None else max(limit - summary.scored, 0)
        if left != 0:
            gated = _select(store, _GATED, [scorer.model_id, multilingual.model_id])
            counts = score_posts(store, multilingual, batch_size=batch_size, limit=left, select=gated)
            summary.multilingual_model = multilingual.model_id
            summary.multilingual = sum(counts.values())
            if summary.multilingual:
                log.info("scored %d posts in other languages with %s", summary.multilingual, multilingual.model_id)
    return summary


def _checkpoint_key(model_id: str) -> str:
    return f"rescore:{model_id}"


def forced_since(store: Store, model_id: str) -> tuple[str, bool]:
    """The start time of the forced re-score of ``model_id`` (an unfinished one's, or now); and whether resumed."""
    key = _checkpoint_key(model_id)
    existing = store.get_meta(key)
    if existing:
        return existing, True
    with store.connect() as con:
        now: datetime = con.execute("SELECT now()").fetchone()[0]
    stamp = now.isoformat()
    store.set_meta(key, stamp)
    return stamp, False


def finish_forced(store: Store, model_id: str) -> None:
    with store.connect() as con:
        con.execute("DELETE FROM meta WHERE key = ?", [_checkpoint_key(model_id)])


def rescore(
    store: Store,
    scorer: Scorer,
    *,
    force: bool = False,
    multilingual: Scorer | None = None,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
    batch_size: int = 2_000,
) -> tuple[ScoreSummary, int]:
    """Score every post with ``scorer`` (see the module docstring); return the summary and posts still left."""
    since = forced_since(store, scorer.model_id)[0] if force else None
    summary = score_store(
        store, scorer, multilingual=multilingual, limit=limit, progress=progress, since=since, batch_size=batch_size
    )
    left = count_pending(store, scorer.model_id, since)
    if force and left == 0:
        finish_forced(store, scorer.model_id)
    return summary, left

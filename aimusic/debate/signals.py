"""The debate signals of stored posts: entities, arguments and stance, computed incrementally.

Plain functions (no Prefect), called after each collection (entities), by the monitor flow after sentiment
scoring (everything) and by ``aimusic signals`` (backfill, or after an edit of topics.toml):

- **entities** live on ``posts.entities``; ``posts.entities_key`` (the post's text MD5 and the entity
  config's fingerprint) says what they were computed from, so a changed text or alias list is tagged again
  and nothing else is touched;
- **arguments** go to ``post_arguments`` and **stance** to ``stances``, one row per post and model id, with
  the text MD5 they were computed on: a post is picked up again only if it has no row from the current
  model or its text changed since.

Embeddings are computed once per batch and shared by the stance head and the argument matcher. Every batch
is committed before the next is read (Arrow in, one statement per table), so an interrupted pass resumes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from aimusic.core.text import join_many
from aimusic.core.topics import Topics
from aimusic.debate.arguments import ArgumentTagger
from aimusic.debate.entities import EntityTagger
from aimusic.store.db import Store

if TYPE_CHECKING:
    from sentiment.base import ScoreBatch

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
#: languages whose posts get embedding-based signals (the encoder is English); others get keywords only
EMBEDDING_LANGS = frozenset({"en"})


@dataclass
class SignalsSummary:
    entities: int = 0
    arguments: int = 0
    stances: int = 0
    arguments_model: str | None = None
    stance_model: str | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def line(self) -> str:
        extra = f" ({'; '.join(self.notes)})" if self.notes else ""
        return (
            f"signals: entities {self.entities}, arguments {self.arguments} ({self.arguments_model}), "
            f"stance {self.stances} ({self.stance_model}) in {self.seconds:.1f}s{extra}"
        )


def full_texts(titles: Sequence[str | None], texts: Sequence[str | None]) -> list[str]:
    """Title and body together, as relevance and scoring read them (:func:`aimusic.core.text.join_many`)."""
    return join_many(titles, texts)


# --- entities --------------------------------------------------------------------------------------------


def tag_entities(store: Store, topics: Topics, *, batch_size: int = 50_000) -> int:
    """Tag every post whose entities are missing or stale; return how many were (re)tagged."""
    tagger = EntityTagger.from_topics(topics)
    suffix = ":" + tagger.fingerprint
    stale = "entities_key IS DISTINCT FROM text_md5 || ?"
    with store.connect() as con:
        pending = int(con.execute(f"SELECT count(*) FROM posts WHERE {stale}", [suffix]).fetchone()[0])
    done = 0
    for _ in range(pending // batch_size + 2):  # bounded: each batch fixes what it read
        with store.connect() as con:
            todo = con.sql(
                f"SELECT source, post_id, title, text, text_md5 FROM posts WHERE {stale} LIMIT ?",
                params=[suffix, batch_size],
            ).to_arrow_table()
        if todo.num_rows == 0:
            break
        texts = full_texts(todo.column("title").to_pylist(), todo.column("text").to_pylist())
        table = pa.table(
            {
                "source": todo.column("source"),
                "post_id": todo.column("post_id"),
                "entities": pa.array(tagger.tag_many(texts), pa.list_(pa.string())),
                "entities_key": pa.array([m + suffix for m in todo.column("text_md5").to_pylist()], pa.string()),
            }
        )
        with store.connect() as con:
            con.register("_entities_in", table)
            con.execute(
                """UPDATE posts SET entities = e.entities, entities_key = e.entities_key, updated_at = now()
                   FROM _entities_in e WHERE posts.source = e.source AND posts.post_id = e.post_id"""
            )
            con.unregister("_entities_in")
        done += todo.num_rows
    if done:
        log.info("tagged entities of %d posts", done)
    return done


# --- arguments and stance --------------------------------------------------------------------------------


def _pending_sql(need_args: bool, need_stance: bool) -> str:
    args = """NOT EXISTS (SELECT 1 FROM post_arguments a WHERE a.source = p.source AND a.post_id = p.post_id
                          AND a.model = $args AND a.text_md5 = p.text_md5)""" if need_args else "false"
    stance = """NOT EXISTS (SELECT 1 FROM stances s WHERE s.source = p.source AND s.post_id = p.post_id
                            AND s.model = $stance AND s.text_md5 = p.text_md5)""" if need_stance else "false"
    return f"""SELECT p.source, p.post_id, p.title, p.text, p.lang, p.text_md5,
                      {args} AS need_args, {stance} AS need_stance
               FROM posts p WHERE ({args}) OR ({stance})"""


def count_pending(store: Store, arguments_model: str | None, stance_model: str | None) -> int:
    sql = _pending_sql(arguments_model is not None, stance_model is not None)
    params = {k: v for k, v in (("args", arguments_model), ("stance", stance_model)) if v is not None}
    with store.connect() as con:
        return int(con.execute(f"SELECT count(*) FROM ({sql})", params).fetchone()[0])


def _embedding_lang(lang: str | None) -> bool:
    return not lang or lang.split("-")[0].lower() in EMBEDDING_LANGS or lang in ("und", "zxx", "mul")


def tag_arguments_and_stance(
    store: Store,
    arguments: ArgumentTagger | None,
    stance: object | None,
    *,
    batch_size: int = 512,
    limit: int | None = None,
    progress: Progress | None = None,
) -> tuple[int, int]:
    """Assign arguments and stance to posts lacking a current row from these models; return the counts."""
    from sentiment.stance import StanceScorer

    scorer: StanceScorer | None = stance  # type: ignore[assignment]
    if arguments is None and scorer is None:
        return 0, 0
    args_model = arguments.model_id if arguments else None
    stance_model = scorer.model_id if scorer else None
    sql = _pending_sql(args_model is not None, stance_model is not None)
    params = {k: v for k, v in (("args", args_model), ("stance", stance_model)) if v is not None}
    n_args = n_stance = seen = 0
    while limit is None or seen < limit:
        size = batch_size if limit is None else min(batch_size, limit - seen)
        with store.connect() as con:
            todo = con.sql(f"{sql} LIMIT {int(size)}", params=params).to_arrow_table()
        if todo.num_rows == 0:
            break
        texts = full_texts(todo.column("title").to_pylist(), todo.column("text").to_pylist())
        langs = todo.column("lang").to_pylist()
        need_args = todo.column("need_args").to_pylist()
        need_stance = todo.column("need_stance").to_pylist()
        use_emb = [bool(t.strip()) and _embedding_lang(lang) for t, lang in zip(texts, langs, strict=True)]
        wants_emb = bool(arguments and arguments.use_embeddings) or bool(scorer and scorer.uses_embeddings)
        emb_rows = [i for i, ok in enumerate(use_emb) if ok and wants_emb]
        embeddings = np.zeros((len(texts), 384), dtype=np.float32)
        if emb_rows:
            from sentiment.stance import embed

            embeddings[emb_rows] = embed([texts[i] for i in emb_rows])
        if arguments is not None:
            rows = [i for i, need in enumerate(need_args) if need]
            n_args += _write_arguments(store, arguments, todo, texts, embeddings, use_emb, rows)
        if scorer is not None:
            rows = [i for i, need in enumerate(need_stance) if need]
            n_stance += _write_stance(store, scorer, todo, texts, langs, embeddings, rows)
        seen += todo.num_rows
        if progress:
            progress(todo.num_rows)
    return n_args, n_stance


def _write_arguments(
    store: Store, tagger: ArgumentTagger, todo: pa.Table, texts: list[str], embeddings: np.ndarray,
    use_emb: list[bool], rows: list[int],
) -> int:
    if not rows:
        return 0
    with_emb = [i for i in rows if use_emb[i]]
    without = [i for i in rows if not use_emb[i]]
    found: dict[int, object] = {}
    if with_emb:
        found.update(zip(with_emb, tagger.assign([texts[i] for i in with_emb], embeddings[with_emb]), strict=True))
    if without:  # other languages and empty texts: keywords only
        keyword_only = ArgumentTagger(tagger.arguments, use_embeddings=False, max_arguments=tagger.max_arguments)
        found.update(zip(without, keyword_only.assign([texts[i] for i in without]), strict=True))
    assignments = [found[i] for i in rows]
    take = pa.array(rows, pa.int64())
    table = pa.table(
        {
            "source": todo.column("source").take(take),
            "post_id": todo.column("post_id").take(take),
            "model": pa.array([tagger.model_id] * len(rows), pa.string()),
            "arguments": pa.array([list(a.arguments) for a in assignments], pa.list_(pa.string())),
            "matched_by": pa.array([list(a.matched_by) for a in assignments], pa.list_(pa.string())),
            "similarity": pa.array([list(a.similarity) for a in assignments], pa.list_(pa.float64())),
            "text_md5": todo.column("text_md5").take(take),
        }
    )
    with store.connect() as con:
        con.register("_args_in", table)
        con.execute(
            """INSERT INTO post_arguments BY NAME
               SELECT *, now() AS tagged_at FROM _args_in
               ON CONFLICT (source, post_id, model) DO UPDATE SET arguments = excluded.arguments,
                 matched_by = excluded.matched_by, similarity = excluded.similarity,
                 text_md5 = excluded.text_md5, tagged_at = excluded.tagged_at"""
        )
        con.unregister("_args_in")
    return len(rows)


def _write_stance(
    store: Store, scorer: object, todo: pa.Table, texts: list[str], langs: list[str | None],
    embeddings: np.ndarray, rows: list[int],
) -> int:
    from sentiment.stance import StanceScorer

    model: StanceScorer = scorer  # type: ignore[assignment]
    if not rows:
        return 0
    result = model.score([texts[i] for i in rows], [langs[i] for i in rows], embeddings=embeddings[rows])
    return _upsert_stances(store, model.model_id, todo, rows, result)


def record_read_stances(store: Store, scorer: object, todo: pa.Table, texts: Sequence[str]) -> int:
    """Store the stance a sentiment scorer read while scoring these posts, so that the signals step does not
    read them again (``minilm-debate`` reads posts about AI music with the default stance ``ensemble``, which
    keeps its results). Only when that stance model is the one the signals step uses
    (``AIMUSIC_STANCE_MODEL``), and only for the rows the signals step would score itself: a text that is not
    empty, of a language the stance model reads by the post's *stored* tag (``todo``'s ``lang``, as the signals
    step reads it; a repost of the same text in another language gets no row here). ``todo`` holds the posts'
    ``source``, ``post_id``, ``lang`` and ``text_md5``, in the order of ``texts``. Returns the rows written."""
    from aimusic.core.config import cached_settings
    from sentiment.stance import DEFAULT_STANCE, load_stance

    stance = getattr(scorer, "stance", None)
    kept = getattr(stance, "kept", None)
    if kept is None or not len(texts):
        return 0
    configured = (cached_settings().stance_model or DEFAULT_STANCE).strip().lower()
    if configured != DEFAULT_STANCE or load_stance(configured).model_id != stance.model_id:  # type: ignore[union-attr]
        return 0
    langs = todo.column("lang").to_pylist()
    probs = np.asarray(kept(list(texts)))
    rows = [i for i, (text, lang) in enumerate(zip(texts, langs, strict=True))
            if text.strip() and stance.supports(lang) and not np.isnan(probs[i]).any()]  # type: ignore[union-attr]
    if not rows:
        return 0
    return _upsert_stances(store, stance.model_id, todo, rows, stance.decided(probs[rows]))  # type: ignore[union-attr]


def _upsert_stances(store: Store, model_id: str, todo: pa.Table, rows: list[int], result: ScoreBatch) -> int:
    """Write the stance rows ``result`` (one per index of ``rows`` into ``todo``) in one statement."""
    from sentiment.stance import STANCE_LABELS

    take = pa.array(rows, pa.int64())
    table = pa.table(
        {
            "source": todo.column("source").take(take),
            "post_id": todo.column("post_id").take(take),
            "model": pa.array([model_id] * len(rows), pa.string()),
            "label": pa.array(result.labels, pa.string()),
            STANCE_LABELS[0]: pa.array(result.probs[:, 0], pa.float64(), from_pandas=True),
            STANCE_LABELS[1]: pa.array(result.probs[:, 1], pa.float64(), from_pandas=True),
            STANCE_LABELS[2]: pa.array(result.probs[:, 2], pa.float64(), from_pandas=True),
            "status": pa.array(result.status, pa.string()),
            "text_md5": todo.column("text_md5").take(take),
        }
    )
    with store.connect() as con:
        con.register("_stance_in", table)
        con.execute(
            """INSERT INTO stances BY NAME
               SELECT *, now() AS scored_at FROM _stance_in
               ON CONFLICT (source, post_id, model) DO UPDATE SET label = excluded.label, "anti" = excluded."anti",
                 "neutral" = excluded."neutral", "pro" = excluded."pro", status = excluded.status,
                 text_md5 = excluded.text_md5, scored_at = excluded.scored_at"""
        )
        con.unregister("_stance_in")
    return len(rows)


# --- everything ------------------------------------------------------------------------------------------


def update_signals(
    store: Store,
    topics: Topics,
    *,
    stance_model: str | None = None,
    arguments: bool = True,
    stance: bool = True,
    limit: int | None = None,
    progress: Progress | None = None,
) -> SignalsSummary:
    """Entities, arguments and stance for every post lacking them. A model that cannot load here (no encoder,
    an NLI model not in the cache) is skipped with a note; the others still run.

    ``stance_model="none"`` (or ``AIMUSIC_STANCE_MODEL=none``) turns the encoder off: no stance, and arguments
    by keywords only - for huge backfills on small machines.
    """
    from sentiment.base import ScorerError
    from sentiment.stance import load_stance

    started = time.perf_counter()
    summary = SignalsSummary()
    summary.entities = tag_entities(store, topics)
    encoder = (stance_model or "").strip().lower() not in ("none", "off")
    stance = stance and encoder
    tagger: ArgumentTagger | None = None
    scorer = None
    if arguments and topics.arguments:
        tagger = ArgumentTagger.from_topics(topics, use_embeddings=encoder)
        try:
            if encoder:
                tagger.description_embeddings()
        except ScorerError as exc:
            summary.notes.append(f"arguments by keywords only ({exc})")
            tagger = ArgumentTagger.from_topics(topics, use_embeddings=False)
        summary.arguments_model = tagger.model_id
    if stance:
        try:
            scorer = load_stance(stance_model)
            summary.stance_model = scorer.model_id
        except ScorerError as exc:
            summary.notes.append(f"stance skipped: {exc}")
            log.warning("stance model cannot load here: %s", exc)
    summary.arguments, summary.stances = tag_arguments_and_stance(
        store, tagger, scorer, limit=limit, progress=progress
    )
    summary.seconds = time.perf_counter() - started
    log.info(summary.line())
    return summary

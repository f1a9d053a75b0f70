"""The default stance model ``stance-ens``: the mean of the two offline stance models' probabilities.

Members, both trained on the same project files (:data:`sentiment.train_stance.TRAIN_SETS`):

- ``stance-ft`` (:mod:`sentiment.stance_ft`): all-MiniLM-L6-v2 fine-tuned end to end on target/text pairs;
- ``stance-minilm`` (:class:`sentiment.stance.MinilmStanceScorer`): a logistic-regression head on the frozen
  shared encoder's embeddings.

Why both: the fine-tuned model is the better single model on sentences written like its training files; the
head on frozen embeddings loses less on posts unlike them (reworded real posts, the harder written sets). Their
mean, with equal weights (nothing tuned), beat both on all held-out sentences together and on the hardest
written set, and lost a little to the fine-tuned model on two sets (figures and the data they were measured
on: ``stance_ens.json`` and docs/debate.md). Both members are temperature-calibrated; a post whose
highest mean probability is below ``unclear_below`` (the fine-tuned member's, chosen on its
training hold-out) is stored as ``unclear``.

A post of two or more sentences is read twice: whole, and sentence by sentence (:func:`sentences`); the mean of
its sentences' probabilities weighs as much as the whole post's. Real comments are longer than the sentences the
members learned from, and a side taken in one sentence is diluted in the whole; reading the sentences too
raised macro recall on six of the seven sets it was measured on (figures in ``stance_ens.json``,
``whole_posts_only`` for the comparison). It costs a second pass over the sentences (about 2 per post on the
held-out sets). The mean of two views that disagree is under-confident, so those posts' probabilities are
sharpened by :data:`TEMPERATURE` (one parameter, fitted on the split posts of the written held-out sets by
:mod:`sentiment.stance_ens_figures`, which reports the calibration error cross-fitted; it moves no side, only
confidences and so which posts are stored as ``unclear``). A post of one sentence keeps the members' mean.

In the signals pipeline the head reads the embeddings computed once per batch for the argument matcher (whole
posts; sentences are embedded here). ``model_id`` is ``stance-ens@<12 hex of the members' ids and the
reading>``: retraining either member, or reading whole posts only, gives a new id.

Results are kept per process (:data:`RESULTS_SIZE` texts, keyed by model id and text, least recently used
first out, :meth:`EnsembleStanceScorer.kept`): the offline sentiment default ``minilm-debate`` reads posts
about AI music with this stance in the scoring step, which then stores those rows in ``stances``
(:func:`aimusic.debate.signals.record_read_stances`), so the signals step, in the same run or a later process,
does not read them again. :func:`shared` hands out one instance of the shipped ensemble per process (and
runtime setting), so the scoring and signals steps also share its loaded members.

Measured (held-out sets, and ``--dev`` files such as realistic_dev.tsv) by :mod:`sentiment.stance_ens_figures`,
which writes ``stance_ens.json``::

    python -m sentiment.stance_ens_figures --dev ../shared/data/debate/realistic_dev.tsv
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sentiment.base import ScorerError
from sentiment.stance import WEIGHTS_DIR, MinilmStanceScorer, StanceScorer, measured_for

PROVENANCE_FILE = WEIGHTS_DIR / "stance_ens.json"
#: how the ensemble reads a post (part of its model id)
READING = "post+sentences/2"
#: a longer post is read by its first and last sentences, this many in all (a 100 KB text stays cheap)
MAX_SENTENCES = 8
#: softmax(log p / TEMPERATURE) of the read-by-sentence mean (see the module doc; stance_ens.json "calibration")
TEMPERATURE = 0.65
_SENTENCE_BREAK = re.compile(r"(?<=[.!?\u2026])\s+|\n\s*")  # linear: no pattern can start inside a space run
#: how many posts' results one process keeps (about 300 bytes each): a monitoring run's new posts fit
RESULTS_SIZE = 50_000
_RESULTS: OrderedDict[bytes, np.ndarray] = OrderedDict()
_RESULTS_LOCK = threading.Lock()


def sentences(text: str, max_sentences: int = MAX_SENTENCES) -> list[str]:
    """The sentences of a post worth reading alone (three words or more), or ``[]`` when there are fewer than two
    (the post is then its own sentence). At most ``max_sentences``: the first and the last halves."""
    parts = [p.strip() for p in _SENTENCE_BREAK.split(text) if len(p.split()) >= 3]
    if len(parts) < 2:
        return []
    if len(parts) > max_sentences:
        half = max_sentences // 2
        parts = parts[:half] + parts[-(max_sentences - half):]
    return parts


class EnsembleStanceScorer(StanceScorer):
    """Mean of ``stance-ft`` and ``stance-minilm``; English only (both members are)."""

    languages = frozenset({"en"})
    uses_embeddings = True

    def __init__(self, ft_weights: Path | str | None = None, head_file: Path | str | None = None, *,
                 read_sentences: bool = True) -> None:
        """``read_sentences=False`` reads whole posts only (the comparison ``stance_ens.json`` reports)."""
        from sentiment.stance_ft import FinetunedStanceScorer

        self.finetuned = FinetunedStanceScorer(ft_weights)
        self.head = MinilmStanceScorer(Path(head_file) if head_file else None, eager=False)
        self.unclear_below = self.finetuned.unclear_below
        self.read_sentences = read_sentences
        reading = f"|{READING}|T={TEMPERATURE}" if read_sentences else ""
        members = f"{self.finetuned.model_id}|{self.head.model_id}{reading}"
        self.model_id = f"stance-ens@{hashlib.sha256(members.encode()).hexdigest()[:12]}"

    @classmethod
    def from_argument(cls, arg: str | None) -> EnsembleStanceScorer:
        """``ensemble`` or ``ensemble:<stance_ft.npz>,<stance_head.npz>`` (either part may be left empty)."""
        if not arg:
            return cls()
        ft, sep, head = arg.partition(",")
        if not sep:
            raise ScorerError(f"ensemble:{arg}: name both files, ensemble:<stance_ft.npz>,<stance_head.npz> "
                              "(leave a part empty for the shipped one)")
        return cls(ft.strip() or None, head.strip() or None)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        def compute(todo: list[int]) -> np.ndarray:
            batch = [texts[i] for i in todo]
            return self._with_sentences(batch, self.members_mean(batch))

        return self._remembered(texts, compute)

    def predict_with_embeddings(self, texts: Sequence[str], embeddings: np.ndarray) -> np.ndarray:
        def compute(todo: list[int]) -> np.ndarray:
            batch = [texts[i] for i in todo]
            whole = (self.finetuned.predict_proba(batch) + self.head.predict_embeddings(embeddings[todo])) / 2.0
            return self._with_sentences(batch, whole)

        return self._remembered(texts, compute)

    def kept(self, texts: Sequence[str]) -> np.ndarray:
        """The results kept for ``texts`` (rows of NaN for texts this model has not read in this process);
        computes nothing."""
        out = np.full((len(texts), 3), np.nan)
        with _RESULTS_LOCK:
            for i, text in enumerate(texts):
                hit = _RESULTS.get(_result_key(self.model_id, text))
                if hit is not None:
                    out[i] = hit
        return out

    def _remembered(self, texts: Sequence[str], compute: Callable[[list[int]], np.ndarray]) -> np.ndarray:
        """Rows for ``texts``: kept results where this model read the same text before in this process,
        ``compute(indices)`` for the others (one call), which are then kept."""
        out = np.zeros((len(texts), 3))
        if len(texts) == 0:
            return out
        keys = [_result_key(self.model_id, t) for t in texts]
        todo: list[int] = []
        with _RESULTS_LOCK:
            for i, key in enumerate(keys):
                hit = _RESULTS.get(key)
                if hit is None:
                    todo.append(i)
                else:
                    out[i] = hit
                    _RESULTS.move_to_end(key)
        if todo:
            fresh = np.asarray(compute(todo), dtype=np.float64)
            out[todo] = fresh
            with _RESULTS_LOCK:
                for i, row in zip(todo, fresh, strict=True):
                    _RESULTS[keys[i]] = row.copy()  # not a view: it would keep the whole batch alive
                while len(_RESULTS) > RESULTS_SIZE:
                    _RESULTS.popitem(last=False)
        return out

    def _with_sentences(self, texts: Sequence[str], whole: np.ndarray) -> np.ndarray:
        """The mean of ``whole`` (the posts' probabilities) and of each post's sentences' mean probabilities,
        sharpened by :data:`TEMPERATURE` (posts of one sentence: ``whole`` unchanged)."""
        if not self.read_sentences:
            return whole
        return read_by_sentence(texts, whole, self.members_mean, TEMPERATURE)

    def members_mean(self, texts: Sequence[str]) -> np.ndarray:
        """The mean of the two members' probabilities (rows: texts; columns: anti, neutral, pro)."""
        return (self.finetuned.predict_proba(texts) + self.head.predict_proba(texts)) / 2.0

    def measured(self) -> dict[str, Any]:
        return measured_for(self.model_id)


def _result_key(model_id: str, text: str) -> bytes:
    return hashlib.blake2b(f"{model_id}\0{text}".encode("utf-8", "surrogatepass"), digest_size=16).digest()


def forget_results() -> None:
    """Empty the kept results (benchmarks and tests that must time or exercise the members)."""
    with _RESULTS_LOCK:
        _RESULTS.clear()


def shared() -> EnsembleStanceScorer:
    """The shipped ensemble, loaded once per process for the current runtime setting and weight files (the
    scoring and signals steps of a run share it, and its kept results)."""
    from sentiment import runtime as rt
    from sentiment import stance, stance_ft

    return _shared(rt.runtime_setting(), os.environ.get(rt.CACHE_ENV, ""), str(stance_ft.WEIGHTS_FILE),
                   str(stance.HEAD_FILE))


@functools.lru_cache(maxsize=1)  # a changed runtime setting replaces the instance
def _shared(runtime: str, cache_dir: str, ft_weights: str, head_file: str) -> EnsembleStanceScorer:
    return EnsembleStanceScorer(ft_weights, head_file)


def read_by_sentence(texts: Sequence[str], whole: np.ndarray, predict: Callable[[Sequence[str]], np.ndarray],
                     temperature: float = 1.0) -> np.ndarray:
    """:func:`average_sentences`, then :func:`sharpen` the posts read sentence by sentence by ``temperature``; a
    post of one sentence keeps its row unchanged."""
    out, read = average_sentences(texts, whole, predict)
    out[read] = sharpen(out[read], temperature)
    return out


def average_sentences(texts: Sequence[str], whole: np.ndarray,
                      predict: Callable[[Sequence[str]], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(each post's ``whole`` row averaged with the mean of ``predict`` over its :func:`sentences`, which posts
    were: a boolean mask); one ``predict`` call for all sentences of the batch."""
    out = np.array(whole, dtype=np.float64)
    split = [sentences(t) for t in texts]
    read = np.array([bool(parts) for parts in split], dtype=bool)
    flat = [s for parts in split for s in parts]
    if not flat:
        return out, read
    probs = predict(flat)
    start = 0
    for i in np.flatnonzero(read):
        n = len(split[i])
        out[i] = (out[i] + probs[start:start + n].mean(axis=0)) / 2.0
        start += n
    return out, read


def sharpen(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(probs) / temperature)`` row by row (temperature < 1 sharpens)."""
    from sentiment.finetuned import softmax  # loaded with the fine-tuned member anyway

    return softmax(np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)) / temperature)

"""``minilm-debate``: the tweet sentiment model, read together with the post's stance for posts about AI music.

On posts about AI music, tone and position go together far more than on tweets at large: in the project's
written training posts (``debate_train.tsv`` and ``debate_train2.tsv``, on-topic rows) 73% of the negative
posts are against AI music and 82% of the positive ones for it. A tweet model alone misses that: a calm post
that takes a clear side often reads as neutral to it. This scorer combines two
calibrated posteriors, the sentiment of ``minilm-ft`` and the stance of the default stance model, the
``ensemble`` (:mod:`sentiment.stance_ens`; the signals step's instance: the scoring step stores the stance it
read, so a monitoring run reads each post's stance once), as a product of experts under the co-occurrence of
sentiment and stance labels in those training posts::

    P(sentiment, stance | post) ~ P_sentiment(s | post) * P_stance(t | post) * P(s, t) / (P(s) P(t))

and returns the sentiment marginal. Nothing is tuned: the ratio is counted from the training posts (add-one
smoothing), with no weight or threshold chosen on any evaluated set.

Only posts **about AI music** are read this way: the project's relevance filter (rules and second stage,
with the broad class on as collection runs it by default, whatever ``AIMUSIC_RELEVANCE_BROAD`` says, since
the id must not depend on a setting) on the project's own topics file ``data/topics.toml`` decides, for every
text, in ``aimusic eval`` and in the monitor alike (the co-occurrence is that debate's, not tweets': applied
to every tweet of val.tsv it costs 0.010 macro recall, see ``read_all_with_stance`` in the json). Other texts
get ``minilm-ft``'s probabilities unchanged. The monitor's stored posts passed the monitor's own relevance
filter (the same check unless a setting changed it), so nearly all are read with stance. The model id names
the sentiment model, the stance model, the counts and this check (the relevance model and the *content* of
the topics file: editing its terms gives a new id, so posts are scored again; point ``AIMUSIC_TOPICS`` at a
copy to track other terms without that). The stance model's fine-tuned member loads with this scorer; the
shared encoder and the relevance filter on first use.

Until 28 November 2026 the stance member was the ``minilm`` stance head alone and the check ran without the
broad class (``minilm-debate@a2c3b3a27ead``). The ensemble reads stance better on every held-out set
(docs/debate.md); with it and the broad class, on-topic macro recall moved by +0.015 / -0.015 / +0.010 /
+0.016 on the four written held-out sets (+0.008 over their 902 posts together) and from 0.599 to 0.662 on
the reworded real posts (within that set's noise). It costs about twice the scoring time on posts about AI
music, which the signals step then saves: the scoring step stores the stance it read
(:func:`aimusic.debate.signals.record_read_stances`), so those posts are not read again (docs/models.md).

``python -m sentiment.debate_context [--dev FILE]`` counts the co-occurrence and measures this scorer and
``minilm-ft`` on the same rows (val.tsv and the held-out debate sets), writing
``sentiment/weights/debate_context.json``, which the scorer reads.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from sentiment.base import LABELS, Scorer, ScorerError
from sentiment.head import WEIGHTS_DIR

log = logging.getLogger(__name__)

CONTEXT_FILE = WEIGHTS_DIR / "debate_context.json"
BUILD_COMMAND = "python -m sentiment.debate_context --dev ../shared/data/debate/realistic_dev.tsv"


def cooccurrence_ratio(counts: np.ndarray) -> np.ndarray:
    """``P(s, t) / (P(s) P(t))`` from a (sentiment x stance) count matrix, add-one smoothed."""
    joint = (np.asarray(counts, np.float64) + 1.0) / (np.asarray(counts, np.float64) + 1.0).sum()
    return joint / (joint.sum(axis=1, keepdims=True) * joint.sum(axis=0, keepdims=True))


def combine(sentiment: np.ndarray, stance: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """Sentiment marginal of the product of experts (rows: posts; columns in LABELS / STANCE_LABELS order)."""
    joint = sentiment[:, :, None] * stance[:, None, :] * ratio[None, :, :]
    marginal = joint.sum(axis=2)
    return marginal / marginal.sum(axis=1, keepdims=True)


def read_context(path: Path = CONTEXT_FILE) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        counts = np.asarray(record["counts"], np.float64)
    except (OSError, ValueError, KeyError) as exc:
        raise ScorerError(f"the debate context {path} is missing or unreadable ({exc}); build it with "
                          f"`{BUILD_COMMAND}`") from None
    if counts.shape != (len(LABELS), 3):
        raise ScorerError(f"{path}: counts must be a 3x3 matrix (sentiment x stance), got {counts.shape}")
    return record


class DebateContextScorer(Scorer):
    """``minilm-debate@<12 hex>``: id of the sentiment model, the stance model, the counts and the relevance check."""

    languages = frozenset({"en"})

    def __init__(self, context_file: Path | str | None = None, *, base: Scorer | None = None,
                 stance: Any | None = None, gate: Any | None = None) -> None:
        from sentiment.finetuned import MinilmFinetunedScorer
        from sentiment.stance_ens import shared

        path = Path(context_file) if context_file else CONTEXT_FILE
        self.record = read_context(path)
        self.ratio = cooccurrence_ratio(np.asarray(self.record["counts"]))
        self.base = base or MinilmFinetunedScorer()
        self.stance = stance or shared()  # the signals step's instance: one load, each post's stance read once
        self.gate = gate if gate is not None else _Gate()
        parts = "|".join([self.base.model_id, self.stance.model_id, json.dumps(self.record["counts"]),
                          self.gate.model_id])
        self.model_id = f"minilm-debate@{hashlib.sha256(parts.encode()).hexdigest()[:12]}"
        self.provenance = self.record

    def about_ai_music(self, texts: Sequence[str]) -> np.ndarray:
        """Which texts the relevance filter keeps (rules and second stage)."""
        return np.array([d.relevant for d in self.gate.decide_many(list(texts))], dtype=bool)

    def predict_proba(self, texts: Sequence[str], *, everything: bool = False) -> np.ndarray:
        """``everything``: read every text with its stance (what the json reports as ``read_all_with_stance``)."""
        if len(texts) == 0:
            return np.zeros((0, len(LABELS)))
        probs = np.array(self.base.predict_proba(texts), dtype=np.float64)
        on = np.arange(len(texts)) if everything else np.flatnonzero(self.about_ai_music(texts))
        if len(on):
            stance = self.stance.predict_proba([texts[i] for i in on])
            probs[on] = combine(probs[on], stance, self.ratio)
        return probs


class _Gate:
    """The project's relevance filter on ``data/topics.toml`` (rules, then the second stage, with its broad class as
    collection runs it by default), built on first use; its id hashes the validated topics (not the file's bytes:
    comments do not count) and names the relevance model and the broad class."""

    def __init__(self, *, broad: bool = True) -> None:
        """``broad=False``: without the broad class, as ``minilm-debate@a2c3b3a27ead`` ran (benchmarks)."""
        from aimusic.core.config import DEFAULT_TOPICS
        from aimusic.core.topics import load_topics
        from aimusic.debate.semantic import load_semantic

        try:
            self.topics = load_topics(DEFAULT_TOPICS)
        except ValueError as exc:  # TopicsError: missing or invalid file
            raise ScorerError(f"minilm-debate needs the project's topics file: {exc}") from None
        content = self.topics.model_dump_json()
        self.stage = load_semantic()  # the filter built later uses this one (loaded once, named in the id)
        self.model_id = (f"topics@{hashlib.sha256(content.encode()).hexdigest()[:12]}"
                         f"+{getattr(self.stage, 'model_id', 'rules-only')}{'+broad' if broad else ''}")
        self.broad = broad
        self._filter: Any | None = None
        self._lock = threading.Lock()

    def decide_many(self, texts: list[str]) -> list[Any]:
        with self._lock:
            if self._filter is None:
                from aimusic.debate.relevance import RelevanceFilter

                self._filter = RelevanceFilter(self.topics, semantic=self.stage, broad=self.broad)
        return self._filter.decide_many(texts)


# --- building and measuring the context file ---------------------------------------------------------------


def _labelled(path: Path) -> list[tuple[str, str | None, str | None, bool]]:
    """(text, sentiment, stance, on topic) of each row with a text; ``relevant`` decides on topic when present,
    a missing or unknown label is ``None``; a tweet file's ``label`` column is its sentiment."""
    import csv

    from sentiment.evaluate import normalize_label

    out = []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            text = (row.get("text") or "").replace("\\n", "\n")
            if text.strip():
                out.append((text, normalize_label("sentiment", row.get("sentiment") or row.get("label") or ""),
                            normalize_label("stance", row.get("stance") or ""),
                            (row.get("relevant") or "1").strip() == "1"))
    return out


def count_pairs(paths: Sequence[Path]) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """(sentiment x stance) counts over the on-topic rows that carry both labels."""
    from aimusic.core.config import PROJECT_ROOT
    from aimusic.debate.training import file_record
    from sentiment.stance import STANCE_LABELS

    counts = np.zeros((len(LABELS), len(STANCE_LABELS)), np.int64)
    records = []
    for path in paths:
        pairs = [(s, t) for _, s, t, on in _labelled(path) if on and s and t]
        for s, t in pairs:
            counts[LABELS.index(s), STANCE_LABELS.index(t)] += 1
        records.append(file_record(path, PROJECT_ROOT, n=len(pairs)))
    return counts, records


def _rows(path: Path) -> tuple[list[str], list[str], list[bool]]:
    """(texts, sentiment labels, on topic) of the rows of a labelled file that carry a sentiment label."""
    rows = [(text, s, on) for text, s, _, on in _labelled(path) if s]
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def measure(scorer: DebateContextScorer, paths: Sequence[Path], what: dict[Path, str]) -> dict[str, Any]:
    """Macro recall of this scorer, of its sentiment model alone and of the combination applied to every row
    (no relevance check), on the same rows, per file (and on the file's on-topic rows when it has a ``relevant``
    column)."""
    from sentiment.evaluate import metrics

    out: dict[str, Any] = {}
    for path in paths:
        texts, labels, on_topic = _rows(path)
        if not texts:
            continue
        base = scorer.base.predict_proba(texts).argmax(axis=1)
        mine = scorer.predict_proba(texts).argmax(axis=1)
        every = scorer.predict_proba(texts, everything=True).argmax(axis=1)
        gated = scorer.about_ai_music(texts)
        figures: dict[str, Any] = {"data": what.get(path, "labelled file")}
        parts = {"all": list(range(len(texts)))}
        if not all(on_topic):
            parts["on_topic"] = [i for i, on in enumerate(on_topic) if on]
        for part, rows in parts.items():
            truth = [labels[i] for i in rows]
            m = metrics(truth, [LABELS[mine[i]] for i in rows], LABELS)
            figures[part] = {
                "n": len(rows), "read_with_stance": int(gated[rows].sum()),
                "macro_recall": round(m["macro_recall"], 4), "accuracy": round(m["accuracy"], 4),
                "confusion": m["confusion"],
                "sentiment_model_alone": round(metrics(truth, [LABELS[base[i]] for i in rows])["macro_recall"], 4),
                "read_all_with_stance": round(metrics(truth, [LABELS[every[i]] for i in rows])["macro_recall"], 4),
            }
        out[path.name] = figures
    return out


def main(argv: list[str] | None = None) -> int:
    from aimusic.debate.labelled import DATA_DIR

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--val", type=Path, default=Path("../shared/data/sentiment/val.tsv"),
                        help="tweets (label, text) measured only (default ../shared/data/sentiment/val.tsv)")
    parser.add_argument("--dev", type=Path, action="append", default=[], help="labelled sets to measure only")
    parser.add_argument("--out", type=Path, default=CONTEXT_FILE)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    train = [DATA_DIR / "debate_train.tsv", DATA_DIR / "debate_train2.tsv"]
    counts, files = count_pairs(train)
    record: dict[str, Any] = {
        "model": "minilm-debate",
        "counts": counts.tolist(),
        "rows": "sentiment (negative, neutral, positive) x stance (anti, neutral, pro)",
        "counted_on": {"files": files, "n": int(counts.sum()),
                       "what": "on-topic rows with both labels of the training posts written for the project"},
        "method": "product of experts: P_sentiment(s) * P_stance(t) * P(s,t)/(P(s)P(t)), add-one smoothed; "
                  "sentiment marginal; only for texts the relevance filter keeps; nothing tuned",
        "figures": "macro_recall: this scorer; sentiment_model_alone: minilm-ft; read_all_with_stance: the "
                   "combination applied to every row (no relevance check); read_with_stance: rows the check kept",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "reproduce": BUILD_COMMAND,
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    scorer = DebateContextScorer(args.out)
    written = "posts written for the project apart from the training files (all rows: on-topic and near misses)"
    held = [DATA_DIR / f"debate_heldout{n}.tsv" for n in ("", "2", "3", "4")]
    what = {args.val: "TweetEval validation tweets (val.tsv)", **{p: written for p in held},
            **{p: "development set (reworded real posts), never trained or tuned on" for p in args.dev}}
    paths = [p for p in (args.val, *held, *args.dev) if p.exists()]
    record.update({"model_id": scorer.model_id, "members": {"sentiment": scorer.base.model_id,
                                                            "stance": scorer.stance.model_id,
                                                            "gate": scorer.gate.model_id},
                   "measured": measure(scorer, paths, what)})
    args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    sys.stdout.write(json.dumps(record["measured"], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The command-line side of the debate signals (``aimusic signals``, ``aimusic eval --task stance|relevance``).

Thin: the work is in :mod:`aimusic.debate.signals`, :mod:`sentiment.stance`, :mod:`aimusic.debate.relevance`
and the one reader and metrics module :mod:`sentiment.evaluate`; these functions print figures (always with
the file and ``n`` they were measured on) and return an exit code.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from aimusic.debate.labelled import DATA_DIR, RELEVANCE_SET, split_of

STANCE_EVAL_SET = DATA_DIR / "stance_eval.tsv"


def _error(console: Console, message: str) -> int:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    return 2


def _measured_on(path: Path, n: int) -> str:
    return f"{path} (n={n:,})"


def stance_figures(model: str | None, path: Path, label_column: str | None = None) -> dict[str, Any]:
    """Load the stance model and the labelled file; return the figures (raises ScorerError/ValueError)."""
    import numpy as np

    from sentiment.evaluate import expected_calibration_error, metrics, read_tsv
    from sentiment.stance import STANCE_LABELS, TRUSTED_MACRO_RECALL, UNCLEAR, load_stance

    data = read_tsv(path, "stance", label_column=label_column)
    scorer = load_stance(model)
    started = time.perf_counter()
    batch = scorer.score(data.texts)
    seconds = time.perf_counter() - started
    scored = [i for i, s in enumerate(batch.status) if s in ("scored", UNCLEAR)]  # unclear: scored, no side
    probs = np.asarray(batch.probs, dtype=float)
    # forced: the most probable side, so the figure compares with models that have no "unclear"; an unscorable
    # post (empty, another language) counts as a miss unless its label is neutral
    ok = set(scored)
    forced = [STANCE_LABELS[int(np.argmax(probs[i]))] if i in ok else "neutral" for i in range(len(data))]
    m = metrics(data.labels, forced, STANCE_LABELS)
    confident = [i for i in scored if batch.labels[i] != UNCLEAR]
    sure = metrics([data.labels[i] for i in confident], [batch.labels[i] for i in confident], STANCE_LABELS) \
        if confident else None
    ece = expected_calibration_error(probs[scored], [STANCE_LABELS.index(data.labels[i]) for i in scored]) \
        if scored else None
    return {
        "task": "stance", "model": scorer.model_id, "data": str(path), "data_sha256": data.sha256,
        "label_column": data.label_column, "n": len(data), "rows_skipped": sum(data.skipped.values()),
        "macro_recall": round(m["macro_recall"], 4), "accuracy": round(m["accuracy"], 4),
        "macro_f1": round(m["macro_f1"], 4), "ece": None if ece is None else round(ece, 4),
        "recall": {k: round(v, 4) for k, v in m["recall"].items()},
        "precision": {k: round(v, 4) for k, v in m["precision"].items()},
        "confusion": m["confusion"], "labels": list(STANCE_LABELS), "absent": m["absent"],
        "pro_anti_confusions": int(m["confusion"][0][2] + m["confusion"][2][0]),
        "unclear": len(scored) - len(confident), "unclear_below": scorer.unclear_below,
        "macro_recall_when_not_unclear": round(sure["macro_recall"], 4) if sure else None,
        "unscored": len(data) - len(scored), "posts_per_s": round(len(data) / max(seconds, 1e-9), 1),
        "experimental": m["macro_recall"] < TRUSTED_MACRO_RECALL,
    }


def eval_stance_command(data: Path | None, model: str | None, *, as_json: bool, console: Console, out: Console,
                        label_column: str | None = None) -> int:
    """Macro recall (forced to a side), ECE, what ``unclear`` changes, per-class figures and the confusion matrix."""
    from sentiment.base import ScorerError
    from sentiment.stance import STANCE_LABELS, TRUSTED_MACRO_RECALL

    path = data or STANCE_EVAL_SET
    try:
        figures = stance_figures(model, path, label_column)
    except (OSError, ValueError, ScorerError) as exc:
        return _error(console, str(exc))
    if as_json:
        out.print(json.dumps(figures), soft_wrap=True, highlight=False, markup=False)
        return 0
    out.print(f"stance model {figures['model']} measured on {_measured_on(path, figures['n'])} "
              f"({figures['posts_per_s']} posts/s)", soft_wrap=True)
    out.print(f"macro-averaged recall {figures['macro_recall']:.3f} (each post forced to its most probable side), "
              f"accuracy {figures['accuracy']:.3f}, expected calibration error {figures['ece'] or 0:.3f}"
              + (f"  [yellow](experimental: below {TRUSTED_MACRO_RECALL:.2f})[/]" if figures["experimental"] else ""),
              soft_wrap=True)
    if figures["unclear_below"]:
        sure = figures["macro_recall_when_not_unclear"]
        out.print(f"{figures['unclear']} of {figures['n']} posts below confidence {figures['unclear_below']:.2f} "
                  f"would be stored as 'unclear'; macro recall of the others {sure if sure is not None else 'n/a'}",
                  soft_wrap=True)
    table = Table(title="confusion matrix (rows: true label, columns: predicted)")
    table.add_column("true \\ predicted")
    for lab in STANCE_LABELS:
        table.add_column(lab, justify="right")
    table.add_column("recall", justify="right")
    table.add_column("precision", justify="right")
    for i, lab in enumerate(STANCE_LABELS):
        table.add_row(lab, *(str(v) for v in figures["confusion"][i]), f"{figures['recall'][lab]:.3f}",
                      f"{figures['precision'][lab]:.3f}")
    out.print(table)
    return 0


def relevance_figures(path: Path, model: str | None, topics_path: Path | None = None,
                      label_column: str | None = None) -> dict[str, Any]:
    """Precision and recall of the rules alone and of both stages on a labelled file."""
    import numpy as np

    from aimusic.core.topics import load_topics
    from aimusic.debate.relevance import RelevanceFilter
    from aimusic.debate.semantic import load_semantic
    from sentiment.evaluate import binary_metrics, expected_calibration_error, read_tsv

    data = read_tsv(path, "relevance", label_column=label_column)
    name = (model or "semantic").strip()
    family, _, arg = name.partition(":")
    if family not in ("rules", "semantic"):
        raise ValueError(f"unknown relevance model {name!r}: use rules, semantic or semantic:<file> (a "
                         "relevance head or a fine-tuned relevance model)")
    sem = None if family == "rules" else load_semantic(Path(arg) if arg else None)
    if arg and sem is None:
        raise ValueError(f"the second stage in {arg} cannot load (see the logged note)")
    topics = load_topics(topics_path)
    both = RelevanceFilter(topics, semantic=sem)
    truth = [lab == "relevant" for lab in data.labels]
    started = time.perf_counter()
    decisions = both.decide_many(data.texts, data.communities)
    seconds = time.perf_counter() - started
    rules = [both.rules(t, c).relevant for t, c in zip(data.texts, data.communities, strict=True)]
    figures: dict[str, Any] = {
        "task": "relevance", "data": str(path), "data_sha256": data.sha256, "label_column": data.label_column,
        "n": len(data), "rows_skipped": sum(data.skipped.values()),
        "model": sem.model_id if sem is not None else "rules", "rules": binary_metrics(truth, rules),
        "posts_per_s": round(len(data) / max(seconds, 1e-9), 1),
    }
    if sem is not None:
        predicted = [d.relevant for d in decisions]
        figures["rules+semantic"] = binary_metrics(truth, predicted)
        figures["kept_by_semantic"] = sum(d.reason == "semantic" for d in decisions)
        figures["broad_class"] = both.broad_on  # one-stem texts asked too (AIMUSIC_RELEVANCE_BROAD)
        figures["semantic_available"] = sem.available
        p = np.array([np.nan if v is None else v for v in sem.probabilities(data.texts)], dtype=float)
        ok = np.isfinite(p)
        if ok.any():
            figures["classifier_ece"] = round(expected_calibration_error(
                np.column_stack([1 - p[ok], p[ok]]), [int(t) for t, k in zip(truth, ok, strict=True) if k]), 4)
    else:
        predicted = rules
    if Path(path).name == RELEVANCE_SET.name:  # the rules were tuned on its dev part only
        for part in ("dev", "heldout"):
            idx = [i for i, t in enumerate(data.texts) if split_of(t) == part]
            figures[part] = binary_metrics([truth[i] for i in idx], [predicted[i] for i in idx])
    return figures


def eval_relevance_command(data: Path | None, topics_path: Path | None, *, as_json: bool, out: Console,
                           console: Console, model: str | None = None, label_column: str | None = None) -> int:
    """Precision and recall of the relevance filter on a labelled set: rules alone, and with the second stage."""
    from aimusic.core.topics import TopicsError
    from sentiment.base import ScorerError

    path = data or RELEVANCE_SET
    try:
        figures = relevance_figures(path, model, topics_path, label_column)
    except (OSError, ValueError, TopicsError, ScorerError) as exc:
        return _error(console, str(exc))
    if as_json:
        out.print(json.dumps(figures), soft_wrap=True, highlight=False, markup=False)
        return 0
    out.print(f"relevance measured on {_measured_on(path, figures['n'])}, model {figures['model']}", soft_wrap=True)
    for name in ("rules", "rules+semantic", "dev", "heldout"):
        if name in figures:
            r = figures[name]
            out.print(f"{name:<15} precision {r['precision']:.3f}  recall {r['recall']:.3f}  f1 {r['f1']:.3f}  "
                      f"(tp {r['tp']} fp {r['fp']} fn {r['fn']} tn {r['tn']}, n={r['n']})", soft_wrap=True)
    if "kept_by_semantic" in figures:
        broad = "on" if figures["broad_class"] else "off"
        out.print(f"kept by the second stage: {figures['kept_by_semantic']} (broad class {broad}); expected "
                  f"calibration error of its probabilities {figures.get('classifier_ece', float('nan')):.3f}"
                  + ("" if figures["semantic_available"] else " [yellow](encoder unavailable: rules only)[/]"),
                  soft_wrap=True)
    return 0


def signals_command(db: Path, topics_path: Path | None, stance_model: str | None, *, limit: int | None,
                    console: Console, out: Console) -> int:
    """Entities, arguments and stance for every stored post lacking them (resumable)."""
    from rich.progress import Progress

    from aimusic.core.topics import TopicsError, load_topics
    from aimusic.debate.signals import ArgumentTagger, count_pending, update_signals
    from aimusic.store.db import Store, StoreError
    from sentiment.base import ScorerError
    from sentiment.stance import load_stance

    try:
        store = Store(db)
        topics = load_topics(topics_path)
        no_encoder = (stance_model or "").strip().lower() in ("none", "off")
        tagger = ArgumentTagger.from_topics(topics, use_embeddings=not no_encoder) if topics.arguments else None
        args_model = tagger.model_id if tagger else None
        stance_id = None if no_encoder else load_stance(stance_model).model_id
        pending = count_pending(store, args_model, stance_id)
    except (StoreError, TopicsError, ScorerError) as exc:
        return _error(console, str(exc))
    total = min(pending, limit) if limit is not None else pending
    with Progress(console=console) as bar:
        task = bar.add_task("arguments and stance", total=total)
        summary = update_signals(store, topics, stance_model=stance_model, limit=limit,
                                 progress=lambda n: bar.advance(task, n))
    out.print(summary.line())
    return 0


def eval_task_command(task: str, data: Path | None, model: str | None, *, as_json: bool, console: Console,
                      out: Console, label_column: str | None = None) -> int:
    """``aimusic eval --task stance|relevance``. ``--model``: the stance model (``ensemble``, ``minilm-ft``, ``minilm``,
    ``nli:<id>``); for
    relevance ``semantic`` (default: rules and the shipped second stage), ``rules`` or ``semantic:<file>`` (a head or
    a fine-tuned relevance model)."""
    if task == "stance":
        return eval_stance_command(data, model, as_json=as_json, console=console, out=out, label_column=label_column)
    if task == "relevance":
        return eval_relevance_command(data, None, as_json=as_json, out=out, console=console, model=model,
                                      label_column=label_column)
    return _error(console, f"unknown task {task!r}: use sentiment, stance or relevance")

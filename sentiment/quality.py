"""What is known of a shipped sentiment model's quality, by model id, without loading it.

The figures come from the provenance files written when the model was built (``debate_context.json`` for
``minilm-debate``, ``minilm_ft.json`` for ``minilm-ft``), each with the data it was measured on, and only when the
file describes exactly that model id: figures of another version are never shown for this one. The dashboard
puts them next to its sentiment charts (issue 12: a figure always names its data).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from sentiment.head import WEIGHTS_DIR


def measured_sentiment(model_id: str | None, weights_dir: Path = WEIGHTS_DIR) -> list[str]:
    """Short phrases such as ``"0.73 on 2,000 TweetEval validation tweets"`` (macro-averaged recall), most general
    first; ``[]`` when no shipped provenance file describes ``model_id``."""
    if not model_id:
        return []
    family = model_id.partition("@")[0]
    if family == "minilm-debate":
        return _debate(_read(weights_dir / "debate_context.json"), model_id)
    if family == "minilm-ft":
        record = _read(weights_dir / "minilm_ft.json")
        sha = str(record.get("file_sha256", ""))
        val = record.get("val") or {}
        if sha and model_id == f"minilm-ft@{sha[:12]}" and "macro_recall" in val:
            return [f"{val['macro_recall']:.2f} on {val['rows']:,} TweetEval validation tweets"]
    return []


def _debate(record: dict[str, Any], model_id: str) -> list[str]:
    from aimusic.debate.correction import macro_recall

    if record.get("model_id") != model_id:
        return []
    measured = record.get("measured") or {}
    out = []
    val = (measured.get("val.tsv") or {}).get("all")
    if val:
        out.append(f"{val['macro_recall']:.2f} on {val['n']:,} TweetEval validation tweets")
    written = [v["on_topic"] for name, v in measured.items()
               if name.startswith("debate_heldout") and "on_topic" in v]
    if written:
        pooled = np.sum([part["confusion"] for part in written], axis=0)
        n = sum(part["n"] for part in written)
        out.append(f"{float(macro_recall(pooled)):.2f} on {n:,} posts about AI music written for the project "
                   "(held out)")
    real = (measured.get("realistic_dev.tsv") or {}).get("on_topic")
    if real:
        out.append(f"{real['macro_recall']:.2f} on {real['n']} reworded real posts about AI music (a development "
                   "set: about ±0.08)")
    return out


def _read(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}

"""Train the offline default's classification head: ``python -m sentiment.train_head --data PATH/train.tsv``
(or ``aimusic train-head --data PATH``).

Reproduces ``sentiment/weights/minilm_head.npz`` and its provenance record ``minilm_head.json`` from the
data file alone:

1. read the TSV (``label``/``text``), prepare every text exactly as the scorer does (``@user``, ``http``,
   head+tail) and embed it with the packaged all-MiniLM-L6-v2 (cached on disk outside the repository,
   keyed by the data's hash, the encoder version and the preparation version);
2. choose the regularisation strength ``C`` on a stratified 15% hold-out split *of the training file*
   (macro-averaged recall, TweetEval's metric), with class-balanced weights so the minority class
   (negative, 16% of train) is not drowned out;
3. refit a multinomial logistic regression on the whole training file with that ``C`` and save the
   coefficients (numpy inference; scikit-learn is needed only here).

No evaluation data is read: report figures on ``val.tsv`` with ``aimusic eval``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from sentiment.base import LABELS, ScorerError
from sentiment.evaluate import metrics, read_tsv
from sentiment.head import HEAD_FILE, PREPARE_VERSION, PROVENANCE_FILE, Head, features

log = logging.getLogger(__name__)

C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
HOLDOUT = 0.15
SEED = 0
MAX_ITER = 2_000
CHUNK = 2_000


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aimusic-monitor"


def embed_cached(texts: list[str], key: str, cache_dir: Path | None) -> np.ndarray:
    """Features for ``texts``, computed in chunks with progress lines, cached as ``<cache_dir>/<key>.npy``."""
    target = cache_dir / f"head-features-{key}.npy" if cache_dir else None
    if target and target.exists():
        cached = np.load(target)
        if cached.shape[0] == len(texts):
            log.info("using cached features %s", target)
            return cached
    started = time.perf_counter()
    parts = []
    for i in range(0, len(texts), CHUNK):
        parts.append(features(texts[i : i + CHUNK]))
        done = min(i + CHUNK, len(texts))
        rate = done / (time.perf_counter() - started)
        log.info("embedded %d/%d texts (%.0f/s, ~%.0fs left)", done, len(texts), rate, (len(texts) - done) / rate)
    out = np.concatenate(parts)
    if target:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp.npy")
        np.save(tmp, out)
        tmp.replace(target)
    return out


def stratified_split(y: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (fit, holdout): ``share`` of every class goes to the hold-out."""
    rng = np.random.default_rng(seed)
    hold = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        hold.append(idx[: round(len(idx) * share)])
    holdout = np.sort(np.concatenate(hold))
    mask = np.ones(len(y), bool)
    mask[holdout] = False
    return np.flatnonzero(mask), holdout


def fit_head(x: np.ndarray, y: np.ndarray, c: float, seed: int) -> Head:
    from sklearn.linear_model import LogisticRegression

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-8] = 1.0
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=MAX_ITER, random_state=seed)
    model.fit((x - mean) / scale, y)
    order = [list(model.classes_).index(i) for i in range(len(LABELS))]
    return Head(coef=model.coef_[order], bias=model.intercept_[order], mean=mean, scale=scale)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def train(
    data: str | Path,
    *,
    out: Path = HEAD_FILE,
    provenance_out: Path = PROVENANCE_FILE,
    cache_dir: Path | None = None,
    c_grid: tuple[float, ...] = C_GRID,
    seed: int = SEED,
) -> dict[str, Any]:
    """Train the head on ``data`` and write it with its provenance; return the provenance record."""
    from sentiment.embedding import encoder_version

    started = time.perf_counter()
    ds = read_tsv(data)
    y = np.array([LABELS.index(label) for label in ds.labels])
    encoder = encoder_version()
    key = hashlib.sha256(f"{ds.sha256}|{encoder}|{PREPARE_VERSION}".encode()).hexdigest()[:16]
    log.info("training the sentiment head on %d texts from %s (%s)", len(ds), ds.path, encoder)
    x = embed_cached(ds.texts, key, cache_dir).astype(np.float64)

    fit_idx, hold_idx = stratified_split(y, HOLDOUT, seed)
    selection = []
    for c in c_grid:
        head = fit_head(x[fit_idx], y[fit_idx], c, seed)
        pred = head.predict_proba(x[hold_idx]).argmax(axis=1)
        m = metrics([LABELS[i] for i in y[hold_idx]], [LABELS[i] for i in pred])
        selection.append({"C": c, "macro_recall": round(m["macro_recall"], 4), "accuracy": round(m["accuracy"], 4),
                          "macro_f1": round(m["macro_f1"], 4)})
        log.info("C=%g: hold-out macro recall %.4f, accuracy %.4f", c, m["macro_recall"], m["accuracy"])
    best = max(selection, key=lambda r: (r["macro_recall"], -r["C"]))
    head = fit_head(x, y, best["C"], seed)
    sha = head.save(out)
    train_pred = head.predict_proba(x).argmax(axis=1)
    train_m = metrics(ds.labels, [LABELS[i] for i in train_pred])
    record: dict[str, Any] = {
        "model": "minilm-head",
        "file": out.name,
        "file_sha256": sha,
        "created": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "encoder": encoder,
        "text_preparation": f"v{PREPARE_VERSION}: mentions -> @user, links -> http, head+tail to 254 word pieces",
        "data": {
            "file": Path(ds.path).name,
            "sha256": ds.sha256,
            "rows": len(ds),
            "rows_skipped": ds.skipped,
            "classes": {label: int((y == i).sum()) for i, label in enumerate(LABELS)},
            "source": "SemEval 2013-2016 Task 4A English tweets (cbaziotis/datastories-semeval2017-task4), "
            "de-duplicated, TweetEval validation/test tweets removed; see ../shared/data/sentiment/README.md",
        },
        "classifier": {
            "type": "multinomial logistic regression on standardised 384-d embeddings (scikit-learn lbfgs)",
            "class_weight": "balanced",
            "C": best["C"],
            "max_iter": MAX_ITER,
            "seed": seed,
        },
        "selection": {
            "method": f"stratified {HOLDOUT:.0%} hold-out of the training file, best macro-averaged recall",
            "grid": selection,
        },
        "train_fit": {k: round(train_m[k], 4) for k in ("macro_recall", "accuracy", "macro_f1")},
        "licence": "head coefficients: MIT, like the project; encoder all-MiniLM-L6-v2: Apache-2.0 "
        "(sentence-transformers); training tweets: SemEval task terms and Twitter's terms, not redistributed",
        "reproduce": "aimusic train-head --data ../shared/data/sentiment/train.tsv",
        "seconds": round(time.perf_counter() - started, 1),
    }
    provenance_out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    log.info("wrote %s (sha256 %s) and %s; chosen C=%g", out, sha[:12], provenance_out, best["C"])
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sentiment.train_head", description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="labelled TSV (label<TAB>text), e.g. train.tsv")
    parser.add_argument("--out", type=Path, default=HEAD_FILE, help=f"head file to write (default {HEAD_FILE})")
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir(), help="where embeddings are cached")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write cached embeddings")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        record = train(
            args.data, out=args.out, provenance_out=args.out.with_suffix(".json"),
            cache_dir=None if args.no_cache else args.cache_dir,
        )
    except ScorerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: record[k] for k in ("file", "file_sha256", "classifier", "train_fit")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

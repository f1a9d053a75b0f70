"""Custom heads trained on the user's own labels (``aimusic train``), registered as versioned models.

A custom model is a logistic-regression head on the shared all-MiniLM-L6-v2 embeddings (the same encoder,
text preparation and embedding cache as the shipped heads), so a few hundred labels train in seconds and
scoring costs what the ``minilm`` scorers cost. Each registered version is two files in the models folder
next to the database (``data/models/`` for ``data/aimusic.duckdb``):

- ``<task>-v<N>.npz``: standardisation (mean, scale), coefficients, bias and the class labels;
- ``<task>-v<N>.json``: provenance: the file's sha256, encoder, classifier and its regularisation, the
  labels it was trained on (counts, and 12-hex digests of their post keys, so measurements can leave them
  out), the optional base data and its weight, and the cross-validated figures.

The model id is ``custom:<task>-v<N>`` (e.g. ``custom:sentiment-v3``), stored with every score it writes.
Versions only grow: a number already used by a file or by stored rows is never issued again. The loader checks
the weights file against the sha256 in its provenance, so a replaced file cannot write under an old id.

Where models are looked up: the folder passed in, ``AIMUSIC_MODELS_DIR``, then ``models/`` next to the
configured database (``AIMUSIC_DB`` or the default).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sentiment.base import LABELS, Scorer, ScorerError
from sentiment.stance import STANCE_LABELS, StanceScorer

log = logging.getLogger(__name__)

TASK_LABELS: dict[str, tuple[str, ...]] = {
    "sentiment": LABELS,
    "stance": STANCE_LABELS,
    "relevance": ("irrelevant", "relevant"),
}
FAMILY = "custom"
C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
MIN_PER_CLASS = 5
_NAME = re.compile(r"^(sentiment|stance|relevance)-v(\d+)$")


# --- the head ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CustomHead:
    """Logistic regression over standardised embeddings; binary heads have one row of coefficients."""

    task: str
    labels: tuple[str, ...]
    coef: np.ndarray  # (k, d), or (1, d) for two classes
    bias: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    sha256: str = ""

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        z = ((np.asarray(features, dtype=np.float64) - self.mean) / self.scale) @ self.coef.T + self.bias
        if len(self.labels) == 2 and z.shape[1] == 1:
            p = 1.0 / (1.0 + np.exp(-z[:, 0]))
            return np.column_stack([1 - p, p])
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def save(self, path: Path) -> str:
        """Write the head with fixed zip timestamps (same coefficients, same bytes); return its sha256."""
        arrays = {"coef": self.coef.astype(np.float32), "bias": self.bias.astype(np.float32),
                  "mean": self.mean.astype(np.float32), "scale": self.scale.astype(np.float32),
                  "labels": np.array(self.labels), "task": np.array(self.task)}
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, array in arrays.items():
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                with zf.open(info, "w") as fh:
                    np.lib.format.write_array(fh, array, allow_pickle=False)
        raw = buffer.getvalue()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
        return hashlib.sha256(raw).hexdigest()

    @classmethod
    def load(cls, path: Path) -> CustomHead:
        try:
            raw = path.read_bytes()
            with np.load(io.BytesIO(raw), allow_pickle=False) as data:
                return cls(
                    task=str(data["task"]), labels=tuple(str(x) for x in data["labels"]),
                    coef=data["coef"].astype(np.float64), bias=data["bias"].astype(np.float64),
                    mean=data["mean"].astype(np.float64), scale=data["scale"].astype(np.float64),
                    sha256=hashlib.sha256(raw).hexdigest(),
                )
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise ScorerError(f"the custom model {path} is missing or unreadable ({exc})") from None


def featurize(task: str, texts: Sequence[str], cache_dir: Path | None = None) -> np.ndarray:
    """The head's input: sentiment reads the texts as the ``minilm`` sentiment head does, stance and relevance
    as the stance head does. With ``cache_dir``, embeddings are also kept on disk (keyed by the text, the task's
    preparation and the encoder version), so training again after labelling more posts embeds only the new ones.
    """
    if cache_dir is not None:
        return _cached(task, texts, cache_dir)
    if task == "sentiment":
        from sentiment.head import features

        return features(texts).astype(np.float64)
    from sentiment.stance import embed

    return embed(texts).astype(np.float64)


def _cached(task: str, texts: Sequence[str], cache_dir: Path) -> np.ndarray:
    from sentiment.embedding import DIM, encoder_version

    family = "sentiment" if task == "sentiment" else "stance"
    tag = hashlib.sha256(f"{family}|{encoder_version()}".encode()).hexdigest()[:12]
    path = cache_dir / f"embeddings-{family}-{tag}.npz"
    keys = [hashlib.sha256(t.encode("utf-8", "replace")).hexdigest()[:24] for t in texts]
    known: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as data:
            known = dict(zip((str(k) for k in data["keys"]), data["vectors"], strict=True))
    except (OSError, KeyError, ValueError):
        known = {}
    todo = [i for i, k in enumerate(keys) if k not in known]
    if todo:
        fresh = featurize(task, [texts[i] for i in todo])
        known.update((keys[i], fresh[j]) for j, i in enumerate(todo))
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, keys=np.array(list(known)), vectors=np.array(list(known.values()), dtype=np.float32))
        tmp.replace(path)
    if not texts:
        return np.zeros((0, DIM))
    return np.array([known[k] for k in keys], dtype=np.float64)


# --- training ------------------------------------------------------------------------------------------------
def fit_head(task: str, x: np.ndarray, y: Sequence[str], weights: np.ndarray | None = None, *,
             seed: int = 0) -> tuple[CustomHead, float]:
    """Standardise, then a class-balanced logistic regression whose C is chosen by 3-fold cross-validated
    macro recall on ``x`` alone (sklearn's LogisticRegressionCV). Returns the head and the chosen C."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    labels = TASK_LABELS[task]
    y = np.asarray(y)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    scaler = StandardScaler().fit(x, sample_weight=w)
    xs = scaler.transform(x)
    inner = StratifiedKFold(n_splits=min(3, int(np.unique(y, return_counts=True)[1].min())), shuffle=True,
                            random_state=seed)
    clf = LogisticRegressionCV(Cs=list(C_GRID), cv=inner, scoring="balanced_accuracy", class_weight="balanced",
                               max_iter=3000, tol=1e-3, random_state=seed, l1_ratios=(0.0,),
                               use_legacy_attributes=False)
    clf.fit(xs, y, sample_weight=w)
    classes = [str(c) for c in clf.classes_]
    if len(labels) == 2:
        if classes != list(labels):
            raise ScorerError(f"training labels {classes} do not cover {labels}")
        coef, bias = clf.coef_, clf.intercept_
    else:
        order = [classes.index(lab) for lab in labels]
        coef, bias = clf.coef_[order], clf.intercept_[order]
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    head = CustomHead(task, labels, coef.astype(np.float64), bias.astype(np.float64),
                      scaler.mean_.astype(np.float64), scale.astype(np.float64))
    return head, float(np.atleast_1d(clf.C_)[0])


def check_counts(task: str, y: Sequence[str]) -> dict[str, int]:
    """Labels per class; raises :class:`ScorerError` when a class has fewer than :data:`MIN_PER_CLASS`."""
    counts = {lab: int(np.sum(np.asarray(y) == lab)) for lab in TASK_LABELS[task]}
    thin = {lab: n for lab, n in counts.items() if n < MIN_PER_CLASS}
    if thin:
        raise ScorerError(
            f"too few {task} labels to train: every class needs at least {MIN_PER_CLASS} "
            f"({', '.join(f'{k} {v}' for k, v in counts.items())}); label more posts or pass --base"
        )
    return counts


def cross_validate(task: str, x: np.ndarray, y: Sequence[str], *, base_x: np.ndarray | None = None,
                   base_y: Sequence[str] | None = None, base_weight: float = 0.3, folds: int = 5,
                   seed: int = 0) -> np.ndarray:
    """Out-of-fold predictions (class labels) for the user's labels under stratified k-fold: each fold's model
    is trained on the other folds plus the base data (weighted), and C is chosen inside the training folds
    only, so the figures are honest estimates for a model trained this way."""
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(y)
    k = max(2, min(folds, int(np.unique(y, return_counts=True)[1].min())))
    predicted = np.empty(len(y), dtype=object)
    for train, test in StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(x, y):
        xt, yt, wt = _with_base(x[train], y[train], base_x, base_y, base_weight)
        head, _ = fit_head(task, xt, yt, wt, seed=seed)
        probs = head.predict_proba(x[test])
        predicted[test] = [head.labels[i] for i in probs.argmax(axis=1)]
    return predicted.astype(str)


def _with_base(x: np.ndarray, y: np.ndarray, base_x: np.ndarray | None, base_y: Sequence[str] | None,
               base_weight: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if base_x is None or base_y is None or len(base_y) == 0 or base_weight <= 0:
        return x, y, np.ones(len(y))
    return (np.vstack([x, base_x]), np.concatenate([y, np.asarray(base_y)]),
            np.concatenate([np.ones(len(y)), np.full(len(base_y), base_weight)]))


def train_final(task: str, x: np.ndarray, y: Sequence[str], *, base_x: np.ndarray | None = None,
                base_y: Sequence[str] | None = None, base_weight: float = 0.3,
                seed: int = 0) -> tuple[CustomHead, float]:
    """The head to register: trained on every user label plus the weighted base data."""
    xt, yt, wt = _with_base(x, np.asarray(y), base_x, base_y, base_weight)
    return fit_head(task, xt, yt, wt, seed=seed)


def key_digest(source: str, post_id: str) -> str:
    """12 hex of sha256(source, post_id): names a training post in provenance without its id."""
    return hashlib.sha256(f"{source}\x1f{post_id}".encode()).hexdigest()[:12]


# --- the registry of versions ------------------------------------------------------------------------------
def models_dir(db: str | Path) -> Path:
    """Where the custom models of database ``db`` live: ``models/`` next to it."""
    return Path(db).expanduser().resolve().parent / "models"


def search_dirs(directory: Path | None = None) -> list[Path]:
    dirs = [directory] if directory else []
    if os.environ.get("AIMUSIC_MODELS_DIR"):
        dirs.append(Path(os.environ["AIMUSIC_MODELS_DIR"]).expanduser())
    try:
        from aimusic.core.config import resolve_db

        dirs.append(models_dir(resolve_db(None)))
    except Exception as exc:  # a malformed setting must not hide the other folders; say why
        log.warning("cannot resolve the database for custom models: %s", exc)
    return list(dict.fromkeys(d for d in dirs if d is not None))


def parse_name(name: str) -> tuple[str, int]:
    """``custom:sentiment-v3`` or ``sentiment-v3`` -> ("sentiment", 3)."""
    bare = name.strip()
    bare = bare.split(":", 1)[1] if bare.lower().startswith(FAMILY + ":") else bare
    match = _NAME.match(bare.lower())
    if not match:
        raise ScorerError(f"not a custom model name: {name!r} (expected custom:<sentiment|stance|relevance>-v<N>)")
    return match.group(1), int(match.group(2))


def model_id(task: str, version: int) -> str:
    return f"{FAMILY}:{task}-v{version}"


def versions(directory: Path, task: str) -> set[int]:
    found = set()
    for path in directory.glob(f"{task}-v*.*") if directory.exists() else []:
        match = _NAME.match(path.stem)
        if match:
            found.add(int(match.group(2)))
    return found


def register(head: CustomHead, provenance: dict[str, Any], directory: Path, *, taken: set[int] = frozenset()) -> str:
    """Write a new version of ``head.task`` (never overwriting one, never reusing a number in ``taken``, e.g.
    versions seen in stored rows); return its model id."""
    directory.mkdir(parents=True, exist_ok=True)
    version = max(versions(directory, head.task) | set(taken) | {0}) + 1
    stem = f"{head.task}-v{version}"
    weights, record = directory / f"{stem}.npz", directory / f"{stem}.json"
    tmp = directory / f".{stem}.npz.tmp"
    sha = head.save(tmp)
    mid = model_id(head.task, version)
    payload = {"model": mid, "task": head.task, "labels": list(head.labels), "file": weights.name,
               "file_sha256": sha, **provenance}
    record_tmp = directory / f".{stem}.json.tmp"
    record_tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(weights)
    record_tmp.replace(record)
    log.info("registered %s in %s", mid, directory)
    return mid


def find(name: str, directory: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """The weights file and provenance of a registered model (raises :class:`ScorerError` when missing)."""
    task, version = parse_name(name)
    dirs = search_dirs(directory)
    for folder in dirs:
        weights = folder / f"{task}-v{version}.npz"
        if weights.exists():
            return weights, read_provenance(weights.with_suffix(".json"))
    where = ", ".join(str(d) for d in dirs) or "no folder"
    raise ScorerError(f"custom model {model_id(task, version)} not found (looked in {where}); "
                      "train one with `aimusic train` or set AIMUSIC_MODELS_DIR")


def read_provenance(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def list_models(directory: Path) -> list[dict[str, Any]]:
    """Provenance of every registered model in ``directory``, newest version last per task."""
    if not directory.exists():
        return []
    records = [read_provenance(p) for p in directory.glob("*-v*.json")]
    return sorted((r for r in records if r.get("model")), key=lambda r: parse_name(r["model"]))


def load_head(name: str, directory: Path | None = None) -> tuple[CustomHead, dict[str, Any], str]:
    """The head of a registered model, checked against its provenance's sha256; and the model id."""
    weights, provenance = find(name, directory)
    try:
        sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    except OSError as exc:
        raise ScorerError(f"cannot read the custom model {weights}: {exc.strerror or exc}") from None
    if provenance.get("file_sha256") != sha:
        raise ScorerError(f"{weights} does not match the sha256 in its provenance {weights.with_suffix('.json')}: "
                          "it was changed after registration; train a new version instead")
    return CustomHead.load(weights), provenance, model_id(*parse_name(name))


# --- scorers -------------------------------------------------------------------------------------------------
class CustomSentimentScorer(Scorer):
    """A registered sentiment head (English: the encoder reads English)."""

    languages = frozenset({"en"})

    def __init__(self, head: CustomHead, model: str, provenance: dict[str, Any] | None = None) -> None:
        from sentiment.embedding import load_encoder

        if head.labels != LABELS:
            raise ScorerError(f"{model} is a {head.task} model, not a sentiment model")
        load_encoder()
        self.head, self.model_id, self.provenance = head, model, provenance or {}

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 3))
        return self.head.predict_proba(featurize("sentiment", texts))


class CustomStanceScorer(StanceScorer):
    """A registered stance head; reads the shared embeddings, so the signals step need not encode twice."""

    languages = frozenset({"en"})
    uses_embeddings = True

    def __init__(self, head: CustomHead, model: str, provenance: dict[str, Any] | None = None) -> None:
        from sentiment.embedding import load_encoder

        if head.labels != STANCE_LABELS:
            raise ScorerError(f"{model} is a {head.task} model, not a stance model")
        load_encoder()
        self.head, self.model_id, self.provenance = head, model, provenance or {}

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.predict_embeddings(featurize("stance", texts))

    def predict_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        if len(embeddings) == 0:
            return np.zeros((0, 3))
        return self.head.predict_proba(embeddings)

    def measured(self) -> dict[str, Any]:
        cv = self.provenance.get("cv", {}).get("random") or self.provenance.get("cv", {}).get("all") or {}
        return {"macro_recall": cv.get("macro_recall"), "n": cv.get("n"), "data": "cross-validated user labels"}


def load_custom(name: str, directory: Path | None = None) -> Scorer:
    """The scorer of a registered model: :class:`CustomSentimentScorer` or :class:`CustomStanceScorer`."""
    head, provenance, mid = load_head(name, directory)
    if head.task == "sentiment":
        return CustomSentimentScorer(head, mid, provenance)
    if head.task == "stance":
        return CustomStanceScorer(head, mid, provenance)
    raise ScorerError(f"{mid} is a relevance model: it is measured (aimusic train prints its figures) but not "
                      "applied to stored posts yet")

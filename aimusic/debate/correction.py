"""Measured accuracy and proportions corrected for a classifier's known errors (pure numpy/scipy, no I/O).

A classifier that confuses classes biases "classify and count": if 30% of the truly negative posts are called
neutral, the neutral share is inflated and the negative one deflated, whatever the sample size. Forman's
*adjusted classify-and-count* (2008), generalised to K classes, undoes this with the misclassification matrix
``M[i, j] = P(predicted j | true i)`` measured on posts the user labelled *at random*:

    P(predicted) = M^T P(true)   =>   P(true) = argmin_{p in simplex} || M^T p - P(predicted) ||^2

The constrained least squares (:func:`simplex_lstsq`) is solved exactly by enumerating the supports of ``p``
(7 for 3 classes): on each support the equality-constrained problem is one small linear (KKT) system, and the
best feasible candidate is the optimum of the convex problem. It agrees with ``scipy.optimize.nnls`` on the
same problem with the sum constraint appended as a heavily weighted row (a test checks it), and is vectorised
over bootstrap replicates and time buckets, so a year of daily buckets with 1,000 replicates takes
milliseconds.

Intervals (:func:`adjusted_shares`): percentile bootstrap over both sources of error: the labelled sample
(pairs of true and predicted labels resampled with replacement, giving ``M*``) and the counts (each bucket's
predicted counts redrawn from a multinomial with its observed shares, giving ``q*``); each replicate solves
``M*^T p = q*``. Raw shares get Wilson intervals, which cover sampling error only: their bias is what the
adjusted shares remove.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy.stats import norm

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

#: below this many random-sample labels, accuracy and adjusted shares are not shown (a sentence says why)
MIN_RANDOM_LABELS = 50
DEFAULT_LEVEL = 0.95
DEFAULT_BOOT = 1000
ROW_CHUNK = 500


def confusion_counts(truth: Sequence[int] | np.ndarray, predicted: Sequence[int] | np.ndarray, k: int) -> np.ndarray:
    """(k, k) counts, rows the true class, columns the predicted one (class indices 0..k-1)."""
    cells = np.asarray(truth, int) * k + np.asarray(predicted, int)
    return np.bincount(cells, minlength=k * k).reshape(k, k).astype(float)


def error_rates(counts: np.ndarray) -> np.ndarray:
    """``M[..., i, j] = P(predicted j | true i)`` from confusion counts (stacked allowed). A true class with no
    labelled example gets an identity row (its errors assumed zero; callers report that)."""
    counts = np.asarray(counts, dtype=float)
    rows = counts.sum(axis=-1, keepdims=True)
    k = counts.shape[-1]
    eye = np.broadcast_to(np.eye(k), counts.shape)
    return np.where(rows > 0, counts / np.where(rows > 0, rows, 1.0), eye)


def _supports(k: int) -> list[tuple[int, ...]]:
    return [s for size in range(1, k + 1) for s in itertools.combinations(range(k), size)]


def _support_solutions(a: np.ndarray, q: np.ndarray, support: tuple[int, ...], which: np.ndarray | None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The equality-constrained least squares on one support: (solution (n, m), feasible (n,), objective (n,)).
    ``a``: (b, k, k); ``q``: (n, k) with ``which`` (n,) naming each row's ``a`` (or (b, r, k) for all rows)."""
    s = list(support)
    m = len(s)
    a_s = a[:, :, s]  # (b, k, m)
    a_t = np.swapaxes(a_s, 1, 2)
    kkt = np.zeros((a.shape[0], m + 1, m + 1))
    kkt[:, :m, :m] = 2 * (a_t @ a_s)
    kkt[:, :m, m] = 1.0
    kkt[:, m, :m] = 1.0
    inv_t = np.swapaxes(np.linalg.pinv(kkt), 1, 2)  # pinv copes with rank-deficient supports
    if which is None:  # every row: (b, r, k) against (b, k, m)
        rhs = np.concatenate([2 * (q @ a_s), np.ones((*q.shape[:-1], 1))], axis=-1)
        x = (rhs @ inv_t)[..., :m]
        resid = np.clip(x, 0.0, None) @ a_t - q
    else:  # selected rows, each with its own replicate
        rhs = np.concatenate([2 * (q[:, None, :] @ a_s[which])[:, 0], np.ones((len(q), 1))], axis=-1)
        x = (rhs[:, None, :] @ inv_t[which])[:, 0, :m]
        resid = (np.clip(x, 0.0, None)[:, None, :] @ a_t[which])[:, 0] - q
    feasible = (x >= -1e-10).all(axis=-1) & (np.abs(x.sum(axis=-1) - 1) < 1e-6)
    return np.clip(x, 0.0, None), feasible, (resid**2).sum(axis=-1)


def simplex_lstsq(a: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``argmin_p ||a p - q||^2`` subject to ``p >= 0, sum(p) = 1``, vectorised.

    ``a``: (k, k) or (b, k, k); ``q``: (..., k) with, when ``a`` is stacked, shape (b, r, k). Returns p with
    q's shape. For the adjusted shares ``a`` is ``M^T`` and ``q`` the predicted shares. The full support is
    solved for every row first: where its solution is feasible it is the optimum (the simplex lies in its
    plane); only the other rows try the smaller supports.
    """
    a = np.asarray(a, dtype=float)
    q = np.asarray(q, dtype=float)
    single = a.ndim == 2
    if single:
        a = a[None]
        shape = q.shape
        q = q.reshape(1, -1, shape[-1])
    k = a.shape[-1]
    supports = _supports(k)
    best, feasible, _ = _support_solutions(a, q, supports[-1], None)
    rest_b, rest_r = np.nonzero(~feasible)
    if len(rest_b):
        q_rest = q[rest_b, rest_r]
        found = np.full((len(rest_b), k), np.nan)
        found_obj = np.full(len(rest_b), np.inf)
        for support in supports[:-1]:
            x, ok, obj = _support_solutions(a, q_rest, support, rest_b)
            better = ok & (obj < found_obj - 1e-15)
            if better.any():
                full = np.zeros((len(rest_b), k))
                full[:, list(support)] = x
                found = np.where(better[:, None], full, found)
                found_obj = np.where(better, obj, found_obj)
        best[rest_b, rest_r] = found
    best = best / best.sum(axis=-1, keepdims=True)
    return best.reshape(shape) if single else best


def adjust(shares: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Adjusted classify and count: the true shares that the error rates ``m`` turn into the predicted
    ``shares`` (rows of shares, each summing to 1), constrained to the simplex."""
    return simplex_lstsq(np.asarray(m, float).T, np.asarray(shares, float))


def wilson(k: np.ndarray, n: np.ndarray, level: float = DEFAULT_LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of the proportion k/n (vectorised; NaN where n = 0)."""
    k = np.asarray(k, float)
    n = np.asarray(n, float)
    z = norm.ppf(0.5 + level / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    bad = n <= 0
    return np.where(bad, np.nan, centre - half), np.where(bad, np.nan, centre + half)


def _boot_confusions(truth: np.ndarray, predicted: np.ndarray, k: int, n_boot: int,
                     rng: np.random.Generator) -> np.ndarray:
    """(n_boot, k, k) confusion counts of pairs resampled with replacement."""
    n = len(truth)
    idx = rng.integers(0, n, size=(n_boot, n))
    cells = truth[idx] * k + predicted[idx] + (np.arange(n_boot)[:, None] * k * k)
    return np.bincount(cells.ravel(), minlength=n_boot * k * k).reshape(n_boot, k, k).astype(float)


@dataclass
class AdjustedShares:
    """Raw and adjusted shares per row (time bucket) with their intervals; columns follow ``labels``."""

    labels: tuple[str, ...]
    totals: np.ndarray  # (r,) classified posts per row
    raw: np.ndarray  # (r, k)
    raw_low: np.ndarray
    raw_high: np.ndarray
    adjusted: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n_labelled: int
    level: float
    unlabelled_classes: tuple[str, ...] = ()


def adjusted_shares(
    counts: np.ndarray,
    truth: Sequence[int] | np.ndarray,
    predicted: Sequence[int] | np.ndarray,
    labels: Sequence[str],
    *,
    level: float = DEFAULT_LEVEL,
    n_boot: int = DEFAULT_BOOT,
    seed: int = 0,
) -> AdjustedShares:
    """Raw and adjusted shares of ``counts`` ((r, k) predicted counts per row) given the labelled pairs
    (``truth``, ``predicted``: class indices of the random-sample labels and the model's predictions on them).
    """
    counts = np.atleast_2d(np.asarray(counts, dtype=float))
    truth = np.asarray(truth, dtype=int)
    predicted = np.asarray(predicted, dtype=int)
    k = len(labels)
    rng = np.random.default_rng(seed)
    totals = counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        raw = counts / totals[:, None]
    raw_low, raw_high = wilson(counts, totals[:, None], level)
    cm = confusion_counts(truth, predicted, k)
    point = adjust(np.nan_to_num(raw, nan=1.0 / k), error_rates(cm))
    boot_a = np.swapaxes(error_rates(_boot_confusions(truth, predicted, k, n_boot, rng)), 1, 2)  # (b, k, k)
    safe = np.where(totals[:, None] > 0, np.nan_to_num(raw, nan=1.0 / k), 1.0 / k)
    alpha = (1 - level) / 2
    low = np.empty_like(raw)
    high = np.empty_like(raw)
    for start in range(0, len(totals), ROW_CHUNK):  # bounded memory for long daily exports
        part = slice(start, start + ROW_CHUNK)
        n_rows = len(totals[part])
        draws = rng.multinomial(totals[part].astype(np.int64), safe[part], size=(n_boot, n_rows)).astype(float)
        q_star = draws / np.maximum(totals[part], 1)[None, :, None]
        p_star = simplex_lstsq(boot_a, q_star)  # (b, rows, k)
        low[part], high[part] = np.quantile(p_star, [alpha, 1 - alpha], axis=0)
    empty = totals <= 0
    for arr in (point, low, high):
        arr[empty] = np.nan
    missing = tuple(labels[i] for i in range(k) if cm[i].sum() == 0)
    return AdjustedShares(tuple(labels), totals, raw, raw_low, raw_high, point, low, high, len(truth), level,
                          missing)


@dataclass
class Accuracy:
    """Macro-averaged recall and accuracy of predictions against labels, with intervals and n."""

    n: int
    accuracy: float
    accuracy_low: float
    accuracy_high: float
    macro_recall: float
    macro_recall_low: float
    macro_recall_high: float
    confusion: np.ndarray
    labels: tuple[str, ...]
    level: float

    def line(self) -> str:
        pct = round(self.level * 100)
        return (f"macro recall {self.macro_recall:.2f} ({pct}% interval {self.macro_recall_low:.2f}-"
                f"{self.macro_recall_high:.2f}), accuracy {self.accuracy:.2f} ({self.accuracy_low:.2f}-"
                f"{self.accuracy_high:.2f}), n={self.n}")


def macro_recall(cm: np.ndarray) -> np.ndarray:
    """Macro-averaged recall of (stacked) confusion counts over the true classes present."""
    rows = cm.sum(axis=-1)
    diag = np.diagonal(cm, axis1=-2, axis2=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(rows > 0, diag / np.where(rows > 0, rows, 1), np.nan)
    return np.nanmean(recall, axis=-1)


def accuracy(
    truth: Sequence[int] | np.ndarray,
    predicted: Sequence[int] | np.ndarray,
    labels: Sequence[str],
    *,
    level: float = DEFAULT_LEVEL,
    n_boot: int = 2000,
    seed: int = 0,
) -> Accuracy:
    """Accuracy (Wilson interval) and macro recall (percentile bootstrap over the pairs) of ``predicted``."""
    from sklearn.metrics import balanced_accuracy_score

    truth = np.asarray(truth, dtype=int)
    predicted = np.asarray(predicted, dtype=int)
    k = len(labels)
    n = len(truth)
    if n == 0:
        nan = float("nan")
        return Accuracy(0, nan, nan, nan, nan, nan, nan, np.zeros((k, k)), tuple(labels), level)
    cm = confusion_counts(truth, predicted, k)
    correct = int(np.trace(cm))
    acc_low, acc_high = wilson(np.array(correct), np.array(n), level)
    macro = float(balanced_accuracy_score(truth, predicted))
    boots = macro_recall(_boot_confusions(truth, predicted, k, n_boot, np.random.default_rng(seed)))
    alpha = (1 - level) / 2
    mr_low, mr_high = np.quantile(boots, [alpha, 1 - alpha])
    return Accuracy(n, correct / n, float(acc_low), float(acc_high), macro, float(mr_low), float(mr_high), cm,
                    tuple(labels), level)


# --- measured on the store ------------------------------------------------------------------------------------
@dataclass
class Measured:
    """A model's predictions against the user's random-sample labels of one task.

    ``truth``/``predicted`` are class indices into ``labels`` (the model's vocabulary). For a custom model the
    labels it was trained on are replaced by its cross-validated (out-of-fold) predictions on them, recorded at
    training time, so the figures are never in-sample. ``accuracy`` is ``None`` below :data:`MIN_RANDOM_LABELS`.
    """

    task: str
    model: str
    labels: tuple[str, ...]
    truth: np.ndarray
    predicted: np.ndarray
    held_out: int
    cross_validated: int
    accuracy: Accuracy | None
    warning: str | None = None

    @property
    def n(self) -> int:
        return len(self.truth)

    @property
    def enough(self) -> bool:
        return self.accuracy is not None

    def source_note(self) -> str:
        parts = [f"{self.held_out} random-sample labels compared with the stored predictions"]
        if self.cross_validated:
            parts.append(f"{self.cross_validated} of the labels it was trained on, by their cross-validated "
                         "predictions")
        return "; ".join(parts) + (f". {self.warning}" if self.warning else "")


def measure(con: duckdb.DuckDBPyConnection, task: str, model: str, models_dir: Path | None = None, *,
            level: float = DEFAULT_LEVEL) -> Measured:
    """:class:`Measured` for ``model`` on the random-sample labels of ``task`` in the database ``con`` reads."""
    from aimusic.store.label_queries import evaluation_pairs
    from aimusic.store.labels import MODEL_LABELS

    names = MODEL_LABELS[task]
    index = {name: i for i, name in enumerate(names)}
    pairs = evaluation_pairs(con, task, model)
    truth = [index[v] for v in pairs["truth"]]
    predicted = [index[v] for v in pairs["predicted"]]
    held_out = len(truth)
    cross_validated = 0
    warning = None
    if model.startswith("custom:"):
        from sentiment.custom import key_digest, parse_name, read_provenance

        name_task, version = parse_name(model)
        provenance = read_provenance(models_dir / f"{name_task}-v{version}.json") if models_dir else {}
        trained = set(provenance.get("training_labels", {}).get("post_digests", []))
        if not provenance:
            warning = ("Its provenance file is missing, so the labels it was trained on cannot be told apart: "
                       "these figures may be optimistic")
        if trained:
            keep = [key_digest(s, p) not in trained for s, p in zip(pairs["source"], pairs["post_id"], strict=True)]
            truth = [t for t, k in zip(truth, keep, strict=True) if k]
            predicted = [p for p, k in zip(predicted, keep, strict=True) if k]
            held_out = len(truth)
            cv = (provenance.get("cv") or {}).get("random") or {}
            for i, row in enumerate(cv.get("confusion") or []):
                for j, count in enumerate(row):
                    truth += [i] * int(count)
                    predicted += [j] * int(count)
                    cross_validated += int(count)
    t = np.asarray(truth, dtype=int)
    p = np.asarray(predicted, dtype=int)
    acc = accuracy(t, p, names, level=level) if len(t) >= MIN_RANDOM_LABELS else None
    return Measured(task, model, names, t, p, held_out, cross_validated, acc, warning)


def adjusted_frame(counts: pd.DataFrame, measured: Measured, *, level: float = DEFAULT_LEVEL,
                   n_boot: int = DEFAULT_BOOT, seed: int = 0, prefix: str = "") -> pd.DataFrame:
    """Per row of ``counts`` (a DataFrame with one count column per class, named as ``measured.labels``): the
    classified total, raw shares with Wilson intervals and, when ``measured`` has enough labels, the adjusted
    shares with bootstrap intervals. Columns: ``{prefix}raw_<c>``, ``..._low``, ``..._high``,
    ``{prefix}adjusted_<c>``, ``..._low``, ``..._high``; the input's own columns are kept in front."""
    df = counts.copy()
    matrix = df[list(measured.labels)].to_numpy(dtype=float)
    if measured.enough:
        result = adjusted_shares(matrix, measured.truth, measured.predicted, measured.labels, level=level,
                                 n_boot=n_boot, seed=seed)
        raw, raw_low, raw_high = result.raw, result.raw_low, result.raw_high
    else:
        totals = matrix.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            raw = matrix / totals[:, None]
        raw_low, raw_high = wilson(matrix, totals[:, None], level)
        result = None
    for j, name in enumerate(measured.labels):
        df[f"{prefix}raw_{name}"] = raw[:, j]
        df[f"{prefix}raw_{name}_low"] = raw_low[:, j]
        df[f"{prefix}raw_{name}_high"] = raw_high[:, j]
    if result is not None:
        for j, name in enumerate(measured.labels):
            df[f"{prefix}adjusted_{name}"] = result.adjusted[:, j]
            df[f"{prefix}adjusted_{name}_low"] = result.low[:, j]
            df[f"{prefix}adjusted_{name}_high"] = result.high[:, j]
    return df


def add_adjusted_daily(con: duckdb.DuckDBPyConnection, model: str, db_path: Path, table: str = "_export") -> bool:
    """Add adjusted sentiment shares (and intervals) to a daily-aggregate temp table with ``negative``,
    ``neutral`` and ``positive`` counts, when ``model`` has enough random-sample labels; True if added."""
    import duckdb as _duckdb
    import pyarrow as pa

    from sentiment.custom import models_dir

    try:
        measured = measure(con, "sentiment", model, models_dir(db_path))
    except _duckdb.CatalogException:  # a database from before the labels table (read-only, not migrated)
        return False
    if not measured.enough:
        return False
    df = con.execute(f"SELECT * FROM {table}").df()
    out = adjusted_frame(df, measured)
    keep = list(df.columns) + [c for c in out.columns if c.startswith("adjusted_")]
    out = out[keep].assign(adjusted_labels_n=measured.n)
    con.register("_adjusted_in", pa.Table.from_pandas(out, preserve_index=False))
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM _adjusted_in")
    con.unregister("_adjusted_in")
    return True

"""Uncertainty for the sentiment figures: Wilson score intervals and the net-sentiment interval.

Net sentiment is ``positive share - negative share`` of the scored posts: the difference of two proportions
taken from the same sample (a post is positive, negative or neutral, never two of them). Its interval is
Newcombe's hybrid score interval for a difference of *paired* proportions (Newcombe 1998, "Improved
confidence intervals for the difference between binomial proportions based on paired data", method 10),
built from the two Wilson intervals and the (negative) correlation between "is positive" and "is negative".
It stays inside [-1, 1], is asymmetric near the bounds and is well behaved for small counts, unlike the
normal approximation.

Pure numpy, vectorised over buckets; no Streamlit, no DuckDB.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Z95 = 1.959963984540054

ArrayLike = npt.ArrayLike


def wilson(successes: ArrayLike, n: ArrayLike, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for ``successes / n`` (NaN where ``n`` is 0)."""
    k = np.asarray(successes, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        z2 = z * z
        denom = 1.0 + z2 / n
        centre = (p + z2 / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    low = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), np.nan)
    high = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), np.nan)
    return low, high


def net_sentiment(positive: ArrayLike, negative: ArrayLike, n: ArrayLike) -> np.ndarray:
    """``(positive - negative) / n`` with NaN where ``n`` is 0."""
    pos = np.asarray(positive, dtype=float)
    neg = np.asarray(negative, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, (pos - neg) / n, np.nan)


def net_interval(
    positive: ArrayLike, negative: ArrayLike, n: ArrayLike, z: float = Z95
) -> tuple[np.ndarray, np.ndarray]:
    """Confidence interval of net sentiment ``(positive - negative) / n`` (Newcombe's paired method 10).

    ``n`` counts the scored posts (positive + neutral + negative). Returns (low, high), NaN where ``n`` is 0.
    """
    pos = np.asarray(positive, dtype=float)
    neg = np.asarray(negative, dtype=float)
    n = np.asarray(n, dtype=float)
    neu = n - pos - neg
    theta = net_sentiment(pos, neg, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        p1, p2 = pos / n, neg / n
    l2, u2 = wilson(pos, n, z)
    l3, u3 = wilson(neg, n, z)
    # 2x2 table of (positive?, negative?): a = both (impossible), b = pos only, c = neg only, d = neither
    e, f, g, h = pos, neg + neu, neg, pos + neu
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = np.sqrt(e * f * g * h)
        phi = np.where(denom > 0, (0.0 * neu - pos * neg) / denom, 0.0)
        delta = np.sqrt(np.maximum((p1 - l2) ** 2 - 2 * phi * (p1 - l2) * (u3 - p2) + (u3 - p2) ** 2, 0.0))
        eps = np.sqrt(np.maximum((u2 - p1) ** 2 - 2 * phi * (u2 - p1) * (p2 - l3) + (p2 - l3) ** 2, 0.0))
    low = np.where(n > 0, np.clip(theta - delta, -1.0, 1.0), np.nan)
    high = np.where(n > 0, np.clip(theta + eps, -1.0, 1.0), np.nan)
    return low, high

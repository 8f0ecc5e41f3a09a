"""Split-conformal prediction intervals, per horizon step, from held-out scores.

A *score* is a held-out forecast error divided by a normaliser (the forecaster
uses each origin's spread), ``(actual - forecast) / norm``, so that one set of
quantiles serves series of very different noise. For a level ``L`` (``alpha = 1 -
L``) and ``n`` scores of one horizon step, the interval ``forecast + norm * [q_lo, q_hi]`` takes

- ``q_lo``: the ``floor((n + 1) * alpha / 2)``-th smallest score,
- ``q_hi``: the ``ceil((n + 1) * (1 - alpha / 2))``-th smallest score,

the equal-tailed split-conformal bounds: for a new error exchangeable with the
scores, each tail is missed with probability at most ``alpha / 2``, so the interval
covers with probability at least ``L``.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence

import numpy as np

__all__ = ["check_levels", "conformal_quantiles", "intervals", "min_scores"]

# Slack in the rank arithmetic, so that levels such as 0.8 (1 - 0.8 is not 0.2 in
# binary) give the ranks their decimal values say.
_EPS = 1e-9


def check_levels(levels: Sequence[float]) -> tuple[float, ...]:
    """Validate interval levels: distinct, increasing, each in ``(0, 1)``.

    Examples
    --------
    >>> check_levels([0.8, 0.95])
    (0.8, 0.95)
    """
    levels = tuple(float(level) for level in levels)
    if not levels or any(not 0 < level < 1 for level in levels):
        raise ValueError(f"levels must be one or more numbers in (0, 1); got {levels}")
    if any(b <= a for a, b in itertools.pairwise(levels)):
        raise ValueError(f"levels must be increasing and distinct; got {levels}")
    return levels


def min_scores(level: float) -> int:
    """Fewest scores for which the bounds of ``level`` are finite.

    Examples
    --------
    >>> min_scores(0.8), min_scores(0.95)
    (9, 39)
    """
    return math.ceil(2 / (1 - level) - _EPS) - 1


def conformal_quantiles(
    scores: np.ndarray, levels: Sequence[float], expected: np.ndarray | None = None
) -> np.ndarray:
    """The bounds ``(q_lo, q_hi)`` of every level for every column of scores.

    A column with enough scores for a level (:func:`min_scores`) takes its own
    conformal bounds. Small panels give fewer: such a column takes the bounds of
    the scores of all columns pooled, each divided by its column's root-mean-square
    score (``expected`` for a column of fewer than two scores) and multiplied back
    by its own; where even the pool is too small, the normal bounds ``+-z * rms``.
    Every interval holds its forecast: ``q_lo <= 0 <= q_hi``.

    Parameters
    ----------
    scores
        ``(n, steps)``; NaN scores are left out, column by column.
    levels
        Interval levels, each in ``(0, 1)``.
    expected
        ``(steps,)`` the expected root-mean-square error of each column, for columns
        of fewer than two scores (NaN where unknown: the pooled one is taken).

    Returns
    -------
    numpy.ndarray
        ``(steps, len(levels), 2)``: the lower and upper bound of each interval.

    Raises
    ------
    ValueError
        If no column has a score and ``expected`` gives no error either.

    Examples
    --------
    >>> scores = np.arange(1.0, 20.0)[:, None] - 10  # 19 scores: -9 .. 9
    >>> conformal_quantiles(scores, [0.8]).tolist()
    [[[-8.0, 8.0]]]
    >>> conformal_quantiles(scores[:5], [0.8]).round(3).tolist()  # too few: normal bounds
    [[[-9.152, 9.152]]]
    """
    levels = check_levels(levels)
    scores = np.asarray(scores, dtype=np.float64)
    rms = _column_rms(scores, expected)
    pooled = np.sort((scores / rms)[np.isfinite(scores)])
    out = np.empty((scores.shape[1], len(levels), 2))
    for h in range(scores.shape[1]):
        column = np.sort(scores[np.isfinite(scores[:, h]), h])
        for i, level in enumerate(levels):
            if column.size >= min_scores(level):
                out[h, i] = _ranked(column, level)
            elif pooled.size >= min_scores(level):
                out[h, i] = _ranked(pooled, level) * rms[h]
            else:
                z = statistics.NormalDist().inv_cdf(1 - (1 - level) / 2)
                out[h, i] = -z * rms[h], z * rms[h]
    out[..., 0] = np.minimum(out[..., 0], 0.0)
    out[..., 1] = np.maximum(out[..., 1], 0.0)
    return out


def intervals(
    forecast: np.ndarray, norm: np.ndarray, quantiles: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds ``forecast + norm * q``.

    Parameters
    ----------
    forecast
        ``(series, steps)``.
    norm
        ``(series,)`` non-negative normalisers (0 gives a zero-width interval).
    quantiles
        ``(steps, levels, 2)`` from :func:`conformal_quantiles`, or
        ``(series, steps, levels, 2)`` for bounds chosen per series.

    Returns
    -------
    lower, upper
        ``(series, steps, levels)`` each.

    Examples
    --------
    >>> lo, hi = intervals(np.zeros((1, 1)), np.array([2.0]), np.array([[[-1.0, 3.0]]]))
    >>> lo.tolist(), hi.tolist()
    ([[[-2.0]]], [[[6.0]]])
    """
    base = forecast[:, :, None]
    spread = norm[:, None, None, None] * quantiles
    return base + spread[..., 0], base + spread[..., 1]


def _ranked(sorted_scores: np.ndarray, level: float) -> np.ndarray:
    """The equal-tailed split-conformal bounds of ``level`` from sorted scores."""
    n, alpha = sorted_scores.size, 1 - level
    low = math.floor((n + 1) * alpha / 2 + _EPS)
    high = math.ceil((n + 1) * (1 - alpha / 2) - _EPS)
    return np.array([sorted_scores[low - 1], sorted_scores[high - 1]])


def _column_rms(scores: np.ndarray, expected: np.ndarray | None) -> np.ndarray:
    """Each column's root-mean-square score; ``expected``, then the pooled one, for
    columns of fewer than two scores."""
    finite = np.isfinite(scores)
    squares = np.where(finite, scores, 0.0) ** 2
    counts = finite.sum(axis=0)
    rms = np.where(counts >= 2, np.sqrt(squares.sum(axis=0) / np.maximum(counts, 1)), np.nan)
    if expected is not None:
        rms = np.where(np.isnan(rms), np.asarray(expected, dtype=np.float64), rms)
    pooled = math.sqrt(squares.sum() / finite.sum()) if finite.sum() >= 2 else math.nan
    rms = np.where(np.isnan(rms), pooled, rms)
    if not np.isfinite(rms).all():
        raise ValueError(
            "no calibration score and no expected error: cannot size the intervals "
            "(give longer series, or more of them)"
        )
    return np.maximum(rms, np.finfo(np.float64).tiny)

"""Split-conformal prediction intervals, per horizon step, from held-out scores.

A *score* is a held-out forecast error divided by a per-series normaliser,
``(actual - forecast) / norm``, so that one set of quantiles serves series of very
different noise. For a level ``L`` (``alpha = 1 - L``) and ``n`` scores of one
horizon step, the interval ``forecast + norm * [q_lo, q_hi]`` takes

- ``q_lo``: the ``floor((n + 1) * alpha / 2)``-th smallest score,
- ``q_hi``: the ``ceil((n + 1) * (1 - alpha / 2))``-th smallest score,

the equal-tailed split-conformal bounds: for a new error exchangeable with the
scores, each tail is missed with probability at most ``alpha / 2``, so the interval
covers with probability at least ``L``.
"""

from __future__ import annotations

import itertools
import math
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


def conformal_quantiles(scores: np.ndarray, levels: Sequence[float]) -> np.ndarray:
    """The bounds ``(q_lo, q_hi)`` of every level for every column of scores.

    Parameters
    ----------
    scores
        ``(n, steps)``; NaN scores are left out, column by column.
    levels
        Interval levels, each in ``(0, 1)``.

    Returns
    -------
    numpy.ndarray
        ``(steps, len(levels), 2)``: the lower and upper bound of each interval.

    Raises
    ------
    ValueError
        If a column has too few scores for a level's bounds to be finite
        (:func:`min_scores`).

    Examples
    --------
    >>> scores = np.arange(1.0, 20.0)[:, None]  # 19 scores: 1 .. 19
    >>> conformal_quantiles(scores, [0.8]).tolist()
    [[[2.0, 18.0]]]
    """
    levels = check_levels(levels)
    scores = np.asarray(scores, dtype=np.float64)
    out = np.empty((scores.shape[1], len(levels), 2))
    for h in range(scores.shape[1]):
        column = np.sort(scores[np.isfinite(scores[:, h]), h])
        n = column.size
        for i, level in enumerate(levels):
            if n < min_scores(level):
                raise ValueError(
                    f"horizon step {h + 1} has {n} calibration score(s); the {level:g} interval "
                    f"needs at least {min_scores(level)}: hold out a longer calibration window"
                )
            alpha = 1 - level
            low = math.floor((n + 1) * alpha / 2 + _EPS)
            high = math.ceil((n + 1) * (1 - alpha / 2) - _EPS)
            out[h, i] = column[low - 1], column[high - 1]
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

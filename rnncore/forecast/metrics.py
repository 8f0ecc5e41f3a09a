"""Forecast accuracy: MASE, sMAPE and interval coverage, per series.

Each function reduces a *points* axis (the last) of ``(series, points)`` arrays and
skips the points where an input is NaN; a series with no point left gets NaN.
"""

from __future__ import annotations

import numpy as np

__all__ = ["coverage", "mase", "nanmean", "smape"]


def nanmean(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """The mean of the finite values along ``axis``; NaN where there are none.

    Unlike :func:`numpy.nanmean`, an empty slice is not warned about.

    Examples
    --------
    >>> nanmean(np.array([[1.0, np.nan, 3.0], [np.nan, np.nan, np.nan]])).tolist()
    [2.0, nan]
    """
    finite = np.isfinite(values)
    count = finite.sum(axis=axis)
    total = np.where(finite, values, 0.0).sum(axis=axis)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def mase(actual: np.ndarray, forecast: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Mean absolute scaled error: the mean of ``|actual - forecast| / scale`` per series.

    Parameters
    ----------
    actual, forecast
        ``(series, points)``.
    scale
        The in-sample mean absolute seasonal difference: ``(series,)``, or
        ``(series, points)`` when the points come from windows with their own
        training data. Points whose scale is 0 or NaN are left out (the MASE is
        undefined there).

    Examples
    --------
    >>> mase(np.array([[1.0, 2.0]]), np.array([[2.0, 2.0]]), np.array([0.5])).tolist()
    [1.0]
    """
    scale = np.asarray(scale, dtype=np.float64)
    scale = np.broadcast_to(scale[:, None] if scale.ndim == 1 else scale, np.shape(actual))
    usable = np.isfinite(scale) & (scale > 0)
    scaled = np.abs(actual - forecast) / np.where(usable, scale, 1.0)
    return nanmean(np.where(usable, scaled, np.nan))


def smape(actual: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    """Symmetric mean absolute percentage error, in percent (0 to 200) per series.

    ``200 |a - f| / (|a| + |f|)`` averaged over the points; a point where both are
    0 counts as 0.

    Examples
    --------
    >>> smape(np.array([[100.0, 0.0]]), np.array([[50.0, 0.0]])).round(4).tolist()
    [33.3333]
    """
    error = np.abs(actual - forecast)
    size = np.abs(actual) + np.abs(forecast)
    ratio = np.where(size > 0, 200 * error / np.where(size > 0, size, 1.0), 0.0)
    return nanmean(np.where(np.isfinite(error), ratio, np.nan))


def coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """The fraction of points with ``lower <= actual <= upper``, per series.

    Examples
    --------
    >>> coverage(np.array([[1.0, 5.0]]), np.array([[0.0, 0.0]]), np.array([[2.0, 2.0]])).tolist()
    [0.5]
    """
    inside = (lower <= actual) & (actual <= upper)
    known = np.isfinite(actual) & np.isfinite(lower) & np.isfinite(upper)
    return nanmean(np.where(known, inside.astype(np.float64), np.nan))

"""Per-series robust scaling: location and scale from a series' history, undone on output.

A series ``y`` is modelled as ``z = (y - location) / scale`` with, from its observed
values in the trailing ``window`` steps of its history:

- ``location``: their median;
- ``scale``: their median absolute deviation times 1.4826 (the standard deviation
  of normal data); where more than half of them are equal (the MAD is 0), their mean
  absolute deviation times 1.2533; 0 only if they are all equal.

A series with fewer than ``min_count`` values in the window (one that ended early,
or is very sparse) takes instead the mean and standard deviation of its whole
history. A constant series has ``scale = 0``: its ``z`` is 0 wherever it is observed
and :func:`undo_scaling` maps any ``z`` back to its constant. A series with no
observation has NaN ``location`` and ``scale``, so everything computed from it is NaN.

Memory: the window is read in blocks of whole windows, as many series per block as
fit in ``block_bytes``; everything else (counts, sums, the seasonal differences) is
reduced chunk by chunk. Nothing grows with the length of the history.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import bottleneck
import dask
import dask.array as da
import numpy as np
import xarray as xr

__all__ = ["SUMS", "apply_scaling", "inverse_scale", "series_stats", "series_sums", "undo_scaling"]

_MAD_TO_SD = 1.482602218505602  # 1 / Phi^-1(3/4)
_MEAN_AD_TO_SD = 1.2533141373155001  # sqrt(pi / 2)
# A standard deviation below this fraction of the mean is rounding: a constant series.
_ROUNDING = 1e-9
#: The rows of :func:`series_sums`: the additive sums over the history, then the last
#: observed step counted from 1 (0: none).
SUMS = ("count", "total", "squares", "diff_total", "pairs", "last")


def series_stats(
    y: xr.DataArray,
    season: int,
    *,
    window: int | None = None,
    min_count: int | None = None,
    panels: Sequence[tuple[int, int]] | None = None,
    sums: np.ndarray | None = None,
    time_dim: str = "time",
    series_dim: str = "series",
    block_bytes: int = 32 * 2**20,
) -> xr.Dataset:
    """Robust location and scale of every series, and its seasonal-naive error.

    Parameters
    ----------
    y
        ``(series, time)`` values, NumPy- or Dask-backed; NaN marks a missing value.
    season
        The lag of the seasonal differences ``y_t - y_{t - season}``.
    window
        Trailing steps the robust statistics are taken over; ``None`` for all.
    min_count
        Fewest values in the window for the robust statistics (see the module);
        ``None`` for ``min(season, window)``.
    panels
        ``(start, stop)`` stretches of time covering the data, reduced one Dask
        computation at a time, so that memory follows a stretch, not the whole;
        ``None`` for one stretch.
    sums
        The history's :func:`series_sums` ``(len(SUMS), series)``, when they are
        known (those of earlier steps added to those of the new ones); ``None``
        sums ``y``. The robust statistics are always those of ``y``'s trailing
        ``window``.
    time_dim, series_dim
        The dimension names.
    block_bytes
        Memory for one block of windows, in float64.

    Returns
    -------
    xarray.Dataset
        In memory, over ``series_dim``: ``location``, ``scale`` (see the module),
        ``seasonal_mae`` (the mean absolute seasonal difference over the whole
        history, pairs both observed: the scale of MASE; NaN without such pairs),
        ``n_observed`` and ``last_observed`` (the index of the last observed step,
        -1 if none). Lazy inputs are computed with the active Dask scheduler.

    Examples
    --------
    >>> y = xr.DataArray([[1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, np.nan]], dims=("series", "time"))
    >>> stats = series_stats(y, season=2)
    >>> stats.location.values.tolist(), stats.scale.values.tolist()
    ([2.5, 5.0], [1.482602218505602, 0.0])
    >>> stats.seasonal_mae.values.tolist()
    [2.0, 0.0]
    """
    y = y.transpose(series_dim, time_dim)
    data = y.data if isinstance(y.data, da.Array) else np.asarray(y.data)
    data = data.astype(np.float64, copy=False)
    n_steps = data.shape[1]
    window = n_steps if window is None else min(window, n_steps)
    min_count = min(season, window) if min_count is None else min_count
    if sums is None:
        sums = series_sums(data, season, panels=panels)
    count, total, squares, diff_total, pairs, last = sums
    per_block = max(1, block_bytes // (8 * window))
    robust = _robust_blocks(data[:, n_steps - window :], min_count, per_block)
    fallback = _mean_and_std(count, total, squares)
    usable = np.isfinite(robust[:, 0])
    coords = {name: c for name, c in y.coords.items() if c.dims == (series_dim,)}
    return xr.Dataset(
        {
            "location": (series_dim, np.where(usable, robust[:, 0], fallback[0])),
            "scale": (series_dim, np.where(usable, robust[:, 1], fallback[1])),
            "seasonal_mae": (series_dim, _ratio(diff_total, pairs)),
            "n_observed": (series_dim, count.astype(np.int64)),
            "last_observed": (series_dim, last.astype(np.int64) - 1),
        },
        coords=coords,
    )


def series_sums(
    data: Any,
    season: int,
    *,
    since: int = 0,
    panels: Sequence[tuple[int, int]] | None = None,
) -> np.ndarray:
    """The per-series sums that :func:`series_stats` combines over the whole history.

    Parameters
    ----------
    data
        ``(series, time)`` values, NaN where missing: NumPy (summed at once) or Dask.
    season
        The lag of the seasonal differences.
    since
        The first step summed: the steps before it only pair with later steps'
        seasonal differences, so the sums of a history's later steps add to those of
        its earlier ones (the last observed step counts from ``data``'s start).
    panels
        ``(start, stop)`` stretches of time covering ``data``, reduced one Dask
        computation at a time; ``None`` for one stretch.

    Returns
    -------
    numpy.ndarray
        ``(len(SUMS), series)``: the rows named in :data:`SUMS`.
    """
    n_steps = data.shape[1]
    sums = np.zeros((len(SUMS), data.shape[0]))
    for start, stop in ((0, n_steps),) if panels is None else panels:
        if stop <= since:
            continue
        *parts, latest = dask.compute(*_sums(data, max(start, since), stop, season))
        sums[:-1] += np.stack(parts)
        sums[-1] = np.maximum(sums[-1], latest)
    return sums


def apply_scaling(y: Any, location: np.ndarray, scale: np.ndarray) -> Any:
    """``(y - location) / scale`` along the last axis; 0 where the scale is 0.

    ``location`` and ``scale`` are per series (the first axis of ``y``). Missing
    values stay NaN, so a constant series is 0 where observed.

    Examples
    --------
    >>> y = np.array([[1.0, 3.0], [7.0, np.nan]])
    >>> apply_scaling(y, np.array([2.0, 7.0]), np.array([2.0, 0.0]))
    array([[-0.5,  0.5],
           [ 0. ,  nan]])
    """
    location, inverse = np.asarray(location), inverse_scale(np.asarray(scale))
    return (y - location[:, None]) * inverse[:, None]


def undo_scaling(z: Any, location: np.ndarray, scale: np.ndarray) -> Any:
    """Invert :func:`apply_scaling`: ``location + scale * z``, with ``z`` indexed by series first.

    Trailing axes of ``z`` (steps, levels) broadcast against the per-series statistics.

    Examples
    --------
    >>> z = np.array([[-0.5, 0.5], [3.0, 4.0]])
    >>> undo_scaling(z, np.array([2.0, 7.0]), np.array([2.0, 0.0]))
    array([[1., 3.],
           [7., 7.]])
    """
    z = np.asarray(z)
    shape = (-1,) + (1,) * (z.ndim - 1)
    return np.reshape(location, shape) + np.reshape(scale, shape) * z


def inverse_scale(scale: np.ndarray) -> np.ndarray:
    """``1 / scale``, 0 where the scale is 0 (constant series), NaN where it is NaN."""
    positive = scale > 0
    return np.where(positive, 1.0 / np.where(positive, scale, 1.0), scale * 0.0)


def _sums(data: Any, start: int, stop: int, season: int) -> tuple[Any, ...]:
    """Per-series reductions of steps ``start:stop`` that combine over stretches of time.

    The number of observed values, their sum and sum of squares, the sum and number
    of the absolute seasonal differences of the pairs ending in the stretch (all
    added up over stretches), and the last observed step counted from 1 (0: none;
    the latest over stretches). NumPy ``data`` give NumPy arrays, Dask data lazy ones.
    """
    part = data[:, start:stop]
    observed = np.isfinite(part)
    values = np.where(observed, part, 0.0)
    first = min(max(start, season), stop)  # no pair ends in a stretch before the first season
    diff = abs(data[:, first:stop] - data[:, first - season : stop - season])
    paired = np.isfinite(diff)
    steps = np.arange(start + 1, stop + 1)
    return (
        observed.sum(axis=1),
        values.sum(axis=1),
        (values**2).sum(axis=1),
        np.where(paired, diff, 0.0).sum(axis=1),
        paired.sum(axis=1),
        np.where(observed, steps, 0).max(axis=1),
    )


def _robust_blocks(tail: Any, min_count: int, per_block: int) -> np.ndarray:
    """:func:`_robust` of the windows ``tail`` ``(series, window)``, ``per_block`` series
    at a time: NumPy windows one block after another, Dask ones in parallel."""
    if isinstance(tail, da.Array):
        tail = tail.rechunk({0: per_block, 1: -1})
        (robust,) = dask.compute(
            tail.map_blocks(_robust, min_count, dtype=np.float64, chunks=(tail.chunks[0], (2,)))
        )
        return robust
    starts = range(0, tail.shape[0], per_block)
    return np.concatenate(
        [np.empty((0, 2)), *(_robust(tail[i : i + per_block], min_count) for i in starts)]
    )


def _robust(window: np.ndarray, min_count: int) -> np.ndarray:
    """Median and robust scale ``(series, 2)`` of windows ``(series, time)``; NaN for
    windows with fewer than ``min_count`` values, and the scale NaN where the median is
    infinite.

    The numbers of ``numpy.nanmedian`` and ``numpy.nanmean``, bit for bit, with
    Bottleneck's ``nanmedian`` (a selection per row, not NumPy's partition of a copy).
    """
    out = np.full((window.shape[0], 2), np.nan)
    rows = np.flatnonzero(np.isfinite(window).sum(axis=1) >= max(min_count, 1))
    if rows.size:
        values = window[rows]
        location = bottleneck.nanmedian(values, axis=1)
        finite = np.flatnonzero(np.isfinite(location))  # else not used (series_stats)
        deviation = np.abs(values[finite] - location[finite, None])
        mad = bottleneck.nanmedian(deviation, axis=1) * _MAD_TO_SD
        flat = ~(mad > 0)  # more than half the values equal
        mad[flat] = np.nanmean(deviation[flat], axis=1) * _MEAN_AD_TO_SD
        out[rows, 0] = location
        out[rows[finite], 1] = mad
    return out


def _mean_and_std(
    count: np.ndarray, total: np.ndarray, squares: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation from sums; NaN without values, 0 below rounding."""
    mean = _ratio(total, count)
    std = np.sqrt(np.maximum(_ratio(squares, count) - mean**2, 0.0))
    return mean, np.where(std > _ROUNDING * np.abs(mean), std, 0.0 * std)


def _ratio(numerator: np.ndarray, count: np.ndarray) -> np.ndarray:
    """``numerator / count``, NaN where the count is 0."""
    return np.where(count > 0, numerator / np.maximum(count, 1), np.nan)

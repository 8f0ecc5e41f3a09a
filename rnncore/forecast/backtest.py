"""Rolling-origin backtests of a forecaster beside a seasonal-naive baseline.

The last ``n_windows * horizon`` steps of a dataset are cut into ``n_windows``
consecutive test windows of ``horizon`` steps. For each, a fresh forecaster is fitted
on everything before the window and forecasts it; the seasonal-naive forecast (the
value last observed at the same phase of the season) is scored on the same points.

Points are scored where the actual value, the forecast and the naive forecast are
all known. Per series: MASE (errors scaled by the in-sample mean absolute seasonal
difference of each window's training data), sMAPE (percent) and the coverage of
each interval level. Overall figures (the dataset's attributes): the mean over the
series with a defined value for MASE and sMAPE, and the fraction of all points
covered for coverage.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

from ..checks import check_int
from ..timeaxis import isoformat
from .conformal import check_levels
from .forecaster import Forecaster
from .metrics import coverage, mase, nanmean, smape

__all__ = ["backtest", "backtest_table", "seasonal_naive"]

# Seasons of history searched for the last value observed at a phase.
_NAIVE_SEASONS = 8
#: The arrays each test window contributes, ``(series, horizon)`` (the bounds with a level axis).
_PARTS = ("actual", "mean", "naive", "scale", "lower", "upper")


def backtest(
    ds: xr.Dataset,
    make_forecaster: Callable[[], Forecaster],
    horizon: int,
    n_windows: int,
    *,
    variable: str = "y",
    levels: Sequence[float] | None = None,
    time_dim: str = "time",
    series_dim: str = "series",
) -> xr.Dataset:
    """Evaluate forecasters by rolling origins, with seasonal naive as the baseline.

    Parameters
    ----------
    ds
        The data, as :meth:`Forecaster.fit` takes them.
    make_forecaster
        Returns a new, unfitted :class:`Forecaster` (one per window), fitted for at
        least ``horizon`` steps.
    horizon
        Steps per test window.
    n_windows
        Number of consecutive test windows at the end of ``ds``.
    variable, time_dim, series_dim
        The target and the dimension names.
    levels
        Interval levels to score, among the forecaster's; ``None`` for all of them.

    Returns
    -------
    xarray.Dataset
        Per series: ``mase``, ``smape``, ``naive_mase``, ``naive_smape``,
        ``coverage`` ``(series, level)`` and ``n_points``; attributes ``mase``,
        ``smape``, ``naive_mase``, ``naive_smape``, ``coverage_<level in percent>``
        (overall figures), ``horizon``, ``n_windows``, ``season`` and ``origins``.

    Raises
    ------
    ValueError
        If the windows leave no training data, or ``levels`` are not the forecaster's.

    Examples
    --------
    >>> from rnncore.synthetic import generate
    >>> ds = generate(10, 24 * 7 * 6, seed=0)
    >>> result = backtest(ds, lambda: Forecaster(24), horizon=24, n_windows=2)
    >>> sorted(result.data_vars)
    ['coverage', 'mase', 'n_points', 'naive_mase', 'naive_smape', 'smape']
    """
    check_int("horizon", horizon, 1)
    check_int("n_windows", n_windows, 1)
    n_steps = ds.sizes[time_dim]
    first = n_steps - n_windows * horizon
    if first < 2:
        raise ValueError(
            f"{n_windows} windows of {horizon} steps leave {first} step(s) of the {n_steps} "
            "to train on"
        )
    dims = {"variable": variable, "time_dim": time_dim, "series_dim": series_dim}
    windows = [
        _window(ds, origin, horizon, make_forecaster, levels, **dims)
        for origin in range(first, n_steps, horizon)
    ]
    stacked = {k: np.concatenate([w.arrays[k] for w in windows], axis=1) for k in _PARTS}
    series = {n: c for n, c in ds[variable].coords.items() if c.dims == (series_dim,)}
    result = _scores(stacked, windows[-1].levels, series, series_dim)
    result.attrs |= {
        "horizon": horizon,
        "n_windows": n_windows,
        "season": windows[-1].season,
        "origins": [w.origin for w in windows],
    }
    return result


def backtest_table(result: xr.Dataset) -> str:
    """The overall figures of a :func:`backtest` as a markdown table.

    Examples
    --------
    >>> result = xr.Dataset(attrs={"mase": 0.6, "smape": 10.0, "naive_mase": 1.0,
    ...                            "naive_smape": 15.0, "coverage_80": 0.79})
    >>> print(backtest_table(result))
    | model | MASE | sMAPE (%) | coverage 80% |
    | --- | --- | --- | --- |
    | forecaster | 0.600 | 10.00 | 79.0% |
    | seasonal naive | 1.000 | 15.00 | - |
    """
    covers = sorted(
        (int(key.split("_")[1]), key) for key in result.attrs if key.startswith("coverage_")
    )
    header = ["model", "MASE", "sMAPE (%)", *(f"coverage {p}%" for p, _ in covers)]
    rows = [
        [
            "forecaster",
            f"{result.attrs['mase']:.3f}",
            f"{result.attrs['smape']:.2f}",
            *(f"{100 * result.attrs[key]:.1f}%" for _, key in covers),
        ],
        [
            "seasonal naive",
            f"{result.attrs['naive_mase']:.3f}",
            f"{result.attrs['naive_smape']:.2f}",
            *("-" for _ in covers),
        ],
    ]
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def seasonal_naive(history: np.ndarray, season: int, horizon: int) -> np.ndarray:
    """Seasonal-naive forecasts: for each step, the last value observed at its phase.

    Parameters
    ----------
    history
        ``(series, time)``, the last steps before the forecast origin.
    season
        Steps per season.
    horizon
        Steps to forecast.

    Returns
    -------
    numpy.ndarray
        ``(series, horizon)``; NaN where the phase was never observed in ``history``.

    Examples
    --------
    >>> seasonal_naive(np.array([[1.0, 2.0, 3.0, np.nan]]), season=2, horizon=3).tolist()
    [[3.0, 2.0, 3.0]]
    """
    history = np.asarray(history, dtype=np.float64)
    n_series, length = history.shape
    out = np.full((n_series, horizon), np.nan)
    for h in range(1, horizon + 1):
        lag = season * math.ceil(h / season)
        for position in range(length - 1 + h - lag, -1, -season):
            value = history[:, position]
            out[:, h - 1] = np.where(np.isnan(out[:, h - 1]), value, out[:, h - 1])
            if not np.isnan(out[:, h - 1]).any():
                break
    return out


@dataclass(frozen=True)
class _Window:
    """One test window: its ``(series, horizon)`` arrays (:data:`_PARTS`) and context."""

    arrays: dict[str, np.ndarray]
    levels: tuple[float, ...]
    season: int
    origin: str


def _window(
    ds: xr.Dataset,
    origin: int,
    horizon: int,
    make_forecaster: Callable[[], Forecaster],
    levels: Sequence[float] | None,
    *,
    variable: str,
    time_dim: str,
    series_dim: str,
) -> _Window:
    """Fit a fresh forecaster before ``origin``; its forecast, the naive one, the actuals."""
    forecaster = make_forecaster()
    if not isinstance(forecaster, Forecaster) or forecaster.horizon < horizon:
        raise ValueError(
            f"make_forecaster must return a Forecaster with horizon >= {horizon}; "
            f"got {forecaster!r}"
        )
    scored_levels = _levels(levels, forecaster.levels)
    forecast = forecaster.fit_predict(
        ds.isel({time_dim: slice(0, origin)}),
        horizon,
        variable=variable,
        time_dim=time_dim,
        series_dim=series_dim,
    )
    y = ds[variable].transpose(series_dim, time_dim)
    season = forecaster.season_
    tail = min(origin, _NAIVE_SEASONS * season + horizon)
    history = y.isel({time_dim: slice(origin - tail, origin)}).values
    bounds = forecast.sel(level=list(scored_levels))
    arrays = {
        "actual": y.isel({time_dim: slice(origin, origin + horizon)}).values,
        "mean": forecast["mean"].values,
        "naive": seasonal_naive(history, season, horizon),
        "scale": np.repeat(forecaster.scaling_.seasonal_mae.values[:, None], horizon, axis=1),
        "lower": bounds["lower"].values,
        "upper": bounds["upper"].values,
    }
    return _Window(arrays, scored_levels, season, isoformat(ds[time_dim].values[origin]))


def _scores(
    parts: dict[str, np.ndarray],
    levels: tuple[float, ...],
    series_coords: dict[str, xr.DataArray],
    series_dim: str,
) -> xr.Dataset:
    """Per-series scores of the windows' points, and the overall figures as attributes."""
    actual = np.asarray(parts["actual"], dtype=np.float64)
    mean, naive, scale = parts["mean"], parts["naive"], parts["scale"]
    scored = np.isfinite(actual) & np.isfinite(mean) & np.isfinite(naive)
    actual = np.where(scored, actual, np.nan)
    covered = np.stack(
        [
            coverage(actual, parts["lower"][..., k], parts["upper"][..., k])
            for k in range(len(levels))
        ],
        axis=1,
    )
    n_points = scored.sum(axis=1)
    result = xr.Dataset(
        {
            "mase": (series_dim, mase(actual, mean, scale)),
            "smape": (series_dim, smape(actual, mean)),
            "naive_mase": (series_dim, mase(actual, naive, scale)),
            "naive_smape": (series_dim, smape(actual, naive)),
            "coverage": ((series_dim, "level"), covered),
            "n_points": (series_dim, n_points),
        },
        coords=series_coords | {"level": list(levels)},
    )
    result.attrs = {
        name: _overall(result[name].values)
        for name in ("mase", "smape", "naive_mase", "naive_smape")
    }
    for k, level in enumerate(levels):
        result.attrs[f"coverage_{round(level * 100)}"] = _pooled(covered[:, k], n_points)
    return result


def _levels(levels: Sequence[float] | None, available: tuple[float, ...]) -> tuple[float, ...]:
    if levels is None:
        return available
    levels = check_levels(levels)
    unknown = [level for level in levels if level not in available]
    if unknown:
        raise ValueError(f"levels {unknown} are not among the forecaster's levels {available}")
    return levels


def _overall(values: np.ndarray) -> float:
    """The mean of the finite per-series values."""
    return float(nanmean(values[None, :])[0])


def _pooled(fractions: np.ndarray, counts: np.ndarray) -> float:
    """The fraction over all points of per-series fractions of ``counts`` points."""
    known = np.isfinite(fractions) & (counts > 0)
    total = counts[known].sum()
    return float((fractions[known] * counts[known]).sum() / total) if total else math.nan

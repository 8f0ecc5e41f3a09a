"""Long data frames in StatsForecast's shape, to and from the forecaster's Datasets.

The DataFrame API of :class:`~rnncore.forecast.Forecaster` (``fit``, ``predict``,
``forecast`` and ``cross_validation`` on a frame ``unique_id, ds, y`` plus exogenous
columns) reads frames with :func:`rnncore.longformat.from_long` and writes its
results as StatsForecast does: one row per series and forecast timestamp, columns
``unique_id, ds, <alias>, <alias>-lo-<level>, <alias>-hi-<level>``, levels in
percent. utilsforecast's evaluation functions read them as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from ..longformat import ID, TIME, as_labels

__all__ = ["ALIAS", "cutoff_mask", "forecast_frame", "percent_levels"]

#: The model's column name in forecast frames.
ALIAS = "RNNFlow"


def percent_levels(level: Sequence[float]) -> tuple[float, ...]:
    """StatsForecast's ``level`` (percent, each in ``(0, 100)``) as fractions.

    Examples
    --------
    >>> percent_levels([80, 95])
    (0.8, 0.95)
    """
    values = [float(value) for value in level]
    if not values or any(not 0 < value < 100 for value in values):
        raise ValueError(f"level must be one or more percentages in (0, 100); got {list(level)}")
    return tuple(sorted(value / 100 for value in values))


def forecast_frame(forecast: xr.Dataset, alias: str = ALIAS) -> pd.DataFrame:
    """A forecast Dataset (:meth:`Forecaster.predict`) as a long frame.

    Parameters
    ----------
    forecast
        ``mean`` ``(series, step)``, ``lower`` and ``upper`` ``(series, step,
        level)`` and the per-series timestamps ``time`` ``(series, step)``.
    alias
        The model's column name.

    Returns
    -------
    pandas.DataFrame
        ``unique_id, ds, <alias>, <alias>-lo-<p>, <alias>-hi-<p>`` for each level
        ``p`` in percent, sorted by ``unique_id`` and ``ds``; series with no
        observation are left out.
    """
    kept = ~forecast["all_missing"].values
    n_steps = forecast.sizes["step"]
    ids = as_labels(forecast["series"].values)[kept]
    columns = {
        ID: np.repeat(ids, n_steps),
        TIME: forecast["time"].transpose("series", "step").values[kept].ravel(),
        alias: forecast["mean"].values[kept].ravel(),
    }
    for k, level in enumerate(forecast["level"].values):
        label = f"{100 * level:g}"
        columns[f"{alias}-lo-{label}"] = forecast["lower"].values[kept, :, k].ravel()
        columns[f"{alias}-hi-{label}"] = forecast["upper"].values[kept, :, k].ravel()
    return pd.DataFrame(columns).sort_values([ID, TIME], kind="stable").reset_index(drop=True)


def cutoff_mask(
    ds: xr.Dataset, variable: str, window: int, n_windows: int, h: int, step_size: int
) -> xr.DataArray:
    """Each series' cutoff index for cross-validation window ``window`` (0 first).

    As in StatsForecast, windows count back from each series' own last observation:
    window ``w`` tests the ``h`` steps after index
    ``last - h - (n_windows - 1 - w) * step_size``. Series too short for it get -1.

    Examples
    --------
    >>> ds = xr.Dataset({"y": (("series", "time"), [[1.0] * 10, [1.0] * 8 + [np.nan] * 2])})
    >>> cutoff_mask(ds, "y", 0, 2, 3, 2).values.tolist()
    [4, 2]
    """
    y = ds[variable].transpose("series", "time")
    observed = np.isfinite(y.values)
    last = np.where(observed.any(axis=1), y.sizes["time"] - 1 - np.argmax(observed[:, ::-1], 1), -1)
    cutoff = last - h - (n_windows - 1 - window) * step_size
    return xr.DataArray(np.where((last >= 0) & (cutoff >= 0), cutoff, -1), dims="series")

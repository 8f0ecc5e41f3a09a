"""The time axis of a forecast: its step, its season, phases and calendar features.

Everything here is a function of timestamps alone (``datetime64`` values), never of
where a dataset starts, so that the same instant gets the same phase and the same
calendar features in a training set, in a later forecast and in a backtest window.
A time axis must be equally spaced (hourly, daily, every 15 minutes, ...).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "calendar_features",
    "calendar_names",
    "default_season",
    "forecast_times",
    "infer_step",
    "isoformat",
    "phase",
]

_EPOCH = np.datetime64("1970-01-01T00:00:00", "ns")
_DAY = np.timedelta64(1, "D").astype("m8[ns]")
_WEEK = 7 * _DAY
# The mean Gregorian year, in nanoseconds.
_YEAR = np.timedelta64(int(365.2425 * 86400 * 10**9), "ns")

# The calendar cycles: name, period, number of sin/cos harmonics. A cycle is used
# when the step is shorter than its period (hour of day for sub-daily data, ...).
_CYCLES = (("day", _DAY, 2), ("week", _WEEK, 2), ("year", _YEAR, 2))


def infer_step(times: np.ndarray) -> np.timedelta64:
    """The constant step between consecutive timestamps.

    Parameters
    ----------
    times
        ``datetime64`` values, increasing and equally spaced; at least two.

    Returns
    -------
    numpy.timedelta64
        The step, in nanoseconds.

    Raises
    ------
    TypeError
        If ``times`` are not ``datetime64`` values.
    ValueError
        If there are fewer than two timestamps or they are not equally spaced.

    Examples
    --------
    >>> import pandas as pd
    >>> infer_step(pd.date_range("2025-01-01", periods=4, freq="h").values)
    np.timedelta64(3600000000000,'ns')
    """
    times = _as_ns(times, what="the time coordinate")
    if times.size < 2:
        raise ValueError(f"the time coordinate has {times.size} timestamp(s); expected at least 2")
    steps = np.diff(times)
    step = steps[0]
    if step <= np.timedelta64(0, "ns") or (steps != step).any():
        bad = int(np.flatnonzero(steps != step)[0]) + 1 if (steps != step).any() else 0
        raise ValueError(
            "the time coordinate must be increasing and equally spaced (hourly, daily, ...); "
            f"the step from {times[bad]} to {times[bad + 1]} is {steps[bad]}, "
            f"the first is {step}"
        )
    return step


def default_season(step: np.timedelta64) -> int:
    """The season (in steps) that a time step suggests.

    A step dividing a day gives the daily cycle (24 for hourly data, 96 for 15
    minutes); a daily step gives the week (7); a weekly step the year (52); any
    other step 1 (no seasonality).

    Examples
    --------
    >>> default_season(np.timedelta64(1, "h")), default_season(np.timedelta64(1, "D"))
    (24, 7)
    """
    step = np.timedelta64(step, "ns")
    if step < _DAY and _DAY % step == np.timedelta64(0, "ns"):
        return int(_DAY // step)
    if step == _DAY:
        return 7
    if step == _WEEK:
        return 52
    return 1


def phase(times: np.ndarray, step: np.timedelta64, season: int) -> np.ndarray:
    """The position of each timestamp within its season: ``0 .. season - 1``.

    Counted in steps since 1970-01-01, so hourly data with a season of 24 have the
    hour of the day as their phase, whatever the first timestamp of a dataset.

    Examples
    --------
    >>> import pandas as pd
    >>> times = pd.date_range("2025-01-01 22:00", periods=4, freq="h").values
    >>> phase(times, np.timedelta64(1, "h"), 24)
    array([22, 23,  0,  1])
    """
    elapsed = _as_ns(times, what="times") - _EPOCH
    return ((elapsed // np.timedelta64(step, "ns")) % season).astype(np.int64)


def calendar_names(step: np.timedelta64) -> list[str]:
    """Names of the columns :func:`calendar_features` gives for data at ``step``.

    Examples
    --------
    >>> calendar_names(np.timedelta64(1, "D"))
    ['week_sin1', 'week_cos1', 'week_sin2', 'week_cos2', 'year_sin1', 'year_cos1', \
'year_sin2', 'year_cos2']
    """
    return [
        f"{name}_{trig}{k}"
        for name, _, harmonics in _cycles(step)
        for k in range(1, harmonics + 1)
        for trig in ("sin", "cos")
    ]


def calendar_features(times: np.ndarray, step: np.timedelta64) -> np.ndarray:
    """Sine and cosine harmonics of the calendar cycles the step warrants.

    Sub-daily data get the time of day, the day of the week and the time of year;
    daily data the day of the week and the time of year; weekly data the time of
    year. Columns are named by :func:`calendar_names`.

    Parameters
    ----------
    times
        ``datetime64`` values.
    step
        The data's time step.

    Returns
    -------
    numpy.ndarray
        ``(len(times), n)`` float64.

    Examples
    --------
    >>> import pandas as pd
    >>> times = pd.date_range("2025-01-01 06:00", periods=2, freq="6h").values
    >>> calendar_features(times, np.timedelta64(6, "h"))[:, :2].round(6)
    array([[ 1.,  0.],
           [ 0., -1.]])
    """
    elapsed = _as_ns(times, what="times") - _EPOCH
    columns = []
    for _, period, harmonics in _cycles(step):
        fraction = (elapsed % period) / period
        for k in range(1, harmonics + 1):
            angle = 2 * np.pi * k * fraction
            columns += [np.sin(angle), np.cos(angle)]
    return np.stack(columns, axis=-1) if columns else np.zeros((elapsed.size, 0))


def forecast_times(last: np.datetime64, step: np.timedelta64, horizon: int) -> np.ndarray:
    """The ``horizon`` timestamps following ``last``.

    Examples
    --------
    >>> forecast_times(np.datetime64("2025-01-01T23:00"), np.timedelta64(1, "h"), 2)
    array(['2025-01-02T00:00:00.000000000', '2025-01-02T01:00:00.000000000'],
          dtype='datetime64[ns]')
    """
    return np.datetime64(last, "ns") + np.timedelta64(step, "ns") * np.arange(1, horizon + 1)


def isoformat(time: np.datetime64) -> str:
    """A timestamp in ISO 8601, without trailing zero fractions.

    Examples
    --------
    >>> isoformat(np.datetime64("2025-01-28T23:00:00.000000000"))
    '2025-01-28T23:00:00'
    """
    return pd.Timestamp(time).isoformat()


def _cycles(step: np.timedelta64) -> Sequence[tuple[str, np.timedelta64, int]]:
    return [cycle for cycle in _CYCLES if np.timedelta64(step, "ns") < cycle[1]]


def _as_ns(times: np.ndarray, *, what: str) -> np.ndarray:
    times = np.asarray(times)
    if not np.issubdtype(times.dtype, np.datetime64):
        raise TypeError(
            f"{what} must hold datetime64 timestamps; got dtype {times.dtype}. "
            "Forecasts need a real time coordinate"
        )
    return times.astype("datetime64[ns]")

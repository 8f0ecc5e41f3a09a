"""The time axis of a forecast: its frequency, seasons, calendar features and future.

Everything here is a function of timestamps alone (``datetime64`` values), never of
where a dataset starts, so that the same instant gets the same phase and the same
calendar features in a training set, in a later forecast and in a backtest window.

A time axis is regular at a pandas frequency: a fixed step (``"h"``, ``"30min"``,
``"D"``) or a calendar one (``"MS"`` month starts, ``"QS-DEC"`` quarters, ``"W-SUN"``
weeks, ``"B"`` business days, ...). :func:`infer_freq` finds the frequency of an axis,
:func:`step_index` numbers its steps from a fixed anchor, and :func:`future_times`
extends it past a forecast origin, all through pandas offsets.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

__all__ = [
    "calendar_features",
    "calendar_names",
    "check_freq",
    "check_regular",
    "default_seasons",
    "future_times",
    "infer_freq",
    "isoformat",
    "pandas_freq",
    "step_index",
]

# pandas 3's option for what its next major version does: infer_freq returns an offset.
_FUTURE_OFFSET = "future.infer_freq_returns_offset"
_EPOCH = np.datetime64("1970-01-01T00:00:00", "ns")
_DAY = np.timedelta64(1, "D").astype("m8[ns]")
_WEEK = 7 * _DAY
# The mean Gregorian year, in nanoseconds.
_YEAR = np.timedelta64(int(365.2425 * 86400 * 10**9), "ns")
# The calendar cycles: name, period, number of sin/cos harmonics. A cycle is used
# when the step is shorter than its period (hour of day for sub-daily data, ...).
_CYCLES = (("day", _DAY, 2), ("week", _WEEK, 2), ("year", _YEAR, 2))


def isoformat(time: np.datetime64) -> str:
    """A timestamp in ISO 8601, without trailing zero fractions.

    Examples
    --------
    >>> isoformat(np.datetime64("2025-01-28T23:00:00.000000000"))
    '2025-01-28T23:00:00'
    """
    return pd.Timestamp(time).isoformat()


# --- Calendar frequencies -----------------------------------------------------------

_FREQ_EXAMPLES = "'h', '30min', 'D', 'B', 'W-SUN', 'MS', 'ME', 'QS-DEC', 'QE', 'YS'"
_FIX = (
    "pass freq=... (--freq on the command line) to place the series on a regular grid, "
    "the missing steps as NaN"
)
# Offsets stepping by whole months, and the months in one of their steps.
_MONTHLY = (
    (pd.offsets.MonthBegin, 1),
    (pd.offsets.MonthEnd, 1),
    (pd.offsets.BusinessMonthBegin, 1),
    (pd.offsets.BusinessMonthEnd, 1),
    (pd.offsets.CustomBusinessMonthBegin, 1),
    (pd.offsets.CustomBusinessMonthEnd, 1),
    (pd.offsets.QuarterBegin, 3),
    (pd.offsets.QuarterEnd, 3),
    (pd.offsets.BQuarterBegin, 3),
    (pd.offsets.BQuarterEnd, 3),
    (pd.offsets.YearBegin, 12),
    (pd.offsets.YearEnd, 12),
    (pd.offsets.BYearBegin, 12),
    (pd.offsets.BYearEnd, 12),
)
_QUARTERLY = (
    pd.offsets.QuarterBegin,
    pd.offsets.QuarterEnd,
    pd.offsets.BQuarterBegin,
    pd.offsets.BQuarterEnd,
)


def check_freq(freq: str | pd.DateOffset) -> str:
    """Validate a pandas frequency and return its canonical string.

    The canonical string is pandas' own (``to_offset(freq).freqstr``), except that
    quarterly anchors naming the same quarters are made one: ``"QS-OCT"``,
    ``"QS-APR"`` and ``"QS-JUL"`` all step through January, April, July and October,
    and become ``"QS-JAN"``; March, June, September and December starts are
    ``"QS-DEC"``, and calendar quarter ends ``"QE-DEC"``.

    Parameters
    ----------
    freq
        A pandas frequency alias (``"h"``, ``"30min"``, ``"D"``, ``"B"``, ``"W-SUN"``,
        ``"MS"``, ``"QS-DEC"``, ...) or a ``pandas.DateOffset``.

    Returns
    -------
    str
        The canonical alias.

    Raises
    ------
    ValueError
        If ``freq`` is not a pandas frequency, or does not step forward.

    Examples
    --------
    >>> check_freq("h"), check_freq("QS"), check_freq("QS-OCT"), check_freq("W")
    ('h', 'QS-JAN', 'QS-JAN', 'W-SUN')
    >>> check_freq(pd.offsets.MonthBegin(2))
    '2MS'
    >>> check_freq("monthly")
    Traceback (most recent call last):
    ...
    ValueError: 'monthly' is not a pandas frequency; use an alias such as 'h', ...
    """
    return _canonical(_parse_freq(freq)).freqstr


def pandas_freq(index: pd.DatetimeIndex) -> str | None:
    """:func:`pandas.infer_freq` of ``index`` as a frequency string, or None.

    pandas 3 warns that ``infer_freq`` will return an offset, not a string; the offset
    is asked for where the option exists, and named (``freqstr``), so that every pandas
    gives the same string without the warning.

    Examples
    --------
    >>> pandas_freq(pd.date_range("2025-01-01", periods=4, freq="MS"))
    'MS'
    >>> pandas_freq(pd.DatetimeIndex(["2025-01-01", "2025-01-02", "2025-01-04"])) is None
    True
    """
    with contextlib.ExitStack() as stack:
        with contextlib.suppress(KeyError, pd.errors.OptionError):
            pd.get_option(_FUTURE_OFFSET)
            stack.enter_context(pd.option_context(_FUTURE_OFFSET, True))
        freq = pd.infer_freq(index)
    return freq if freq is None or isinstance(freq, str) else freq.freqstr


def infer_freq(times: np.ndarray) -> str:
    """The frequency of a regular axis of timestamps.

    Parameters
    ----------
    times
        ``datetime64`` values, increasing. Three or more are matched against pandas'
        frequencies (``pd.infer_freq``), so month starts, whose steps last 28 to 31
        days, are ``"MS"``; two give the fixed step between them.

    Returns
    -------
    str
        The canonical frequency (see :func:`check_freq`).

    Raises
    ------
    TypeError
        If ``times`` are not ``datetime64`` values.
    ValueError
        If there are fewer than two timestamps, a timestamp is missing (NaT),
        repeated or out of order, or the axis is not regular at any pandas frequency
        (the message names where the spacing breaks and how to fix it).

    Examples
    --------
    >>> infer_freq(pd.date_range("1939-03-01", periods=4, freq="MS").values)
    'MS'
    >>> infer_freq(pd.to_datetime(["2025-01-01 00:00", "2025-01-01 00:30"]).values)
    '30min'
    >>> times = pd.to_datetime(["2025-01-01 09:00", "2025-01-01 09:05",
    ...                         "2025-01-01 09:10", "2025-01-02 09:00"]).values
    >>> infer_freq(times)
    Traceback (most recent call last):
    ...
    ValueError: the timestamps are not equally spaced at any pandas frequency: from 2025-01-01 \
09:10:00 to 2025-01-02 09:00:00 the step is 23 hours 50 minutes; before it steps were 5 \
minutes. Pass freq=... (--freq on the command line) to place the series on a regular grid, \
the missing steps as NaN
    """
    index = _index(times, what="the time coordinate")
    if len(index) < 2:
        raise ValueError(
            f"inferring a frequency needs at least 2 timestamps; got {len(index)}. "
            "Pass freq=... (--freq on the command line)"
        )
    _check_increasing(index)
    if len(index) == 2:
        step = pd.Timedelta(index[1] - index[0])
        whole_days = step % pd.Timedelta(days=1) == pd.Timedelta(0)
        return check_freq(f"{step.days}D" if whole_days else step)
    freq = pandas_freq(index)
    if freq is None:
        raise ValueError(_irregular_message(index))
    return check_regular(index.values, freq)


def check_regular(times: np.ndarray, freq: str | pd.DateOffset) -> str:
    """Check that ``times`` are consecutive points of the ``freq`` grid.

    Parameters
    ----------
    times
        ``datetime64`` values; they must equal
        ``pd.date_range(times[0], periods=len(times), freq=freq)``.
    freq
        A pandas frequency (see :func:`check_freq`).

    Returns
    -------
    str
        The canonical frequency.

    Raises
    ------
    ValueError
        If ``freq`` is not a frequency, ``times[0]`` is not on it (a month start
        for ``"MS"``, ...), or a later timestamp is off the grid: the message names
        the first such timestamp and the one expected there.

    Examples
    --------
    >>> check_regular(pd.date_range("2025-03-01", periods=3, freq="QS-DEC").values, "QS-DEC")
    'QS-DEC'
    >>> check_regular(pd.to_datetime(["2025-01-01", "2025-02-01", "2025-04-01"]).values, "MS")
    Traceback (most recent call last):
    ...
    ValueError: the timestamps are not a regular 'MS' axis: 2025-04-01 00:00:00 (position 2) \
stands where 2025-03-01 00:00:00 was expected. Pass freq=... (--freq on the command line) \
to place the series on a regular grid, the missing steps as NaN
    """
    canonical = check_freq(freq)
    offset = to_offset(canonical)
    index = _index(times, what="the time coordinate")
    if len(index) == 0:
        return canonical
    first = index[0]
    if not offset.is_on_offset(first):
        raise ValueError(
            f"the first timestamp {first} is not on the {canonical!r} grid; the nearest "
            f"grid points are {offset.rollback(first)} and {offset.rollforward(first)}"
        )
    expected = pd.date_range(first, periods=len(index), freq=offset).as_unit("ns")
    bad = np.flatnonzero(expected.asi8 != index.asi8)
    if bad.size:
        k = int(bad[0])
        raise ValueError(
            f"the timestamps are not a regular {canonical!r} axis: {index[k]} (position {k}) "
            f"stands where {expected[k]} was expected. {_FIX[0].upper()}{_FIX[1:]}"
        )
    return canonical


def step_index(times: np.ndarray, freq: str | pd.DateOffset) -> np.ndarray:
    """The number of ``freq`` steps from a fixed anchor to each timestamp.

    The anchor is the start of 1970 (the first grid point on or after it, for
    offsets such as business days), never the start of a dataset, so the same
    instant gets the same index in every dataset and consecutive grid points differ
    by exactly 1. A timestamp between grid points gets the index of the one before.

    Parameters
    ----------
    times
        ``datetime64`` values, any shape, without NaT.
    freq
        A pandas frequency (see :func:`check_freq`).

    Returns
    -------
    numpy.ndarray
        int64, the shape of ``times``.

    Examples
    --------
    >>> step_index(pd.date_range("1970-01-01", periods=3, freq="h").values, "h")
    array([0, 1, 2])
    >>> step_index(pd.date_range("1970-03-01", periods=3, freq="QS-DEC").values, "QS-DEC")
    array([0, 1, 2])
    >>> step_index(pd.to_datetime(["1969-12-01", "2025-01-01"]).values, "MS")
    array([ -1, 660])
    >>> step_index(pd.date_range("1970-01-01", periods=3, freq="B").values, "B")
    array([0, 1, 2])
    """
    offset = to_offset(check_freq(freq))
    times = _as_ns(times, what="times")
    if np.isnat(times).any():
        raise ValueError("step_index needs timestamps; got NaT")
    flat = times.ravel()
    return _step_index(flat, offset).astype(np.int64).reshape(times.shape)


def default_seasons(freq: str | pd.DateOffset) -> tuple[int, ...]:
    """The seasons, in steps, that a frequency suggests.

    Sub-daily steps dividing a day give the day and the week (``"h"``: 24 and 168);
    daily data the week (7), business days the working week (5), weeks the year
    (52), months 12, quarters 4; multiples divide these when they can (``"2MS"``:
    6). A season must be a whole number of steps longer than one, else it is left out
    (years, or a 7-hour step, have none).

    Examples
    --------
    >>> default_seasons("30min"), default_seasons("D"), default_seasons("QS-DEC")
    ((48, 336), (7,), (4,))
    >>> default_seasons("2MS"), default_seasons("YS"), default_seasons("7h")
    ((6,), (), ())
    """
    offset = to_offset(check_freq(freq))
    fixed = _fixed_ns(offset)
    if fixed is not None:
        day, week = int(_DAY.astype(np.int64)), int(_WEEK.astype(np.int64))
        if fixed < day:
            return (day // fixed, week // fixed) if day % fixed == 0 else ()
        periods = {day: 7, week: 52}
        return (periods[fixed],) if fixed in periods else ()
    months = _months_per_step(offset)
    if months is not None:
        return _whole(12, months)
    if isinstance(offset, pd.offsets.Week):
        return _whole(52, offset.n)
    if isinstance(offset, pd.offsets.BusinessDay) and offset.offset == pd.Timedelta(0):
        return _whole(_workdays(offset), offset.n)
    if isinstance(offset, pd.offsets.SemiMonthBegin | pd.offsets.SemiMonthEnd):
        return _whole(24, offset.n)
    return ()


def calendar_names(freq: str | pd.DateOffset) -> list[str]:
    """Names of the columns :func:`calendar_features` gives for data at ``freq``.

    Examples
    --------
    >>> calendar_names("MS")
    ['year_sin1', 'year_cos1', 'year_sin2', 'year_cos2']
    >>> calendar_names("B")[:2], calendar_names("YS")
    (['week_sin1', 'week_cos1'], [])
    """
    return [
        f"{name}_{trig}{k}"
        for name, harmonics in _freq_cycles(to_offset(check_freq(freq)))
        for k in range(1, harmonics + 1)
        for trig in ("sin", "cos")
    ]


def calendar_features(times: np.ndarray, freq: str | pd.DateOffset) -> np.ndarray:
    """Sine and cosine harmonics of the calendar cycles longer than the step.

    The time of day for sub-daily steps, the day of the week for steps shorter than
    a week, the time of year for steps shorter than a year. Month-based frequencies
    (``"MS"``, ``"QS-DEC"``, ...) place a timestamp in the year by its month, so
    every January has the same features; other frequencies by the fraction of the
    mean Gregorian year since 1970. Columns are named by :func:`calendar_names`.

    Parameters
    ----------
    times
        ``datetime64`` values.
    freq
        The data's frequency.

    Returns
    -------
    numpy.ndarray
        ``(len(times), n)`` float64.

    Examples
    --------
    >>> times = pd.to_datetime(["2024-01-01", "2025-01-01", "2025-04-01"]).values
    >>> calendar_features(times, "MS")[:, :2].round(6)
    array([[0., 1.],
           [0., 1.],
           [1., 0.]])
    """
    offset = to_offset(check_freq(freq))
    times = _as_ns(times, what="times")
    elapsed = times - _EPOCH
    periods = {"day": _DAY, "week": _WEEK}
    columns = []
    for name, harmonics in _freq_cycles(offset):
        if name in periods:
            fraction = (elapsed % periods[name]) / periods[name]
        elif _months_per_step(offset) is not None:
            fraction = (times.astype("datetime64[M]").astype(np.int64) % 12) / 12
        else:
            fraction = (elapsed % _YEAR) / _YEAR
        for k in range(1, harmonics + 1):
            angle = 2 * np.pi * k * fraction
            columns += [np.sin(angle), np.cos(angle)]
    return np.stack(columns, axis=-1) if columns else np.zeros((times.size, 0))


def future_times(
    last: np.datetime64 | np.ndarray, freq: str | pd.DateOffset, horizon: int
) -> np.ndarray:
    """The ``horizon`` points of the ``freq`` grid after ``last``.

    Parameters
    ----------
    last
        One timestamp (``numpy.datetime64``, ``pandas.Timestamp``, ...), or an array
        ``(n,)`` of per-series last timestamps (NaT for a series without one).
    freq
        A pandas frequency (see :func:`check_freq`).
    horizon
        The number of future steps.

    Returns
    -------
    numpy.ndarray
        ``datetime64[ns]``: ``(horizon,)`` for one timestamp, ``(n, horizon)`` for an
        array, NaT rows where ``last`` is NaT.

    Examples
    --------
    >>> future_times(np.datetime64("2025-01-01"), "MS", 2)
    array(['2025-02-01T00:00:00.000000000', '2025-03-01T00:00:00.000000000'],
          dtype='datetime64[ns]')
    >>> last = np.array(["2024-12-01", "NaT", "2025-02-01"], "datetime64[ns]")
    >>> future_times(last, "MS", 2).astype("datetime64[D]")
    array([['2025-01-01', '2025-02-01'],
           [       'NaT',        'NaT'],
           ['2025-03-01', '2025-04-01']], dtype='datetime64[D]')
    """
    offset = to_offset(check_freq(freq))
    horizon = int(horizon)
    if horizon < 0:
        raise ValueError(f"horizon must be at least 0; got {horizon}")
    if np.ndim(last) == 0 and not isinstance(last, np.datetime64):
        last = pd.Timestamp(last).to_datetime64()  # a pandas or datetime timestamp
    stamps = _as_ns(last, what="last")
    flat = stamps.ravel()
    out = np.full((flat.size, horizon), np.datetime64("NaT"), "datetime64[ns]")
    valid = ~np.isnat(flat)
    if valid.any() and horizon:
        out[valid] = _future(flat[valid], offset, horizon)
    return out[0] if stamps.ndim == 0 else out.reshape(*stamps.shape, horizon)


def _as_ns(times: np.ndarray, *, what: str) -> np.ndarray:
    times = np.asarray(times)
    if not np.issubdtype(times.dtype, np.datetime64):
        raise TypeError(
            f"{what} must hold datetime64 timestamps; got dtype {times.dtype}. "
            "Forecasts need a real time coordinate"
        )
    return times.astype("datetime64[ns]")


def _parse_freq(freq: str | pd.DateOffset) -> pd.DateOffset:
    hint = f"use an alias such as {_FREQ_EXAMPLES}"
    try:
        offset = to_offset(freq)
    except (ValueError, TypeError):
        raise ValueError(f"{freq!r} is not a pandas frequency; {hint}") from None
    if offset is None:
        raise ValueError(f"a frequency is needed; {hint}")
    if offset.n < 1:
        raise ValueError(f"frequency {freq!r} must step forward; {hint}")
    try:
        round_trip = to_offset(offset.freqstr) == offset
    except (ValueError, TypeError):
        round_trip = False
    if not round_trip:
        raise ValueError(f"{freq!r} has no pandas alias; {hint}")
    return offset


def _canonical(offset: pd.DateOffset) -> pd.DateOffset:
    """Quarterly anchors naming the same quarters made one: the anchor closest to the
    default one (January for quarter starts, December for quarter ends)."""
    if not isinstance(offset, _QUARTERLY):
        return offset
    default = to_offset(offset.rule_code.split("-")[0]).startingMonth
    same = [(offset.startingMonth - 1 + 3 * k) % 12 + 1 for k in range(4)]
    month = min(same, key=lambda m: min((m - default) % 12, (default - m) % 12))
    return type(offset)(n=offset.n, normalize=offset.normalize, startingMonth=month)


def _index(times: np.ndarray, *, what: str) -> pd.DatetimeIndex:
    times = _as_ns(times, what=what).ravel()
    if np.isnat(times).any():
        position = int(np.flatnonzero(np.isnat(times))[0])
        raise ValueError(f"{what} has a missing timestamp (NaT) at position {position}")
    return pd.DatetimeIndex(times)


def _check_increasing(index: pd.DatetimeIndex) -> None:
    steps = np.diff(index.asi8)
    bad = np.flatnonzero(steps <= 0)
    if bad.size:
        k = int(bad[0])
        problem = "is repeated" if steps[k] == 0 else f"is followed by the earlier {index[k + 1]}"
        raise ValueError(
            f"timestamps must be increasing without repeats: {index[k]} (position {k}) "
            f"{problem}; sort them and drop duplicates"
        )


def _irregular_message(index: pd.DatetimeIndex) -> str:
    prefix = pandas_freq(index[:3])
    k, before = 1, f"the step was {_duration(index[1] - index[0])}"
    if prefix is not None:
        grid = pd.date_range(index[0], periods=len(index), freq=prefix).as_unit("ns")
        bad = np.flatnonzero(grid.asi8 != index.asi8)
        k = int(bad[0]) - 1 if bad.size else len(index) - 2
        fixed = _fixed_ns(to_offset(prefix))
        before = (
            f"steps were {_duration(pd.Timedelta(fixed, 'ns'))}"
            if fixed is not None
            else f"the timestamps followed freq {check_freq(prefix)!r}"
        )
    return (
        "the timestamps are not equally spaced at any pandas frequency: "
        f"from {index[k]} to {index[k + 1]} the step is {_duration(index[k + 1] - index[k])}; "
        f"before it {before}. {_FIX[0].upper()}{_FIX[1:]}"
    )


def _duration(delta: pd.Timedelta) -> str:
    """A duration in words: ``'5 minutes'``, ``'1 day 2 hours'``."""
    parts = pd.Timedelta(delta).components
    if parts.milliseconds or parts.microseconds or parts.nanoseconds or delta < pd.Timedelta(0):
        return str(pd.Timedelta(delta))
    units = (("day", parts.days), ("hour", parts.hours), ("minute", parts.minutes))
    words = [f"{n} {unit}{'s' if n != 1 else ''}" for unit, n in units if n]
    if parts.seconds or not words:
        words.append(f"{parts.seconds} second{'s' if parts.seconds != 1 else ''}")
    return " ".join(words)


def _fixed_ns(offset: pd.DateOffset) -> int | None:
    """The step in nanoseconds of a fixed-length offset (``"h"``, ``"D"``); else None."""
    if isinstance(offset, pd.offsets.Day):  # not a Tick from pandas 3 on
        return offset.n * int(_DAY.astype(np.int64))
    if isinstance(offset, pd.offsets.Tick):
        return int(offset.nanos)
    if isinstance(offset, pd.offsets.Week) and offset.weekday is None:
        return offset.n * int(_WEEK.astype(np.int64))
    return None


def _months_per_step(offset: pd.DateOffset) -> int | None:
    for kind, months in _MONTHLY:
        if isinstance(offset, kind):
            return months * offset.n
    return None


def _workdays(offset: pd.DateOffset) -> int:
    calendar = getattr(offset, "calendar", None)
    return int(np.sum(calendar.weekmask)) if calendar is not None else 5


def _whole(period: int, step: int) -> tuple[int, ...]:
    return (period // step,) if period % step == 0 and period // step > 1 else ()


def _step_index(times: np.ndarray, offset: pd.DateOffset) -> np.ndarray:
    fixed = _fixed_ns(offset)
    if fixed is not None:
        return (times - _EPOCH).astype(np.int64) // fixed
    months = _months_per_step(offset)
    if months is not None:
        return times.astype("datetime64[M]").astype(np.int64) // months
    days = times.astype("datetime64[D]")
    if isinstance(offset, pd.offsets.Week):
        # 1970-01-01 is a Thursday (weekday 3): shift so each anchor day starts a week
        shift = (offset.weekday - 3) % 7
        return (days.astype(np.int64) - shift) // 7 // offset.n
    if isinstance(offset, pd.offsets.BusinessDay) and offset.offset == pd.Timedelta(0):
        calendar = getattr(offset, "calendar", None)
        kwargs = {"busdaycal": calendar} if calendar is not None else {}
        return np.busday_count(_EPOCH.astype("datetime64[D]"), days, **kwargs) // offset.n
    return _grid_position(times, offset)


def _grid_position(times: np.ndarray, offset: pd.DateOffset) -> np.ndarray:
    """Steps from the first grid point on or after 1970-01-01, counted along a
    ``date_range`` (for offsets without a closed form: semi-months, business hours)."""
    base = offset.base
    anchor = base.rollforward(pd.Timestamp(_EPOCH))
    low = min(pd.Timestamp(times.min()), anchor).normalize()
    high = max(pd.Timestamp(times.max()), anchor)
    grid = pd.date_range((low - 2 * base).normalize(), high, freq=base).as_unit("ns")
    zero = grid.searchsorted(anchor)
    return (grid.asi8.searchsorted(times.astype(np.int64), side="right") - 1 - zero) // offset.n


def _freq_cycles(offset: pd.DateOffset) -> list[tuple[str, int]]:
    months = _months_per_step(offset)
    if months is not None:
        return [("year", 2)] if months < 12 else []
    fixed = _fixed_ns(offset)
    if fixed is None:  # the mean step over a stretch of the grid
        grid = pd.date_range("2000-01-03", periods=101, freq=offset).as_unit("ns")
        fixed = int(np.diff(grid.asi8).mean())
    step = np.timedelta64(fixed, "ns")
    return [(name, harmonics) for name, period, harmonics in _CYCLES if step < period]


def _future(last: np.ndarray, offset: pd.DateOffset, horizon: int) -> np.ndarray:
    """``(n, horizon)`` grid points after each of ``last`` (no NaT)."""
    fixed = _fixed_ns(offset)
    if fixed is not None:
        return last[:, None] + np.timedelta64(fixed, "ns") * np.arange(1, horizon + 1)
    index = _step_index(last, offset)
    start = pd.Timestamp(last[np.argmin(index)])
    span = int(index.max() - index.min())
    grid = pd.date_range(start, periods=span + horizon + 1, freq=offset).as_unit("ns")
    position = grid.get_indexer(last)
    if (position >= 0).all():
        return grid.values[position[:, None] + np.arange(1, horizon + 1)]
    # some series off the grid of the first (another time of day, ...): one range each
    unique, inverse = np.unique(last, return_inverse=True)
    rows = np.stack([_after(pd.Timestamp(t), offset, horizon) for t in unique])
    return rows[inverse.ravel()]


def _after(last: pd.Timestamp, offset: pd.DateOffset, horizon: int) -> np.ndarray:
    grid = pd.date_range(last, periods=horizon + 1, freq=offset).as_unit("ns")
    return grid[grid > last][:horizon].values

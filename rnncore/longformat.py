"""Long-format tables, one row per series and timestamp, to and from the xarray layout.

The long layout is the one StatsForecast and many databases use: a column of series
ids (``unique_id``), a column of timestamps (``ds``) and one column per value (``y``,
and any other numeric column). The xarray layout is rnnflow's: each value column a
variable ``(series, time)``, with coordinates ``series`` (string ids) and ``time``.

:func:`from_long` pivots a table into a Dataset, filling absent rows with NaN on a
regular time axis (when the frequency is given or can be inferred); :func:`to_long`
goes back, dropping the all-NaN rows. Variables with further dimensions become one
column per label (``lower`` with ``level`` 0.8 and 0.95 gives ``lower-80`` and
``lower-95``), and a forecast's ``step`` dimension, which carries a ``time``
coordinate, is read as time. :func:`read_long` and :func:`write_long` do the same
for CSV and Parquet files, chosen by suffix.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["LONG_SUFFIXES", "from_long", "is_long_format", "read_long", "to_long", "write_long"]

#: File suffixes of long-format tables, and the format each means.
LONG_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}

ID, TIME = "unique_id", "ds"
SERIES_DIM, TIME_DIM = "series", "time"


def is_long_format(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a long-format table (by its suffix: CSV or Parquet)."""
    return Path(path).suffix.lower() in LONG_SUFFIXES


def from_long(frame: pd.DataFrame, *, freq: str | None = None) -> xr.Dataset:
    """Pivot a long table ``unique_id, ds, <values>`` into a Dataset ``(series, time)``.

    Parameters
    ----------
    frame
        Columns ``unique_id`` (any type; ids become strings), ``ds`` (timestamps or
        strings pandas parses as such) and at least one numeric value column; each
        value column becomes a variable of the same name. Rows may come in any order.
    freq
        The pandas frequency of the time axis (``"h"``, ``"D"``, ...). ``None``
        takes the smallest step between the timestamps present, if every other
        step is a multiple of it; otherwise the time axis holds just the
        timestamps present (as for monthly data).

    Returns
    -------
    xarray.Dataset
        One variable per value column, NaN where the table has no row; coordinates
        ``series`` (sorted ids) and ``time`` (sorted). Integer and boolean columns
        become float64; float columns keep their dtype.

    Raises
    ------
    ValueError
        If a required column is missing, a value column is not numeric, timestamps
        do not parse or fall off the ``freq`` grid, or a ``(unique_id, ds)`` pair
        appears twice.

    Examples
    --------
    >>> frame = pd.DataFrame({"unique_id": ["a", "a", "b"],
    ...                       "ds": ["2025-01-01 00:00", "2025-01-01 02:00", "2025-01-01 01:00"],
    ...                       "y": [1.0, 3.0, 2.0]})
    >>> ds = from_long(frame, freq="h")
    >>> ds.y.values.tolist()
    [[1.0, nan, 3.0], [nan, 2.0, nan]]
    """
    missing = [c for c in (ID, TIME) if c not in frame.columns]
    values = [c for c in frame.columns if c not in (ID, TIME)]
    if missing or not values:
        raise ValueError(
            f"a long-format table needs columns {ID!r}, {TIME!r} and at least one value "
            f"column (such as 'y'); it has {list(frame.columns)}"
        )
    for name in values:
        if not (
            pd.api.types.is_numeric_dtype(frame[name]) or pd.api.types.is_bool_dtype(frame[name])
        ):
            raise ValueError(
                f"value column {name!r} has dtype {frame[name].dtype}; expected numbers"
            )
    try:
        stamps = pd.DatetimeIndex(pd.to_datetime(frame[TIME]))
    except (ValueError, TypeError) as err:
        raise ValueError(f"column {TIME!r} does not hold timestamps: {err}") from None
    ids = frame[ID].astype(str).to_numpy(dtype=str)
    if pd.MultiIndex.from_arrays([ids, stamps]).has_duplicates:
        raise ValueError(f"some ({ID}, {TIME}) pairs appear more than once")
    series = np.unique(ids)
    time = _time_axis(stamps, freq)
    rows, cols = np.searchsorted(series, ids), time.get_indexer(stamps)
    if (cols < 0).any():
        raise ValueError(
            f"timestamps such as {stamps[cols < 0][0]} are not on the {freq!r} grid "
            f"from {time[0]} to {time[-1]}"
        )
    data_vars = {}
    for name in values:
        column = frame[name].to_numpy()
        dtype = column.dtype if column.dtype.kind == "f" else np.dtype(np.float64)
        grid = np.full((len(series), len(time)), np.nan, dtype)
        grid[rows, cols] = column
        data_vars[name] = ((SERIES_DIM, TIME_DIM), grid)
    return xr.Dataset(data_vars, coords={SERIES_DIM: series, TIME_DIM: time})


def to_long(
    ds: xr.Dataset, variables: Sequence[str] | None = None, *, dropna: bool = True
) -> pd.DataFrame:
    """Unpivot a Dataset into a long table ``unique_id, ds, <values>``.

    Parameters
    ----------
    ds
        Variables with dims ``(series, T, ...)``, where ``T`` is ``time`` or a
        dimension along which a ``time`` coordinate runs (a forecast's ``step``).
        Further dimensions become one column per label: ``name-<label>``, with
        fractions in (0, 1) written as percentages (``lower-80``).
    variables
        The variables to write; ``None`` takes every variable with ``series`` and
        ``T`` among its dims (variables without them, such as per-series flags, are
        left out).
    dropna
        Drop the rows where every value column is NaN.

    Returns
    -------
    pandas.DataFrame
        Sorted by ``unique_id`` then ``ds``.

    Raises
    ------
    ValueError
        If ``ds`` has no ``series`` dimension or ``time`` coordinate, or a chosen
        variable does not run along both.

    Examples
    --------
    >>> ds = xr.Dataset({"y": (("series", "time"), [[1.0, np.nan]])},
    ...                 coords={"series": ["a"], "time": pd.date_range("2025", periods=2)})
    >>> to_long(ds).values.tolist()
    [['a', Timestamp('2025-01-01 00:00:00'), 1.0]]
    """
    if SERIES_DIM not in ds.dims or TIME_DIM not in ds.coords or ds[TIME_DIM].ndim != 1:
        raise ValueError(
            f"expected a dataset with a {SERIES_DIM!r} dimension and a one-dimensional "
            f"{TIME_DIM!r} coordinate; got dims {dict(ds.sizes)}"
        )
    axis = ds[TIME_DIM].dims[0]
    if variables is None:
        variables = [n for n, v in ds.data_vars.items() if {SERIES_DIM, axis} <= set(v.dims)]
    columns: dict[str, np.ndarray] = {}
    for name in variables:
        var = ds[name]
        if not {SERIES_DIM, axis} <= set(var.dims):
            raise ValueError(
                f"variable {name!r} has dims {var.dims}; it needs {SERIES_DIM!r} and {axis!r}"
            )
        extra = [d for d in var.dims if d not in (SERIES_DIM, axis)]
        stacked = var.transpose(SERIES_DIM, axis, *extra).values.reshape(
            ds.sizes[SERIES_DIM] * ds.sizes[axis], -1
        )
        labels = (
            [""]
            if not extra
            else [
                "-" + "-".join(_label(v) for v in combo)
                for combo in pd.MultiIndex.from_product([ds[d].values for d in extra])
            ]
        )
        for k, label in enumerate(labels):
            columns[f"{name}{label}"] = stacked[:, k]
    frame = pd.DataFrame(
        {
            ID: np.repeat(ds[SERIES_DIM].values.astype(str), ds.sizes[axis]),
            TIME: np.tile(ds[TIME_DIM].values, ds.sizes[SERIES_DIM]),
            **columns,
        }
    )
    if dropna and columns:
        frame = frame.dropna(subset=list(columns), how="all")
    return frame.sort_values([ID, TIME], kind="stable").reset_index(drop=True)


def read_long(path: str | os.PathLike[str], *, freq: str | None = None) -> xr.Dataset:
    """Read a CSV or Parquet long-format table into a Dataset (see :func:`from_long`).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the suffix is not a long-format one, or the table is not in long format.
    """
    path = Path(path)
    kind = _format(path)
    if not path.is_file():
        raise FileNotFoundError(f"no long-format table at {path}")
    frame = pd.read_csv(path) if kind == "csv" else pd.read_parquet(path)
    try:
        return from_long(frame, freq=freq)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def write_long(
    ds: xr.Dataset,
    path: str | os.PathLike[str],
    variables: Sequence[str] | None = None,
    *,
    dropna: bool = True,
) -> Path:
    """Write ``ds`` as a CSV or Parquet long-format table (see :func:`to_long`).

    The file is written to a hidden temporary sibling and renamed onto ``path``
    once complete; missing parent directories are created.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    kind = _format(path)
    frame = to_long(ds, variables, dropna=dropna)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if kind == "csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _format(path: Path) -> str:
    kind = LONG_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ValueError(
            f"{path} is not a long-format table; expected a suffix among {sorted(LONG_SUFFIXES)}"
        )
    return kind


def _time_axis(stamps: pd.DatetimeIndex, freq: str | None) -> pd.DatetimeIndex:
    """The regular axis at ``freq`` (or at the smallest step between the timestamps, when
    every step is a multiple of it) from the first timestamp to the last; else the
    timestamps present."""
    present = stamps.unique().sort_values()
    if freq is None and len(present) > 1:
        steps = np.diff(present.asi8)
        if (steps % steps.min() == 0).all():
            freq = pd.Timedelta(int(steps.min()), unit=present.unit)
    if freq is None:
        return present.rename(TIME_DIM)
    try:
        return pd.date_range(present[0], present[-1], freq=freq, name=TIME_DIM)
    except ValueError as err:
        raise ValueError(f"freq={freq!r} is not a pandas frequency: {err}") from None


def _label(value: object) -> str:
    if isinstance(value, float | np.floating) and 0 < value < 1:
        return f"{100 * value:g}"
    return str(value)

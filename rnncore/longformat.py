"""Long-format tables, one row per series and timestamp, to and from the xarray layout.

The long layout is the one StatsForecast and many databases use: a column of series
ids (``unique_id``), a column of timestamps (``ds``) and one column per value (``y``,
and any other numeric column). The xarray layout is rnnflow's: each value column a
variable ``(series, time)``, with coordinates ``series`` (string ids) and ``time``.

:func:`from_long` pivots a table into a Dataset, filling absent rows with NaN on a
regular time axis at a pandas frequency (hourly, daily, month starts, quarters, ...),
given or inferred, and never an irregular one; :func:`group_by_grid` splits a table
whose series lie on different grids (quarters dated in March and in January, say)
into one table per grid. :func:`to_long` goes back, dropping the all-NaN rows.
Variables with further dimensions become one column per label (``lower`` with
``level`` 0.8 and 0.95 gives ``lower-80`` and ``lower-95``), and a forecast's
``step`` dimension, which carries a ``time`` coordinate (shared, or per series),
is read as time. :func:`read_long` and :func:`write_long` do the same for CSV and
Parquet files, chosen by suffix, at local paths or fsspec URLs (pandas reads them
through fsspec; :func:`write_table` writes them atomically, see
:mod:`rnncore.storage`).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from pandas.tseries.frequencies import to_offset

from .errors import InputError, one_line
from .storage import is_url, locate, write_file
from .timeaxis import check_freq, infer_freq, step_index

__all__ = [
    "CSV_COMPRESSIONS",
    "LONG_SUFFIXES",
    "as_labels",
    "from_long",
    "group_by_grid",
    "is_long_format",
    "long_suffix",
    "read_long",
    "to_long",
    "write_long",
    "write_table",
]

#: File suffixes of long-format tables, and the format each means.
LONG_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
#: Compressions a CSV table may have (``data.csv.gz``), by suffix.
CSV_COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz"}

ID, TIME = "unique_id", "ds"
SERIES_DIM, TIME_DIM = "series", "time"
#: Largest magnitude of a value :func:`from_long` accepts: about the square root of the
#: largest float64, so that sums of squares of values (scaling, ridge moments) stay finite.
MAX_ABS_VALUE = 1e150
#: Most values (series x time steps) of the grid :func:`from_long` builds.
MAX_GRID_VALUES = 10**9
# a time with a zone or UTC offset at the end of a timestamp string ("...T12:00+01:00")
_UTC_OFFSET = re.compile(r"\d:\d\d(:\d\d(\.\d*)?)?\s*(Z|UTC|GMT|[+-]\d\d(:?\d\d)?)$", re.IGNORECASE)


def is_long_format(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a long-format table (by its suffix: CSV, possibly
    compressed as ``.csv.gz``, ``.csv.bz2`` or ``.csv.xz``, or Parquet)."""
    return long_suffix(path) is not None


def long_suffix(path: str | os.PathLike[str]) -> str | None:
    """The long-format suffix of ``path``, in lower case (``".csv"``, ``".csv.gz"``,
    ``".parquet"``, ``".pq"``), or ``None`` if it is not a CSV or Parquet table.

    Examples
    --------
    >>> long_suffix("in/Monthly.CSV.gz"), long_suffix("t.parquet"), long_suffix("d.zarr")
    ('.csv.gz', '.parquet', None)
    """
    suffixes = [suffix.lower() for suffix in Path(path).suffixes[-2:]]
    if len(suffixes) == 2 and suffixes[0] == ".csv" and suffixes[1] in CSV_COMPRESSIONS:
        return "".join(suffixes)
    return suffixes[-1] if suffixes and suffixes[-1] in LONG_SUFFIXES else None


def from_long(frame: pd.DataFrame, *, freq: str | pd.DateOffset | None = None) -> xr.Dataset:
    """Pivot a long table ``unique_id, ds, <values>`` into a Dataset ``(series, time)``.

    Parameters
    ----------
    frame
        Columns ``unique_id`` (any type; ids become strings, kept as given: spaces,
        slashes and any unicode stay), ``ds`` (timestamps or strings pandas parses as
        such, ISO 8601 strings of mixed precision too; one time zone is dropped,
        keeping local times) and at least one numeric value column (integer, boolean
        or float, NaN for missing); each value column becomes a variable of the same
        name. Rows may come in any order. A series with one row, or with only NaN
        values, is kept (the forecaster forecasts it by a fallback method, or as
        missing).
    freq
        The pandas frequency of the time axis (``"h"``, ``"D"``, ``"MS"``,
        ``"QS-DEC"``, ...): the axis is ``pd.date_range(first, last, freq)`` over all
        series, and every timestamp must lie on it. ``None`` infers it: from all
        the timestamps together when they form a regular axis, else from each
        series on its own, when those agree on one grid that holds every timestamp
        (series may start, end and have holes anywhere on it).

    Returns
    -------
    xarray.Dataset
        One variable per value column, NaN where the table has no row; coordinates
        ``series`` (sorted ids) and ``time``; ``attrs["freq"]`` the canonical
        frequency. Integer and boolean columns become float64; float columns keep
        their dtype.

    Raises
    ------
    rnncore.errors.InputError
        A :class:`ValueError` with a one-line message: if the table has no rows, a
        required column is missing or a column name repeats, a value column is not
        of real numbers (strings, objects, complex), holds ``inf`` or a magnitude
        above :data:`MAX_ABS_VALUE`, an id is missing, timestamps are numbers, are
        missing, do not parse, mix time-zone-aware and naive ones or several time
        zones, a ``(unique_id, ds)`` pair appears twice, the grid would exceed
        :data:`MAX_GRID_VALUES` values,
        ``freq`` is not a frequency or timestamps fall off its grid; with
        ``freq=None``, if the series lie on different grids (the message names
        series of each: split the table with :func:`group_by_grid`) or no frequency
        fits (the message names where the spacing breaks: pass ``freq`` to place
        the series on a regular grid, the missing steps as NaN).

    Examples
    --------
    >>> frame = pd.DataFrame({"unique_id": ["a", "a", "b"],
    ...                       "ds": ["2025-01-01 00:00", "2025-01-01 02:00", "2025-01-01 01:00"],
    ...                       "y": [1.0, 3.0, 2.0]})
    >>> ds = from_long(frame, freq="h")
    >>> ds.y.values.tolist()
    [[1.0, nan, 3.0], [nan, 2.0, nan]]
    >>> monthly = pd.DataFrame({"unique_id": ["a", "a", "a", "b", "b"],
    ...                         "ds": ["2025-01-01", "2025-02-01", "2025-03-01",
    ...                                "2025-03-01", "2025-05-01"],
    ...                         "y": [1.0, 2.0, 3.0, 4.0, 5.0]})
    >>> ds = from_long(monthly)
    >>> ds.attrs["freq"], ds.y.values.tolist()
    ('MS', [[1.0, 2.0, 3.0, nan, nan], [nan, nan, 4.0, nan, 5.0]])
    """
    try:
        return _from_long(frame, freq)
    except InputError:
        raise
    except ValueError as err:  # from the time axis (timeaxis.py): bad input all the same
        raise InputError(one_line(err)) from None


def _from_long(frame: pd.DataFrame, freq: str | pd.DateOffset | None) -> xr.Dataset:
    values = _check_columns(frame, values_needed=True)
    columns = {name: _values(frame, name) for name in values}
    stamps = _timestamps(frame[TIME])
    ids = _ids(frame[ID])
    keys = pd.MultiIndex.from_arrays([ids, stamps])
    if keys.has_duplicates:
        first = keys[keys.duplicated()][0]
        raise InputError(
            f"some ({ID}, {TIME}) pairs appear more than once, such as "
            f"({first[0]!r}, {first[1]}); expected one row per series and timestamp"
        )
    series = np.unique(ids)
    time, freq = _time_axis(ids, stamps, freq, len(series))
    rows, cols = np.searchsorted(series, ids), time.get_indexer(stamps)
    if (cols < 0).any():
        raise InputError(
            f"timestamps such as {stamps[cols < 0][0]} are not on the {freq!r} grid "
            f"from {time[0]} to {time[-1]}"
        )
    data_vars = {}
    for name, column in columns.items():
        grid = np.full((len(series), len(time)), np.nan, column.dtype)
        grid[rows, cols] = column
        data_vars[name] = ((SERIES_DIM, TIME_DIM), grid)
    return xr.Dataset(data_vars, coords={SERIES_DIM: series, TIME_DIM: time}, attrs={"freq": freq})


def group_by_grid(frame: pd.DataFrame) -> list[pd.DataFrame]:
    """Split a long table into tables of series that share one regular time grid.

    Each series' frequency is inferred from its own timestamps; two series share a
    grid when they have the same frequency and anchor (quarters dated March, June,
    September and December, ``"QS-DEC"``, are one grid; quarters dated January,
    April, July and October, ``"QS-JAN"``, another). A series whose frequency cannot
    be inferred on its own (one timestamp, or holes) joins a grid that holds all its
    timestamps, else forms a group of its own. Inferring needs 3 timestamps or more.

    Parameters
    ----------
    frame
        A long table with columns ``unique_id`` and ``ds`` (see :func:`from_long`).

    Returns
    -------
    list of pandas.DataFrame
        The rows of ``frame`` (all columns, original order and index) of each group,
        largest group first; each group's ``attrs["freq"]`` holds its frequency
        (``None`` for a series without one), ready for :func:`from_long`.

    Raises
    ------
    rnncore.errors.InputError
        If a required column is missing, an id is missing, or timestamps are missing
        or do not parse (see :func:`from_long`).

    Examples
    --------
    >>> frame = pd.DataFrame({
    ...     "unique_id": ["dec"] * 3 + ["jan"] * 3,
    ...     "ds": ["2025-03-01", "2025-06-01", "2025-09-01",
    ...            "2025-01-01", "2025-04-01", "2025-07-01"],
    ...     "y": range(6)})
    >>> [(g.attrs["freq"], g["unique_id"].unique().tolist()) for g in group_by_grid(frame)]
    [('QS-DEC', ['dec']), ('QS-JAN', ['jan'])]
    """
    _check_columns(frame, values_needed=False)
    stamps = _timestamps(frame[TIME])
    ids = _ids(frame[ID])
    grids, loose = _series_grids(ids, stamps)
    groups = {key: list(members) for key, members in grids.items()}
    for name, times in loose.items():
        key = next((k for k in groups if _grid_key(times, k[0]) == k), (None, name))
        groups.setdefault(key, []).append(name)
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), min(item[1])))
    out = []
    for (freq, _), members in ordered:
        group = frame[np.isin(ids, members)].copy()
        group.attrs["freq"] = freq
        out.append(group)
    return out


def to_long(
    ds: xr.Dataset, variables: Sequence[str] | None = None, *, dropna: bool = True
) -> pd.DataFrame:
    """Unpivot a Dataset into a long table ``unique_id, ds, <values>``.

    Parameters
    ----------
    ds
        Variables with dims ``(series, T, ...)``, where ``T`` is ``time`` or a
        dimension along which a ``time`` coordinate runs (a forecast's ``step``):
        ``time (T)``, shared by all series, or ``time (series, T)``, per series.
        Further dimensions become one column per label: ``name-<label>``, with
        fractions in (0, 1) written as percentages (``lower-80``).
    variables
        The variables to write; ``None`` takes every variable with ``series`` and
        ``T`` among its dims (variables without them, such as per-series flags, are
        left out).
    dropna
        Drop the rows where every value column is NaN, and those without a
        timestamp (NaT in a per-series ``time``).

    Returns
    -------
    pandas.DataFrame
        Sorted by ``unique_id`` then ``ds``.

    Raises
    ------
    ValueError
        If ``ds`` has no ``series`` dimension or ``time`` coordinate, or a chosen
        variable does not run along both ``series`` and the ``time`` coordinate's
        other dimension.

    Examples
    --------
    >>> ds = xr.Dataset({"y": (("series", "time"), [[1.0, np.nan]])},
    ...                 coords={"series": ["a"], "time": pd.date_range("2025", periods=2)})
    >>> to_long(ds).values.tolist()
    [['a', Timestamp('2025-01-01 00:00:00'), 1.0]]
    >>> forecast = xr.Dataset(
    ...     {"mean": (("series", "step"), [[1.0, 2.0], [3.0, 4.0]])},
    ...     coords={"series": ["a", "b"], "time": (("series", "step"), np.array(
    ...         [["2025-02-01", "2025-03-01"], ["2025-05-01", "2025-06-01"]], "M8[ns]"))})
    >>> to_long(forecast)["ds"].dt.month.tolist()
    [2, 3, 5, 6]
    """
    # not ds.coords.get: it makes up an integer index for a dimension without coordinate
    time = ds.coords[TIME_DIM] if TIME_DIM in ds.coords else None
    if (
        SERIES_DIM not in ds.dims
        or time is None
        or not (
            (time.ndim == 1 and time.dims[0] != SERIES_DIM)
            or (time.ndim == 2 and SERIES_DIM in time.dims)
        )
    ):
        raise ValueError(
            f"expected a dataset with a {SERIES_DIM!r} dimension and a {TIME_DIM!r} "
            f"coordinate along one other dimension, or along ({SERIES_DIM!r}, step); "
            f"got dims {dict(ds.sizes)}"
        )
    axis = next(d for d in time.dims if d != SERIES_DIM)
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
    times = (
        np.tile(time.values, ds.sizes[SERIES_DIM])
        if time.ndim == 1
        else time.transpose(SERIES_DIM, axis).values.ravel()
    )
    frame = pd.DataFrame(
        {
            ID: np.repeat(as_labels(ds[SERIES_DIM].values), ds.sizes[axis]),
            TIME: times,
            **columns,
        }
    )
    if dropna:
        frame = frame[frame[TIME].notna()]
        if columns:
            frame = frame.dropna(subset=list(columns), how="all")
    return frame.sort_values([ID, TIME], kind="stable").reset_index(drop=True)


def read_long(
    path: str | os.PathLike[str],
    *,
    freq: str | pd.DateOffset | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Read a CSV or Parquet long-format table into a Dataset (see :func:`from_long`).

    ``path`` is a local path or an fsspec URL, ``storage_options`` the options of
    its file system. ``freq`` is the frequency of the time axis; ``None`` infers
    it, and refuses series on different grids or timestamps no frequency fits (see
    :func:`from_long`).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ImportError
        If the URL's protocol needs a package that is not installed (``s3fs``, ...).
    ValueError
        If the suffix is not a long-format one.
    rnncore.errors.InputError
        If the file is empty or does not parse, the table is not in long format, or
        its time axis is not regular (see :func:`from_long`); the message starts with
        ``path``. The ids of a CSV table are read as strings, as written (``007``
        stays ``007``).
    """
    kind = _format(path)
    where = locate(path, storage_options)
    path = where.returned()
    if not where.is_file():
        raise FileNotFoundError(f"no long-format table at {path}")
    # a URL goes to pandas as it is, which reads it through fsspec
    options = (where.storage_options or None) if where.local is None else None
    try:
        frame = (
            pd.read_csv(
                path, compression=_compression(path), storage_options=options, dtype={ID: str}
            )
            if kind == "csv"
            else pd.read_parquet(path, storage_options=options)
        )
    except pd.errors.EmptyDataError:
        raise InputError(
            f"{path} is empty; expected a header line such as {ID},{TIME},y and rows"
        ) from None
    except (ValueError, OSError) as err:  # parser errors, bad encodings, corrupt Parquet
        if isinstance(err, FileNotFoundError | PermissionError):
            raise
        raise InputError(f"{path} cannot be read as a {kind} table: {one_line(err)}") from None
    try:
        return from_long(frame, freq=freq)
    except InputError as err:
        raise InputError(f"{path}: {err}") from None


def write_long(
    ds: xr.Dataset,
    path: str | os.PathLike[str],
    variables: Sequence[str] | None = None,
    *,
    dropna: bool = True,
    storage_options: Mapping[str, Any] | None = None,
) -> Path | str:
    """Write ``ds`` as a CSV or Parquet long-format table (see :func:`to_long` and
    :func:`write_table`).

    Returns
    -------
    pathlib.Path or str
        ``path``: a Path if it is local, else the URL.
    """
    _format(path)  # refuse a wrong suffix before converting
    frame = to_long(ds, variables, dropna=dropna)
    return write_table(frame, path, storage_options=storage_options)


def write_table(
    frame: pd.DataFrame,
    path: str | os.PathLike[str],
    *,
    storage_options: Mapping[str, Any] | None = None,
) -> Path | str:
    """Write ``frame`` as CSV (``.csv``, ``.csv.gz``, ...) or Parquet by ``path``'s suffix.

    ``path`` is a local path or an fsspec URL, ``storage_options`` the options of
    its file system. The file is written to a hidden temporary sibling and moved
    onto ``path`` once complete (:func:`rnncore.storage.write_file`); missing
    parent directories are created.

    Returns
    -------
    pathlib.Path or str
        ``path``: a Path if it is local, else the URL.

    Raises
    ------
    ValueError
        If ``path`` has no CSV or Parquet suffix.
    """
    kind = _format(path)
    compression = _compression(path)

    def write(tmp: str) -> None:
        if kind == "csv":
            frame.to_csv(tmp, index=False, compression=compression)
        else:
            frame.to_parquet(tmp, index=False)

    return write_file(path, write, storage_options=storage_options)


def as_labels(values: object) -> np.ndarray:
    """Series labels as a fixed-width ``str`` array, whatever they were stored as.

    Zarr format 3 reads string labels back as NumPy's variable-width ``StringDType``,
    which does not cast to ``str`` directly.

    Examples
    --------
    >>> as_labels(np.array(["a", "bc"], dtype=np.dtypes.StringDType())).dtype
    dtype('<U2')
    """
    return np.asarray(values).astype(object).astype(str)


def _format(path: str | os.PathLike[str]) -> str:
    kind = _kind(path)
    if kind is None:
        shown = path if is_url(path) else Path(path)
        raise ValueError(
            f"{shown} is not a long-format table; expected a suffix among {sorted(LONG_SUFFIXES)} "
            f"(CSV also compressed: {', '.join('.csv' + c for c in CSV_COMPRESSIONS)})"
        )
    return kind


def _kind(path: str | os.PathLike[str]) -> str | None:
    suffix = long_suffix(path)
    return (
        None if suffix is None else LONG_SUFFIXES[".csv" if suffix.startswith(".csv") else suffix]
    )


def _compression(path: str | os.PathLike[str]) -> str | None:
    return CSV_COMPRESSIONS.get(Path(path).suffix.lower())


def _check_columns(frame: pd.DataFrame, *, values_needed: bool) -> list[str]:
    """The value columns of a long table, after checking its columns and that it has rows."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame; got {type(frame).__name__}")
    missing = [c for c in (ID, TIME) if c not in frame.columns]
    values = [c for c in frame.columns if c not in (ID, TIME)]
    if missing or (values_needed and not values):
        raise InputError(
            f"a long-format table needs columns {ID!r}, {TIME!r} and at least one value "
            f"column (such as 'y'); it has {list(frame.columns)}"
        )
    repeated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    if repeated:
        raise InputError(f"columns {repeated} appear more than once; expected unique names")
    odd = [c for c in values if not isinstance(c, str)]
    if values_needed and odd:
        raise InputError(f"value column names must be strings; got {odd}")
    if len(frame) == 0:
        raise InputError("the table has no rows; expected one row per series and timestamp")
    return values


def _values(frame: pd.DataFrame, name: str) -> np.ndarray:
    """Value column ``name`` as a float array (float64 unless it is of another float
    dtype), after checking it holds real numbers, finite or NaN, of sane magnitude."""
    column = frame[name]
    kind = column.dtype.kind
    if kind not in "biuf":
        numbers = pd.to_numeric(column, errors="coerce")
        odd = np.flatnonzero((numbers.isna() & column.notna()).to_numpy())
        if kind == "c":
            problem = f"has dtype {column.dtype}"
        elif odd.size:
            row = int(odd[0])
            problem = f"holds non-numeric values such as {column.iloc[row]!r} (row {row})"
        else:
            problem = f"has dtype {column.dtype}"
        raise InputError(f"value column {name!r} {problem}; expected numbers (real, or NaN)")
    dtype = np.dtype(getattr(column.dtype, "numpy_dtype", column.dtype))
    dtype = dtype if dtype.kind == "f" else np.dtype(np.float64)
    values = column.to_numpy(dtype=dtype, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero(np.abs(values.astype(np.float64)) > MAX_ABS_VALUE)
    if bad.size:
        row = int(bad[0])
        raise InputError(
            f"value column {name!r} holds {float(values[row])!r} (row {row}, {ID} "
            f"{frame[ID].iloc[row]!r}); expected finite numbers of magnitude at most "
            f"{MAX_ABS_VALUE:g} (NaN for missing)"
        )
    return values


def _ids(column: pd.Series) -> np.ndarray:
    """The ``unique_id`` column as strings, kept as given; refuses missing ids."""
    if column.isna().any():
        row = int(np.flatnonzero(column.isna().to_numpy())[0])
        raise InputError(f"column {ID!r} has a missing id (row {row}); expected an id in every row")
    return column.astype(str).to_numpy(dtype=str)


def _timestamps(column: pd.Series) -> pd.DatetimeIndex:
    """The ``ds`` column as naive nanosecond timestamps (local times of a time zone)."""
    expected = "expected timestamps or date strings such as 2025-01-31 or 2025-01-31 12:00"
    if column.dtype.kind in "biufc":
        raise InputError(f"column {TIME!r} holds numbers ({column.dtype}); {expected}")
    if column.dtype == object or pd.api.types.is_string_dtype(column.dtype):
        _check_one_tz_kind(column)  # (strings are StringDtype under pandas 3)
    try:
        try:
            with warnings.catch_warnings():  # mixed offsets: refused below, not warned of
                warnings.simplefilter("ignore", FutureWarning)
                parsed = pd.to_datetime(column)
        except ValueError as err:  # mixed precision ("2025-01-01", "2025-01-01 12:00")?
            if "tz" in one_line(err).lower() or "mix" in one_line(err).lower():
                raise
            parsed = pd.to_datetime(column, format="ISO8601")
        stamps = pd.DatetimeIndex(parsed)
        if stamps.tz is not None:
            stamps = stamps.tz_localize(None)
        stamps = stamps.as_unit("ns")
    except pd.errors.OutOfBoundsDatetime as err:
        raise InputError(
            f"column {TIME!r} has a timestamp out of range: {one_line(err)}; expected years "
            f"{pd.Timestamp.min.year + 1} to {pd.Timestamp.max.year - 1}"
        ) from None
    except (ValueError, TypeError, OverflowError) as err:
        text = one_line(err)
        if "utc=True" in text or "mix" in text.lower():
            raise InputError(
                f"column {TIME!r} mixes time zones or UTC offsets ({text}); expected one time "
                "zone for all timestamps, or none: convert them to one zone first"
            ) from None
        raise InputError(f"column {TIME!r} does not hold timestamps: {text}; {expected}") from None
    if stamps.hasnans:
        row = int(np.flatnonzero(stamps.isna())[0])
        raise InputError(
            f"column {TIME!r} has a missing timestamp (row {row}); expected one in every row"
        )
    return stamps


def _check_one_tz_kind(column: pd.Series) -> None:
    """Refuse a column of timestamps (or strings) some with a time zone, some without:
    pandas would read the naive ones as UTC."""
    aware = [
        (row, value.tzinfo is not None)
        if isinstance(value, datetime)
        else (row, bool(_UTC_OFFSET.search(value.strip())))
        for row, value in enumerate(column.to_numpy())
        if isinstance(value, datetime | str)
    ]
    if aware and any(kind != aware[0][1] for _, kind in aware):
        row = next(row for row, kind in aware if kind != aware[0][1])
        raise InputError(
            f"column {TIME!r} mixes timestamps with a time zone or UTC offset and without "
            f"(row 0 {'has' if aware[0][1] else 'has none'}, row {row} "
            f"{'has' if not aware[0][1] else 'has none'}); expected all with or all without"
        )


def _time_axis(
    ids: np.ndarray, stamps: pd.DatetimeIndex, freq: str | pd.DateOffset | None, n_series: int
) -> tuple[pd.DatetimeIndex, str]:
    """The regular axis from the first timestamp to the last, and its canonical
    frequency: ``freq``, else the one inferred (see :func:`from_long`)."""
    present = stamps.unique().sort_values()
    if len(present) == 0:
        raise InputError("the table has no rows; expected one row per series and timestamp")
    freq = check_freq(freq) if freq is not None else _infer_table_freq(ids, stamps, present)
    return _axis(present[0], present[-1], freq, n_series).rename(TIME_DIM), freq


def _axis(
    first: pd.Timestamp, last: pd.Timestamp, freq: str, n_series: int = 1
) -> pd.DatetimeIndex:
    """``pd.date_range(first, last, freq)`` in nanoseconds, refusing one that would make
    a grid of more than :data:`MAX_GRID_VALUES` values with ``n_series`` series."""
    offset = to_offset(freq)
    if isinstance(offset, pd.offsets.Tick):  # months and longer steps never make a huge axis
        steps = (pd.Timestamp(last) - pd.Timestamp(first)).value // offset.nanos + 1
        if steps * n_series > MAX_GRID_VALUES:
            raise InputError(
                f"the time axis from {first} to {last} at {freq!r} has {steps} steps; with "
                f"{n_series} series that is more than {MAX_GRID_VALUES:g} values: expected a "
                "coarser freq or a shorter span"
            )
    return pd.date_range(first, last, freq=offset).as_unit("ns")


def _infer_table_freq(ids: np.ndarray, stamps: pd.DatetimeIndex, present: pd.DatetimeIndex) -> str:
    try:
        return infer_freq(present.values)
    except ValueError as err:
        union_error = err
    grids, _ = _series_grids(ids, stamps)
    if len(grids) > 1:
        raise ValueError(_mixed_grids_message(grids)) from None
    if len(grids) == 1:
        freq = next(iter(grids))[0]
        axis = _axis(present[0], present[-1], freq, len(np.unique(ids)))
        if axis.size and axis[0] == present[0] and present.isin(axis).all():
            return freq
    raise union_error from None


def _series_grids(
    ids: np.ndarray, stamps: pd.DatetimeIndex
) -> tuple[dict[tuple[str, pd.Timestamp], list[str]], dict[str, np.ndarray]]:
    """The series of each grid ``(freq, anchor)``, in order of their ids, and the
    timestamps of the series whose frequency cannot be inferred on their own."""
    order = np.lexsort((stamps.asi8, ids))
    names, starts = np.unique(ids[order], return_index=True)
    times = stamps.values[order]
    grids: dict[tuple[str, pd.Timestamp], list[str]] = {}
    loose: dict[str, np.ndarray] = {}
    seen: dict[tuple[int, int, int, int], tuple[str, pd.Timestamp] | None] = {}
    for name, start, stop in zip(names, starts, [*starts[1:], len(ids)], strict=True):
        own = times[start:stop]
        memo = (own.size, int(own[0].view(np.int64)), int(own[-1].view(np.int64)))
        memo = (*memo, hash(own.tobytes()))
        if memo not in seen:
            seen[memo] = _own_grid(own)
        key = seen[memo]
        if key is None:
            loose[str(name)] = own
        else:
            grids.setdefault(key, []).append(str(name))
    return grids, loose


def _own_grid(times: np.ndarray) -> tuple[str, pd.Timestamp] | None:
    """The grid ``(freq, anchor)`` inferred from one series' timestamps, or None
    (also for fewer than 3: two month starts 31 days apart could be months or days)."""
    if times.size < 3:
        return None
    try:
        freq = infer_freq(times)
    except ValueError:
        return None
    return freq, _anchor(times[0], freq)


def _grid_key(times: np.ndarray, freq: str) -> tuple[str, pd.Timestamp] | None:
    """The grid ``(freq, anchor)`` holding all of ``times`` (sorted), or None."""
    offset = to_offset(freq)
    first = pd.Timestamp(times[0])
    if not offset.is_on_offset(first):
        return None
    axis = _axis(first, pd.Timestamp(times[-1]), freq)
    if not np.isin(times, axis.values).all():
        return None
    return freq, _anchor(times[0], freq)


def _anchor(time: np.datetime64, freq: str) -> pd.Timestamp:
    """The point of ``time``'s grid with step index 0 (near 1970): the same for every
    timestamp of one grid, different for grids of one frequency but another phase."""
    steps = int(step_index(np.asarray([time], "datetime64[ns]"), freq)[0])
    return pd.Timestamp(time) - steps * to_offset(freq)


def _mixed_grids_message(grids: dict[tuple[str, pd.Timestamp], list[str]]) -> str:
    described = []
    for (freq, _), members in sorted(grids.items(), key=lambda item: -len(item[1])):
        shown = ", ".join(members[:3]) + (", ..." if len(members) > 3 else "")
        count = f"{len(members)} series" if len(members) > 1 else "1 series"
        described.append(f"{freq!r} ({count}: {shown})")
    return (
        f"the series lie on {len(grids)} different time grids: {'; '.join(described)}. "
        "Split the table by grid (rnncore.longformat.group_by_grid) and read each part "
        "on its own, or pass freq=... (--freq on the command line) naming one grid that "
        "holds every timestamp, the missing steps as NaN"
    )


def _label(value: object) -> str:
    if isinstance(value, float | np.floating) and 0 < value < 1:
        return f"{100 * value:g}"
    return str(value)

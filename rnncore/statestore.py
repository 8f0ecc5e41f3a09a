"""State stores: what a recurrent run needs to continue tomorrow from where it stopped.

A recurrent network's state summarises everything it has read, so tonight's run needs
only the steps that arrived since last night. A :class:`StateStore` keeps, per series:

* ``stands_at``: the timestamp of the last step folded into the state (``NaT`` if none);
* ``arrays``: everything the next run needs, each with the series as leading dimension,
  keyed by name (``"layer0/h"``, LSTM's ``"layer0/c"``, scaling statistics, ...);
* ``checksums``: a digest of the ``window`` input steps ending at ``stands_at``
  (:func:`trailing_checksums`), to detect data changed before ``stands_at``.

and, for the whole store, the ``fingerprint`` of the model or forecaster that made it,
the data's frequency ``freq`` (a pandas alias, :func:`rnncore.timeaxis.check_freq`),
the data ``variables`` it read and JSON-able ``attrs``.

Reading and writing
-------------------
:func:`write_state_store` writes a Zarr (format 3) store, with Zarr directly (the arrays
are small: one chunk each, no Dask), as :func:`rnncore.io.write_zarr` does: to a hidden
temporary, marked incomplete while written, then installed on the target
(:func:`rnncore.storage.write_store`), so a store cut mid-write is never read; xarray
reads it too. Local paths and fsspec
URLs both work. :func:`read_state_store` refuses a missing, incomplete or foreign store
with :class:`~rnncore.errors.InputError`.

Planning an increment
---------------------
:func:`plan_increment` checks a store against tonight's data (same fingerprint,
frequency and variables, else :class:`~rnncore.errors.InputError`) and sorts the data's
series:

* ``resume``: stored, its trailing window unchanged: the run starts right after
  ``stands_at`` from the stored arrays;
* ``cold``: new (or stored with nothing folded in): full history from a fresh state;
* ``recompute``: stored, but its data changed at or before ``stands_at`` (a late
  correction: the trailing checksum differs, or ``stands_at`` is no longer on the
  data's time axis): full history from a fresh state;
* ``removed``: stored but no longer in the data (dropped from the next store).

Only the trailing windows are read (one lazy slice of the data, through Dask).

Helpers for writers of stores: :func:`last_valid_index` (where a series' state may be
said to stand: a missing step leaves every cell's state unchanged) and
:func:`stacked_values` (the variables a checksum covers, as one array).
:mod:`rnncore.incremental` is the writer for :class:`~rnncore.Model` runs.

Examples
--------
>>> import numpy as np, pandas as pd, xarray as xr
>>> times = pd.date_range("2025-01-01", periods=6, freq="h").values
>>> y = xr.DataArray(np.arange(12.0).reshape(2, 6), name="y",
...                  coords={"series": ["a", "b"], "time": times}, dims=("series", "time"))
>>> stands = times[[3, 3]]
>>> store = StateStore(series=np.array(["a", "b"]), stands_at=stands,
...     arrays={"layer0/h": np.zeros((2, 4))}, fingerprint="f", freq="h", variables=("y",),
...     checksums=trailing_checksums(y.values, times, stands, 2), window=2)
>>> plan = plan_increment(store, y, fingerprint="f", freq="h", variables=("y",))
>>> plan.start.tolist(), plan.resume
([4, 4], ('a', 'b'))
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
import zarr
from xarray.coding.times import decode_cf_datetime

from .errors import InputError, one_line
from .io import INCOMPLETE, mark_store
from .storage import locate, write_store
from .timeaxis import check_freq, check_regular, isoformat

__all__ = [
    "FORMAT",
    "IncrementPlan",
    "StateStore",
    "last_valid_index",
    "plan_increment",
    "read_state_store",
    "stacked_values",
    "trailing_checksums",
    "write_state_store",
]

#: The root attribute naming a state store, and its layout's version.
FORMAT = "rnnflow_state_store"
_VERSION = 1
_SERIES, _STANDS, _CHECKSUM = "series", "stands_at", "checksum"
# stands_at as xarray encodes datetimes (NaT: the smallest int64)
_TIME_ATTRS = {"units": "nanoseconds since 1970-01-01", "calendar": "proleptic_gregorian"}


@dataclass(frozen=True)
class StateStore:
    """The states of a run, per series, and what they were computed from.

    Attributes
    ----------
    series
        1-D series labels.
    stands_at
        ``datetime64[ns]`` per series: the last step folded into its state; ``NaT``
        if none.
    arrays
        Arrays whose leading dimension is the series, by name (any string; ``/`` is
        allowed: ``"layer0/h"``).
    fingerprint
        The model's or forecaster's fingerprint.
    freq
        The data's pandas frequency (stored canonical, :func:`rnncore.timeaxis.check_freq`).
    variables
        The data variables the states were computed from.
    checksums
        ``uint64`` per series: :func:`trailing_checksums` of the input at ``stands_at``.
    window
        The number of steps the checksums cover.
    attrs
        JSON-able extras.
    """

    series: np.ndarray
    stands_at: np.ndarray
    arrays: Mapping[str, np.ndarray]
    fingerprint: str
    freq: str
    variables: tuple[str, ...]
    checksums: np.ndarray
    window: int
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.series)
        object.__setattr__(self, "series", np.asarray(self.series))
        object.__setattr__(self, "stands_at", np.asarray(self.stands_at, "datetime64[ns]"))
        object.__setattr__(self, "checksums", np.asarray(self.checksums, np.uint64))
        object.__setattr__(self, "variables", tuple(self.variables))
        object.__setattr__(self, "freq", check_freq(self.freq))
        if self.series.ndim != 1 or len(pd.Index(self.series).unique()) != n:
            raise ValueError("series must be 1-D unique labels")
        for name, value in {
            "stands_at": self.stands_at,
            "checksums": self.checksums,
            **self.arrays,
        }.items():
            if np.ndim(value) < 1 or len(value) != n:
                raise ValueError(
                    f"{name} has leading length {len(value) if np.ndim(value) else 0}; "
                    f"expected one entry per series ({n})"
                )
        if self.window < 1:
            raise ValueError(f"window must be at least 1; got {self.window}")
        json.dumps(dict(self.attrs))  # raises TypeError for what JSON cannot hold

    def position(self, labels: Sequence[Any] | np.ndarray) -> np.ndarray:
        """The index of each of ``labels`` among :attr:`series`, -1 where it is absent."""
        return pd.Index(self.series).get_indexer(pd.Index(labels))


@dataclass(frozen=True)
class IncrementPlan:
    """How tonight's run continues from a :class:`StateStore` (see :func:`plan_increment`).

    Attributes
    ----------
    series
        The data's series labels, in the data's order.
    start
        Per data series: the first time index to run (0 for cold and recomputed series).
    stored
        Per data series: its index in the store's series (to take its arrays), -1 for a
        series that starts cold or is recomputed.
    resume, cold, recompute, removed
        Series labels of each kind (see the module docstring); ``removed`` are stored
        series that are not in the data.
    n_steps
        The length of the data's time axis.
    steps_checked
        Series-steps read to check the trailing windows.
    """

    series: np.ndarray
    start: np.ndarray
    stored: np.ndarray
    resume: tuple[Any, ...]
    cold: tuple[Any, ...]
    recompute: tuple[Any, ...]
    removed: tuple[Any, ...]
    n_steps: int
    steps_checked: int

    @property
    def steps_to_run(self) -> int:
        """Series-steps the run reads: from each series' start to the end."""
        return int((self.n_steps - self.start).sum())

    def summary(self) -> dict[str, Any]:
        """The plan in JSON-able figures, for run reports."""
        return {
            "series resumed": len(self.resume),
            "series cold": _labels(self.cold),
            "series recomputed": _labels(self.recompute),
            "series removed": _labels(self.removed),
            "steps read": self.steps_to_run,
            "steps checked": self.steps_checked,
        }


def write_state_store(
    path: str | os.PathLike[str],
    store: StateStore,
    *,
    storage_options: Mapping[str, Any] | None = None,
) -> Path | str:
    """Write ``store`` at ``path`` (a local path or fsspec URL), atomically, replacing
    an earlier store there once the new one is complete.

    The arrays are small (one row per series), so they are written with Zarr directly,
    each one chunk, without Dask; the layout is the one xarray reads (dimension names,
    CF-encoded ``stands_at``).

    Returns
    -------
    pathlib.Path or str
        ``path``: a Path if it is local, else the URL.
    """
    where = locate(path, storage_options)
    names = {key: f"array{k}" for k, key in enumerate(store.arrays)}
    series = store.series.astype(str) if store.series.dtype.kind == "O" else store.series
    arrays: dict[str, tuple[np.ndarray, tuple[str, ...], dict[str, Any]]] = {
        _SERIES: (series, (_SERIES,), {}),
        _STANDS: (store.stands_at.view(np.int64), (_SERIES,), _TIME_ATTRS),
        _CHECKSUM: (store.checksums, (_SERIES,), {}),
    }
    for key, name in names.items():
        value = np.asarray(store.arrays[key])
        arrays[name] = (value, (_SERIES, *(f"{name}_{d}" for d in range(1, value.ndim))), {})
    attrs = {
        FORMAT: _VERSION,
        "fingerprint": store.fingerprint,
        "freq": store.freq,
        "variables": list(store.variables),
        "window": int(store.window),
        "arrays": [[key, name] for key, name in names.items()],
        "attrs": json.dumps(dict(store.attrs)),
    }

    def write(tmp: str) -> None:
        group = zarr.open_group(
            tmp,
            mode="w-",
            zarr_format=3,
            attributes={**attrs, INCOMPLETE: "set while rnncore.statestore writes"},
            **where.open_options,
        )
        for name, (value, dims, extra) in arrays.items():
            labels = value.dtype.kind == "U"  # written as variable-length strings
            group.create_array(
                name,
                data=value.astype(np.dtypes.StringDType()) if labels else value,
                chunks=tuple(max(1, n) for n in value.shape),
                # the one chunk in the array's directory ("c.0.0"): fewer directories to
                # create, and to delete when the store is replaced
                chunk_key_encoding={"name": "default", "separator": "."},
                dimension_names=dims,
                attributes=extra,
                # every chunk is written (read_state_store checks they all are)
                config={"write_empty_chunks": True},
            )
        mark_store(group, complete=True)

    return write_store(where, write, overwrite=True)


def read_state_store(
    path: str | os.PathLike[str], *, storage_options: Mapping[str, Any] | None = None
) -> StateStore:
    """The :class:`StateStore` at ``path`` (a local path or fsspec URL), loaded.

    Raises
    ------
    rnncore.errors.InputError
        If there is no store at ``path``, its write was cut, or it is not a state store
        (of this layout version); the message names the path and what was expected.
    """
    expected = "a state store written by rnncore.statestore.write_state_store"
    where = locate(path, storage_options)
    try:
        group = zarr.open_group(where.target, mode="r", zarr_format=3, **where.open_options)
    except FileNotFoundError as err:
        raise InputError(f"no state store at {path}: expected {expected}") from err
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(f"{path}: not a usable state store ({one_line(err)})") from err
    attrs = dict(group.attrs)
    if INCOMPLETE in attrs:
        raise InputError(
            f"{path}: not a usable state store (marked {INCOMPLETE!r}: its write was "
            "interrupted); run in full (--full, full=True) to start a fresh store"
        )
    version = attrs.get(FORMAT)
    if version != _VERSION:
        found = "no state store marker" if version is None else f"layout version {version}"
        raise InputError(
            f"{path} is not a state store of this rnnflow ({found}); expected {expected} "
            f"(layout version {_VERSION})"
        )
    try:
        arrays = dict(group.arrays())  # their metadata read at once
        values = {name: _read(arrays, name) for name in (_SERIES, _STANDS, _CHECKSUM)}
        stands = arrays[_STANDS].attrs
        return StateStore(
            series=values[_SERIES],
            stands_at=decode_cf_datetime(values[_STANDS], stands["units"], stands.get("calendar")),
            arrays={key: _read(arrays, name) for key, name in attrs["arrays"]},
            fingerprint=attrs["fingerprint"],
            freq=attrs["freq"],
            variables=tuple(attrs["variables"]),
            checksums=values[_CHECKSUM],
            window=int(attrs["window"]),
            attrs=json.loads(attrs["attrs"]),
        )
    except (KeyError, ValueError, TypeError) as err:
        raise InputError(f"{path}: damaged state store ({one_line(err)})") from err


def last_valid_index(values: Any) -> Any:
    """Per series, the index of its last step without a NaN feature (-1 if none).

    A missing step (any feature NaN) leaves every cell's state unchanged, so a state
    computed to the end of the axis stands at this step: a run resuming right after it
    reads any later steps that have arrived since (late values of missing steps).

    Parameters
    ----------
    values
        ``(series, time[, feature])``, NumPy or Dask (the result is then lazy).

    Examples
    --------
    >>> last_valid_index(np.array([[1.0, 2.0, np.nan], [np.nan] * 3])).tolist()
    [1, -1]
    """
    values = _features(values)
    if values.shape[1] == 0:
        return np.full(values.shape[0], -1)
    valid = ~np.isnan(values).any(axis=2)
    return np.where(valid, np.arange(values.shape[1]), -1).max(axis=1)


def trailing_checksums(
    values: Any, times: np.ndarray, stands_at: np.ndarray, window: int
) -> np.ndarray:
    """A digest per series of the ``window`` steps of ``values`` ending at its ``stands_at``.

    The digest (BLAKE2b, 8 bytes, as ``uint64``) covers the window's timestamps and its
    values as float64, NaNs made one NaN and ``-0.0`` made ``0.0``: the same numbers
    give the same digest whatever their dtype or NaN payload, any other number another.
    A window that would start before the axis is cut at its first step.

    Parameters
    ----------
    values
        ``(series, time[, feature])``: NumPy, or Dask (only the windows' span is computed).
    times
        ``(time,)`` ``datetime64`` values of ``values``' time axis.
    stands_at
        ``(series,)`` ``datetime64`` per series; ``NaT`` gives the digest 0.
    window
        Steps per window (at least 1).

    Returns
    -------
    numpy.ndarray
        ``uint64``, one per series.

    Raises
    ------
    ValueError
        If a ``stands_at`` (not NaT) is not among ``times``.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1; got {window}")
    times = np.asarray(times, "datetime64[ns]")
    stands_at = np.asarray(stands_at, "datetime64[ns]")
    values = _features(values)
    known = ~np.isnat(stands_at)
    ends = np.searchsorted(times, stands_at)
    found = known & (ends < len(times))
    found[found] = times[ends[found]] == stands_at[found]
    if (known & ~found).any():
        bad = stands_at[known & ~found][0]
        raise ValueError(f"stands_at {isoformat(bad)} is not on the data's time axis")
    sums = np.zeros(len(stands_at), np.uint64)
    if not known.any():
        return sums
    stops = ends + 1
    starts = np.maximum(stops - window, 0)
    lo, hi = int(starts[known].min()), int(stops[known].max())
    block = np.asarray(values[:, lo:hi]).astype(np.float64)
    block = np.where(np.isnan(block), np.nan, block + 0.0)
    for s in np.flatnonzero(known):
        digest = hashlib.blake2b(digest_size=8)
        digest.update(times[starts[s] : stops[s]].view(np.int64).tobytes())
        digest.update(np.ascontiguousarray(block[s, starts[s] - lo : stops[s] - lo]).tobytes())
        sums[s] = int.from_bytes(digest.digest(), "little")
    return sums


def plan_increment(
    store: StateStore,
    data: xr.Dataset | xr.DataArray,
    *,
    fingerprint: str,
    freq: str,
    variables: Sequence[str],
    time_dim: str = "time",
    series_dim: str = "series",
) -> IncrementPlan:
    """How a run over ``data`` continues from ``store`` (see the module docstring).

    Parameters
    ----------
    store
        The store of the previous run.
    data
        Tonight's data: ``variables`` with dims ``series_dim``, ``time_dim`` and any
        feature dims, NumPy- or Dask-backed; only the trailing windows are read.
    fingerprint, freq, variables
        What tonight's run uses; each must equal the store's.
    time_dim, series_dim
        Names of the time and series dimensions.

    Returns
    -------
    IncrementPlan

    Raises
    ------
    rnncore.errors.InputError
        If the fingerprint, frequency or variables differ from the store's, or the
        data's time axis is not regular at ``freq`` (the message names both).
    """
    given = {"fingerprint": fingerprint, "variables": tuple(variables)}
    given["freq"] = check_freq(freq)
    for name, value in given.items():
        stored = getattr(store, name)
        if stored != value:
            raise InputError(
                f"the state store was made with {name} {stored!r}; this run has {value!r}. "
                "Run in full (--full) to start a fresh store"
            )
    times = np.asarray(data[time_dim].values, "datetime64[ns]")
    try:
        check_regular(times, freq)
    except ValueError as err:
        raise InputError(f"the data's {time_dim!r} axis: {one_line(err)}") from err
    labels = np.asarray(data[series_dim].values)
    stored = store.position(labels)
    stands = np.full(len(labels), np.datetime64("NaT", "ns"))
    stands[stored >= 0] = store.stands_at[stored[stored >= 0]]
    on_axis = np.isin(stands, times) & ~np.isnat(stands)
    missing = (stored >= 0) & ~np.isnat(stands) & ~on_axis
    values = stacked_values(data, variables, time_dim, series_dim)
    sums = trailing_checksums(
        values, times, np.where(on_axis, stands, np.datetime64("NaT")), store.window
    )
    changed = on_axis & (sums != store.checksums[np.maximum(stored, 0)])
    resume = on_axis & ~changed
    recompute = missing | changed
    start = np.where(resume, np.searchsorted(times, stands) + 1, 0)
    in_data = pd.Index(store.series).isin(pd.Index(labels))
    windows = np.minimum(np.searchsorted(times, stands[on_axis]) + 1, store.window)
    return IncrementPlan(
        series=labels,
        start=start.astype(np.int64),
        stored=np.where(resume, stored, -1),
        resume=tuple(labels[resume].tolist()),
        cold=tuple(labels[~resume & ~recompute].tolist()),
        recompute=tuple(labels[recompute].tolist()),
        removed=tuple(store.series[~in_data].tolist()),
        n_steps=len(times),
        steps_checked=int(windows.sum()),
    )


def stacked_values(
    data: xr.Dataset | xr.DataArray, variables: Sequence[str], time_dim: str, series_dim: str
) -> Any:
    """``variables`` of ``data`` as one lazy-if-Dask ``(series, time, feature)`` array,
    each variable's further dims flattened into features, in the order given."""
    arrays = [data] if isinstance(data, xr.DataArray) else [data[v] for v in variables]
    parts = []
    for array in arrays:
        rest = [d for d in array.dims if d not in (time_dim, series_dim)]
        values = array.transpose(series_dim, time_dim, *rest).data
        parts.append(values.reshape(*values.shape[:2], int(np.prod(values.shape[2:]))))
    if len(parts) == 1:
        return parts[0]
    if any(hasattr(p, "dask") for p in parts):
        import dask.array as da

        return da.concatenate(parts, axis=2)
    return np.concatenate(parts, axis=2)


def _features(values: Any) -> Any:
    """``values`` ``(series, time[, feature])`` with a feature axis."""
    return values[..., None] if values.ndim == 2 else values


def _read(arrays: Mapping[str, zarr.Array], name: str) -> np.ndarray:
    """The array ``name`` of a store's ``arrays``, loaded; every chunk must be there (the
    writers write them all, so a missing one is damage, not fill values)."""
    array = arrays[name]
    if array.nchunks_initialized < array.nchunks:
        raise ValueError(f"{name!r} is not a complete array")
    values = np.asarray(array[...])
    return values.astype(object) if values.dtype.kind == "T" else values  # labels as xarray


def _labels(labels: tuple[Any, ...]) -> list[Any]:
    return [str(label) for label in labels]

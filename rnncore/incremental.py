"""Incremental runs: continue a model from stored states over the steps that arrived since.

:func:`run_incremental` runs a :class:`~rnncore.Model` over a dataset and keeps two
stores: the per-step outputs (``output`` ``(series, time, channel)`` and the final
``state``, as :func:`rnncore.run` returns them) and, beside them, a state store
(:mod:`rnncore.statestore`) with each series' final states, the timestamp they stand
at and a checksum of the input's trailing window. The next run reads the state store,
plans the increment (:func:`rnncore.statestore.plan_increment`) and runs only

* the *resumed* series, from their stored states, over the steps after their stored
  timestamp (read lazily, through Dask; nothing before is read but the trailing
  windows the checksums cover), and
* the *cold* series (new ones) and the *recomputed* ones (data changed at or before
  their stored timestamp: late corrections), from fresh states over their whole history.

A series' state stands at its last step without a missing value, or ``window`` steps
before the end of the data if that is later. A missing step leaves every cell's state
unchanged, so the state at the end of the axis is the state there; values that arrive
late for the trailing missing steps after it are read by the next run, not taken for
corrections (earlier ones, in the checksum's window, are), and a series that has been
silent for long is read back no further than ``window`` steps. The resumed series run
together from the earliest of their starts, each one's steps before its own start set
missing (the identity) and its earlier outputs kept.

How the outputs are updated
---------------------------
When the data's series are the output store's (same labels, same order) and every one
is resumed (the nightly case), the store is updated in place: it is marked
``rnnflow_incomplete`` (:data:`rnncore.io.INCOMPLETE`; :func:`rnncore.io.open_dataset`
refuses it meanwhile), its time axis grown, the steps from the earliest start written
(storage chunks of at most :data:`TIME_CHUNK` steps keep this proportional to the new
steps), the final states written, and the marker replaced by ``rnnflow_complete``; only
then is the new state store written (atomically). A run cut in between leaves the
output store marked incomplete (or complete but longer) and the previous state store,
which records the output's length: the next run cuts the time axis back to it, restores
the marker and proceeds (the steps it rewrites are the ones the cut run was writing). Otherwise
(new, removed or recomputed series, or a full run) the output store is written whole,
as a new version installed atomically (:func:`rnncore.io.write_zarr`): outputs of
resumed series before their start are copied from the previous version, not computed.
A crash that tears a chunk file mid-write (a local file system writes it in place) is
not repaired: reading it then fails, and a full run (``full=True``) starts afresh.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr
import zarr
from xarray.coding.times import decode_cf_datetime, encode_cf_datetime

from .errors import InputError
from .io import INCOMPLETE, mark_store, open_dataset, write_zarr
from .labelled import LAYER_DIM, OUTPUT_DIM, STATE_DIM, _select, run
from .model import Model
from .states import pack_states, unpack_states
from .statestore import (
    IncrementPlan,
    StateStore,
    last_valid_index,
    plan_increment,
    read_state_store,
    stacked_values,
    trailing_checksums,
    write_state_store,
)
from .storage import locate, with_suffix
from .timeaxis import infer_freq, isoformat

__all__ = ["DEFAULT_WINDOW", "TIME_CHUNK", "IncrementalRun", "run_incremental", "state_path"]

#: Steps each series' trailing checksum covers, by default.
DEFAULT_WINDOW = 48
#: The largest storage chunk of the output store along time.
TIME_CHUNK = 512
#: The units the output store's timestamps are encoded in.
TIME_UNITS = "seconds since 1970-01-01"
_NAT = np.datetime64("NaT", "ns")


@dataclass(frozen=True)
class IncrementalRun:
    """What :func:`run_incremental` did.

    Attributes
    ----------
    output, state
        The output store and the state store written.
    incremental
        Whether the run continued from a state store (else it ran in full).
    in_place
        Whether the output store was updated in place (else written whole).
    reason
        Why the run was full, or why the outputs were written whole ("" if neither).
    plan
        The increment's plan (``None`` for a full run).
    steps_read
        Series-steps of input the model read.
    n_series, n_steps
        The data's size.
    """

    output: Path | str
    state: Path | str
    incremental: bool
    in_place: bool
    reason: str
    plan: IncrementPlan | None
    steps_read: int
    n_series: int
    n_steps: int

    def summary(self) -> dict[str, Any]:
        """JSON-able figures for a run report."""
        figures: dict[str, Any] = {
            "mode": "incremental" if self.incremental else "full",
            "outputs updated in place": self.in_place,
            "steps read": self.steps_read,
            "steps in the data": self.n_series * self.n_steps,
        }
        if self.reason:
            figures["why"] = self.reason
        if self.plan is not None:
            figures |= {k: v for k, v in self.plan.summary().items() if k != "steps read"}
        return figures


def state_path(output: str | os.PathLike[str]) -> Path | str:
    """The default state store of the output store ``output``: ``NAME.state.zarr`` beside it.

    Examples
    --------
    >>> state_path("runs/apply.zarr"), state_path("s3://b/apply.zarr")
    (PosixPath('runs/apply.state.zarr'), 's3://b/apply.state.zarr')
    """
    return with_suffix(output, ".state.zarr")


def run_incremental(
    model: Model,
    data: xr.DataArray | xr.Dataset,
    output: str | os.PathLike[str],
    *,
    state: str | os.PathLike[str] | None = None,
    variable: str | None = None,
    full: bool = False,
    freq: str | None = None,
    window: int = DEFAULT_WINDOW,
    time_dim: str = "time",
    series_dim: str = "series",
    feature_dim: str | None = None,
    method: str = "auto",
    tol: float = 1e-6,
    max_iter: int | None = None,
    resources: Mapping[str, float] | None = None,
    attrs: Mapping[str, Any] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> IncrementalRun:
    """Run ``model`` over ``data``, continuing from the state store of an earlier run.

    The outputs equal those of :func:`rnncore.run` over the whole of ``data`` (see the
    module docstring for what is read and how the stores are updated).

    Parameters
    ----------
    model
        The model; it must be the one that wrote the state store (same fingerprint).
    data
        As for :func:`rnncore.run`, with a regular ``datetime64`` time coordinate and a
        series coordinate; Dask-backed (:func:`rnncore.io.open_dataset`) for the
        history not to be read.
    output
        The output store (Zarr), a local path or fsspec URL.
    state
        The state store; ``None``: :func:`state_path` of ``output``.
    variable
        Which data variable of a Dataset to run over.
    full
        Run over the whole history and start a fresh state store, even if one exists.
    freq
        The data's pandas frequency; ``None`` infers it from the time coordinate.
    window
        Steps per series whose checksum detects late corrections (new stores only).
    time_dim, series_dim, feature_dim
        As for :func:`rnncore.run`.
    method, tol, max_iter, resources
        As for :func:`rnncore.run`.
    attrs
        Attributes to add to the output store's (the run's, :func:`rnncore.run`).
    storage_options
        Options of the file system of URLs.

    Returns
    -------
    IncrementalRun

    Raises
    ------
    rnncore.errors.InputError
        If the state store is incomplete or foreign, was made by another model, at
        another frequency or from another variable, or its output store is missing or
        does not match it; the message says so (and that ``full=True`` starts afresh).
    """
    array = _select(data, variable)
    times = np.asarray(array[time_dim].values, "datetime64[ns]")
    freq = infer_freq(times) if freq is None else freq
    variables = (str(array.name),)
    state = state_path(output) if state is None else state
    out, where = locate(output, storage_options), locate(state, storage_options)
    plan, store, old = None, None, None
    if full or not where.exists():
        reason = "asked for" if full else f"no state store at {where.returned()}"
    else:
        store = read_state_store(where.returned(), storage_options=storage_options)
        window = store.window
        array = _tail_loaded(array, store, times, time_dim)
        plan = plan_increment(
            store,
            array,
            fingerprint=model.fingerprint(),
            freq=freq,
            variables=variables,
            time_dim=time_dim,
            series_dim=series_dim,
        )
        old = _previous_output(out, store, times, time_dim)
        reason = ""
    runner = _Runner(
        model, array, time_dim, series_dim, feature_dim, method, tol, max_iter, resources, attrs
    )
    labels = np.asarray(array[series_dim].values)
    if plan is None:
        plan_start = np.zeros(len(labels), np.int64)
        states = runner.write_whole(out, None, plan_start, None, None)
        in_place = False
    else:
        h0 = _stored_states(model, store, plan)
        same_series = old.sizes[series_dim] == len(labels) and np.array_equal(
            old[series_dim].values, labels
        )
        in_place = same_series and len(plan.resume) == len(labels)
        if in_place:
            states = runner.update_in_place(out, old, plan.start, h0)
        else:
            reason = "the series changed (new, removed or recomputed)"
            states = runner.write_whole(out, old, plan.start, h0, plan.stored)
        plan_start = plan.start
    stands = _stands_at(array, plan_start, window, times, time_dim, series_dim)
    values = stacked_values(array, variables, time_dim, series_dim)
    new_store = StateStore(
        series=labels,
        stands_at=stands,
        arrays=_named_states(model, states),
        fingerprint=model.fingerprint(),
        freq=freq,
        variables=variables,
        checksums=trailing_checksums(values, times, stands, window),
        window=window,
        attrs={"output_steps": len(times), "output_start": _iso(times[:1])},
    )
    written = write_state_store(where.returned(), new_store, storage_options=storage_options)
    return IncrementalRun(
        output=out.returned(),
        state=written,
        incremental=plan is not None,
        in_place=in_place,
        reason=reason,
        plan=plan,
        steps_read=int((len(times) - plan_start).sum()),
        n_series=len(labels),
        n_steps=len(times),
    )


class _Runner:
    """Runs the model over parts of one dataset and writes the output store."""

    def __init__(
        self,
        model: Model,
        array: xr.DataArray,
        time_dim: str,
        series_dim: str,
        feature_dim: str | None,
        method: str,
        tol: float,
        max_iter: int | None,
        resources: Mapping[str, float] | None,
        attrs: Mapping[str, Any] | None,
    ) -> None:
        self.model, self.array, self.attrs = model, array, dict(attrs or {})
        self.time_dim, self.series_dim, self.feature_dim = time_dim, series_dim, feature_dim
        self.options = {"method": method, "tol": tol, "max_iter": max_iter, "resources": resources}

    def run(self, series: np.ndarray, start: np.ndarray, h0: np.ndarray | None) -> xr.Dataset:
        """:func:`rnncore.run` over ``series`` (positions) from the earliest of ``start``,
        each series' steps before its own start set missing."""
        t0 = int(start.min()) if start.size else 0
        part = self.array.isel({self.series_dim: series, self.time_dim: slice(t0, None)})
        steps = xr.DataArray(np.arange(t0, t0 + part.sizes[self.time_dim]), dims=self.time_dim)
        begins = xr.DataArray(start, dims=self.series_dim)
        if (start > t0).any():
            part = part.where(steps >= begins)
        result = run(
            self.model,
            part,
            time_dim=self.time_dim,
            series_dim=self.series_dim,
            feature_dim=self.feature_dim,
            h0=h0,
            **self.options,
        )
        result.attrs.update(self.attrs)
        return result

    def write_whole(
        self,
        out: Any,
        old: xr.Dataset | None,
        start: np.ndarray,
        h0: np.ndarray | None,
        stored: np.ndarray | None,
    ) -> np.ndarray:
        """Write the whole output store, as a new version: the resumed series (``stored``
        >= 0, their earlier outputs copied from ``old``) from ``h0``, the others from
        fresh states. Returns the final states."""
        stored = np.full(len(start), -1) if stored is None else stored
        warm, cold = np.flatnonzero(stored >= 0), np.flatnonzero(stored < 0)
        outputs, states, attrs = [], [], {}
        if warm.size:
            result = self.run(warm, start[warm], h0)
            t0 = int(start[warm].min())
            earlier = self._old_output(old, stored[warm], 0, t0)
            kept = self._kept(old, stored[warm], start[warm], t0, result)
            outputs.append(da.concatenate([earlier.data, kept.data], axis=1))
            states.append(result["state"].data)
            attrs = result.attrs
        if cold.size:
            result = self.run(cold, np.zeros(cold.size, np.int64), None)
            outputs.append(result["output"].data)
            states.append(result["state"].data)
            attrs = result.attrs
        order = np.argsort(np.concatenate([warm, cold]))
        dims = (self.series_dim, self.time_dim, OUTPUT_DIM)
        full = xr.Dataset(
            {
                "output": (dims, da.concatenate(outputs, axis=0)[order]),
                "state": ((self.series_dim, LAYER_DIM, STATE_DIM), da.concatenate(states)[order]),
            },
            coords=self._coords(),
            attrs=attrs,
        )
        width = max(self.array.chunksizes.get(self.series_dim, (len(start),)), default=1)
        full = full.chunk({self.series_dim: width})
        full["output"] = full["output"].chunk({self.time_dim: TIME_CHUNK})
        # whole seconds from a fixed epoch: every later step of any frequency of a
        # second or more is encoded in the same units (xarray picks them from the data)
        full[self.time_dim].encoding.update(
            chunks=(TIME_CHUNK,), units=TIME_UNITS, dtype=np.dtype("int64")
        )
        write_zarr(full, out.returned(), overwrite=True, storage_options=out.storage_options)
        written = open_dataset(out.returned(), storage_options=out.storage_options)
        return written["state"].values

    def update_in_place(
        self, out: Any, old: xr.Dataset, start: np.ndarray, h0: np.ndarray | None
    ) -> np.ndarray:
        """Grow and write the output store in place (see the module docstring); returns
        the final states."""
        series = np.arange(len(start))
        t0, end = int(start.min()), self.array.sizes[self.time_dim]
        if t0 == end:  # no new step for any series
            return h0
        result = self.run(series, start, h0)
        kept = self._kept(old, series, start, t0, result)
        group = _group(out, "r+")
        mark_store(group, complete=False, writer="rnncore.incremental")
        _resize_time(group, self.time_dim, end)
        region = xr.Dataset({"output": kept.drop_vars(list(kept.coords))})
        write = region.to_zarr(
            out.target,
            region={self.time_dim: slice(t0, end)},
            mode="r+",
            consolidated=False,
            compute=False,
            align_chunks=True,  # no storage chunk written by two tasks
            **out.open_options,
        )
        _write_times(group[self.time_dim], self.array[self.time_dim].values[t0:], t0)
        _, states = dask.compute(write, result["state"].data)
        group["state"][...] = np.asarray(states)
        mark_store(group, complete=True, attrs=result.attrs)
        return np.asarray(states)

    def _kept(
        self, old: xr.Dataset, stored: np.ndarray, start: np.ndarray, t0: int, result: xr.Dataset
    ) -> xr.DataArray:
        """The new outputs from ``t0``, with the earlier outputs (from ``old``) kept at
        each series' steps before its start; loads those earlier outputs only."""
        output = result["output"]
        if not (start > t0).any():
            return output
        stop = int(start.max())
        earlier = self._old_output(old, stored, t0, stop).values.astype(output.dtype)
        n = output.sizes[self.time_dim]
        before = np.full(output.shape, np.nan, output.dtype)
        before[:, : stop - t0] = earlier
        mask = np.arange(t0, t0 + n)[None, :, None] >= start[:, None, None]
        return output.copy(data=da.where(mask, output.data, before))

    def _old_output(self, old: xr.Dataset, stored: np.ndarray, t0: int, t1: int) -> xr.DataArray:
        """Steps ``t0:t1`` of the previous outputs of the series at ``stored``, lazily."""
        output = old["output"].transpose(self.series_dim, self.time_dim, OUTPUT_DIM)
        return output.isel({self.series_dim: stored, self.time_dim: slice(t0, t1)})

    def _coords(self) -> dict[str, Any]:
        return {
            name: coord
            for name, coord in self.array.coords.items()
            if set(coord.dims) <= {self.time_dim, self.series_dim}
        }


# -- helpers --------------------------------------------------------------------------


def _previous_output(out: Any, store: StateStore, times: np.ndarray, time_dim: str) -> xr.Dataset:
    """The output store matching ``store``, lazily. A run cut after it began to write the
    outputs but before the state store (marked incomplete, or longer than the state
    store says) is undone first: the time axis cut back (the next run rewrites the
    steps after the earliest start; those before are the ones the cut run had)."""
    steps = store.attrs.get("output_steps")
    if not out.exists():
        raise InputError(
            f"the state store has no output store at {out.returned()}; run in full "
            "(--full, full=True) to start afresh"
        )
    group = _group(out, "r+")
    if steps is not None and (INCOMPLETE in group.attrs or group[time_dim].shape[0] > steps):
        _resize_time(group, time_dim, steps)
        mark_store(group, complete=True)
    if INCOMPLETE in group.attrs:
        raise InputError(
            f"the output store {out.returned()} is marked {INCOMPLETE!r} and its state store "
            "does not say its length; run in full (--full, full=True)"
        )
    # the markers were checked above; open_dataset's check of every chunk would list
    # the whole store, which grows with the history
    old = xr.open_zarr(out.target, consolidated=False, zarr_format=3, **out.open_options)
    old_times = old[time_dim].values
    first_matches = len(old_times) and len(times) and old_times[0] == times[0]
    if steps != len(old_times) or not first_matches or len(times) < len(old_times):
        raise InputError(
            f"the output store {out.returned()} ({len(old_times)} steps from "
            f"{_iso(old_times[:1])}) does not match its state store ({steps} steps from "
            f"{store.attrs.get('output_start')}) and the data ({len(times)} steps from "
            f"{_iso(times[:1])}); run in full (--full, full=True) to start afresh"
        )
    return old


def _tail_loaded(
    array: xr.DataArray, store: StateStore, times: np.ndarray, time_dim: str
) -> xr.DataArray:
    """``array`` with the steps the resumed series may read loaded once (Dask
    ``persist``): from the start of the earliest checksum window on. The plan, the run,
    and the new timestamps and checksums all read them; the history is not loaded."""
    if not hasattr(array.data, "dask"):
        return array
    stands = store.stands_at[np.isin(store.stands_at, times)]
    if not stands.size:
        return array
    first = min(int(np.searchsorted(times, stands.min())), len(times) - store.window)
    lo = max(0, first - store.window + 1)
    axis = array.get_axis_num(time_dim)
    head = array.data[(slice(None),) * axis + (slice(0, lo),)]
    tail = array.data[(slice(None),) * axis + (slice(lo, None),)].persist()
    return array.copy(data=da.concatenate([head, tail], axis=axis))


def _resize_time(group: zarr.Group, time_dim: str, steps: int) -> None:
    """Every array of ``group`` along ``time_dim`` grown or cut to ``steps``."""
    for _, array in group.arrays():
        dims = array.metadata.dimension_names or ()
        if time_dim in dims:
            shape = list(array.shape)
            shape[dims.index(time_dim)] = steps
            array.resize(tuple(shape))


def _stored_states(model: Model, store: StateStore, plan: IncrementPlan) -> np.ndarray | None:
    """The stored states of the resumed series, packed, in the data's order (``None``
    if there are none)."""
    rows = plan.stored[plan.stored >= 0]
    states = []
    for k, cell in enumerate(model.layers):
        parts = tuple(store.arrays[f"layer{k}/{name}"][rows] for name in cell.state_names)
        states.append(parts if len(parts) > 1 else parts[0])
    return pack_states(model, states) if rows.size else None


def _named_states(model: Model, packed: np.ndarray) -> dict[str, np.ndarray]:
    """Packed states as the state store's arrays: ``layerK/h`` (LSTM: and ``layerK/c``)."""
    named = {}
    for k, (cell, state) in enumerate(zip(model.layers, unpack_states(model, packed), strict=True)):
        parts = state if isinstance(state, tuple) else (state,)
        for name, part in zip(cell.state_names, parts, strict=True):
            named[f"layer{k}/{name}"] = np.ascontiguousarray(part)
    return named


def _stands_at(
    array: xr.DataArray,
    start: np.ndarray,
    window: int,
    times: np.ndarray,
    time_dim: str,
    series_dim: str,
) -> np.ndarray:
    """Per series, where its new state stands: its last step without a missing value
    (from its start on, else where it stood), or ``window`` steps before the end if that
    is later; ``NaT`` if neither."""
    n = len(times)
    t0 = int(start.min()) if start.size else n
    part = array.isel({time_dim: slice(t0, None)})
    values = stacked_values(part, (str(array.name),), time_dim, series_dim)
    last = np.asarray(dask.compute(last_valid_index(values))[0])
    last = np.where(last >= 0, last + t0, -1)
    index = np.maximum(np.maximum(last, start - 1), n - window)
    return np.where(index >= 0, times[np.maximum(index, 0)], _NAT)


def _write_times(array: zarr.Array, times: np.ndarray, t0: int) -> None:
    """Write the time coordinate from step ``t0`` on, encoded as the store encodes it
    (xarray's region writes leave index coordinates out)."""
    if "units" in array.attrs:
        units, calendar = array.attrs["units"], array.attrs.get("calendar")
        numbers, used, _ = encode_cf_datetime(times, units, calendar, array.dtype)
        if not np.array_equal(decode_cf_datetime(numbers, units, calendar), times):
            raise InputError(
                f"the new timestamps cannot be stored in the output store's units {units!r} "
                f"(they need {used!r}); run in full (--full, full=True)"
            )
        times = numbers
    array[t0 : t0 + len(times)] = times


def _group(out: Any, mode: str) -> zarr.Group:
    return zarr.open_group(out.target, mode=mode, zarr_format=3, **out.open_options)


def _iso(times: np.ndarray) -> str | None:
    return isoformat(times[0]) if len(times) else None

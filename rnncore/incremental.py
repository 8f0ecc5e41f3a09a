"""Incremental runs: continue a model from stored states over the steps that arrived since.

:func:`run_incremental` runs a :class:`~rnncore.Model` over a dataset and keeps two
stores: the per-step outputs (``output`` ``(series, time, channel)`` and the final
``state``, as :func:`rnncore.run` returns them) and, beside them, a state store
(:mod:`rnncore.statestore`) with each series' final states, the timestamp they stand
at and a checksum of the input's trailing window. The next run reads the state store,
plans the increment (:func:`rnncore.statestore.plan_increment`) and runs only

* the *resumed* series, from their stored states, over the steps after their stored
  timestamp (loaded once, with the trailing windows the checksums cover: nothing
  before is read), and
* the *cold* series (new ones) and the *recomputed* ones (data changed at or before
  their stored timestamp: late corrections), from fresh states over their whole history.

A series' state stands at its last step without a missing value, or ``window`` steps
before the end of the data if that is later. A missing step leaves every cell's state
unchanged, so the state at the end of the axis is the state there; values that arrive
late for the trailing missing steps after it are read by the next run, not taken for
corrections (earlier ones, in the checksum's window, are), and a series that has been
silent for long is read back no further than ``window`` steps. The resumed series run
together from the earliest of their starts, each one's steps before its own start set
missing (the identity) and its earlier outputs kept; in place (below), each runs from
its first step without a missing value (before it: NaN outputs, the state unchanged),
so a few silent series do not widen the night's batch.

How the outputs are updated
---------------------------
When the data's series are the output store's (same labels, same order) and every one
is resumed (the nightly case), the store is updated in place: it is marked
``rnnflow_incomplete`` (:data:`rnncore.io.INCOMPLETE`; :func:`rnncore.io.open_dataset`
refuses it meanwhile), its time axis grown, the steps from the first whose outputs
change (or the first new one) written (storage chunks of at most :data:`TIME_CHUNK`
steps keep this proportional to the new steps), the final states written, and the
marker replaced by ``rnnflow_complete``; only then is the new state store written
(atomically). The model runs in memory over the loaded steps (on one thread when they
are few, :data:`ONE_THREAD_SIZE`) and the output store is written with Zarr directly:
a night's fixed costs do not grow with the history. A run cut in between leaves the
output store marked incomplete (or complete but longer) and the previous state store,
which records the output's length: the next run cuts the time axis back to it, restores
the marker and proceeds, rewriting the steps from the earliest start (those the cut run
may have written). Otherwise (new, removed or recomputed series, or a full run) the
output store is written whole, as a new version installed atomically
(:func:`rnncore.io.write_zarr`): outputs of resumed series before their start are
copied from the previous version, not computed. A crash that tears a chunk file
mid-write (a local file system writes it in place) is not repaired: reading it then
fails, and a full run (``full=True``) starts afresh.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr
import zarr
from xarray.coding.times import decode_cf_datetime, encode_cf_datetime

from . import kernels
from .errors import InputError, one_line
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
from .timeaxis import check_regular, infer_freq, isoformat

__all__ = [
    "DEFAULT_WINDOW",
    "ONE_THREAD_SIZE",
    "TIME_CHUNK",
    "IncrementalRun",
    "run_incremental",
    "state_path",
]

#: Steps each series' trailing checksum covers, by default.
DEFAULT_WINDOW = 48
#: The largest storage chunk of the output store along time.
TIME_CHUNK = 512
#: Input values of an in-memory run below which its kernels run on one thread: on a
#: night's few steps, waking the other threads costs more than they save.
ONE_THREAD_SIZE = 2**20
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
    inferred = freq is None  # infer_freq checks the axis is regular
    freq = infer_freq(times) if inferred else freq
    variables = (str(array.name),)
    state = state_path(output) if state is None else state
    out, where = locate(output, storage_options), locate(state, storage_options)
    plan, store, old = None, None, None
    source = _Source(array, time_dim, len(times))
    if full or not where.exists():
        reason = "asked for" if full else f"no state store at {where.returned()}"
    else:
        store = read_state_store(where.returned(), storage_options=storage_options)
        window = store.window
        source = _Source(array, time_dim, _tail_start(store, times))
        fingerprint = model.fingerprint()
        plan = _plan(store, source, times, fingerprint, freq, variables, series_dim, inferred)
        old = _previous_output(out, store, times, time_dim, series_dim)
        reason = ""
    runner = _Runner(
        model, source, time_dim, series_dim, feature_dim, method, tol, max_iter, resources, attrs
    )
    labels = np.asarray(array[series_dim].values)
    if plan is None:
        plan_start = np.zeros(len(labels), np.int64)
        states = runner.write_whole(out, None, plan_start, None, None)
        in_place = False
    else:
        h0 = _stored_states(model, store, plan)
        in_place = len(plan.resume) == len(labels) and old.same_series(labels)
        if in_place:
            states = runner.update_in_place(old, plan.start, h0, times)
        else:
            reason = "the series changed (new, removed or recomputed)"
            states = runner.write_whole(out, old, plan.start, h0, plan.stored)
        plan_start = plan.start
    stands = _stands_at(source, plan_start, window, times, series_dim)
    new_store = StateStore(
        series=labels,
        stands_at=stands,
        arrays=_named_states(model, states),
        fingerprint=model.fingerprint(),
        freq=freq,
        variables=variables,
        checksums=_checksums(source, stands, window, times, series_dim),
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


class _Source:
    """The data, with its steps from ``lo`` on loaded once (the tail): the plan, the run
    of resumed series, the new timestamps and checksums all read them; the history
    before is read lazily, if at all.

    Attributes
    ----------
    array
        The data.
    tail
        Steps ``lo:`` of the data, in memory.
    """

    def __init__(self, array: xr.DataArray, time_dim: str, lo: int) -> None:
        self.array, self.time_dim, self.lo = array, time_dim, lo
        self.tail = array.isel({time_dim: slice(lo, None)})
        if hasattr(array.data, "dask") and self.tail.size:
            # a few chunks (Zarr reads them concurrently itself): no thread hand-offs
            self.tail = self.tail.compute(scheduler="synchronous")

    def since(self, t0: int) -> xr.DataArray:
        """Steps ``t0:`` of the data: in memory if ``t0`` is in the tail, else lazy."""
        if t0 >= self.lo:
            return self.tail.isel({self.time_dim: slice(t0 - self.lo, None)})
        return self.array.isel({self.time_dim: slice(t0, None)})


class _Runner:
    """Runs the model over parts of one dataset and writes the output store."""

    def __init__(
        self,
        model: Model,
        source: _Source,
        time_dim: str,
        series_dim: str,
        feature_dim: str | None,
        method: str,
        tol: float,
        max_iter: int | None,
        resources: Mapping[str, float] | None,
        attrs: Mapping[str, Any] | None,
    ) -> None:
        self.model, self.source, self.attrs = model, source, dict(attrs or {})
        self.array = source.array
        self.time_dim, self.series_dim, self.feature_dim = time_dim, series_dim, feature_dim
        self.options = {"method": method, "tol": tol, "max_iter": max_iter, "resources": resources}

    def run(self, series: np.ndarray, start: np.ndarray, h0: np.ndarray | None) -> xr.Dataset:
        """:func:`rnncore.run` over ``series`` (positions) from the earliest of ``start``,
        each series' steps before its own start set missing; in memory (eager) if those
        steps are in the loaded tail, on one thread if they are few."""
        t0 = int(start.min()) if start.size else 0
        part = self.source.since(t0).isel({self.series_dim: series})
        steps = xr.DataArray(np.arange(t0, t0 + part.sizes[self.time_dim]), dims=self.time_dim)
        begins = xr.DataArray(start, dims=self.series_dim)
        if (start > t0).any():
            part = part.where(steps >= begins)
        small = not hasattr(part.data, "dask") and part.size < ONE_THREAD_SIZE
        with kernels.threads(1) if small else contextlib.nullcontext():
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
        old: _Output | None,
        start: np.ndarray,
        h0: np.ndarray | None,
        stored: np.ndarray | None,
    ) -> np.ndarray:
        """Write the whole output store, as a new version: the resumed series (``stored``
        >= 0, their earlier outputs copied from the output store ``old``) from ``h0``,
        the others from fresh states. Returns the final states."""
        stored = np.full(len(start), -1) if stored is None else stored
        warm, cold = np.flatnonzero(stored >= 0), np.flatnonzero(stored < 0)
        outputs, states, attrs = [], [], {}
        if warm.size:
            result = self.run(warm, start[warm], h0)
            t0 = int(start[warm].min())
            earlier = da.from_zarr(old.output)[stored[warm]][:, :t0]
            kept = _kept(old, stored[warm], start[warm], t0, result["output"].data)
            outputs.append(da.concatenate([earlier, kept], axis=1))
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
        self, old: _Output, start: np.ndarray, h0: np.ndarray | None, times: np.ndarray
    ) -> np.ndarray:
        """Grow and write the output store ``old`` in place (see the module docstring),
        with Zarr directly: the steps from the earliest start are in the loaded tail, so
        the run is in memory; returns the final states."""
        series = np.arange(len(start))
        t0, end, known = int(start.min()), len(times), old.time.shape[0]
        if t0 == end:  # no new step for any series
            return h0
        # a missing step leaves the states unchanged and gives NaN outputs: each series
        # runs from its first step without one on (its steps before stay NaN: they were
        # missing when the store was written too)
        begin = _first_valid(self.source.since(t0), start, t0, self.time_dim, self.series_dim)
        result = self.run(series, begin, h0)
        new = np.asarray(result["output"].data)
        # written from the first step whose outputs change, or the first new step; after
        # a cut run (which may have written any of them), from the earliest start
        t1 = t0 if old.recovered else min(end - new.shape[1], known)
        output = np.full((len(series), end - t1, new.shape[2]), np.nan, new.dtype)
        output[:, end - t1 - new.shape[1] :] = new
        output = _kept(old, series, start, t1, output)
        states = np.asarray(result["state"].data)
        stamps = _encoded_times(old.time, times[known:])
        mark_store(old.group, complete=False, writer="rnncore.incremental")
        old.resize(end)
        old.output[:, t1:end] = output
        old.time[known:end] = stamps
        old.arrays["state"][...] = states
        mark_store(old.group, complete=True, attrs=result.attrs)
        return states

    def _coords(self) -> dict[str, Any]:
        return {
            name: coord
            for name, coord in self.array.coords.items()
            if set(coord.dims) <= {self.time_dim, self.series_dim}
        }


# -- helpers --------------------------------------------------------------------------


class _Output:
    """The output store, opened with Zarr: its group, its arrays by name, and its
    ``output`` and time coordinate (checked to be those of an output store)."""

    def __init__(self, out: Any, time_dim: str, series_dim: str) -> None:
        self.group = zarr.open_group(out.target, mode="r+", zarr_format=3, **out.open_options)
        # every chunk written, all-NaN ones too (open_dataset checks they all are)
        self.arrays = {
            name: array.with_config({"write_empty_chunks": True})
            for name, array in self.group.arrays()
        }
        self.time_dim, self.series_dim = time_dim, series_dim
        dims = {
            name: tuple(array.metadata.dimension_names or ()) for name, array in self.arrays.items()
        }
        expected = {
            "output": (series_dim, time_dim, OUTPUT_DIM),
            time_dim: (time_dim,),
            series_dim: (series_dim,),
        }
        if any(dims.get(name) != value for name, value in expected.items()) or dims.get(
            "state", ()
        )[:1] != (series_dim,):
            raise InputError(
                f"{out.returned()} is not an output store of rnncore.incremental (expected "
                f"arrays {expected} and 'state' ({series_dim}, ...); found {dims}); run in "
                "full (--full, full=True) to start afresh"
            )
        self.output, self.time = self.arrays["output"], self.arrays[time_dim]
        #: Whether a cut run's update was undone (:func:`_previous_output`).
        self.recovered = False

    def resize(self, steps: int) -> None:
        """Grow or cut every array along time to ``steps``."""
        for array in self.arrays.values():
            dims = array.metadata.dimension_names or ()
            if self.time_dim in dims:
                shape = list(array.shape)
                shape[dims.index(self.time_dim)] = steps
                array.resize(tuple(shape))

    def same_series(self, labels: np.ndarray) -> bool:
        """Whether the store has the series ``labels``, in this order."""
        stored = np.asarray(self.arrays[self.series_dim][...])
        stored = stored.astype(object) if stored.dtype.kind == "T" else stored  # as xarray
        return stored.shape == labels.shape and bool(np.array_equal(stored, labels))


def _previous_output(
    out: Any, store: StateStore, times: np.ndarray, time_dim: str, series_dim: str
) -> _Output:
    """The output store matching ``store``. A run cut after it began to write the outputs
    but before the state store (marked incomplete, or longer than the state store
    says) is undone first: the time axis cut back (the next run rewrites the steps
    after the earliest start; those before are the ones the cut run had)."""
    steps = store.attrs.get("output_steps")
    if not out.exists():
        raise InputError(
            f"the state store has no output store at {out.returned()}; run in full "
            "(--full, full=True) to start afresh"
        )
    old = _Output(out, time_dim, series_dim)
    if steps is not None and (INCOMPLETE in old.group.attrs or old.time.shape[0] > steps):
        old.resize(steps)
        mark_store(old.group, complete=True)
        old.recovered = True
    if INCOMPLETE in old.group.attrs:
        raise InputError(
            f"the output store {out.returned()} is marked {INCOMPLETE!r} and its state store "
            "does not say its length; run in full (--full, full=True)"
        )
    n_old, first = old.time.shape[0], _decoded_times(old.time, old.time[:1])
    first_matches = n_old and len(times) and first[0] == times[0]
    if steps != n_old or not first_matches or len(times) < n_old:
        raise InputError(
            f"the output store {out.returned()} ({n_old} steps from {_iso(first)}) does not "
            f"match its state store ({steps} steps from {store.attrs.get('output_start')}) "
            f"and the data ({len(times)} steps from {_iso(times[:1])}); run in full "
            "(--full, full=True) to start afresh"
        )
    return old


def _plan(
    store: StateStore,
    source: _Source,
    times: np.ndarray,
    fingerprint: str,
    freq: str,
    variables: tuple[str, ...],
    series_dim: str,
    regular: bool,
) -> IncrementPlan:
    """:func:`~rnncore.statestore.plan_increment` over the loaded tail (every stored
    timestamp on the axis, and its window, is in it), its starts made steps of the
    whole axis, which must be regular at ``freq`` too (checked unless ``regular``)."""
    plan = plan_increment(
        store,
        source.tail,
        fingerprint=fingerprint,
        freq=freq,
        variables=variables,
        time_dim=source.time_dim,
        series_dim=series_dim,
    )
    if not regular:
        try:
            check_regular(times, freq)
        except ValueError as err:
            raise InputError(f"the data's {source.time_dim!r} axis: {one_line(err)}") from err
    start = np.where(plan.stored >= 0, plan.start + source.lo, 0)
    return replace(plan, start=start, n_steps=len(times))


def _tail_start(store: StateStore, times: np.ndarray) -> int:
    """The first step the resumed series may read: the start of the earliest checksum
    window (of the stored timestamps, or of the new ones, at the latest ``window``
    steps before the end); ``len(times)`` if no stored timestamp is on the axis."""
    at = np.searchsorted(times, store.stands_at)  # the axis is sorted: no pass over it
    on = at < len(times)
    on[on] = times[at[on]] == store.stands_at[on]
    if not on.any():
        return len(times)
    first = min(int(at[on].min()), len(times) - store.window)
    return max(0, first - store.window + 1)


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
    source: _Source, start: np.ndarray, window: int, times: np.ndarray, series_dim: str
) -> np.ndarray:
    """Per series, where its new state stands: its last step without a missing value
    (from its start on, else where it stood), or ``window`` steps before the end if that
    is later; ``NaT`` if neither."""
    n = len(times)
    t0 = int(start.min()) if start.size else n
    part = source.since(t0)
    values = stacked_values(part, (str(part.name),), source.time_dim, series_dim)
    last = np.asarray(dask.compute(last_valid_index(values))[0])
    last = np.where(last >= 0, last + t0, -1)
    index = np.maximum(np.maximum(last, start - 1), n - window)
    return np.where(index >= 0, times[np.maximum(index, 0)], _NAT)


def _first_valid(
    part: xr.DataArray, start: np.ndarray, t0: int, time_dim: str, series_dim: str
) -> np.ndarray:
    """Per series, its first step without a missing value from its ``start`` on (the
    length of the axis if none), in the data ``part`` from step ``t0``."""
    values = np.asarray(stacked_values(part, (str(part.name),), time_dim, series_dim))
    steps = np.arange(t0, t0 + values.shape[1])
    valid = ~np.isnan(values).any(axis=2) & (steps[None, :] >= start[:, None])
    return np.where(valid.any(axis=1), steps[valid.argmax(axis=1)], t0 + values.shape[1])


def _checksums(
    source: _Source, stands: np.ndarray, window: int, times: np.ndarray, series_dim: str
) -> np.ndarray:
    """:func:`~rnncore.statestore.trailing_checksums` of the windows ending at ``stands``,
    read from the earliest window's start on (the loaded tail, after an incremental run)."""
    known = stands[~np.isnat(stands)]
    lo = max(0, int(np.searchsorted(times, known.min())) - window + 1) if known.size else 0
    part = source.since(lo)
    values = stacked_values(part, (str(part.name),), source.time_dim, series_dim)
    return trailing_checksums(values, times[lo:], stands, window)


def _kept(old: _Output, stored: np.ndarray, start: np.ndarray, t0: int, output: Any) -> Any:
    """The new outputs ``output`` (``(series, time, channel)`` from step ``t0``, NumPy or
    Dask), with the earlier outputs of the output store ``old`` (of its series at
    ``stored``) kept at each series' steps before its start; reads those only."""
    if not (start > t0).any():
        return output
    stop = int(start.max())
    before = np.full(output.shape, np.nan, output.dtype)
    before[:, : stop - t0] = old.output.oindex[stored, t0:stop]
    mask = np.arange(t0, t0 + output.shape[1])[None, :, None] >= start[:, None, None]
    return np.where(mask, output, before)


def _encoded_times(array: zarr.Array, times: np.ndarray) -> np.ndarray:
    """``times`` encoded as the time coordinate ``array`` of the output store encodes
    them (xarray's CF encoding), to write there."""
    if "units" not in array.attrs:
        return times
    units, calendar = array.attrs["units"], array.attrs.get("calendar")
    numbers, used, _ = encode_cf_datetime(times, units, calendar, array.dtype)
    if not np.array_equal(decode_cf_datetime(numbers, units, calendar), times):
        raise InputError(
            f"the new timestamps cannot be stored in the output store's units {units!r} "
            f"(they need {used!r}); run in full (--full, full=True)"
        )
    return numbers


def _decoded_times(array: zarr.Array, numbers: np.ndarray) -> np.ndarray:
    """``numbers`` read from the time coordinate ``array``, decoded (inverse of
    :func:`_encoded_times`)."""
    if "units" not in array.attrs:
        return np.asarray(numbers, "datetime64[ns]")
    return decode_cf_datetime(numbers, array.attrs["units"], array.attrs.get("calendar"))


def _iso(times: np.ndarray) -> str | None:
    return isoformat(times[0]) if len(times) else None

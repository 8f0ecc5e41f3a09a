"""The forecaster's incremental pass: from a state store over only the new steps.

What :meth:`~rnncore.forecast.Forecaster.predict` needs of a series' history is
small, and all of it either updates exactly from the new steps or lies in a trailing
window of ``window`` steps (:func:`state_window`: the longest of the scaling window,
the lag window and the season):

- the reservoir's final state. Its moving averages are linear in the values, with
  weights summing to one, so the reservoir runs over the *unscaled* values and its
  averages are brought to tonight's scaling at the end
  (:meth:`~rnncore.forecast.reservoir.Reservoir.final_units`): the state does not
  depend on the scaling, which moves with the trailing window every night. (Gated
  units read the scaled values, so a reservoir with ``n_gated > 0`` has no
  incremental pass.)
- the scaling statistics (:func:`~rnncore.forecast.scaling.series_stats`): the
  robust ones are those of the trailing window; the fallback mean and standard
  deviation, the seasonal error and the count of observations come from sums over
  the whole history (:func:`~rnncore.forecast.scaling.series_sums`), kept in the store
  and added to;
- the forecast origin (the last observed step), its lag window and exogenous values:
  in the new steps and the window before them when the series was observed since,
  else the stored ones (a series that ended early keeps its origin).

A store (:mod:`rnncore.statestore`) holds, per series, the reservoir's state
(``reservoir``), the sums (``sums``), and the origin's unscaled lag window
(``origin_lags``), exogenous values (``origin_exog``) and timestamp
(``origin_time``, nanoseconds), with checksums of the trailing ``window`` steps of
the target and exogenous columns, and the data's first timestamp.
:func:`~rnncore.statestore.plan_increment` sorts the series: those resumed read the
``window`` steps before their state and the new steps; new series and those whose
trailing window changed (a late correction) read their whole history from a fresh
state; removed series are dropped from the next store. A history that starts
elsewhere (trimmed, or extended back) recomputes every series. The steps from the
first trailing window on are read once, in memory (a window and a night's steps
per series: small), for the plan and for the series resumed, whose sums, robust
statistics, origins and checksums are then NumPy's work; their reservoir runs over
their new steps only. The forecast equals a full recompute up to rounding (float64:
relative 1e-12).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import dask
import numpy as np
import xarray as xr

from ..errors import InputError
from ..statestore import StateStore, plan_increment, trailing_checksums
from ..timeaxis import isoformat
from .features import FeatureSpec
from .passes import EXOG_DIM, History, Origins, origin_features, origin_window, run_panel
from .scaling import SUMS, apply_scaling, series_stats, series_sums

__all__ = ["Increment", "incremental_pass", "state_window"]

_NAT = np.datetime64("NaT", "ns")
_ADDITIVE = len(SUMS) - 1  # the sums that add over stretches of history (not "last")


@dataclass(frozen=True)
class Increment:
    """What :func:`incremental_pass` computes.

    Attributes
    ----------
    history
        The data, with the series' statistics over their whole history.
    origins
        The features at every series' origin.
    origin_times
        ``(series,)`` the origins' timestamps.
    store
        The state after the data's last step, for the next run.
    summary
        The plan's figures (:meth:`rnncore.statestore.IncrementPlan.summary`), its
        ``steps read`` the series-steps computed over (the new steps, the trailing
        windows of the series resumed, the whole history of the others), and ``steps
        new`` the steps after each series' stored state (all of a cold series').
    """

    history: History
    origins: Origins
    origin_times: np.ndarray
    store: StateStore
    summary: dict[str, Any]


def state_window(spec: FeatureSpec, scale_window: int) -> int:
    """The trailing steps a resumed series reads before its new steps (and its
    checksums cover): the scaling window, the lag window and the season."""
    return max(scale_window, spec.n_lags, spec.season)


def incremental_pass(
    ds: xr.Dataset,
    history: History,
    prepare: Callable[[xr.Dataset], History],
    spec: FeatureSpec,
    *,
    horizon: int,
    scale_window: int,
    fingerprint: str,
    variable: str,
    store: StateStore | None,
) -> Increment:
    """The features at every series' origin, continued from ``store``.

    Parameters
    ----------
    ds
        The data, read lazily: only the trailing windows and new steps of the series
        resumed, and the whole history of the others.
    history
        ``ds`` prepared (statistics not computed): its time axis, series and layout;
        none of its values are read.
    prepare
        Prepares a selection of ``ds`` as ``history`` was prepared.
    spec
        The features; its reservoir must have no gated units.
    horizon
        Steps of the seasonal-naive baselines.
    scale_window
        The trailing window of the robust scaling statistics.
    fingerprint
        The forecaster's fingerprint: the store's must equal it.
    variable
        The target's name (with the exogenous columns, the variables the store covers).
    store
        The state store of an earlier run over the same series' earlier steps; ``None``
        starts every series cold (a full pass that writes a store).

    Raises
    ------
    rnncore.errors.InputError
        If the reservoir has gated units, or ``store`` was made by another
        forecaster, at another frequency or from other variables
        (:func:`~rnncore.statestore.plan_increment`).
    """
    if spec.reservoir.n_gated:
        raise InputError(
            f"incremental forecasts need a reservoir without gated units; this forecaster "
            f"has n_gated={spec.reservoir.n_gated} (their states depend on the scaling, which "
            "moves with the data): forecast in full"
        )
    window = state_window(spec, scale_window)
    series_dim, time_dim = history.y.dims
    variables = (variable, *history.exog_columns)
    labels = history.y[series_dim].values
    n_series, n_steps = history.y.shape
    start, stored = np.zeros(n_series, np.int64), np.full(n_series, -1)
    summary: dict[str, Any] = {
        "series resumed": 0, "series cold": [str(label) for label in labels],
        "series recomputed": [], "series removed": [], "steps checked": 0,
    }  # fmt: skip
    checked = 0  # the first step of the trailing windows of the stored states
    if store is not None:
        found = _first_checked(store, history.times, window)
        checked = found or 0
        # Read once, in memory: the stored states' trailing windows and the new steps.
        raw = ds.isel({time_dim: slice(checked, None)})
        raw = raw if found is None else raw.load()
        recent = prepare(raw) if found is None else _computed(prepare(raw))
        plan = plan_increment(
            store,
            _checked(recent, variable),
            fingerprint=fingerprint,
            freq=history.freq,
            variables=variables,
            time_dim=time_dim,
            series_dim=series_dim,
        )
        start, stored = np.where(plan.stored >= 0, plan.start + checked, 0), plan.stored
        summary = plan.summary()
        if store.attrs.get("start") != isoformat(history.times[0]):
            # The history starts elsewhere (trimmed, or earlier steps added): the stored
            # sums over it do not continue, so every stored series is recomputed.
            summary["series recomputed"] += [str(label) for label in labels[start > 0]]
            summary["series resumed"], start[:] = 0, 0
    parts = _Parts.empty(n_series, spec, history)
    steps_read = 0
    for begin in np.unique(start):
        rows = np.flatnonzero(start == begin)
        if begin == 0:  # cold: the whole history, read lazily
            part = prepare(ds.isel({series_dim: rows}))
            span = _Span(part.y.data, _data(part.exog), part.times, 0, part)
            prior = None
        else:  # resumed: the trailing window and the new steps, in memory (read above)
            first = max(0, int(begin) - window) - checked
            steps = None
            if begin < n_steps:
                steps = prepare(
                    raw.isel({series_dim: rows, time_dim: slice(begin - checked, None)})
                )
            exog = None if recent.exog is None else recent.exog.data[rows, first:]
            y, times = recent.y.data[rows, first:], recent.times[first:]
            span = _Span(y, exog, times, int(begin) - checked - first, steps)
            prior = _take(store, stored[rows])
        _continue(span, spec, rows, history.season, window, scale_window, prior, parts)
        steps_read += span.y.size
    stats = parts.stats(history)
    units = spec.reservoir.final_units(parts.state, stats.location.values, stats.scale.values)
    lags = apply_scaling(parts.lags, stats.location.values, stats.scale.values)
    known = ~np.isnat(parts.origin_time)
    calendar_times = np.where(known, parts.origin_time, history.times[-1])
    exog = parts.exog if spec.exog else None
    origins = origin_features(spec, units, lags, calendar_times, exog, horizon)
    new_store = StateStore(
        series=labels,
        stands_at=np.full(n_series, history.times[-1]),
        arrays={
            "reservoir": parts.state,
            "sums": parts.sums[:_ADDITIVE].T.copy(),
            "origin_lags": parts.lags,
            "origin_exog": parts.exog,
            "origin_time": parts.origin_time.view(np.int64),
        },
        fingerprint=fingerprint,
        freq=history.freq,
        variables=variables,
        checksums=parts.checksums,
        window=window,
        attrs={
            "kind": "forecaster",
            "start": isoformat(history.times[0]),
            "n_lags": spec.n_lags,
            "scale_window": scale_window,
        },
    )
    summary |= {"steps read": int(steps_read), "steps new": int((n_steps - start).sum())}
    return Increment(replace(history, stats=stats), origins, calendar_times, new_store, summary)


# -- internals ----------------------------------------------------------------------


@dataclass
class _Parts:
    """Per-series results, filled group by group (in the data's series order)."""

    state: np.ndarray  # the reservoir's state over the unscaled values
    sums: np.ndarray  # (len(SUMS), series), the additive ones over the whole history
    lags: np.ndarray  # (series, n_lags) unscaled, at the origin
    exog: np.ndarray  # (series, exog columns) at the origin
    origin_time: np.ndarray  # datetime64[ns], NaT without an observation
    robust_location: np.ndarray
    robust_scale: np.ndarray
    checksums: np.ndarray  # of the trailing window at the data's end

    @classmethod
    def empty(cls, n_series: int, spec: FeatureSpec, history: History) -> _Parts:
        n_exog = len(history.exog_columns)
        return cls(
            np.empty((0,)),
            np.zeros((len(SUMS), n_series)),
            np.full((n_series, spec.n_lags), np.nan),
            np.full((n_series, n_exog), np.nan),
            np.full(n_series, _NAT),
            np.full(n_series, np.nan),
            np.full(n_series, np.nan),
            np.zeros(n_series, np.uint64),
        )

    def stats(self, history: History) -> xr.Dataset:
        """The series' statistics, as :func:`series_stats` gives them over the whole data."""
        series_dim = history.y.dims[0]
        coords = {k: c for k, c in history.y.coords.items() if c.dims == (series_dim,)}
        last = np.searchsorted(history.times, self.origin_time)
        return xr.Dataset(
            {
                "location": (series_dim, self.robust_location),
                "scale": (series_dim, self.robust_scale),
                "n_observed": (series_dim, self.sums[0].astype(np.int64)),
                "last_observed": (series_dim, np.where(np.isnat(self.origin_time), -1, last)),
            },
            coords=coords,
        )


@dataclass(frozen=True)
class _Span:
    """The values of some series over a stretch of steps: the trailing window before
    their stored state and the steps after it (in memory), or their whole history
    (lazy: a cold start)."""

    y: Any  # (series, time), NumPy or Dask
    exog: Any | None  # (series, time, columns)
    times: np.ndarray
    since: int  # the first step after the state
    steps: History | None  # the steps from `since` on, prepared (None: there are none)


def _continue(
    span: _Span,
    spec: FeatureSpec,
    rows: np.ndarray,
    season: int,
    window: int,
    scale_window: int,
    prior: dict[str, np.ndarray] | None,
    parts: _Parts,
) -> None:
    """Run series ``rows`` over the steps of ``span`` from its ``since`` on, from the
    ``prior`` state (``None``: cold, from zeros); fill their entries of ``parts``."""
    y, exog, since = span.y, span.exog, span.since
    panels = () if span.steps is None else span.steps.panels
    sums = series_sums(y, season, since=since, panels=[(a + since, b + since) for a, b in panels])
    if prior is not None:
        sums[:_ADDITIVE] += prior["sums"].T
    stats = series_stats(
        xr.DataArray(y, dims=("series", "time")), season, window=scale_window, sums=sums
    )
    state = None if prior is None else prior["reservoir"]
    for a, b in panels:
        state = run_panel(spec, span.steps.y.data, a, b, state).state.compute()
    last = stats.last_observed.values  # in `span`, -1 for none; at or after `since`
    seen = last >= 0
    if prior is None:
        kept_lags = np.full((rows.size, spec.n_lags), np.nan)
        kept_exog = np.full((rows.size, parts.exog.shape[1]), np.nan)
        kept_time = np.full(rows.size, _NAT)
    else:
        kept_lags, kept_exog = prior["origin_lags"], prior["origin_exog"]
        kept_time = prior["origin_time"].view("datetime64[ns]")
    if seen.any():
        seen_exog = None if exog is None else exog[seen]
        lags, origin_exog = origin_window(y[seen], seen_exog, last[seen], spec.n_lags)
        kept_lags[seen] = lags
        if origin_exog is not None:
            kept_exog[seen] = origin_exog
        kept_time[seen] = span.times[last[seen]]
    if parts.state.size == 0:
        parts.state = np.full((parts.lags.shape[0], *state.shape[1:]), np.nan)
    parts.state[rows] = state
    parts.sums[:, rows] = sums
    parts.lags[rows] = kept_lags
    parts.exog[rows] = kept_exog
    parts.origin_time[rows] = kept_time
    parts.robust_location[rows] = stats.location.values
    parts.robust_scale[rows] = stats.scale.values
    stands_at = np.full(rows.size, span.times[-1])
    values = y[..., None] if exog is None else np.concatenate([y[..., None], exog], axis=2)
    parts.checksums[rows] = trailing_checksums(values, span.times, stands_at, window)


def _first_checked(store: StateStore, times: np.ndarray, window: int) -> int | None:
    """The first step of the trailing windows of the stored states found on ``times``
    (``None`` if none is)."""
    index = np.searchsorted(times, store.stands_at)
    found = index < times.size
    found[found] = times[index[found]] == store.stands_at[found]
    return max(0, int(index[found].min()) - window + 1) if found.any() else None


def _computed(history: History) -> History:
    """``history`` with its values in memory (NumPy)."""
    y, exog = dask.compute(history.y, history.exog)
    return replace(history, y=y, exog=exog)


def _data(array: xr.DataArray | None) -> Any:
    return None if array is None else array.data


def _take(store: StateStore, index: np.ndarray) -> dict[str, np.ndarray]:
    """The stored arrays of the series at ``index`` in ``store`` (copies)."""
    return {name: np.array(value[index]) for name, value in store.arrays.items()}


def _checked(history: History, variable: str) -> xr.Dataset:
    """The target and exogenous columns ``(series, time)``, the variables the store's
    checksums cover."""
    columns = {variable: history.y}
    for name in history.exog_columns:
        columns[name] = history.exog.sel({EXOG_DIM: name}, drop=True)
    return xr.Dataset(columns)

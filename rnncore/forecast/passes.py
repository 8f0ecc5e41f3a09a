"""The forecaster's passes over a dataset: along time in panels, in parallel over series.

:func:`prepare` validates a dataset and lays it out in *panels*: consecutive
stretches of time holding about ``panel_rows`` values (series x time; at least a
season of steps), each cut into blocks of at most ``chunk_rows`` values. A pass walks
the panels in time order, one computation each on the active Dask scheduler (a
distributed ``Client`` if one is active): the reservoir runs over the panel
(:func:`rnncore.run`) from the state the previous panel ended in, and the panel's
blocks are processed in parallel. Memory is that of one panel, whatever the length
of the data, and the data are read once.

:func:`fit_pass`
    Each block builds its feature rows and their targets ``z_{t+1..t+H}`` (reading
    the first ``H`` steps after it) and reduces its training rows to
    :class:`~rnncore.forecast.ridge.Moments`, summed by Dask in a tree, then across
    panels; it also keeps a thinned sample of its calibration rows. The final state
    gives the features at each series' forecast origin.
:func:`origin_pass`
    Only the reservoir's states: the features at each series' forecast origin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np
import xarray as xr

from .features import FeatureSpec, ahead_from_final, ahead_from_window
from .reservoir import ReservoirRun, ReservoirState
from .ridge import Moments, tree_reduce
from .scaling import apply_scaling, series_stats
from .timeaxis import default_season, infer_step, phase

__all__ = [
    "FitPass",
    "History",
    "RowPlan",
    "calibration_stride",
    "fit_pass",
    "origin_pass",
    "prepare",
]

# The dimension of the exogenous columns in History.exog.
_EXOG_DIM = "exog_column"
# Fewest steps in a panel (unless the data are shorter, or the season longer).
_MIN_STEPS = 64


@dataclass(frozen=True)
class History:
    """A dataset made ready for the forecaster.

    Attributes
    ----------
    y
        The target ``(series, time)``, float64, Dask-backed in blocks of at most
        ``chunk_rows`` values whose time chunks tile the panels.
    exog
        Exogenous columns ``(series, time, exog_column)`` chunked like ``y``, or ``None``.
    times
        The time coordinate, ``datetime64[ns]``.
    step
        Its constant step.
    season
        Steps per season.
    panels
        ``(start, stop)`` of every panel, in time order.
    stats
        Every series' :func:`~rnncore.forecast.scaling.series_stats`; ``None`` until
        :meth:`with_stats`.
    """

    y: xr.DataArray
    exog: xr.DataArray | None
    times: np.ndarray
    step: np.timedelta64
    season: int
    panels: tuple[tuple[int, int], ...]
    stats: xr.Dataset | None = None

    @property
    def exog_columns(self) -> tuple[str, ...]:
        """Names of the exogenous columns."""
        return () if self.exog is None else tuple(self.exog[_EXOG_DIM].values.tolist())

    def with_stats(self, window: int) -> History:
        """This history with its per-series statistics computed (robust ones over the
        trailing ``window`` steps: :func:`~rnncore.forecast.scaling.series_stats`)."""
        stats = series_stats(self.y, self.season, window=window, panels=self.panels)
        return History(self.y, self.exog, self.times, self.step, self.season, self.panels, stats)

    def origins(self) -> np.ndarray:
        """Each series' forecast origin: its last observed step (the last step if none)."""
        last = self._stats().last_observed.values
        return np.where(last >= 0, last, self.times.size - 1)

    def scaled(self) -> da.Array:
        """``z``: the target scaled per series (lazy)."""
        stats = self._stats()
        return apply_scaling(self.y.data, stats.location.values, stats.scale.values)

    def _stats(self) -> xr.Dataset:
        if self.stats is None:
            raise RuntimeError("the history's statistics are not computed; call with_stats first")
        return self.stats


@dataclass(frozen=True)
class RowPlan:
    """Which forecast origins (time indices) give training and calibration rows.

    Training origins are ``warmup <= t < calibration_start - horizon`` (their targets
    end before the calibration window); calibration origins are
    ``calibration_start <= t < n_steps - horizon`` with ``(t + series index) % stride
    == 0``, a thinning that is the same whatever the layout.
    """

    horizon: int
    n_steps: int
    warmup: int
    calibration_start: int
    stride: int


@dataclass(frozen=True)
class FitPass:
    """What :func:`fit_pass` computes.

    Attributes
    ----------
    moments
        Moments of the training rows ``[features, targets]``.
    calibration
        Calibration rows ``(n, n_features + horizon + 1)``: features, targets and the
        series' interval normaliser.
    origin
        Features at every series' origin (:meth:`History.origins`),
        ``(series, n_features)``.
    """

    moments: Moments
    calibration: np.ndarray
    origin: np.ndarray


def prepare(
    ds: xr.Dataset,
    *,
    variable: str,
    exog: Sequence[str],
    season: int | None,
    time_dim: str,
    series_dim: str,
    chunk_rows: int,
    panel_rows: int,
) -> History:
    """Check ``ds`` and lay out its target and exogenous variables in panels and blocks.

    Parameters
    ----------
    season
        Steps per season; ``None`` infers it from the time step
        (:func:`~rnncore.forecast.timeaxis.default_season`).

    Raises
    ------
    TypeError
        If ``ds`` is not a Dataset or its time coordinate is not ``datetime64``.
    KeyError
        If ``variable`` or an exogenous variable is missing.
    ValueError
        If the dimensions are not as expected or the time axis is not equally spaced.
    """
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"expected an xarray Dataset; got {type(ds).__name__}")
    y = _variable(ds, variable, "variable")
    if set(y.dims) != {series_dim, time_dim}:
        raise ValueError(
            f"{variable!r} has dimensions {y.dims}; expected ({series_dim!r}, {time_dim!r})"
        )
    if time_dim not in ds.coords:
        raise ValueError(f"the dataset has no {time_dim!r} coordinate; forecasts need timestamps")
    times = np.asarray(ds[time_dim].values)
    step = infer_step(times)
    season = default_season(step) if season is None else season
    n_series, n_steps = y.sizes[series_dim], y.sizes[time_dim]
    width, steps, panels = _layout(n_series, n_steps, season, chunk_rows, panel_rows)
    chunks = {series_dim: width, time_dim: steps}
    y = y.transpose(series_dim, time_dim).astype(np.float64).chunk(chunks)
    columns = [_exog_columns(ds, name, y, series_dim, time_dim) for name in exog]
    exog_array = None
    if columns:
        exog_array = xr.concat(columns, dim=_EXOG_DIM).transpose(series_dim, time_dim, _EXOG_DIM)
        exog_array = exog_array.chunk({**chunks, _EXOG_DIM: -1})
    return History(y, exog_array, times.astype("datetime64[ns]"), step, season, panels)


def fit_pass(history: History, spec: FeatureSpec, plan: RowPlan, norm: np.ndarray) -> FitPass:
    """Training moments, calibration rows and origin features, in one pass.

    Parameters
    ----------
    history
        The prepared data, statistics computed.
    spec
        The features.
    plan
        The training and calibration origins.
    norm
        ``(series,)`` interval normalisers, stored with each calibration row.
    """
    z = history.scaled()
    n_series, n_steps = z.shape
    season, h = history.season, plan.horizon
    memories = np.full((n_series, season - 1, spec.reservoir.n_memories), np.nan)
    shared = dask.delayed((spec, plan, history.times[0]), pure=True)  # one key, not one per block
    total = Moments.empty(spec.n_features + h)
    calibration = []
    state = None
    for start, stop in history.panels:
        run = _run_panel(history, spec, z, start, stop, state)
        ahead = z[:, start : min(stop + h, n_steps)]
        exog = None if history.exog is None else history.exog.data[:, start:stop]
        rows = _panel_rows(run, memories, ahead, exog, start, h, norm, shared)
        tail = run.memories[:, max(0, stop - start - season + 1) :]
        moments, sample, state, tail = dask.compute(
            tree_reduce(rows[0], dask.delayed(Moments.merge, pure=True)),
            dask.delayed(np.concatenate, pure=True)(rows[1]),
            run.state,
            tail,
        )
        total = total.merge(moments)
        calibration.append(sample)
        joined = np.concatenate([memories, tail], axis=1)
        memories = joined[:, joined.shape[1] - (season - 1) :]
    origin = _origin_features(history, spec, state)
    return FitPass(total, np.concatenate(calibration), origin)


def origin_pass(history: History, spec: FeatureSpec) -> np.ndarray:
    """The features of every series at its origin, ``(series, n_features)``.

    The origin is a series' last observed step (:meth:`History.origins`): its
    features there are the reservoir's final states, as at any observed step.
    """
    z = history.scaled()
    state = None
    for start, stop in history.panels:
        (state,) = dask.compute(_run_panel(history, spec, z, start, stop, state).state)
    return _origin_features(history, spec, state)


def calibration_stride(n_series: int, n_origins: int, max_rows: int) -> int:
    """The thinning of calibration origins that keeps at most about ``max_rows`` rows."""
    return max(1, math.ceil(n_series * n_origins / max(max_rows, 1)))


# -- internals ----------------------------------------------------------------------


def _variable(ds: xr.Dataset, name: str, role: str) -> xr.DataArray:
    if name not in ds.data_vars:
        raise KeyError(
            f"{role} {name!r} is not a data variable of the dataset; it holds {list(ds.data_vars)}"
        )
    return ds[name]


def _layout(
    n_series: int, n_steps: int, season: int, chunk_rows: int, panel_rows: int
) -> tuple[int, int, tuple[tuple[int, int], ...]]:
    """Series per block, steps per block and the panels of a ``(series, time)`` array.

    A panel holds about ``panel_rows`` values, and at least ``max(season, 64)`` steps
    (or all of them); it is cut into whole blocks of at most ``chunk_rows`` values.

    Examples
    --------
    >>> _layout(2000, 8760, 24, 50_000, 2**21)
    (47, 1048, ((0, 1048), (1048, 2096), (2096, 3144), (3144, 4192), (4192, 5240), \
(5240, 6288), (6288, 7336), (7336, 8384), (8384, 8760)))
    """
    fewest = min(n_steps, max(season, _MIN_STEPS))
    panel = min(n_steps, max(fewest, panel_rows // n_series))
    steps = min(panel, chunk_rows)
    panel = steps * (panel // steps)
    panels = tuple((a, min(a + panel, n_steps)) for a in range(0, n_steps, panel))
    return max(1, chunk_rows // steps), steps, panels


def _exog_columns(
    ds: xr.Dataset, name: str, y: xr.DataArray, series_dim: str, time_dim: str
) -> xr.DataArray:
    """Exogenous variable ``name`` as columns ``(exog_column, series, time)``."""
    var = _variable(ds, name, "exogenous variable")
    extra = [d for d in var.dims if d not in (series_dim, time_dim)]
    if time_dim not in var.dims or len(extra) > 1:
        raise ValueError(
            f"exogenous variable {name!r} has dimensions {var.dims}; expected {time_dim!r}, "
            f"optionally {series_dim!r}, and at most one more (its columns)"
        )
    var = var.astype(np.float64)
    if series_dim not in var.dims:
        var = var.expand_dims({series_dim: y.sizes[series_dim]})
    if extra:
        labels = [f"{name}[{label}]" for label in var[extra[0]].values.tolist()]
        var = var.drop_vars(extra[0], errors="ignore").rename({extra[0]: _EXOG_DIM})
        return var.assign_coords({_EXOG_DIM: labels}).transpose(_EXOG_DIM, series_dim, time_dim)
    return var.expand_dims({_EXOG_DIM: [name]}).transpose(_EXOG_DIM, series_dim, time_dim)


def _run_panel(
    history: History,
    spec: FeatureSpec,
    z: da.Array,
    start: int,
    stop: int,
    state: ReservoirState | None,
) -> ReservoirRun:
    """The reservoir over steps ``start:stop``, from the state the steps before left.

    A panel of one block per series block is run in one pass (states carried); one
    of several blocks along time is stitched in parallel.
    """
    panel = z[:, start:stop]
    first_phase = int(phase(history.times[start : start + 1], history.step, history.season)[0])
    method = "sequential" if len(panel.chunks[1]) == 1 else "parallel"
    return spec.reservoir.run(panel, first_phase, state, method)


def _panel_rows(
    run: ReservoirRun,
    memories: np.ndarray,
    ahead: da.Array,
    exog: da.Array | None,
    start: int,
    horizon: int,
    norm: np.ndarray,
    shared: object,
) -> tuple[list, list]:
    """The delayed moments and calibration rows of every block of a panel.

    ``memories`` holds the ``season - 1`` memories before the panel; ``ahead`` the
    scaled values of the panel and of the ``horizon`` steps after it (fewer at the
    end of the data).
    """
    units = run.units.to_delayed()[:, :, 0]
    blocks = run.memories.to_delayed()[:, :, 0]
    following = ahead.to_delayed()
    exog_blocks = None if exog is None else exog.to_delayed()[:, :, 0]
    lookback = memories.shape[1]
    series_starts = np.cumsum((0, *run.units.chunks[0]))
    time_starts = np.cumsum((start, *run.units.chunks[1]))
    memory_starts = np.concatenate([[start - lookback], time_starts[:-1]])
    ahead_starts = np.cumsum((start, *ahead.chunks[1]))
    block = dask.delayed(_block_rows, nout=2, pure=True)
    moments, calibration = [], []
    for j in range(len(series_starts) - 1):
        series = np.arange(series_starts[j], series_starts[j + 1])
        known = [memories[series], *blocks[j]]
        for i in range(len(time_starts) - 1):
            first = int(np.searchsorted(memory_starts, time_starts[i] - lookback, "right")) - 1
            last = int(np.searchsorted(ahead_starts, time_starts[i + 1] + horizon, "left"))
            with dask.annotate(priority=1):  # consume each block's outputs at once
                rows = block(
                    units[j, i],
                    known[first : i + 2],
                    int(memory_starts[first]),
                    list(following[j, i:last]),
                    None if exog_blocks is None else exog_blocks[j, i],
                    int(time_starts[i]),
                    series,
                    norm[series],
                    shared,
                )
            moments.append(rows[0])
            calibration.append(rows[1])
    return moments, calibration


def _origin_features(history: History, spec: FeatureSpec, state: ReservoirState) -> np.ndarray:
    """Features at every series' origin from the reservoir's final state."""
    reservoir = spec.reservoir
    index = history.origins()
    exog = None
    if history.exog is not None:
        (exog,) = dask.compute(history.exog.data.vindex[np.arange(index.size), index])
        exog = exog[:, None, :]
    origins = history.times[index]
    ahead = ahead_from_final(reservoir.final_memories(state), origins, spec)
    units = reservoir.final_units(state)[:, None, :]
    return spec.assemble(units, ahead, origins[:, None], exog)[:, 0, :]


def _block_rows(
    units: np.ndarray,
    memories: list[np.ndarray],
    memories_start: int,
    z_blocks: list[np.ndarray],
    exog: np.ndarray | None,
    start: int,
    series: np.ndarray,
    norm: np.ndarray,
    shared: tuple[FeatureSpec, RowPlan, np.datetime64],
) -> tuple[Moments, np.ndarray]:
    """One block's training moments and thinned calibration rows.

    A row is an origin ``t`` of a series: its features, then its targets
    ``z_{t+1..t+H}``. It is used where ``z_t`` and every target are observed, the
    exogenous values are finite and a whole season of memories precedes ``t``
    (the reservoir's outputs are finite by construction).
    """
    spec, plan, first_time = shared
    n_series, n_times = units.shape[:2]
    season, h, p = spec.reservoir.season, plan.horizon, spec.n_features
    times = first_time + spec.step * (start + np.arange(n_times))
    window = np.concatenate(memories, axis=1)[:, start - season + 1 - memories_start :]
    future = np.full((n_series, n_times + h), np.nan)
    following = np.concatenate(z_blocks, axis=1)[:, : n_times + h]
    future[:, : following.shape[1]] = following

    table = np.empty((n_series, n_times, p + h))
    spec.assemble(units, ahead_from_window(window, season), times, exog, out=table[:, :, :p])
    table[:, :, p:] = np.lib.stride_tricks.sliding_window_view(future, h + 1, axis=1)[
        :, :n_times, 1:
    ]
    t = start + np.arange(n_times)
    missing = np.cumsum(~np.isfinite(future), axis=1)
    missing = np.concatenate([np.zeros((n_series, 1)), missing], axis=1)
    usable = (missing[:, h + 1 : n_times + h + 1] == missing[:, :n_times]) & (t >= season - 1)
    if exog is not None:
        usable &= np.isfinite(exog).all(axis=2)
    train = usable & ((t >= plan.warmup) & (t + h < plan.calibration_start))[None, :]
    calibrate = (
        usable
        & ((t >= plan.calibration_start) & (t + h < plan.n_steps))[None, :]
        & ((t[None, :] + series[:, None]) % plan.stride == 0)
    )
    moments = Moments.of(table[train], overwrite=True)
    norms = np.broadcast_to(norm[:, None], (n_series, n_times))
    return moments, np.concatenate([table[calibrate], norms[calibrate][:, None]], axis=1)

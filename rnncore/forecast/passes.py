"""The forecaster's passes over a dataset: along time in panels, in parallel over series.

:func:`prepare` validates a dataset and lays it out in *panels*: consecutive
stretches of time holding about ``panel_rows`` values (series x time; at least a
season of steps), each cut into blocks of at most ``chunk_rows`` values. A pass walks
the panels in time order, one computation each on the active Dask scheduler (a
distributed ``Client`` if one is active): the reservoir runs over the panel
(:func:`rnncore.run`) from the state the previous panel ended in, and the panel's
blocks are processed in parallel, each with the lag window of the steps before it.
Memory is that of one panel, whatever the length of the data, and the data are
read once.

:func:`fit_pass`
    Each block builds its feature rows and their targets (reading the first ``H``
    steps after it; :mod:`rnncore.forecast.features`) and reduces its rows to
    :class:`~rnncore.forecast.ridge.Moments`, one per bucket of origins
    (:class:`RowPlan`), summed by Dask in a tree, then across panels. It also keeps
    a thinned sample of its rows for calibration. The final state and the lags at
    each series' forecast origin give its features there.
:func:`origin_pass`
    Only the reservoir's states: the features at each series' forecast origin.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from ..timeaxis import check_regular, default_seasons, infer_freq
from ..trees import tree_reduce
from .features import FeatureSpec, lag_windows
from .reservoir import ReservoirRun, ReservoirState
from .ridge import Moments
from .scaling import apply_scaling, series_stats

__all__ = [
    "EXOG_DIM",
    "FitPass",
    "History",
    "Origins",
    "RowPlan",
    "calibration_stride",
    "fit_pass",
    "origin_features",
    "origin_pass",
    "origin_window",
    "prepare",
    "run_panel",
]

#: The dimension of the exogenous columns in :attr:`History.exog`.
EXOG_DIM = "exog_column"
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
    freq
        Its pandas frequency.
    seasons
        Steps per season, the shortest first: ``(1,)`` when the data have none.
    panels
        ``(start, stop)`` of every panel, in time order.
    stats
        Every series' :func:`~rnncore.forecast.scaling.series_stats`; ``None`` until
        :meth:`with_stats`.
    """

    y: xr.DataArray
    exog: xr.DataArray | None
    times: np.ndarray
    freq: str
    seasons: tuple[int, ...]
    panels: tuple[tuple[int, int], ...]
    stats: xr.Dataset | None = None

    @property
    def exog_columns(self) -> tuple[str, ...]:
        """Names of the exogenous columns."""
        return () if self.exog is None else tuple(self.exog[EXOG_DIM].values.tolist())

    @property
    def season(self) -> int:
        """The shortest season: the one of the baseline, the level and the MASE scale."""
        return self.seasons[0]

    def with_stats(self, window: int) -> History:
        """This history with its per-series statistics computed (robust ones over the
        trailing ``window`` steps: :func:`~rnncore.forecast.scaling.series_stats`)."""
        stats = series_stats(self.y, self.season, window=window, panels=self.panels)
        return History(self.y, self.exog, self.times, self.freq, self.seasons, self.panels, stats)

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
    """Which forecast origins (time indices) give rows, and their folds.

    Origins ``warmup <= t < n_steps - horizon`` give rows, cut by ``edges`` into
    consecutive folds along time. Fold ``k`` holds ``edges[k] <= t < edges[k + 1]``;
    its *tail*, the last ``horizon`` of them, has targets that reach into the next
    fold. Rows are summed per bucket: fold ``k``'s head is bucket ``2k``, its tail
    ``2k + 1``. Calibration rows are those with ``(t + series index) % stride == 0``,
    a thinning that is the same whatever the layout.
    """

    horizon: int
    n_steps: int
    warmup: int
    edges: tuple[int, ...]
    stride: int

    @property
    def n_folds(self) -> int:
        """Number of folds."""
        return len(self.edges) - 1

    def held_out(self, fold: int) -> set[int]:
        """The buckets left out of the fit that scores ``fold``: its own, and the tail
        before it (whose targets are its values)."""
        return {2 * fold, 2 * fold + 1} | ({2 * fold - 1} if fold else set())


@dataclass(frozen=True)
class FitPass:
    """What :func:`fit_pass` computes.

    Attributes
    ----------
    buckets
        Moments of the rows ``[features, targets]`` of every bucket
        (:class:`RowPlan`).
    calibration
        Calibration rows ``(n, n_features + horizon + 1)``: features, targets and
        the row's fold.
    origin
        The features at every series' origin.
    """

    buckets: list[Moments]
    calibration: np.ndarray
    origin: Origins


@dataclass(frozen=True)
class Origins:
    """Every series' features at its forecast origin (:meth:`History.origins`).

    Attributes
    ----------
    features
        ``(series, n_features)``, normalised by each origin's window.
    level, spread
        ``(series,)`` the windows' level and spread (scaled units).
    baseline
        ``(series, horizon)`` the seasonal-naive forecasts (scaled units; NaN where
        the lag a season before is missing).
    last
        ``(series,)`` the value at the origin (scaled units): the naive forecast.
    n_observed
        ``(series,)`` observed values in each origin's lag window.
    season_observed
        ``(series,)`` whether the last season of the window is all observed.
    """

    features: np.ndarray
    level: np.ndarray
    spread: np.ndarray
    baseline: np.ndarray
    last: np.ndarray
    n_observed: np.ndarray
    season_observed: np.ndarray


def prepare(
    ds: xr.Dataset,
    *,
    variable: str,
    exog: Sequence[str],
    freq: str | None,
    seasons: Sequence[int] | None,
    time_dim: str,
    series_dim: str,
    chunk_rows: int,
    panel_rows: int,
) -> History:
    """Check ``ds`` and lay out its target and exogenous variables in panels and blocks.

    Parameters
    ----------
    freq
        The pandas frequency of the time coordinate; ``None`` infers it
        (:func:`~rnncore.timeaxis.infer_freq`).
    seasons
        Steps per season; ``None`` for the frequency's
        (:func:`~rnncore.timeaxis.default_seasons`).

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
    freq = infer_freq(times) if freq is None else check_regular(times, freq)
    seasons = tuple(sorted(default_seasons(freq) if seasons is None else seasons)) or (1,)
    n_series, n_steps = y.sizes[series_dim], y.sizes[time_dim]
    width, steps, panels = _layout(n_series, n_steps, seasons[-1], chunk_rows, panel_rows)
    chunks = {series_dim: width, time_dim: steps}
    y = _chunk(y.transpose(series_dim, time_dim).astype(np.float64), chunks)
    columns = [_exog_columns(ds, name, y, series_dim, time_dim) for name in exog]
    exog_array = None
    if columns:
        exog_array = xr.concat(columns, dim=EXOG_DIM).transpose(series_dim, time_dim, EXOG_DIM)
        exog_array = _chunk(exog_array, {**chunks, EXOG_DIM: -1})
    return History(y, exog_array, times.astype("datetime64[ns]"), freq, seasons, panels)


def fit_pass(history: History, spec: FeatureSpec, plan: RowPlan) -> FitPass:
    """Training moments, calibration rows and origin features, in one pass.

    Parameters
    ----------
    history
        The prepared data, statistics computed.
    spec
        The features.
    plan
        The training and calibration origins.
    """
    z = history.scaled()
    n_series, n_steps = z.shape
    lookback, h = spec.n_lags - 1, plan.horizon
    before = np.full((n_series, lookback), np.nan)  # the lags before the panel
    shared = dask.delayed((spec, plan), pure=True)  # one key, not one per block
    buckets = [Moments.empty(spec.n_features + h)] * (2 * plan.n_folds)
    calibration = []
    state = None
    merge = dask.delayed(_merge_buckets, pure=True)
    for start, stop in history.panels:
        run = run_panel(spec, z, start, stop, state)
        ahead = z[:, start : min(stop + h, n_steps)]
        exog = None if history.exog is None else history.exog.data[:, start:stop]
        rows = _panel_rows(run, before, ahead, exog, history.times, start, h, shared)
        moments, sample, state, tail = dask.compute(
            tree_reduce(rows[0], merge),
            dask.delayed(np.concatenate, pure=True)(rows[1]),
            run.state,
            z[:, max(start, stop - lookback) : stop],
        )
        buckets = _merge_buckets(buckets, moments)
        calibration.append(sample)
        joined = np.concatenate([before, tail], axis=1)
        before = joined[:, joined.shape[1] - lookback :]
    origin = _origin_features(history, spec, state, h)
    return FitPass(buckets, np.concatenate(calibration), origin)


def origin_pass(history: History, spec: FeatureSpec, horizon: int) -> Origins:
    """The features of every series at its origin.

    The origin is a series' last observed step (:meth:`History.origins`): its
    features there are the reservoir's final states, as at any observed step, and
    its lag window.
    """
    z = history.scaled()
    state = None
    for start, stop in history.panels:
        (state,) = dask.compute(run_panel(spec, z, start, stop, state).state)
    return _origin_features(history, spec, state, horizon)


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
        var = var.drop_vars(extra[0], errors="ignore").rename({extra[0]: EXOG_DIM})
        return var.assign_coords({EXOG_DIM: labels}).transpose(EXOG_DIM, series_dim, time_dim)
    return var.expand_dims({EXOG_DIM: [name]}).transpose(EXOG_DIM, series_dim, time_dim)


def run_panel(
    spec: FeatureSpec, z: da.Array, start: int, stop: int, state: ReservoirState | None
) -> ReservoirRun:
    """The reservoir over steps ``start:stop`` of ``z`` ``(series, time)``, from the
    state the steps before left (``None``: zeros).

    A panel of one block per series block is run in one pass (states carried); one
    of several blocks along time is stitched in parallel.
    """
    panel = z[:, start:stop]
    method = "sequential" if len(panel.chunks[1]) == 1 else "parallel"
    return spec.reservoir.run(panel, state, method)


def _panel_rows(
    run: ReservoirRun,
    before: np.ndarray,
    ahead: da.Array,
    exog: da.Array | None,
    times: np.ndarray,
    start: int,
    horizon: int,
    shared: object,
) -> tuple[list, list]:
    """The delayed bucket moments and calibration rows of every block of a panel.

    ``before`` holds the ``n_lags - 1`` scaled values before the panel; ``ahead`` the
    scaled values of the panel and of the ``horizon`` steps after it (fewer at the
    end of the data).
    """
    units = run.units.to_delayed()[:, :, 0]
    following = ahead.to_delayed()
    exog_blocks = None if exog is None else exog.to_delayed()[:, :, 0]
    lookback = before.shape[1]
    series_starts = np.cumsum((0, *run.units.chunks[0]))
    time_starts = np.cumsum((start, *run.units.chunks[1]))
    ahead_starts = np.cumsum((start, *ahead.chunks[1]))
    first_ahead = np.searchsorted(ahead_starts, time_starts - lookback, "right") - 1
    block = dask.delayed(_block_rows, nout=2, pure=True)
    out: tuple[list, list] = ([], [])
    for j in range(len(series_starts) - 1):
        series = np.arange(series_starts[j], series_starts[j + 1])
        for i in range(len(time_starts) - 1):
            t0, t1 = int(time_starts[i]), int(time_starts[i + 1])
            first = max(int(first_ahead[i]), 0)
            last = int(np.searchsorted(ahead_starts, t1 + horizon, "left"))
            known = max(0, start - (t0 - lookback))  # lags from before the panel
            with dask.annotate(priority=1):  # consume each block's outputs at once
                rows = block(
                    units[j, i],
                    before[series, lookback - known :] if known else None,
                    list(following[j, first:last]),
                    int(ahead_starts[first]),
                    None if exog_blocks is None else exog_blocks[j, i],
                    times[t0:t1],
                    t0,
                    series,
                    shared,
                )
            for part, row in zip(out, rows, strict=True):
                part.append(row)
    return out


def _origin_features(
    history: History, spec: FeatureSpec, state: ReservoirState, horizon: int
) -> Origins:
    """Features at every series' origin from the reservoir's final state and its lags."""
    index = history.origins()
    exog = None if history.exog is None else history.exog.data
    lags, exog = origin_window(history.y.data, exog, index, spec.n_lags)
    lags = apply_scaling(lags, history.stats.location.values, history.stats.scale.values)
    units = spec.reservoir.final_units(state)
    return origin_features(spec, units, lags, history.times[index], exog, horizon)


def origin_window(
    y: Any, exog: Any | None, index: np.ndarray, n_lags: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """The lag windows ``(series, n_lags)`` of ``y`` ``(series, time)`` ending at steps
    ``index`` (NaN before the start), and the values of ``exog`` ``(series, time,
    columns)`` there ``(series, columns)`` (``None`` without it); NumPy or Dask
    arrays, computed."""
    rows = np.arange(index.size)
    columns = index[:, None] + np.arange(1 - n_lags, 1)
    inside = columns >= 0
    gathered = [_gather(y, (rows[:, None], np.maximum(columns, 0)))]
    if exog is not None:
        gathered.append(_gather(exog, (rows, index)))
    computed = dask.compute(*gathered)
    return np.where(inside, computed[0], np.nan), None if exog is None else computed[1]


def _chunk(array: xr.DataArray, chunks: dict[str, int]) -> xr.DataArray:
    """``array`` in Dask chunks; values in memory get their blocks named afresh, not by
    hashing the values (Dask's default, slow on a night's window)."""
    token = None if array.chunks is not None else uuid.uuid4().hex
    return array.chunk(chunks, token=token)


def _gather(array: Any, index: tuple[np.ndarray, ...]) -> Any:
    """``array[index]`` by NumPy's pointwise indexing, lazily for a Dask array."""
    return array.vindex[index] if isinstance(array, da.Array) else array[index]


def origin_features(
    spec: FeatureSpec,
    units: np.ndarray,
    lags: np.ndarray,
    times: np.ndarray,
    exog: np.ndarray | None,
    horizon: int,
) -> Origins:
    """The :class:`Origins` of every series from the reservoir's units there ``(series,
    n_units)``, its scaled lag window ``(series, n_lags)``, the origins' timestamps
    ``(series,)`` and exogenous values ``(series, columns)`` (or ``None``)."""
    features, level, spread = spec.assemble(
        units[:, None, :],
        lags[:, None, :],
        times[:, None],
        None if exog is None else exog[:, None, :],
    )
    return Origins(
        features[:, 0, :],
        level[:, 0],
        spread[:, 0],
        spec.baseline(lags, level[:, 0], horizon),
        lags[:, -1],
        np.isfinite(lags).sum(axis=1),
        np.isfinite(lags[:, -spec.season :]).all(axis=1),
    )


def _block_rows(
    units: np.ndarray,
    before: np.ndarray | None,
    z_blocks: list[np.ndarray],
    z_start: int,
    exog: np.ndarray | None,
    times: np.ndarray,
    start: int,
    series: np.ndarray,
    shared: tuple[FeatureSpec, RowPlan],
) -> tuple[list[Moments], np.ndarray]:
    """One block's bucket moments and thinned calibration rows.

    A row is an origin ``t`` of a series: its features, then its targets
    (:mod:`rnncore.forecast.features`). It is used where ``z_t``, every target and
    every lag are observed, and the exogenous values are finite.
    """
    spec, plan = shared
    n_series, n_times = units.shape[:2]
    h, p, lookback = plan.horizon, spec.n_features, spec.n_lags - 1
    # The values from n_lags - 1 steps before the block to `horizon` steps after it.
    values = np.full((n_series, lookback + n_times + h), np.nan)
    following = np.concatenate(z_blocks, axis=1)
    offset = z_start - (start - lookback)  # where `following` starts in `values`
    skip = max(0, -offset)
    following = following[:, skip : skip + values.shape[1] - max(offset, 0)]
    values[:, max(offset, 0) : max(offset, 0) + following.shape[1]] = following
    if before is not None:
        values[:, : before.shape[1]] = before
    lags = lag_windows(values[:, : lookback + n_times], spec.n_lags)

    table = np.empty((n_series, n_times, p + h))
    _, level, spread = spec.assemble(units, lags, times, exog, out=table[:, :, :p])
    future = np.lib.stride_tricks.sliding_window_view(values[:, lookback + 1 :], h, axis=1)
    targets = table[:, :, p:]
    np.subtract(future[:, :n_times], spec.baseline(lags, level, h), out=targets)
    targets /= spread[..., None]
    t = start + np.arange(n_times)
    missing = np.cumsum(~np.isfinite(values), axis=1)
    missing = np.concatenate([np.zeros((n_series, 1)), missing], axis=1)
    ahead = missing[:, spec.n_lags + h : spec.n_lags + h + n_times]
    now = missing[:, spec.n_lags - 1 : spec.n_lags - 1 + n_times]  # before z_t
    lags_missing = missing[:, spec.n_lags : spec.n_lags + n_times] - missing[:, :n_times]
    usable = (ahead == now) & (2 * lags_missing <= spec.n_lags)
    if exog is not None:
        usable &= np.isfinite(exog).all(axis=2)
    fold = np.searchsorted(plan.edges, t, "right") - 1
    usable &= ((fold >= 0) & (fold < plan.n_folds))[None, :]
    tail = t >= np.asarray(plan.edges)[np.minimum(fold + 1, plan.n_folds)] - h
    bucket = np.broadcast_to(2 * fold + tail, usable.shape)
    buckets = [Moments.of(table[usable & (bucket == b)]) for b in range(2 * plan.n_folds)]
    calibrate = usable & ((t[None, :] + series[:, None]) % plan.stride == 0)
    folds = np.broadcast_to(fold.astype(np.float64), usable.shape)[calibrate]
    return buckets, np.concatenate([table[calibrate], folds[:, None]], axis=1)


def _merge_buckets(first: list[Moments], second: list[Moments]) -> list[Moments]:
    """Two lists of bucket moments merged bucket by bucket."""
    return [a.merge(b) for a, b in zip(first, second, strict=True)]

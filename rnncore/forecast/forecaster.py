"""The global forecaster: one readout for every series, fitted and applied at scale.

:class:`Forecaster` forecasts ``y_{t+1..t+H}`` of every series from its features at
``t`` (:mod:`rnncore.forecast.features`): a direct multi-horizon ridge readout of a
fixed reservoir run over the series' robustly scaled values, fitted by a distributed
reduction (:mod:`rnncore.forecast.ridge`), with split-conformal intervals calibrated
on the held-out end of the training data (:mod:`rnncore.forecast.conformal`).

Fitting is one pass over the data after the per-series statistics; forecasting one
pass that keeps only the reservoir's final states. Both run on the active Dask
scheduler, a panel of time at a time and in parallel over blocks of at most
``chunk_rows`` values (:mod:`rnncore.forecast.passes`), so memory follows the panel
and block sizes, not the length of the data.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import xarray as xr

from ..serialization import ModelFileError, read_arrays, write_arrays
from .checks import check_int
from .conformal import check_levels, conformal_quantiles, intervals
from .features import FeatureSpec
from .passes import History, RowPlan, calibration_stride, fit_pass, origin_pass, prepare
from .reservoir import Reservoir
from .ridge import GRID, RidgeSolution, solve_ridge
from .scaling import interval_norm, undo_scaling
from .timeaxis import forecast_times, isoformat

__all__ = ["Forecaster"]

_KIND = "forecaster"
# The arrays of a fitted forecaster, as saved.
_ARRAYS = ("coef", "intercept", "ridge", "gcv", "feature_mean", "quantiles")


@dataclass(frozen=True)
class _Fitted:
    """Everything :meth:`Forecaster.fit` learns."""

    spec: FeatureSpec
    solution: RidgeSolution
    quantiles: np.ndarray  # (horizon, levels, 2)
    window: dict[str, Any]  # the training window, JSON-serialisable


class Forecaster:
    """A global direct multi-horizon forecaster of many series.

    Parameters
    ----------
    horizon
        Steps forecast ahead, ``H``.
    levels
        Levels of the prediction intervals, each in ``(0, 1)``.
    ridge
        Ridge strength (on standardised features); ``None`` chooses one per horizon
        step by generalised cross-validation on the accumulated matrices.
    season
        Steps per season; ``None`` infers it from the time step (24 for hourly data,
        96 for 15-minute data, 7 for daily, 52 for weekly, else 1).
    exog
        Exogenous variables of the dataset, whose values at the forecast origin
        are features: dims ``(series, time)``, ``(time,)``, or either with one more
        dimension of columns. They must be in the data given to :meth:`predict` too.
    seed
        Seed of the reservoir's random units.
    calibration
        The held-out end of the training data on which intervals are calibrated:
        a fraction of the time steps (float in ``(0, 1)``) or a number of steps
        (int, more than ``horizon``). The readout is fitted on the steps before it.
    warmup
        Leading steps left out of training while the reservoir's memories fill;
        ``None`` for the reservoir's longest timescale (at most a quarter of the data).
    n_levels, seasonal_alphas, n_gated, timescales
        The reservoir (:class:`~rnncore.forecast.reservoir.Reservoir`).
    scale_window
        Trailing steps of a series' history its robust location and scale are taken
        from (:func:`~rnncore.forecast.scaling.series_stats`); ``None`` for 28 seasons.
    max_calibration_rows
        About how many calibration rows (series x origin) to keep; the calibration
        origins are thinned evenly beyond that.
    chunk_rows
        Most values (series x time) of a block of work.
    panel_rows
        About how many values (series x time) a panel holds: the data are processed
        a panel at a time along time, its blocks in parallel, so memory follows this
        (and ``chunk_rows``), not the length of the data.

    Attributes
    ----------
    coef_, intercept_, ridge_, quantiles_, feature_names_, season_, training_window_
        The fitted readout, intervals and training window (see each property).
    scaling_
        Per-series statistics of the data last fitted
        (:func:`~rnncore.forecast.scaling.series_stats`), or ``None``.

    Examples
    --------
    >>> from rnncore.synthetic import generate
    >>> ds = generate(20, 24 * 7 * 6, seed=0)
    >>> forecaster = Forecaster(horizon=24).fit(ds)
    >>> forecast = forecaster.predict(ds)
    >>> dict(forecast.lower.sizes)
    {'series': 20, 'step': 24, 'level': 2}
    >>> str(forecast.time.values[0])
    '2025-02-12T00:00:00.000000000'
    """

    def __init__(
        self,
        horizon: int,
        *,
        levels: Sequence[float] = (0.8, 0.95),
        ridge: float | None = None,
        season: int | None = None,
        exog: Sequence[str] = (),
        seed: int = 0,
        calibration: float | int = 0.1,
        warmup: int | None = None,
        n_levels: int = 8,
        seasonal_alphas: Sequence[float] = (1.0, 0.25),
        n_gated: int = 8,
        timescales: tuple[float, float] | None = None,
        scale_window: int | None = None,
        max_calibration_rows: int = 50_000,
        chunk_rows: int = 50_000,
        panel_rows: int = 2**21,
    ) -> None:
        self.horizon = check_int("horizon", horizon, 1)
        self.levels = check_levels(levels)
        self.season = None if season is None else check_int("season", season, 1)
        self.seed = check_int("seed", seed, 0)
        self.warmup = None if warmup is None else check_int("warmup", warmup, 0)
        self.scale_window = (
            None if scale_window is None else check_int("scale_window", scale_window, 1)
        )
        self.n_levels = check_int("n_levels", n_levels, 0)
        self.n_gated = check_int("n_gated", n_gated, 0)
        self.max_calibration_rows = check_int("max_calibration_rows", max_calibration_rows, 1)
        self.chunk_rows = check_int("chunk_rows", chunk_rows, 1)
        self.panel_rows = check_int("panel_rows", panel_rows, 1)
        if ridge is not None and not (math.isfinite(ridge) and ridge >= 0):
            raise ValueError(f"ridge must be a finite non-negative number or None; got {ridge!r}")
        if isinstance(calibration, np.integer | np.floating):
            calibration = calibration.item()
        if isinstance(calibration, bool) or not isinstance(calibration, int | float):
            raise TypeError(f"calibration must be a float fraction or an int; got {calibration!r}")
        if isinstance(calibration, float) and not 0 < calibration < 1:
            raise ValueError(f"a calibration fraction must lie in (0, 1); got {calibration}")
        if isinstance(calibration, int) and calibration <= horizon:
            raise ValueError(
                f"calibration={calibration} steps leaves no forecast origin with a full "
                f"horizon of {horizon} steps; give more than {horizon}"
            )
        if isinstance(exog, str):
            raise TypeError(f"exog must be a sequence of variable names; got the string {exog!r}")
        self.ridge = None if ridge is None else float(ridge)
        self.exog = tuple(exog)
        self.calibration = calibration
        self.seasonal_alphas = tuple(float(a) for a in seasonal_alphas)
        self.timescales = None if timescales is None else tuple(float(t) for t in timescales)
        self.scaling_: xr.Dataset | None = None
        self._fitted: _Fitted | None = None
        self._reservoir(1)  # validates the reservoir settings

    # -- settings and fitted state ------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        """The constructor's arguments, JSON-serialisable: ``Forecaster(**settings())``."""
        return {
            "horizon": self.horizon,
            "levels": list(self.levels),
            "ridge": self.ridge,
            "season": self.season,
            "exog": list(self.exog),
            "seed": self.seed,
            "calibration": self.calibration,
            "warmup": self.warmup,
            "n_levels": self.n_levels,
            "seasonal_alphas": list(self.seasonal_alphas),
            "n_gated": self.n_gated,
            "timescales": None if self.timescales is None else list(self.timescales),
            "scale_window": self.scale_window,
            "max_calibration_rows": self.max_calibration_rows,
            "chunk_rows": self.chunk_rows,
            "panel_rows": self.panel_rows,
        }

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`load`) has given this forecaster its readout."""
        return self._fitted is not None

    @property
    def season_(self) -> int:
        """The season used (given, or inferred from the data's time step)."""
        return self._state().spec.reservoir.season

    @property
    def feature_names_(self) -> list[str]:
        """The features' names, in the order of the rows of :attr:`coef_`."""
        return self._state().spec.names

    @property
    def coef_(self) -> np.ndarray:
        """``(n_features, horizon)`` readout coefficients (scaled units)."""
        return self._state().solution.coef.copy()

    @property
    def intercept_(self) -> np.ndarray:
        """``(horizon,)`` readout intercepts (scaled units)."""
        return self._state().solution.intercept.copy()

    @property
    def ridge_(self) -> np.ndarray:
        """``(horizon,)`` the ridge strength of every horizon step (chosen or given)."""
        return self._state().solution.ridge.copy()

    @property
    def quantiles_(self) -> np.ndarray:
        """``(horizon, levels, 2)`` conformal bounds of the normalised errors."""
        return self._state().quantiles.copy()

    @property
    def training_window_(self) -> dict[str, Any]:
        """The data fitted: first and last timestamps, step, sizes, row counts."""
        return dict(self._state().window)

    def fingerprint(self) -> str:
        """SHA-256 of the fitted forecaster's settings, metadata and arrays."""
        arrays, config = self._contents()
        digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
        for name in sorted(arrays):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(arrays[name]).tobytes())
        return digest.hexdigest()

    def __repr__(self) -> str:
        state = "fitted" if self.is_fitted else "not fitted"
        return f"Forecaster(horizon={self.horizon}, levels={self.levels}, {state})"

    # -- fitting and forecasting -----------------------------------------------------

    def fit(
        self,
        ds: xr.Dataset,
        *,
        variable: str = "y",
        time_dim: str = "time",
        series_dim: str = "series",
    ) -> Self:
        """Fit the readout and calibrate the intervals on ``ds``.

        Parameters
        ----------
        ds
            Dataset with ``variable`` ``(series, time)`` (NumPy- or Dask-backed, NaN
            where missing), a ``datetime64`` time coordinate with a constant step,
            and the ``exog`` variables.
        variable, time_dim, series_dim
            The target and the dimension names.

        Returns
        -------
        Forecaster
            ``self``, fitted.

        Raises
        ------
        ValueError
            If the data are too short for the warm-up, one training origin and the
            calibration window, or the calibration window gives too few scores.
        """
        self._fit(ds, variable, time_dim, series_dim)
        return self

    def fit_predict(
        self,
        ds: xr.Dataset,
        horizon: int | None = None,
        *,
        variable: str = "y",
        time_dim: str = "time",
        series_dim: str = "series",
    ) -> xr.Dataset:
        """:meth:`fit` on ``ds``, then forecast from its end, in the fitting pass.

        Equal to ``fit(ds).predict(ds)`` without the second pass over the data.
        """
        history, origin = self._fit(ds, variable, time_dim, series_dim)
        return self._forecast(history, origin, horizon, variable)

    def predict(
        self,
        ds: xr.Dataset,
        horizon: int | None = None,
        *,
        variable: str = "y",
        time_dim: str = "time",
        series_dim: str = "series",
    ) -> xr.Dataset:
        """Forecast every series of ``ds`` from its last timestamp.

        The series' scaling is taken from their history in ``ds``, as :meth:`fit`
        takes it from the training data; the reservoir runs over all of ``ds``, so
        give it at least a few seasons of history.

        Parameters
        ----------
        ds
            As for :meth:`fit`, at the same time step.
        horizon
            Steps to forecast, at most the fitted ``horizon`` (the default).
        variable, time_dim, series_dim
            The target and the dimension names.

        Returns
        -------
        xarray.Dataset
            ``mean`` ``(series, step)``, ``lower`` and ``upper`` ``(series, step,
            level)``, ``all_missing`` ``(series)`` (True for a series with no
            observation, whose forecasts are NaN); coordinates ``step`` (1 ..
            horizon), ``level``, ``time`` ``(step)`` the forecast timestamps, and
            ``series``; attributes naming the model fingerprint, the rnnflow version
            and the training window.

        Notes
        -----
        A series last observed ``g`` steps before the end of ``ds`` is forecast from
        that observation, whose features are the ones the readout was fitted on: the
        forecast for step ``h`` is the readout's step ``g + h``, moved back by whole
        seasons when it lies beyond the fitted horizon (to the horizon's last step if
        the season is longer than the horizon).
        """
        state = self._state()
        season = state.spec.reservoir.season
        history = self._prepare(ds, variable, time_dim, series_dim, season)
        if history.step != state.spec.step:
            raise ValueError(
                f"the data's time step is {history.step}; the forecaster was fitted at "
                f"{state.spec.step}"
            )
        if history.exog_columns != state.spec.exog:
            raise ValueError(
                f"the data's exogenous columns are {list(history.exog_columns)}; the forecaster "
                f"was fitted with {list(state.spec.exog)}"
            )
        return self._forecast(history, origin_pass(history, state.spec), horizon, variable)

    # -- persistence -----------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Save the fitted forecaster: safetensors arrays plus JSON metadata, no pickle.

        Returns
        -------
        pathlib.Path
            The written path.
        """
        arrays, config = self._contents()
        return write_arrays(path, arrays, _KIND, config)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Self:
        """Load a forecaster written by :meth:`save`, executing no code from the file.

        Raises
        ------
        rnncore.ModelFileError
            If the file is missing, unreadable, not a forecaster file, or its arrays
            and metadata do not fit together.
        """
        arrays, config = read_arrays(path, _KIND)
        try:
            forecaster = cls(**config["settings"])
            spec = FeatureSpec(
                Reservoir(**config["reservoir"]),
                np.timedelta64(int(config["step_ns"]), "ns"),
                tuple(config["exog_columns"]),
            )
            if spec.reservoir.fingerprint() != config["reservoir_fingerprint"]:
                raise ModelFileError(
                    f"{path}: the reservoir built from the file's settings differs from the one "
                    "it was fitted with (saved by another rnnflow version?)"
                )
            if spec.names != config["feature_names"]:
                raise ModelFileError(
                    f"{path}: the recorded feature names do not match its settings"
                )
            missing = sorted(set(_ARRAYS) - set(arrays))
            if missing:
                raise ModelFileError(f"{path}: arrays {missing} are missing")
            p, h, n_levels = spec.n_features, forecaster.horizon, len(forecaster.levels)
            expected = {
                "coef": (p, h),
                "intercept": (h,),
                "ridge": (h,),
                "gcv": (GRID.size, h),
                "feature_mean": (p,),
                "quantiles": (h, n_levels, 2),
            }
            for name, shape in expected.items():
                if arrays[name].shape != shape:
                    raise ModelFileError(
                        f"{path}: array {name!r} has shape {arrays[name].shape}; the metadata "
                        f"implies {shape}"
                    )
            solution = RidgeSolution(
                arrays["coef"],
                arrays["intercept"],
                arrays["ridge"],
                arrays["gcv"],
                arrays["feature_mean"],
                int(config["window"]["n_train_rows"]),
            )
            forecaster._fitted = _Fitted(spec, solution, arrays["quantiles"], config["window"])
        except ModelFileError:
            raise
        except (KeyError, TypeError, ValueError) as err:
            raise ModelFileError(f"{path} does not describe a valid forecaster: {err!r}") from None
        return forecaster

    # -- internals -----------------------------------------------------------------------

    def _state(self) -> _Fitted:
        if self._fitted is None:
            raise RuntimeError("this Forecaster is not fitted; call fit(ds) or Forecaster.load")
        return self._fitted

    def _reservoir(self, season: int) -> Reservoir:
        return Reservoir(
            season,
            n_levels=self.n_levels,
            seasonal_alphas=self.seasonal_alphas,
            n_gated=self.n_gated,
            timescales=self.timescales,
            seed=self.seed,
        )

    def _prepare(
        self, ds: xr.Dataset, variable: str, time_dim: str, series_dim: str, season: int | None
    ) -> History:
        history = prepare(
            ds,
            variable=variable,
            exog=self.exog,
            season=season,
            time_dim=time_dim,
            series_dim=series_dim,
            chunk_rows=self.chunk_rows,
            panel_rows=self.panel_rows,
        )
        return history.with_stats(self.scale_window or 28 * history.season)

    def _fit(
        self, ds: xr.Dataset, variable: str, time_dim: str, series_dim: str
    ) -> tuple[History, np.ndarray]:
        """Fit; return the prepared history and its features at the last step."""
        history = self._prepare(ds, variable, time_dim, series_dim, self.season)
        reservoir = self._reservoir(history.season)
        spec = FeatureSpec(reservoir, history.step, history.exog_columns)
        n_series, n_steps = history.y.shape
        plan = self._plan(n_series, n_steps, reservoir)
        result = fit_pass(history, spec, plan, interval_norm(history.stats))
        if result.moments.n < 2:
            raise ValueError(
                f"the data give {result.moments.n} training row(s) with every feature and all "
                f"{self.horizon} targets observed; a fit needs more (longer or fuller series)"
            )
        solution = solve_ridge(result.moments, spec.n_features, self.ridge)
        quantiles = conformal_quantiles(_scores(result.calibration, solution), self.levels)
        window = {
            "start": isoformat(history.times[0]),
            "end": isoformat(history.times[-1]),
            "step_ns": int(history.step / np.timedelta64(1, "ns")),
            "n_series": int(n_series),
            "n_steps": int(n_steps),
            "warmup": plan.warmup,
            "calibration_start": isoformat(history.times[plan.calibration_start]),
            "n_train_rows": int(result.moments.n),
            "n_calibration_rows": int(result.calibration.shape[0]),
        }
        self._fitted = _Fitted(spec, solution, quantiles, window)
        self.scaling_ = history.stats
        return history, result.origin

    def _plan(self, n_series: int, n_steps: int, reservoir: Reservoir) -> RowPlan:
        if isinstance(self.calibration, float):
            held_out = max(self.horizon + 1, round(self.calibration * n_steps))
        else:
            held_out = self.calibration
        warmup = self.warmup
        if warmup is None:
            warmup = min(round(reservoir.span[1]), n_steps // 4)
        start = n_steps - held_out
        if start - self.horizon <= warmup:
            raise ValueError(
                f"the data have {n_steps} steps: too few for a warm-up of {warmup}, a training "
                f"origin with {self.horizon} steps ahead and a calibration window of {held_out}"
            )
        origins = held_out - self.horizon
        stride = calibration_stride(n_series, origins, self.max_calibration_rows)
        return RowPlan(self.horizon, n_steps, warmup, start, stride)

    def _forecast(
        self, history: History, origin: np.ndarray, horizon: int | None, variable: str
    ) -> xr.Dataset:
        """The forecast dataset from the origin features of ``history``."""
        state = self._state()
        horizon = self.horizon if horizon is None else horizon
        check_int("horizon", horizon, 1)
        if horizon > self.horizon:
            raise ValueError(
                f"horizon={horizon} exceeds the {self.horizon} steps this forecaster was fitted for"
            )
        solution = state.solution
        origin = np.where(np.isfinite(origin), origin, solution.feature_mean)
        lag = history.times.size - 1 - history.origins()
        columns = _columns(lag, horizon, self.horizon, state.spec.reservoir.season)
        z = np.take_along_axis(solution.predict(origin), columns, axis=1)
        norm = interval_norm(history.stats)
        z_lower, z_upper = intervals(z, norm, state.quantiles[columns])
        stats = history.stats
        loc, scale = stats.location.values, stats.scale.values
        series_dim, time_dim = history.y.dims
        coords = {name: c for name, c in history.y.coords.items() if c.dims == (series_dim,)} | {
            "step": np.arange(1, horizon + 1),
            "level": list(self.levels),
            time_dim: ("step", forecast_times(history.times[-1], history.step, horizon)),
        }
        return xr.Dataset(
            {
                "mean": ((series_dim, "step"), undo_scaling(z, loc, scale)),
                "lower": ((series_dim, "step", "level"), undo_scaling(z_lower, loc, scale)),
                "upper": ((series_dim, "step", "level"), undo_scaling(z_upper, loc, scale)),
                "all_missing": (series_dim, stats.n_observed.values == 0),
            },
            coords=coords,
            attrs={
                "variable": variable,
                "origin": isoformat(history.times[-1]),
                "model_fingerprint": self.fingerprint(),
                "rnnflow_version": _version(),
                "training_start": state.window["start"],
                "training_end": state.window["end"],
            },
        )

    def _contents(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The arrays and JSON metadata that :meth:`save` writes."""
        state = self._state()
        solution = state.solution
        arrays = {
            "coef": solution.coef,
            "intercept": solution.intercept,
            "ridge": solution.ridge,
            "gcv": solution.gcv,
            "feature_mean": solution.feature_mean,
            "quantiles": state.quantiles,
        }
        config = {
            "settings": self.settings(),
            "reservoir": state.spec.reservoir.config(),
            "reservoir_fingerprint": state.spec.reservoir.fingerprint(),
            "step_ns": state.window["step_ns"],
            "exog_columns": list(state.spec.exog),
            "feature_names": state.spec.names,
            "window": state.window,
            "rnnflow_version": _version(),
        }
        return arrays, config


def _columns(lag: np.ndarray, horizon: int, fitted: int, season: int) -> np.ndarray:
    """The readout column of each series and step, from origins ``lag`` steps early.

    A series last observed ``lag`` steps before the end is forecast ``lag + h``
    steps from its origin. Beyond the fitted horizon the step is moved back by whole
    seasons, to the same phase within the horizon, or to its last step if there is none.

    Examples
    --------
    >>> _columns(np.array([0, 3]), 3, 4, 2) + 1
    array([[1, 2, 3],
           [4, 3, 4]])
    """
    ahead = lag[:, None] + np.arange(1, horizon + 1)
    back = ahead - season * -(-(ahead - fitted) // season)
    moved = np.where(back >= 1, back, fitted)
    return np.where(ahead > fitted, moved, ahead) - 1


def _scores(calibration: np.ndarray, solution: RidgeSolution) -> np.ndarray:
    """Normalised calibration errors ``(rows, horizon)``; rows of zero-width series dropped."""
    p = solution.coef.shape[0]
    features, targets, norm = calibration[:, :p], calibration[:, p:-1], calibration[:, -1]
    kept = norm > 0
    return (targets[kept] - solution.predict(features[kept])) / norm[kept, None]


def _version() -> str:
    from .. import __version__

    return __version__

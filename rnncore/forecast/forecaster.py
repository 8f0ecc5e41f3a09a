"""The global forecaster: one readout for every series, fitted and applied at scale.

:class:`Forecaster` forecasts ``y_{t+1..t+H}`` of every series from its features at
``t`` (:mod:`rnncore.forecast.features`): a direct multi-horizon ridge readout of the
origin's lag window and of a fixed reservoir run over the series' values, both
normalised by the origin's own recent level and spread, predicting corrections to
the seasonal-naive forecast. One readout serves all series (a global model, fitted
by a distributed reduction: :mod:`rnncore.forecast.ridge`) on all the rows; conformal
intervals (:mod:`rnncore.forecast.conformal`) are calibrated by blocked
cross-validation, each fold's rows scored by a readout fitted on the other folds.

Fitting is one pass over the data after the per-series statistics; forecasting one
pass that keeps only the reservoir's final states. Both run on the active Dask
scheduler, a panel of time at a time and in parallel over blocks of at most
``chunk_rows`` values (:mod:`rnncore.forecast.passes`), so memory follows the panel
and block sizes, not the length of the data.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
import xarray as xr

from ..checks import check_int
from ..errors import InputError
from ..longformat import ID, TIME, as_labels, from_long, group_by_grid
from ..serialization import ModelFileError, read_arrays, write_arrays
from ..statestore import StateStore, read_state_store, write_state_store
from ..timeaxis import check_freq, future_times, infer_freq, isoformat
from ..trees import tree_reduce
from ..version import __version__
from .conformal import check_levels, conformal_quantiles, intervals
from .features import FeatureSpec
from .frame import cutoff_mask, forecast_frame, percent_levels
from .incremental import incremental_pass
from .learned import DEFAULT_GATED, LearnedEncoder, fit_encoder
from .passes import (
    FitPass,
    History,
    Origins,
    RowPlan,
    calibration_stride,
    fit_pass,
    origin_pass,
    prepare,
)
from .reservoir import Reservoir
from .ridge import GRID, Moments, RidgeSolution, solve_ridge
from .scaling import undo_scaling

__all__ = ["INCREMENT_ATTRS", "Forecaster"]

_KIND = "forecaster"
# The arrays of a fitted forecaster, as saved.
_ARRAYS = ("coef", "intercept", "ridge", "gcv", "feature_mean", "quantiles")
#: How each series was forecast (``method`` in the forecast): by the model, by a
#: fallback for series too short for it, or not at all (no observation).
METHODS = ("model", "seasonal_naive", "naive", "none")
_NAT = np.datetime64("NaT", "ns")
#: The encoders whose units are features: the fixed reservoir, or the reservoir with
#: its gated units trained on the forecast loss (:mod:`rnncore.forecast.learned`).
ENCODERS = ("reservoir", "learned")
#: The attributes of an incremental forecast (``predict(state=...)``), by the
#: figure of :meth:`rnncore.statestore.IncrementPlan.summary` each counts.
INCREMENT_ATTRS = {
    "series_resumed": "series resumed",
    "series_cold": "series cold",
    "series_recomputed": "series recomputed",
    "series_removed": "series removed",
    "steps_read": "steps read",
    "steps_new": "steps new",
}
#: The longest default lag window: each row holds its lags, so a block of ``chunk_rows``
#: origins holds ``chunk_rows`` times as many values.
MAX_DEFAULT_LAGS = 800


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
        Steps per season, one or several (``24`` or ``[24, 168]``); ``None`` for the
        frequency's (:func:`~rnncore.timeaxis.default_seasons`: 48 and 336
        for half-hourly data, 24 and 168 hourly, 7 daily, 12 monthly, 4 quarterly,
        none yearly). The shortest sets the seasonal-naive baseline and the level;
        the lag window spans the longest.
    freq
        The pandas frequency of the data (``"h"``, ``"D"``, ``"W-SUN"``, ``"MS"``,
        ``"QS-DEC"``, ...); ``None`` infers it from the time coordinate. Stored with
        the fitted forecaster; later data must have the same.
    n_lags
        Steps of the lag window; ``None`` for three of the shortest seasons, or the
        longest plus the shortest if that is more, at most :data:`MAX_DEFAULT_LAGS`
        (8 without a season).
    exog
        Exogenous variables of the dataset, whose values at the forecast origin
        are features: dims ``(series, time)``, ``(time,)``, or either with one more
        dimension of columns. They must be in the data given to :meth:`predict` too.
    seed
        Seed of the reservoir's random units (and of the learned encoder's training).
    encoder
        ``"reservoir"``: the fixed reservoir; ``"learned"``: its gated units trained
        by Adam on the training data's forecast errors before the readout is fitted
        (:mod:`rnncore.forecast.learned`).
    n_folds
        Consecutive stretches of time (blocked cross-validation) the intervals are
        calibrated on: each fold's rows are scored by a readout fitted on the other
        folds, leaving out the ``horizon`` origins before the fold, whose targets
        are its values. Scores from the whole history, not only its end, keep a
        quiet or unusual last stretch from setting the intervals. Fewer where the
        data give fewer origins; at least 2.
    warmup
        Leading steps left out of training while the reservoir's moving averages
        fill; ``None`` for its longest timescale (at most a quarter of the data).
    n_levels, n_gated, timescales
        The reservoir (:class:`~rnncore.forecast.reservoir.Reservoir`); ``n_gated``
        ``None`` for none with the reservoir and
        :data:`~rnncore.forecast.learned.DEFAULT_GATED` with the learned encoder.
    scale_window
        Trailing steps of a series' history its robust location and scale are taken
        from (:func:`~rnncore.forecast.scaling.series_stats`); ``None`` for 28 seasons.
    max_calibration_rows
        About how many rows (series x origin) to score for calibration; the
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
    >>> str(forecast.time.values[0, 0])
    '2025-02-12T00:00:00.000000000'
    """

    def __init__(
        self,
        horizon: int,
        *,
        levels: Sequence[float] = (0.8, 0.95),
        ridge: float | None = None,
        season: int | Sequence[int] | None = None,
        freq: str | None = None,
        n_lags: int | None = None,
        exog: Sequence[str] = (),
        seed: int = 0,
        encoder: str = "reservoir",
        n_folds: int = 5,
        warmup: int | None = None,
        n_levels: int = 4,
        n_gated: int | None = None,
        timescales: tuple[float, float] | None = None,
        scale_window: int | None = None,
        max_calibration_rows: int = 50_000,
        chunk_rows: int = 50_000,
        panel_rows: int = 2**21,
    ) -> None:
        self.horizon = check_int("horizon", horizon, 1)
        self.levels = check_levels(levels)
        self.season = _check_seasons(season)
        self.freq = None if freq is None else check_freq(freq)
        self.n_lags = None if n_lags is None else check_int("n_lags", n_lags, 1)
        self.seed = check_int("seed", seed, 0)
        self.warmup = None if warmup is None else check_int("warmup", warmup, 0)
        self.scale_window = (
            None if scale_window is None else check_int("scale_window", scale_window, 1)
        )
        self.n_levels = check_int("n_levels", n_levels, 0)
        self.n_gated = None if n_gated is None else check_int("n_gated", n_gated, 0)
        if encoder not in ENCODERS:
            raise InputError(f"encoder must be one of {ENCODERS}; got {encoder!r}")
        if encoder == "learned" and n_gated == 0:
            raise InputError("the learned encoder trains gated units: give n_gated >= 1 (or None)")
        self.encoder = encoder
        self.max_calibration_rows = check_int("max_calibration_rows", max_calibration_rows, 1)
        self.chunk_rows = check_int("chunk_rows", chunk_rows, 1)
        self.panel_rows = check_int("panel_rows", panel_rows, 1)
        if ridge is not None and not (math.isfinite(ridge) and ridge >= 0):
            raise ValueError(f"ridge must be a finite non-negative number or None; got {ridge!r}")
        self.n_folds = check_int("n_folds", n_folds, 2)
        if isinstance(exog, str):
            raise TypeError(f"exog must be a sequence of variable names; got the string {exog!r}")
        self.ridge = None if ridge is None else float(ridge)
        self.exog = tuple(exog)
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
            "season": None if self.season is None else list(self.season),
            "freq": self.freq,
            "n_lags": self.n_lags,
            "exog": list(self.exog),
            "seed": self.seed,
            "encoder": self.encoder,
            "n_folds": self.n_folds,
            "warmup": self.warmup,
            "n_levels": self.n_levels,
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
        """The shortest season used (given, or from the data's frequency); 1 for none."""
        return self._state().spec.season

    @property
    def seasons_(self) -> list[int]:
        """Every season used, the shortest first."""
        return list(self._state().window["seasons"])

    @property
    def freq_(self) -> str:
        """The data's pandas frequency (given, or inferred when fitting)."""
        return self._state().spec.freq

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
        """``(horizon, levels, 2)`` conformal bounds of the errors, in spreads."""
        return self._state().quantiles.copy()

    @property
    def training_window_(self) -> dict[str, Any]:
        """The data fitted: first and last timestamps, step, sizes, row counts."""
        return dict(self._state().window)

    @property
    def incremental_(self) -> bool:
        """Whether :meth:`predict` can continue from a state store: True unless the
        reservoir has gated units (the learned encoder's), which have no incremental
        pass."""
        return not self._state().spec.reservoir.n_gated

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
        ds: xr.Dataset | pd.DataFrame,
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
            where missing), a regular ``datetime64`` time coordinate (at ``freq``),
            and the ``exog`` variables; or a long frame ``unique_id, ds, y`` with the
            ``exog`` columns (:func:`rnncore.longformat.from_long`).
        variable, time_dim, series_dim
            The target and the dimension names.

        Returns
        -------
        Forecaster
            ``self``, fitted.

        Raises
        ------
        ValueError
            If the data are too short for the warm-up and two folds of origins, or
            give too few rows with every lag and target observed.
        """
        self._fit(self._dataset(ds), variable, time_dim, series_dim)
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

    def forecast(
        self, df: pd.DataFrame, h: int | None = None, level: Sequence[float] | None = None
    ) -> pd.DataFrame:
        """Fit on a long frame and forecast ``h`` steps past each series' end.

        StatsForecast's ``forecast``. A frame whose series lie on different grids
        (quarterly series dated in March and in January, say) is forecast one grid
        at a time (:func:`rnncore.longformat.group_by_grid`), a forecaster fitted to
        each; ``self`` is left as it was.

        Parameters
        ----------
        df
            ``unique_id, ds, y`` and the ``exog`` columns.
        h
            Steps ahead; ``None`` for ``horizon``.
        level
            Interval levels in percent (``[80, 95]``); ``None`` for ``levels``.

        Returns
        -------
        pandas.DataFrame
            ``unique_id, ds, RNNFlow, RNNFlow-lo-80, RNNFlow-hi-80, ...``
            (:func:`~rnncore.forecast.frame.forecast_frame`).

        Examples
        --------
        >>> from rnncore.longformat import to_long
        >>> from rnncore.synthetic import generate
        >>> df = to_long(generate(10, 24 * 7 * 6, seed=0), ["y"])
        >>> Forecaster(24).forecast(df, level=[90]).columns.tolist()
        ['unique_id', 'ds', 'RNNFlow', 'RNNFlow-lo-90', 'RNNFlow-hi-90']
        """
        model = self._clone(h, level)
        frames = [forecast_frame(model.fit_predict(ds)) for ds in self._grids(df)]
        return _joined(frames)

    def cross_validation(
        self,
        df: pd.DataFrame,
        h: int | None = None,
        n_windows: int = 1,
        step_size: int | None = None,
        level: Sequence[float] | None = None,
    ) -> pd.DataFrame:
        """Rolling-origin cross-validation on a long frame, as StatsForecast's.

        Window ``w`` of ``n_windows`` fits a fresh forecaster on each series' values
        up to its cutoff (counted back from the series' own end:
        :func:`~rnncore.forecast.frame.cutoff_mask`) and forecasts the ``h`` steps
        after it; consecutive cutoffs are ``step_size`` steps apart.

        Parameters
        ----------
        df
            ``unique_id, ds, y`` and the ``exog`` columns.
        h
            Steps ahead; ``None`` for ``horizon``.
        n_windows
            Number of windows.
        step_size
            Steps between cutoffs; ``None`` for ``h``.
        level
            Interval levels in percent; ``None`` for ``levels``.

        Returns
        -------
        pandas.DataFrame
            ``unique_id, ds, cutoff, y, RNNFlow, RNNFlow-lo-80, ...``: the rows of
            the test windows present in ``df``.
        """
        model = self._clone(h, level)
        check_int("n_windows", n_windows, 1)
        step = model.horizon if step_size is None else check_int("step_size", step_size, 1)
        frames = []
        for ds in self._grids(df):
            times = ds["time"].values
            for window in range(n_windows):
                cut = cutoff_mask(ds, "y", window, n_windows, model.horizon, step)
                kept = ds.isel(series=np.flatnonzero(cut.values >= 0))
                cut = cut.values[cut.values >= 0]
                if cut.size == 0:
                    continue
                train = kept.isel(time=slice(0, int(cut.max()) + 1))
                index = np.arange(train.sizes["time"])
                train["y"] = train["y"].where(index[None, :] <= cut[:, None])
                frame = forecast_frame(model.fit_predict(train))
                cutoffs = pd.Series(times[cut], index=as_labels(train["series"].values))
                frame.insert(2, "cutoff", frame[ID].map(cutoffs).to_numpy())
                frames.append(frame)
        actual = df[[ID, TIME, "y"]].assign(**{ID: df[ID].astype(str)})
        actual[TIME] = pd.to_datetime(actual[TIME])
        result = _joined(frames).merge(actual, on=[ID, TIME], how="inner")
        columns = [ID, TIME, "cutoff", "y"]
        return result[columns + [c for c in result.columns if c not in columns]]

    def predict(
        self,
        ds: xr.Dataset | pd.DataFrame,
        horizon: int | None = None,
        *,
        variable: str = "y",
        time_dim: str = "time",
        series_dim: str = "series",
        state: str | os.PathLike | StateStore | None = None,
        state_out: str | os.PathLike | None = None,
    ) -> xr.Dataset:
        """Forecast every series of ``ds`` from its last timestamp.

        The series' scaling is taken from their history in ``ds``, as :meth:`fit`
        takes it from the training data; the reservoir runs over all of ``ds``, so
        give it at least a few seasons of history.

        Parameters
        ----------
        ds
            As for :meth:`fit`, at the same frequency; a long frame gives a long
            frame (:func:`~rnncore.forecast.frame.forecast_frame`).
        horizon
            Steps to forecast, at most the fitted ``horizon`` (the default).
        variable, time_dim, series_dim
            The target and the dimension names.
        state
            A state store (:mod:`rnncore.statestore`; its path, or it read) that an
            earlier ``predict`` of this forecaster wrote with ``state_out`` over the
            earlier steps of ``ds``: the series are continued from it, reading only
            their new steps and a trailing window before them
            (:mod:`rnncore.forecast.incremental`), with the forecast of a full
            recompute (up to rounding). New series, and series whose values changed
            in the stored trailing window (late corrections), are read in full.
            ``None``: every series is read in full.
        state_out
            Where to write the state store after the data's last step (a local path
            or fsspec URL, atomically), for a later ``predict(state=...)``.

        Returns
        -------
        xarray.Dataset
            ``mean`` ``(series, step)``, ``lower`` and ``upper`` ``(series, step,
            level)``, ``all_missing`` ``(series)`` (True for a series with no
            observation, whose forecasts are NaN), ``method`` ``(series)`` (how each
            was forecast: one of :data:`METHODS`) and ``last_observed`` ``(series)``;
            coordinates ``step`` (1 .. horizon), ``level``, ``time`` ``(series,
            step)`` the forecast timestamps of each series, and ``series``;
            attributes naming the model fingerprint, the rnnflow version, the
            training window and ``ended_early``, the series last observed before
            the end of ``ds``. With ``state`` or ``state_out``, also the
            :data:`INCREMENT_ATTRS`: the series resumed, cold, recomputed and
            removed, the series-steps read, and the new steps among them.

        Raises
        ------
        rnncore.errors.InputError
            If ``state`` is not a complete state store, or was made by another
            forecaster, at another frequency or from other variables; or if the
            reservoir has gated units (``n_gated > 0``), which have no incremental
            pass.

        Notes
        -----
        Each series is forecast from its own last observation, at its own
        timestamps (as StatsForecast does). A series with fewer than half a lag
        window of observations there is forecast by seasonal naive (the values one
        season before), or by naive (its last value) where a season back is
        missing; its intervals are the model's, around that forecast.
        """
        fitted = self._state()
        if isinstance(ds, pd.DataFrame):
            frame = self.predict(
                self._dataset(ds), horizon, variable=variable, state=state, state_out=state_out
            )
            return forecast_frame(frame)
        _check_same_freq(ds, time_dim, fitted.spec.freq)
        incremental = state is not None or state_out is not None
        history = self._prepare(
            ds,
            variable,
            time_dim,
            series_dim,
            fitted.window["seasons"],
            fitted.spec.freq,
            stats=not incremental,
        )
        if history.exog_columns != fitted.spec.exog:
            raise InputError(
                f"the data's exogenous columns are {list(history.exog_columns)}; the forecaster "
                f"was fitted with {list(fitted.spec.exog)}"
            )
        if not incremental:
            origins = origin_pass(history, fitted.spec, self.horizon)
            return self._forecast(history, origins, horizon, variable)
        store = read_state_store(state) if isinstance(state, str | os.PathLike) else state
        increment = incremental_pass(
            ds[[variable, *self.exog]],
            history,
            functools.partial(
                self._prepare,
                variable=variable,
                time_dim=time_dim,
                series_dim=series_dim,
                seasons=fitted.window["seasons"],
                freq=fitted.spec.freq,
                stats=False,
            ),
            fitted.spec,
            horizon=self.horizon,
            scale_window=self._scale_window(history),
            fingerprint=self.fingerprint(),
            variable=variable,
            store=store,
        )
        forecast = self._forecast(
            increment.history, increment.origins, horizon, variable, increment.origin_times
        )
        summary = increment.summary
        for attr, key in INCREMENT_ATTRS.items():
            value = summary[key]
            forecast.attrs[attr] = value if isinstance(value, int) else len(value)
        if state_out is not None:
            write_state_store(state_out, increment.store)
        return forecast

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
            if forecaster.encoder == "learned":
                reservoir = LearnedEncoder.from_arrays(config["reservoir"], arrays)
            else:
                reservoir = Reservoir(**config["reservoir"])
            spec = FeatureSpec(
                reservoir,
                check_freq(config["freq"]),
                check_int("season", config["season"], 1),
                check_int("n_lags", config["n_lags"], 1),
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
                int(config["window"]["n_rows"]),
            )
            forecaster._fitted = _Fitted(spec, solution, arrays["quantiles"], config["window"])
        except ModelFileError:
            raise
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as err:
            raise ModelFileError(f"{path} does not describe a valid forecaster: {err!r}") from None
        return forecaster

    # -- internals -----------------------------------------------------------------------

    def _state(self) -> _Fitted:
        if self._fitted is None:
            raise RuntimeError("this Forecaster is not fitted; call fit(ds) or Forecaster.load")
        return self._fitted

    def _reservoir(self, season: int) -> Reservoir:
        """The reservoir's settings (and the learned encoder's starting point)."""
        n_gated = self.n_gated
        if n_gated is None:
            n_gated = DEFAULT_GATED if self.encoder == "learned" else 0
        return Reservoir(
            season,
            n_levels=self.n_levels,
            n_gated=n_gated,
            timescales=self.timescales,
            seed=self.seed,
        )

    def _encoder(self, history: History) -> Reservoir:
        """The encoder of a fit: the reservoir, or it trained on ``history``."""
        reservoir = self._reservoir(history.season)
        if self.encoder == "reservoir":
            return reservoir
        return fit_encoder(reservoir, history.scaled(), self.horizon, self.seed)

    def _dataset(self, data: xr.Dataset | pd.DataFrame) -> xr.Dataset:
        """``data`` as a Dataset: a long frame read at ``freq`` (or the fitted one)."""
        if not isinstance(data, pd.DataFrame):
            return data
        freq = self.freq if self._fitted is None else self._fitted.spec.freq
        return from_long(_frame_columns(data, self.exog), freq=freq)

    def _grids(self, df: pd.DataFrame) -> list[xr.Dataset]:
        """The Datasets of a long frame, one per grid its series lie on."""
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"expected a pandas DataFrame; got {type(df).__name__}")
        if self.freq is not None:
            return [self._dataset(df)]
        return [self._dataset(group) for group in group_by_grid(_frame_columns(df, self.exog))]

    def _clone(self, h: int | None, level: Sequence[float] | None) -> Forecaster:
        """An unfitted forecaster of these settings, for ``h`` steps and ``level``."""
        settings = self.settings()
        if h is not None:
            settings["horizon"] = check_int("h", h, 1)
        if level is not None:
            settings["levels"] = percent_levels(level)
        return type(self)(**settings)

    def _prepare(
        self,
        ds: xr.Dataset,
        variable: str,
        time_dim: str,
        series_dim: str,
        seasons: Sequence[int] | None,
        freq: str | None,
        stats: bool = True,
    ) -> History:
        history = prepare(
            ds,
            variable=variable,
            exog=self.exog,
            freq=freq,
            seasons=seasons,
            time_dim=time_dim,
            series_dim=series_dim,
            chunk_rows=self.chunk_rows,
            panel_rows=self.panel_rows,
        )
        return history.with_stats(self._scale_window(history)) if stats else history

    def _scale_window(self, history: History) -> int:
        return self.scale_window or 28 * history.season

    def _fit(
        self, ds: xr.Dataset, variable: str, time_dim: str, series_dim: str
    ) -> tuple[History, Origins]:
        """Fit; return the prepared history and its features at the origins."""
        history = self._prepare(ds, variable, time_dim, series_dim, self.season, self.freq)
        reservoir = self._encoder(history)
        n_lags = self.n_lags or _default_lags(history.seasons)
        spec = FeatureSpec(
            reservoir,
            history.freq,
            history.season,
            max(n_lags, history.season),
            history.exog_columns,
        )
        n_series, n_steps = history.y.shape
        plan = self._plan(n_series, n_steps, reservoir, spec.n_lags)
        result = fit_pass(history, spec, plan)
        total = tree_reduce(result.buckets, Moments.merge)
        if total.n < 2:
            raise ValueError(
                f"the data give {total.n} row(s) with every lag, feature and all "
                f"{self.horizon} targets observed; a fit needs more (longer or fuller "
                f"series, or a shorter n_lags than {spec.n_lags})"
            )
        solution = solve_ridge(total, spec.n_features, self.ridge)
        scores = _cross_scores(result, plan, spec.n_features, self.ridge)
        quantiles = conformal_quantiles(scores, self.levels, _expected_error(solution))
        window = {
            "start": isoformat(history.times[0]),
            "end": isoformat(history.times[-1]),
            "freq": history.freq,
            "seasons": list(history.seasons),
            "n_lags": spec.n_lags,
            "n_series": int(n_series),
            "n_steps": int(n_steps),
            "warmup": plan.warmup,
            "n_folds": plan.n_folds,
            "n_rows": int(solution.n),
            "n_calibration_rows": int(result.calibration.shape[0]),
        }
        self._fitted = _Fitted(spec, solution, quantiles, window)
        self.scaling_ = history.stats
        return history, result.origin

    def _plan(self, n_series: int, n_steps: int, reservoir: Reservoir, n_lags: int) -> RowPlan:
        warmup = self.warmup
        if warmup is None:
            warmup = max(n_lags - 1, min(round(reservoir.span[1]), n_steps // 4))
        origins = n_steps - self.horizon - warmup
        if origins < 2:
            raise ValueError(
                f"the data have {n_steps} steps: too few for a warm-up of {warmup} and two "
                f"forecast origins with {self.horizon} steps ahead"
            )
        n_folds = min(self.n_folds, origins)
        edges = tuple(int(e) for e in np.linspace(warmup, warmup + origins, n_folds + 1).round())
        stride = calibration_stride(n_series, origins, self.max_calibration_rows)
        return RowPlan(self.horizon, n_steps, warmup, edges, stride)

    def _forecast(
        self,
        history: History,
        origins: Origins,
        horizon: int | None,
        variable: str,
        origin_times: np.ndarray | None = None,
    ) -> xr.Dataset:
        """The forecast dataset from the features at the origins of ``history``, whose
        timestamps are ``origin_times`` (``None``: those of :meth:`History.origins`)."""
        state = self._state()
        horizon = self.horizon if horizon is None else horizon
        check_int("horizon", horizon, 1)
        if horizon > self.horizon:
            raise ValueError(
                f"horizon={horizon} exceeds the {self.horizon} steps this forecaster was fitted for"
            )
        solution = state.solution
        features = np.where(np.isfinite(origins.features), origins.features, solution.feature_mean)
        baseline = origins.baseline[:, :horizon]
        method = _methods(origins, state.spec.n_lags, history.stats.n_observed.values)
        start = np.where(method[:, None] == "naive", origins.last[:, None], baseline)
        correction = solution.predict(features)[:, :horizon] * origins.spread[:, None]
        z = start + np.where(method[:, None] == "model", correction, 0.0)
        z_lower, z_upper = intervals(z, origins.spread, state.quantiles[:horizon])
        stats = history.stats
        loc, scale = stats.location.values, stats.scale.values
        series_dim, time_dim = history.y.dims
        if origin_times is None:
            origin_times = history.times[history.origins()]
        last = np.where(method == "none", _NAT, origin_times)
        ended = last < history.times[-1]
        series_coords = {name: c for name, c in history.y.coords.items() if c.dims == (series_dim,)}
        labels = as_labels(history.y[series_dim].values)
        return xr.Dataset(
            {
                "mean": ((series_dim, "step"), undo_scaling(z, loc, scale)),
                "lower": ((series_dim, "step", "level"), undo_scaling(z_lower, loc, scale)),
                "upper": ((series_dim, "step", "level"), undo_scaling(z_upper, loc, scale)),
                "all_missing": (series_dim, method == "none"),
                "method": (series_dim, method),
                "last_observed": (series_dim, last),
            },
            coords=series_coords
            | {
                "step": np.arange(1, horizon + 1),
                "level": list(self.levels),
                time_dim: ((series_dim, "step"), future_times(last, history.freq, horizon)),
            },
            attrs={
                "variable": variable,
                "freq": history.freq,
                "origin": isoformat(history.times[-1]),
                "ended_early": labels[ended].tolist(),
                "model_fingerprint": self.fingerprint(),
                "rnnflow_version": __version__,
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
        if isinstance(state.spec.reservoir, LearnedEncoder):
            arrays |= state.spec.reservoir.arrays()
        config = {
            "settings": self.settings(),
            "reservoir": state.spec.reservoir.config(),
            "reservoir_fingerprint": state.spec.reservoir.fingerprint(),
            "freq": state.spec.freq,
            "season": state.spec.season,
            "n_lags": state.spec.n_lags,
            "exog_columns": list(state.spec.exog),
            "feature_names": state.spec.names,
            "window": state.window,
            "rnnflow_version": __version__,
        }
        return arrays, config


def _check_same_freq(ds: xr.Dataset, time_dim: str, fitted: str) -> None:
    """Refuse data whose time axis is regular at another frequency than ``fitted``."""
    if time_dim not in ds.coords or ds.sizes[time_dim] < 3:
        return
    try:
        found = infer_freq(ds[time_dim].values)
    except (TypeError, ValueError):
        return  # not a regular axis: preparing the data at `fitted` says where
    if found != fitted:
        raise ValueError(
            f"the data's frequency is {found!r}; the forecaster was fitted at {fitted!r}"
        )


def _frame_columns(df: pd.DataFrame, exog: Sequence[str]) -> pd.DataFrame:
    """The columns of a long frame the forecaster reads: ids, timestamps, ``y``, exog."""
    wanted = [ID, TIME, "y", *exog]
    missing = [name for name in wanted if name not in df.columns]
    if missing:
        raise ValueError(
            f"the frame lacks columns {missing}; expected {wanted} (exogenous columns are "
            f"the forecaster's exog={list(exog)})"
        )
    return df[wanted]


def _joined(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Frames of forecasts, one after another, sorted by series and time."""
    joined = pd.concat(frames, ignore_index=True)
    return joined.sort_values([ID, TIME], kind="stable").reset_index(drop=True)


def _check_seasons(season: int | Sequence[int] | None) -> tuple[int, ...] | None:
    """``season`` as a sorted tuple of distinct seasons, each at least 1."""
    if season is None:
        return None
    seasons = [season] if isinstance(season, int | np.integer) else list(season)
    if not seasons:
        raise ValueError("season must be an integer, a non-empty list of integers, or None")
    return tuple(sorted({check_int("season", value, 1) for value in seasons}))


def _default_lags(seasons: Sequence[int]) -> int:
    """The default lag window: three shortest seasons, or the longest plus the shortest,
    at most :data:`MAX_DEFAULT_LAGS` (but at least the shortest season).

    Examples
    --------
    >>> _default_lags((12,)), _default_lags((48, 336)), _default_lags((1,))
    (36, 384, 8)
    >>> _default_lags((288, 2016))  # 5-minute data: about 2.8 days
    800
    """
    if seasons[-1] == 1:
        return 8
    wanted = max(3 * seasons[0], seasons[-1] + seasons[0])
    return max(seasons[0], min(wanted, MAX_DEFAULT_LAGS))


def _methods(origins: Origins, n_lags: int, n_observed: np.ndarray) -> np.ndarray:
    """How each series is forecast (:data:`METHODS`): by the model where at least half
    its lag window is observed, else by seasonal naive where its baseline is known,
    else by naive; ``"none"`` without an observation."""
    method = np.where(origins.season_observed, "seasonal_naive", "naive")
    method = np.where(2 * origins.n_observed >= n_lags, "model", method)
    return np.where(n_observed > 0, method, "none").astype(object).astype(str)


def _cross_scores(
    result: FitPass, plan: RowPlan, n_features: int, ridge: float | None
) -> np.ndarray:
    """Calibration errors ``(rows, horizon)`` in spreads: each fold's rows scored by
    the readout fitted on the buckets :meth:`RowPlan.held_out` leaves in."""
    rows, p = result.calibration, n_features
    scores = []
    for fold in range(plan.n_folds):
        kept = [m for b, m in enumerate(result.buckets) if b not in plan.held_out(fold)]
        training = tree_reduce(kept, Moments.merge)
        scored = rows[rows[:, -1] == fold]
        if training.n < 2 or not scored.size:
            continue
        readout = solve_ridge(training, n_features, ridge)
        scores.append(scored[:, p:-1] - readout.predict(scored[:, :p]))
    return np.concatenate(scores) if scores else np.empty((0, rows.shape[1] - p - 1))


def _expected_error(solution: RidgeSolution) -> np.ndarray:
    """``(horizon,)`` each step's expected root-mean-square error (in spreads) by GCV,
    or NaN where the ridge strength was given."""
    gcv = np.where(np.isfinite(solution.gcv), solution.gcv, np.inf).min(axis=0)
    return np.sqrt(np.where(np.isfinite(gcv), gcv, np.nan))

"""The forecaster's features at a forecast origin, normalised by the origin's own window.

At an origin ``t`` (an observed step) a series' feature vector holds, in order:

1. its last ``n_lags`` scaled values ``z_{t - n_lags + 1} .. z_t`` (``lag<k>`` is
   ``z_{t-k}``), the raw window every global window model reads;
2. the reservoir's moving averages of ``z`` (``level_tau*``);
3. the reservoir's gated units;
4. the calendar features of ``t`` (:func:`~rnncore.timeaxis.calendar_features`);
5. the exogenous variables' values at ``t``.

**Window normalisation.** The lags and moving averages (linear in ``z``), and the
gated units (which read them and ``z``, in the same units), are taken
relative to the origin's *level* ``L_t`` (the mean of the last season of lags) and
divided by its *spread* ``S_t`` (the mean absolute deviation of the window's lags
from ``L_t``, at least ``SPREAD_FLOOR``). The targets are likewise the values ahead
relative to the seasonal-naive forecast from ``t``, over ``S_t``::

    target_h = (z_{t+h} - z_{t+h-m*ceil(h/m)}) / S_t,

so that one set of readout weights serves every series whatever its level, a level
shift is forgotten as soon as it leaves the window, and a readout of zeros is the
seasonal-naive forecast: the model starts from it and learns corrections.

**Gaps.** A missing lag stands for the window's level (0 once normalised), and where
the value a season back is missing the baseline is the level. A row is used where
its value, its targets and at least half its lags are observed, so series with gaps
(business hours, sensors that drop out) still give rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..timeaxis import calendar_features, calendar_names
from .reservoir import Reservoir

__all__ = ["SPREAD_FLOOR", "FeatureSpec", "lag_windows"]

#: The least spread of a window, in units of the series' robust scale: a flat window
#: (a run of zeros in a count series, say) does not blow its targets up.
SPREAD_FLOOR = 0.05


@dataclass(frozen=True)
class FeatureSpec:
    """What the features are made of; :meth:`assemble` builds them.

    Parameters
    ----------
    reservoir
        The reservoir whose units follow the lags.
    freq
        The data's pandas frequency, which decides the calendar features.
    season
        Steps of the season that sets the level and the seasonal-naive baseline
        (1: the last value).
    n_lags
        Steps of the lag window, at least ``season``.
    exog
        Names of the exogenous columns.

    Examples
    --------
    >>> spec = FeatureSpec(Reservoir(24, n_levels=2, n_gated=1), "h", 24, 48, ("temperature",))
    >>> spec.n_features, spec.names[:2], spec.names[47:50], spec.names[-1]
    (64, ['lag47', 'lag46'], ['lag0', 'level_tau1', 'level_tau48'], 'exog_temperature')
    """

    reservoir: Reservoir
    freq: str
    season: int
    n_lags: int
    exog: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.season <= self.n_lags:
            raise ValueError(
                f"the lag window ({self.n_lags} steps) must hold at least one season "
                f"({self.season} steps)"
            )

    @property
    def names(self) -> list[str]:
        """Every feature's name, in column order."""
        return (
            [f"lag{k}" for k in range(self.n_lags - 1, -1, -1)]
            + self.reservoir.unit_names
            + calendar_names(self.freq)
            + [f"exog_{name}" for name in self.exog]
        )

    @property
    def n_features(self) -> int:
        """Number of feature columns."""
        return len(self.names)

    @property
    def n_normalised(self) -> int:
        """The leading columns normalised by the window: the lags and the reservoir's
        units (its gated units too: measured better so, random or learned)."""
        return self.n_lags + self.reservoir.n_units

    def assemble(
        self,
        units: np.ndarray,
        lags: np.ndarray,
        times: np.ndarray,
        exog: np.ndarray | None = None,
        *,
        out: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The normalised feature vectors of every series at every origin.

        Parameters
        ----------
        units
            Reservoir units ``(series, time, n_units)`` at the origins ``times``.
        lags
            Lag windows ``(series, time, n_lags)``, oldest first (:func:`lag_windows`).
        times
            ``datetime64`` origins: ``(time,)``, or ``(series, time)`` for origins
            that differ between series.
        exog
            Exogenous values ``(series, time, len(exog))``; ``None`` when there are none.
        out
            Where to write the features, ``(series, time, n_features)`` (a view into
            a wider array, say); a new float64 array if ``None``.

        Returns
        -------
        features, level, spread
            ``out`` ``(series, time, n_features)`` (NaN where an input is), and the
            windows' level and spread ``(series, time)``.
        """
        n_series, n_times = units.shape[:2]
        n_exog = 0 if exog is None else exog.shape[2]
        if n_exog != len(self.exog):
            raise ValueError(
                f"got {n_exog} exogenous column(s); the features expect {len(self.exog)}: "
                f"{list(self.exog)}"
            )
        if out is None:
            out = np.empty((n_series, n_times, self.n_features))
        times = np.asarray(times)
        calendar = calendar_features(times.ravel(), self.freq).reshape(*times.shape, -1)
        parts = [lags, units, calendar if calendar.ndim == 3 else calendar[None]]
        if exog is not None:
            parts.append(exog)
        column = 0
        for part in parts:
            width = part.shape[2]
            out[:, :, column : column + width] = part
            column += width
        level, spread = self.window_stats(lags)
        linear = out[:, :, : self.n_normalised]
        linear -= level[..., None]
        linear /= spread[..., None]
        lag_columns = out[:, :, : self.n_lags]
        lag_columns[np.isnan(lag_columns) & np.isfinite(level)[..., None]] = 0.0
        return out, level, spread

    def window_stats(self, lags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The level and spread ``(series, time)`` of lag windows (see the module).

        Missing lags are left out; a window with no lag at all has NaN for both.

        Examples
        --------
        >>> spec = FeatureSpec(Reservoir(2), "D", 2, 4)
        >>> level, spread = spec.window_stats(np.array([[[0.0, 2.0, 1.0, 3.0]]]))
        >>> level.tolist(), spread.tolist()
        ([[2.0]], [[1.0]])
        """
        level = _nanmean(lags[..., self.n_lags - self.season :])
        spread = _nanmean(np.abs(lags - level[..., None]))
        return level, np.maximum(spread, SPREAD_FLOOR, where=np.isfinite(spread), out=spread)

    def baseline(self, lags: np.ndarray, level: np.ndarray, horizon: int) -> np.ndarray:
        """The seasonal-naive forecasts ``(..., horizon)`` from lag windows ``(..., n_lags)``.

        Step ``h`` repeats the lag one season before it (``z_{t+h-m*ceil(h/m)}``), or
        the window's ``level`` ``(...)`` where that lag is missing.

        Examples
        --------
        >>> spec = FeatureSpec(Reservoir(2), "D", 2, 3)
        >>> spec.baseline(np.array([1.0, np.nan, 3.0]), np.array(3.0), 3).tolist()
        [3.0, 3.0, 3.0]
        """
        columns = self.n_lags - self.season + np.arange(horizon) % self.season
        before = lags[..., columns]
        return np.where(np.isnan(before), np.asarray(level)[..., None], before)


def lag_windows(values: np.ndarray, n_lags: int) -> np.ndarray:
    """The lag window of every origin from the values up to each.

    Parameters
    ----------
    values
        ``(series, n_lags - 1 + n)``: the values of the ``n`` origins' steps and of
        the ``n_lags - 1`` steps before the first (NaN if unknown).
    n_lags
        Steps per window.

    Returns
    -------
    numpy.ndarray
        ``(series, n, n_lags)``, oldest first: a view of ``values``.

    Examples
    --------
    >>> lag_windows(np.arange(4.0)[None, :], 2)[0].tolist()
    [[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]]
    """
    return np.lib.stride_tricks.sliding_window_view(values, n_lags, axis=1)


def _nanmean(values: np.ndarray) -> np.ndarray:
    """The mean of the finite values along the last axis; NaN where there are none
    (without NumPy's warning, which is not thread-safe to silence)."""
    finite = np.isfinite(values)
    count = finite.sum(axis=-1)
    total = np.where(finite, values, 0.0).sum(axis=-1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)

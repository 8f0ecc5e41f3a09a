"""The forecaster's features at a forecast origin: reservoir, seasonal memories, calendar, exog.

At an origin ``t`` (an observed step) a series' feature vector holds, in order:

1. the reservoir's moving averages of ``z`` (``level_tau*``);
2. its seasonal memories, *rotated* to the origin: column ``seasonal<alpha>_ahead<j>``
   holds the memory of the phase ``j`` steps after ``t`` (``j = 1 .. season``): the
   (weighted) values last seen at the phase of ``y_{t+j}``. With ``alpha = 1`` these
   are the last season of values, ``ahead<season>`` being ``z_t`` itself;
3. the reservoir's gated units;
4. the calendar features of ``t`` (:func:`~rnncore.forecast.timeaxis.calendar_features`);
5. the exogenous variables' values at ``t``.

The rotation makes one set of readout weights serve every origin: the column that
matters most for step ``h`` is always ``ahead<h>``, whichever the origin's phase.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .reservoir import Reservoir
from .timeaxis import calendar_features, calendar_names, phase

__all__ = ["FeatureSpec"]


@dataclass(frozen=True)
class FeatureSpec:
    """What the features are made of; :meth:`assemble` builds them.

    Parameters
    ----------
    reservoir
        The reservoir whose units and memories come first.
    step
        The data's time step, which decides the calendar features.
    exog
        Names of the exogenous columns.

    Examples
    --------
    >>> spec = FeatureSpec(Reservoir(24, n_levels=2, seasonal_alphas=(1.0,), n_gated=1),
    ...                    np.timedelta64(1, "h"), ("temperature",))
    >>> spec.n_features, spec.names[:3], spec.names[-1]
    (40, ['level_tau24', 'level_tau336', 'seasonal1_ahead1'], 'exog_temperature')
    """

    reservoir: Reservoir
    step: np.timedelta64
    exog: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        """Every feature's name, in column order."""
        r = self.reservoir
        units = r.unit_names
        return (
            units[: r.n_levels]
            + [
                f"seasonal{alpha:g}_ahead{j}"
                for alpha in r.seasonal_alphas
                for j in range(1, r.season + 1)
            ]
            + units[r.n_levels :]
            + calendar_names(self.step)
            + [f"exog_{name}" for name in self.exog]
        )

    @property
    def n_features(self) -> int:
        """Number of feature columns."""
        return len(self.names)

    def assemble(
        self,
        units: np.ndarray,
        ahead: np.ndarray,
        times: np.ndarray,
        exog: np.ndarray | None = None,
        *,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """The feature vectors of every series at every origin.

        Parameters
        ----------
        units
            Reservoir units ``(series, time, n_units)`` at the origins ``times``.
        ahead
            Rotated memories ``(series, time, n_memories, season)``, as
            :func:`ahead_from_window` or :func:`ahead_from_final` give them.
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
        numpy.ndarray
            ``out``: ``(series, time, n_features)``; NaN where an input is.
        """
        r = self.reservoir
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
        calendar = calendar_features(times.ravel(), self.step).reshape(*times.shape, -1)
        parts = [units[:, :, : r.n_levels]]
        parts += [ahead[:, :, k, :] for k in range(r.n_memories)]
        parts += [units[:, :, r.n_levels :], calendar if calendar.ndim == 3 else calendar[None]]
        if exog is not None:
            parts.append(exog)
        column = 0
        for part in parts:
            out[:, :, column : column + part.shape[2]] = part
            column += part.shape[2]
        return out


def ahead_from_window(memories: np.ndarray, season: int) -> np.ndarray:
    """Rotated memories of origins from the memories of the steps up to each.

    Parameters
    ----------
    memories
        ``(series, season - 1 + n, n_memories)``: the memories of the ``n`` origins'
        steps and of the ``season - 1`` steps before the first (NaN if unknown).
    season
        Steps per season.

    Returns
    -------
    numpy.ndarray
        ``(series, n, n_memories, season)``: entry ``j - 1`` of the last axis is the
        memory ``season - j`` steps before the origin, that of the phase ``j`` steps
        after it. A view of ``memories``.

    Examples
    --------
    >>> m = np.arange(4.0)[None, :, None]  # steps 0..3, season 2: origins 1..3
    >>> ahead_from_window(m, 2)[0, :, 0].tolist()
    [[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]]
    """
    return np.lib.stride_tricks.sliding_window_view(memories, season, axis=1)


def ahead_from_final(final: np.ndarray, origins: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Rotated memories at each series' origin from every phase's final memories.

    Parameters
    ----------
    final
        ``(series, season, n_memories)``: each phase's memories at the end.
    origins
        ``(series,)`` the origin timestamp of each series.
    spec
        The features (for the season and the time step).

    Returns
    -------
    numpy.ndarray
        ``(series, 1, n_memories, season)``.
    """
    season = spec.reservoir.season
    order = (phase(origins, spec.step, season)[:, None] + np.arange(1, season + 1)) % season
    return np.take_along_axis(final, order[:, :, None], axis=1).transpose(0, 2, 1)[:, None]

"""The forecaster's reservoir: fixed linear-state layers spanning many timescales.

A model with fixed, chosen weights (not trained), ``Model([MinGRU, MinGRU])``, runs
over the scaled series through :func:`rnncore.run` (exact; a later run starts from an
earlier one's final state, so the series may be run a stretch of time at a time).
Its input at each step is ``(z, observed)``: the scaled value (0 where missing) and 1
if it was observed, else 0. Every update gate is shut when ``observed`` is 0, so a
missing step leaves every state as it was, and every output is the state carried to
that step: a series' features after a gap are what it last saw.

Layer 1 holds ``n_levels`` exponential moving averages of ``z``, timescales
log-spaced over ``timescales`` (about a season to several), the same averages of
``observed`` (their weights), and passes ``z`` and ``observed`` through. Layer 2
passes the averages and weights through and adds ``n_gated`` units with random
(seeded) weights, whose update gates depend on the input and whose biases spread
their timescales like the averages': a nonlinear echo of the recent past. The
*units* are each average divided by its weight (bias-corrected, as Adam's moments:
a weighted average of the values seen, however few), then the gated units. The
averages are linear in ``z`` with weights summing to one, so they may be normalised
by any window's level and spread like the values themselves
(:mod:`rnncore.forecast.features`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from ..cells import MinGRU
from ..checks import check_int
from ..labelled import run as run_model
from ..model import Model
from .scaling import inverse_scale

__all__ = ["Reservoir", "ReservoirRun", "ReservoirState"]

# Gate pre-activation that counts as fully open (sigmoid(40) is 1 in float64), and
# the weight on `observed` that shuts any gate at an unobserved step.
_OPEN = 40.0
_SHUT = 2 * _OPEN


#: The reservoir's state between runs: the model's packed states ``(series, layer,
#: state_unit)``, as :func:`rnncore.run` gives and takes them.
ReservoirState = Any


@dataclass(frozen=True)
class ReservoirRun:
    """The lazy outputs of :meth:`Reservoir.run` over ``(series, time)`` scaled values.

    Attributes
    ----------
    units
        ``(series, time, n_units)``, chunked like the input.
    state
        The :data:`ReservoirState` after the last step, to start a later run from.
    """

    units: da.Array
    state: ReservoirState


@dataclass(frozen=True)
class Reservoir:
    """Settings of the fixed reservoir; :attr:`model` builds it.

    Parameters
    ----------
    season
        Steps per season (24 for hourly data).
    n_levels
        Exponential moving averages of ``z``.
    n_gated
        Randomly weighted gated units.
    timescales
        ``(shortest, longest)`` timescale in steps of the moving averages and the
        gated units; ``None`` for ``(1, 2 * season)`` (at least ``(1, 8)``): the recent
        past, which the lag window does not already hold in detail.
    seed
        Seed of the gated units' weights.

    Examples
    --------
    >>> reservoir = Reservoir(season=24, n_levels=4, n_gated=2)
    >>> reservoir.n_units, reservoir.unit_names[-1]
    (6, 'gated1')
    """

    season: int
    n_levels: int = 4
    n_gated: int = 0
    timescales: tuple[float, float] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("season", "n_levels", "n_gated", "seed"):
            check_int(name, getattr(self, name), 1 if name == "season" else 0)
        low, high = self.span
        if not 0 < low <= high:
            raise ValueError(f"timescales must satisfy 0 < shortest <= longest; got {self.span}")
        if self.n_units == 0:
            raise ValueError("the reservoir needs at least one unit: give n_levels or n_gated")

    @property
    def span(self) -> tuple[float, float]:
        """``(shortest, longest)`` timescale, the default filled in."""
        if self.timescales is None:
            return 1.0, 2.0 * max(self.season, 4)
        low, high = self.timescales
        return float(low), float(high)

    @property
    def n_units(self) -> int:
        """Outputs of the level model."""
        return self.n_levels + self.n_gated

    @property
    def unit_names(self) -> list[str]:
        """A name for every unit: ``level_tau<steps>``, then ``gated<k>``."""
        return [f"level_tau{tau:.3g}" for tau in self._level_timescales()] + [
            f"gated{k}" for k in range(self.n_gated)
        ]

    def config(self) -> dict:
        """JSON-serialisable settings, as the constructor takes them."""
        return {
            "season": int(self.season),
            "n_levels": int(self.n_levels),
            "n_gated": int(self.n_gated),
            "timescales": None if self.timescales is None else list(self.span),
            "seed": int(self.seed),
        }

    def fingerprint(self) -> str:
        """The model's fingerprint."""
        return self.model.fingerprint()

    @cached_property
    def model(self) -> Model:
        """The level model: moving averages and gated units (float64)."""
        return Model([self._levels_layer(), self._gated_layer()])

    def run(
        self, z: da.Array, state: ReservoirState | None = None, method: str = "sequential"
    ) -> ReservoirRun:
        """Run the model over scaled values ``z`` ``(series, time)``.

        Parameters
        ----------
        z
            Dask array, NaN where missing.
        state
            The state to start from, as :attr:`ReservoirRun.state` of the run over the
            steps just before (computed); ``None`` for zeros.
        method
            How :func:`rnncore.run` joins time chunks: ``"sequential"`` (states
            carried chunk to chunk: one pass) or ``"parallel"`` (summaries stitched
            by a prefix tree: every chunk at once, about two passes). Both are exact.
        """
        x = da.map_blocks(_with_observed, z, new_axis=2, chunks=(*z.chunks, (2,)), dtype=float)
        run = run_model(self.model, _array(x), h0=state, method=method)
        outputs = run.output.data
        units = outputs.map_blocks(
            self._units, chunks=(*outputs.chunks[:2], (self.n_units,)), dtype=np.float64
        )
        return ReservoirRun(units, run.state.data)

    def final_units(
        self,
        state: ReservoirState,
        location: np.ndarray | None = None,
        scale: np.ndarray | None = None,
    ) -> np.ndarray:
        """The units ``(series, n_units)`` held in a computed ``state``.

        Parameters
        ----------
        state
            The state after a run.
        location, scale
            ``(series,)``: the run was over the unscaled values, and its moving
            averages are brought to ``(y - location) / scale``
            (:func:`~rnncore.forecast.scaling.apply_scaling`); ``None`` for a run
            over the scaled values. The averages are linear in the values with
            weights summing to one, so this is the run over the scaled values, up
            to rounding; the gated units are not, so a reservoir with gated units
            must run over the scaled values.
        """
        outputs = state[:, -1, : 2 * self.n_levels + self.n_gated]
        if location is not None:
            if self.n_gated:
                raise ValueError(
                    "the gated units read the scaled values: a reservoir with n_gated > 0 "
                    "cannot be run over unscaled values"
                )
            n = self.n_levels
            weight = outputs[:, n : 2 * n]
            inverse = inverse_scale(np.asarray(scale, dtype=np.float64))
            averages = (outputs[:, :n] - np.asarray(location)[:, None] * weight) * inverse[:, None]
            outputs = np.concatenate([averages, outputs[:, n:]], axis=1)
        return self._units(outputs)

    # -- the layers ---------------------------------------------------------------------

    def _level_timescales(self) -> np.ndarray:
        return np.geomspace(*self.span, self.n_levels)

    def _levels_layer(self) -> MinGRU:
        """Moving averages of ``z`` and of ``observed`` (their weights), then ``z`` and
        ``observed`` passed through."""
        n = self.n_levels
        rate = -np.expm1(-1.0 / self._level_timescales())  # 1 - decay
        gate = np.zeros((2 * n + 2, 2))
        gate[: 2 * n, 1] = _SHUT
        logit = np.log(rate / (1 - rate)) - _SHUT
        gate_bias = np.concatenate([logit, logit, [_OPEN, _OPEN]])
        cand = np.zeros((2 * n + 2, 2))
        cand[:n, 0] = 1.0
        cand[n : 2 * n, 1] = 1.0
        cand[2 * n :] = np.eye(2)
        return MinGRU(
            {
                "weight": np.concatenate([gate, cand]),
                "bias": np.concatenate([gate_bias, np.zeros(2 * n + 2)]),
            }
        )

    def _gated_layer(self) -> MinGRU:
        """The moving averages and their weights passed through, then the gated units."""
        n, inputs, width = self.n_levels, 2 * self.n_levels + 2, 2 * self.n_levels + self.n_gated
        gate, gate_bias = np.zeros((width, inputs)), np.zeros(width)
        cand = np.zeros((width, inputs))
        gate_bias[: 2 * n] = _OPEN
        cand[: 2 * n, : 2 * n] = np.eye(2 * n)
        rng = np.random.default_rng(self.seed)
        bound = 1.0 / math.sqrt(n + 1)
        read = [*range(n), 2 * n]  # the averages and z
        gate[2 * n :, read] = rng.normal(0.0, bound, (self.n_gated, n + 1))
        cand[2 * n :, read] = rng.normal(0.0, bound, (self.n_gated, n + 1))
        gate[2 * n :, 2 * n + 1] = _SHUT
        tau = np.geomspace(*self.span, self.n_gated)
        gate_bias[2 * n :] = -np.log(np.maximum(tau - 1, math.exp(-_OPEN))) - _SHUT  # logit(1/tau)
        return MinGRU(
            {
                "weight": np.concatenate([gate, cand]),
                "bias": np.concatenate([gate_bias, np.zeros(width)]),
            }
        )

    def _units(self, outputs: np.ndarray) -> np.ndarray:
        """The units from the model's outputs: each moving average divided by its
        weight (an average of the values seen, however few: 0 before the first),
        then the gated units."""
        n = self.n_levels
        weight = outputs[..., n : 2 * n]
        seen = weight > 0
        averages = np.where(seen, outputs[..., :n] / np.where(seen, weight, 1.0), 0.0)
        return np.concatenate([averages, outputs[..., 2 * n :]], axis=-1)


def _with_observed(z: np.ndarray) -> np.ndarray:
    """``(z, observed)`` on a new last axis, ``z`` set to 0 where it is missing."""
    observed = np.isfinite(z)
    return np.stack([np.where(observed, z, 0.0), observed.astype(np.float64)], axis=-1)


def _array(x: da.Array) -> xr.DataArray:
    return xr.DataArray(x, dims=("series", "time", "reservoir_input"))

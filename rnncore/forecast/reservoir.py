"""The forecaster's reservoir: fixed linear-state layers spanning many timescales.

Two models with fixed, chosen weights (not trained) run over the scaled series
through :func:`rnncore.run` (exact; a later run starts from an earlier one's final
state, so the series may be run a stretch of time at a time). Their input at each step
is ``(z, observed)``: the scaled value (0 where missing) and 1 if it was observed,
else 0. Every update gate is shut when ``observed`` is 0, so a missing step leaves
every state as it was, and every output is the state carried to that step: a
series' features after a gap are what it last saw.

The *level* model, ``Model([MinGRU, MinGRU])``
    Layer 1 holds ``n_levels`` exponential moving averages of ``z``, timescales
    log-spaced over ``timescales`` (about a season to several), and passes ``z``
    and ``observed`` through. Layer 2 passes the moving averages through and adds
    ``n_gated`` units with random (seeded) weights, whose update gates depend on
    the input and whose biases spread their timescales like the averages': a
    nonlinear echo of the recent past. Its outputs are the *units*.
The *seasonal* model, ``Model([MinGRU])``
    One unit per ``alpha`` of ``seasonal_alphas``, ``m <- (1 - alpha) m + alpha z``
    at observed steps, run along each phase of the season separately: the series is
    laid out *phase-major*, one row per (series, phase) and one step per season, so
    that a unit's state is the exponentially weighted average of the values seen at
    its phase (``alpha = 1``: the last one). Its outputs, mapped back to the time
    axis, are the *memories*: at each step, the memory of that step's phase.

Laying a block out phase-major pads it with unobserved steps to whole seasons; a
season split between two blocks becomes two steps, each observing only its own
phases, and unobserved steps are the identity, so any chunking gives the same
memories.
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
from ..labelled import run as run_model
from ..model import Model
from .checks import check_int

__all__ = ["Reservoir", "ReservoirRun", "ReservoirState"]

# Gate pre-activation that counts as fully open (sigmoid(40) is 1 in float64), and
# the weight on `observed` that shuts any gate at an unobserved step.
_OPEN = 40.0
_SHUT = 2 * _OPEN


#: The reservoir's state between runs: the level model's packed states ``(series,
#: layer, state_unit)`` and the seasonal model's ``(series * season, 1, n_memories)``,
#: as :func:`rnncore.run` gives and takes them.
ReservoirState = tuple[Any, Any]


@dataclass(frozen=True)
class ReservoirRun:
    """The lazy outputs of :meth:`Reservoir.run` over ``(series, time)`` scaled values.

    Attributes
    ----------
    units
        ``(series, time, n_units)``, chunked like the input.
    memories
        ``(series, time, n_memories)``: the memories of each step's phase.
    state
        The :data:`ReservoirState` after the last step, to start a later run from.
    """

    units: da.Array
    memories: da.Array
    state: ReservoirState


@dataclass(frozen=True)
class Reservoir:
    """Settings of the fixed reservoir; :attr:`model` and :attr:`seasonal_model` build it.

    Parameters
    ----------
    season
        Steps per season (24 for hourly data).
    n_levels
        Exponential moving averages of ``z``.
    seasonal_alphas
        Weights of the seasonal memories, each in ``(0, 1]``.
    n_gated
        Randomly weighted gated units.
    timescales
        ``(shortest, longest)`` timescale in steps of the moving averages and the
        gated units; ``None`` for ``(season, 14 * season)`` (at least ``(4, 56)``).
    seed
        Seed of the gated units' weights.

    Examples
    --------
    >>> reservoir = Reservoir(season=24, n_levels=4, n_gated=2)
    >>> reservoir.n_units, reservoir.n_memories, reservoir.unit_names[-1]
    (6, 2, 'gated1')
    """

    season: int
    n_levels: int = 8
    seasonal_alphas: tuple[float, ...] = (1.0, 0.25)
    n_gated: int = 8
    timescales: tuple[float, float] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("season", "n_levels", "n_gated", "seed"):
            check_int(name, getattr(self, name), 1 if name == "season" else 0)
        object.__setattr__(self, "seasonal_alphas", tuple(float(a) for a in self.seasonal_alphas))
        if not self.seasonal_alphas or any(not 0 < a <= 1 for a in self.seasonal_alphas):
            raise ValueError(
                f"seasonal_alphas must be one or more numbers in (0, 1]; got {self.seasonal_alphas}"
            )
        low, high = self.span
        if not 0 < low <= high:
            raise ValueError(f"timescales must satisfy 0 < shortest <= longest; got {self.span}")
        if self.n_units == 0:
            raise ValueError("the reservoir needs at least one unit: give n_levels or n_gated")

    @property
    def span(self) -> tuple[float, float]:
        """``(shortest, longest)`` timescale, the default filled in."""
        if self.timescales is None:
            return float(max(self.season, 4)), 14.0 * max(self.season, 4)
        low, high = self.timescales
        return float(low), float(high)

    @property
    def n_units(self) -> int:
        """Outputs of the level model."""
        return self.n_levels + self.n_gated

    @property
    def n_memories(self) -> int:
        """Outputs of the seasonal model."""
        return len(self.seasonal_alphas)

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
            "seasonal_alphas": list(self.seasonal_alphas),
            "n_gated": int(self.n_gated),
            "timescales": None if self.timescales is None else list(self.span),
            "seed": int(self.seed),
        }

    def fingerprint(self) -> str:
        """The fingerprints of both models, joined."""
        return f"{self.model.fingerprint()}:{self.seasonal_model.fingerprint()}"

    @cached_property
    def model(self) -> Model:
        """The level model: moving averages and gated units (float64)."""
        return Model([self._levels_layer(), self._gated_layer()])

    @cached_property
    def seasonal_model(self) -> Model:
        """The seasonal model, run phase-major (float64)."""
        n = self.n_memories
        gate = np.zeros((n, 2))
        gate[:, 1] = _SHUT
        bias = np.array([_OPEN if a == 1 else math.log(a / (1 - a)) for a in self.seasonal_alphas])
        cand = np.zeros((n, 2))
        cand[:, 0] = 1.0
        return Model(
            [
                MinGRU(
                    {
                        "weight": np.concatenate([gate, cand]),
                        "bias": np.concatenate([bias - _SHUT, np.zeros(n)]),
                    }
                )
            ]
        )

    def run(
        self,
        z: da.Array,
        first_phase: int,
        state: ReservoirState | None = None,
        method: str = "sequential",
    ) -> ReservoirRun:
        """Run both models over scaled values ``z`` ``(series, time)``.

        Parameters
        ----------
        z
            Dask array, NaN where missing.
        first_phase
            The phase of the first step (see :func:`~rnncore.forecast.timeaxis.phase`).
        state
            The state to start from, as :attr:`ReservoirRun.state` of the run over the
            steps just before (computed); ``None`` for zeros.
        method
            How :func:`rnncore.run` joins time chunks: ``"sequential"`` (states
            carried chunk to chunk: one pass) or ``"parallel"`` (summaries stitched
            by a prefix tree: every chunk at once, about two passes). Both are exact.
        """
        levels_h0, seasonal_h0 = (None, None) if state is None else state
        x = da.map_blocks(_with_observed, z, new_axis=2, chunks=(*z.chunks, (2,)), dtype=float)
        levels = run_model(self.model, _array(x), h0=levels_h0, method=method)
        m = self.season
        starts = np.cumsum((0, *z.chunks[1]))[:-1]
        phases = (first_phase + starts) % m
        days = tuple(-(-(int(p) + n) // m) for p, n in zip(phases, z.chunks[1], strict=True))
        laid_out = da.map_blocks(
            _phase_major,
            x,
            m,
            first_phase,
            chunks=(tuple(n * m for n in z.chunks[0]), days, (2,)),
            dtype=np.float64,
        )
        seasonal = run_model(self.seasonal_model, _array(laid_out), h0=seasonal_h0, method=method)
        memories = da.map_blocks(
            _time_major,
            seasonal.output.data,
            m,
            first_phase,
            chunks=(*z.chunks, (self.n_memories,)),
            dtype=np.float64,
        )
        return ReservoirRun(levels.output.data, memories, (levels.state.data, seasonal.state.data))

    def final_units(self, state: ReservoirState) -> np.ndarray:
        """The units ``(series, n_units)`` held in a computed ``state``."""
        return state[0][:, -1, : self.n_units]

    def final_memories(self, state: ReservoirState) -> np.ndarray:
        """Every phase's memories ``(series, season, n_memories)`` in a computed ``state``."""
        seasonal = state[1]
        return seasonal[:, 0, :].reshape(seasonal.shape[0] // self.season, self.season, -1)

    # -- the layers ---------------------------------------------------------------------

    def _level_timescales(self) -> np.ndarray:
        return np.geomspace(*self.span, self.n_levels)

    def _levels_layer(self) -> MinGRU:
        """Moving averages of ``z``, then ``z`` and ``observed`` passed through."""
        n = self.n_levels
        rate = -np.expm1(-1.0 / self._level_timescales())  # 1 - decay
        gate = np.zeros((n + 2, 2))
        gate[:n, 1] = _SHUT
        gate_bias = np.concatenate([np.log(rate / (1 - rate)) - _SHUT, [_OPEN, _OPEN]])
        cand = np.zeros((n + 2, 2))
        cand[:n, 0] = 1.0
        cand[n:] = np.eye(2)
        return MinGRU(
            {
                "weight": np.concatenate([gate, cand]),
                "bias": np.concatenate([gate_bias, np.zeros(n + 2)]),
            }
        )

    def _gated_layer(self) -> MinGRU:
        """The moving averages passed through, then the gated units."""
        n, inputs = self.n_levels, self.n_levels + 2
        gate, gate_bias = np.zeros((self.n_units, inputs)), np.zeros(self.n_units)
        cand = np.zeros((self.n_units, inputs))
        gate_bias[:n] = _OPEN
        cand[:n, :n] = np.eye(n)
        rng = np.random.default_rng(self.seed)
        bound = 1.0 / math.sqrt(n + 1)
        gate[n:, : n + 1] = rng.normal(0.0, bound, (self.n_gated, n + 1))
        cand[n:, : n + 1] = rng.normal(0.0, bound, (self.n_gated, n + 1))
        gate[n:, n + 1] = _SHUT
        tau = np.geomspace(*self.span, self.n_gated)
        gate_bias[n:] = -np.log(np.maximum(tau - 1, math.exp(-_OPEN))) - _SHUT  # logit(1 / tau)
        return MinGRU(
            {
                "weight": np.concatenate([gate, cand]),
                "bias": np.concatenate([gate_bias, np.zeros(self.n_units)]),
            }
        )


def _with_observed(z: np.ndarray) -> np.ndarray:
    """``(z, observed)`` on a new last axis, ``z`` set to 0 where it is missing."""
    observed = np.isfinite(z)
    return np.stack([np.where(observed, z, 0.0), observed.astype(np.float64)], axis=-1)


def _array(x: da.Array) -> xr.DataArray:
    return xr.DataArray(x, dims=("series", "time", "reservoir_input"))


def _phase_major(
    x: np.ndarray, season: int, first_phase: int, block_info: dict | None = None
) -> np.ndarray:
    """A block ``(series, time, 2)`` as ``(series * season, seasons, 2)``, padded with
    unobserved steps."""
    start = block_info[0]["array-location"][1][0]
    lead = (first_phase + start) % season
    n_series, n_times, width = x.shape
    n_days = -(-(lead + n_times) // season)
    padded = np.zeros((n_series, n_days * season, width))
    padded[:, lead : lead + n_times] = x
    by_phase = padded.reshape(n_series, n_days, season, width).transpose(0, 2, 1, 3)
    return by_phase.reshape(-1, n_days, width)


def _time_major(
    out: np.ndarray, season: int, first_phase: int, block_info: dict | None = None
) -> np.ndarray:
    """Invert :func:`_phase_major` for outputs ``(series * season, seasons, units)``."""
    start, stop = block_info[None]["array-location"][1]
    lead = (first_phase + start) % season
    n_rows, n_days, n_units = out.shape
    by_time = out.reshape(n_rows // season, season, n_days, n_units).transpose(0, 2, 1, 3)
    by_time = by_time.reshape(n_rows // season, n_days * season, n_units)
    return by_time[:, lead : lead + stop - start]

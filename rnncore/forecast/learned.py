"""The forecaster's learned encoder: the reservoir with its gated units trained.

:class:`LearnedEncoder` is a :class:`~rnncore.forecast.reservoir.Reservoir` whose
gated layer holds trained weights instead of random ones; everything downstream
(features, ridge readout, intervals, saving) treats it as the reservoir.
:func:`fit_encoder` trains it on the forecaster's own scaled training series: the
gated units (a MinGRU layer reading the fixed moving averages and ``z``, started
from the reservoir's random weights) and a linear head reading them, by Adam
(:func:`rnncore.train`, exact gradients through the scan), on the masked mean
squared error of the ``horizon`` steps ahead as corrections to the seasonal-naive
forecast (the ridge readout's targets, in scaled units). The moving averages, the
pass-through units and the gates' weight on ``observed`` (which shuts them at a
missing step) keep their fixed weights (the last by a gradient mask), so the units
mean what they meant; the head is dropped, the ridge readout reads the units.

Training reads only the data given to the fit, a seeded sample of at most
:data:`MAX_SERIES` series over their last :data:`MAX_STEPS` steps, and is the same
for the same data and seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from ..cells import MinGRU
from ..grad import value_and_grad
from ..model import Model
from ..readout import Readout
from ..training import train
from .reservoir import Reservoir, _with_observed

__all__ = ["MAX_SERIES", "MAX_STEPS", "LearnedEncoder", "fit_encoder"]

#: Most series and trailing steps of the training data the encoder is trained on.
MAX_SERIES, MAX_STEPS = 32, 2048
#: Adam's passes over the sampled series, steps per window (truncated
#: backpropagation) and learning rate.
EPOCHS, WINDOW, LEARNING_RATE = 10, 256, 0.01
#: The gated units the learned encoder trains when ``n_gated`` is not given.
DEFAULT_GATED = 16


@dataclass(frozen=True)
class LearnedEncoder(Reservoir):
    """A reservoir whose gated layer's weights were trained (:func:`fit_encoder`).

    Parameters
    ----------
    season, n_levels, n_gated, timescales, seed
        As :class:`~rnncore.forecast.reservoir.Reservoir`'s.
    weights
        The gated layer's ``weight`` ``(2 * width, 2 * n_levels + 2)`` and ``bias``
        ``(2 * width,)``, ``width = 2 * n_levels + n_gated`` (MinGRU's layout);
        ``None`` for the reservoir's random ones. Compared by :meth:`fingerprint`,
        not by ``==``.
    """

    weights: dict[str, np.ndarray] | None = field(default=None, compare=False, repr=False)

    def arrays(self) -> dict[str, np.ndarray]:
        """The gated layer's weights, keyed ``encoder.weight`` and ``encoder.bias``."""
        return {f"encoder.{name}": value for name, value in self._gated_layer().params.items()}

    @classmethod
    def from_arrays(cls, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> LearnedEncoder:
        """The encoder of settings ``config`` (:meth:`config`) and :meth:`arrays`.

        Raises
        ------
        KeyError
            If an array is missing.
        ValueError
            If the arrays do not fit the settings.
        """
        weights = {name: arrays[f"encoder.{name}"] for name in ("weight", "bias")}
        encoder = cls(**config, weights=weights)
        encoder.model  # noqa: B018  (builds the layers: checks the arrays' shapes)
        return encoder

    def _gated_layer(self) -> MinGRU:
        if self.weights is None:
            return super()._gated_layer()
        width, inputs = 2 * self.n_levels + self.n_gated, 2 * self.n_levels + 2
        weight, bias = (np.asarray(self.weights[k], np.float64) for k in ("weight", "bias"))
        if weight.shape != (2 * width, inputs) or bias.shape != (2 * width,):
            raise ValueError(
                f"the gated layer's weights have shapes {weight.shape} and {bias.shape}; "
                f"the settings imply {(2 * width, inputs)} and {(2 * width,)}"
            )
        return MinGRU({"weight": weight, "bias": bias})


def fit_encoder(reservoir: Reservoir, z: da.Array, horizon: int, seed: int) -> LearnedEncoder:
    """Train the gated units of ``reservoir`` on scaled series ``z``.

    The moving averages are fixed, so they are computed once; the gated units and
    a linear head reading them are trained on them as a model of their own.

    Parameters
    ----------
    reservoir
        The settings and starting weights (it needs ``n_gated`` >= 1).
    z
        The scaled training values ``(series, time)``, NaN where missing.
    horizon
        Steps ahead of the loss.
    seed
        Draws the series sample, the head's first weights and the batches.

    Returns
    -------
    LearnedEncoder
        ``reservoir`` with the trained gated layer.
    """
    if reservoir.n_gated < 1:
        raise ValueError("the learned encoder trains gated units; it needs n_gated >= 1")
    rng = np.random.default_rng([seed, 7])
    n_series, n_steps = z.shape
    sample = np.sort(rng.permutation(n_series)[:MAX_SERIES])
    values = np.asarray(z[sample, max(0, n_steps - MAX_STEPS) :].compute(), np.float64)
    levels, layer = reservoir.model.layers
    inputs, _ = levels(np.moveaxis(_with_observed(values), 1, 0))  # (time, series, 2n + 2)
    rows = _gated_rows(reservoir)
    params = layer.params
    gated = MinGRU({"weight": params["weight"][rows], "bias": params["bias"][rows]})
    g = reservoir.n_gated
    head = Readout(rng.normal(0.0, 0.1 / np.sqrt(g), (horizon, g)), np.zeros(horizon))
    observed = np.ones(gated.params["weight"].shape, bool)
    observed[:g, -1] = False  # the gates' weight on `observed` shuts them at a gap
    result = train(
        Model([gated], head),
        xr.DataArray(inputs, dims=("time", "series", "encoder_input")),
        xr.DataArray(_targets(values, reservoir.season, horizon), dims=("series", "time", "step")),
        epochs=EPOCHS,
        batch_series=MAX_SERIES,
        window=WINDOW,
        lr=LEARNING_RATE,
        seed=seed,
        validation=None,
        progress=False,
        grad_fn=lambda *args, **kwargs: _masked(observed, *value_and_grad(*args, **kwargs)),
    )
    trained = result.model.layers[0].params
    weights = {name: np.array(params[name], np.float64) for name in ("weight", "bias")}
    for name in weights:
        weights[name][rows] = trained[name]
    return LearnedEncoder(
        **{f.name: getattr(reservoir, f.name) for f in fields(Reservoir)}, weights=weights
    )


def _targets(z: np.ndarray, season: int, horizon: int) -> np.ndarray:
    """``(series, time, horizon)``: ``z_{t+h}`` less its seasonal-naive forecast from
    ``t``, ``z_{t+h-m*ceil(h/m)}``; NaN where either is unknown."""
    n_series, n_steps = z.shape
    before = season * -(-horizon // season)  # the furthest a baseline looks back
    padded = np.full((n_series, before + n_steps + horizon), np.nan)
    padded[:, before : before + n_steps] = z
    t = before + np.arange(n_steps)
    out = np.empty((n_series, n_steps, horizon))
    for h in range(1, horizon + 1):
        out[:, :, h - 1] = padded[:, t + h] - padded[:, t + h - season * -(-h // season)]
    return out


def _gated_rows(reservoir: Reservoir) -> np.ndarray:
    """The gated units' rows of the gated layer's parameters: gates, then candidates."""
    n, width = reservoir.n_levels, reservoir.model.layers[1].hidden_size
    return np.r_[2 * n : width, width + 2 * n : 2 * width]


def _masked(
    trainable: np.ndarray, loss: float, grads: dict[str, Any]
) -> tuple[float, dict[str, Any]]:
    """The loss, and the gradients, the layer's weights' zeroed where ``trainable``
    is False (the frozen weights)."""
    key = "layers.0.weight"
    return loss, grads | {key: np.where(trainable, grads[key], 0.0)}

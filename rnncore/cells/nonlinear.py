"""Cells nonlinear in their state, with PyTorch's equations, gate order and names.

``Elman``, ``GRU`` and ``LSTM`` match ``torch.nn.RNN`` (tanh), ``torch.nn.GRU`` and
``torch.nn.LSTM`` layer for layer: the parameters are ``weight_ih_l0``,
``weight_hh_l0``, ``bias_ih_l0`` and ``bias_hh_l0`` with PyTorch's shapes and gate
order (GRU ``r, z, n``; LSTM ``i, f, g, o``), so a trained PyTorch state dict,
converted to NumPy, loads as is (:meth:`rnncore.Model.from_torch` for several layers).

Their state must be carried step by step; the input projections of all steps are
computed at once, outside the loop.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Mapping
from types import ModuleType
from typing import Any, Self

import numpy as np

from ..activations import sigmoid
from ..arrays import may_hold_any
from .base import Cell, State, fan_in_bound, uniform

__all__ = ["GRU", "LSTM", "Elman", "NonlinearCell", "torch_layers"]

Params = dict[str, Any]
_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
_LAYER_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)$")


def torch_layers(mapping: Mapping[str, Any]) -> list[int]:
    """The layer indices present in a PyTorch-style recurrent state dict.

    Examples
    --------
    >>> torch_layers({"weight_ih_l0": 0, "weight_ih_l1": 0, "bias_ih_l1": 0})
    [0, 1]
    """
    return sorted({int(m.group(2)) for k in mapping if (m := _LAYER_KEY.match(k))})


class NonlinearCell(Cell):
    """A recurrent layer ``state_t = step(x_t, state_{t-1})`` with a nonlinear step."""

    weight_name = "weight_ih"

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        rows, h = self.n_blocks * self.hidden_size, self.hidden_size
        return {
            "weight_ih": (rows, self.input_size),
            "weight_hh": (rows, h),
            "bias_ih": (rows,),
            "bias_hh": (rows,),
        }

    @classmethod
    def _init_params(
        cls, rng: np.random.Generator, input_size: int, hidden_size: int, **options: Any
    ) -> dict[str, np.ndarray]:
        bound, rows = fan_in_bound(hidden_size), cls.n_blocks * hidden_size
        return {
            "weight_ih": uniform(rng, bound, (rows, input_size)),
            "weight_hh": uniform(rng, bound, (rows, hidden_size)),
            "bias_ih": uniform(rng, bound, (rows,)),
            "bias_hh": uniform(rng, bound, (rows,)),
        }

    def state_dict(self) -> dict[str, np.ndarray]:
        """The parameters under PyTorch's names (``weight_ih_l0``, ...)."""
        return {f"{k}_l0": v.copy() for k, v in self.params.items()}

    @classmethod
    def from_state_dict(
        cls, mapping: Mapping[str, Any], *, layer: int | None = None, **options: Any
    ) -> Self:
        """Build the cell from a PyTorch-style state dict.

        Parameters
        ----------
        mapping
            ``weight_ih_lK``, ``weight_hh_lK`` and, unless the PyTorch layer had
            ``bias=False``, ``bias_ih_lK`` and ``bias_hh_lK`` (arrays or tensors
            converted with ``.numpy()``).
        layer
            Which layer ``K`` to read. ``None`` requires the mapping to hold
            exactly one layer.

        Raises
        ------
        ValueError
            If keys are unknown, missing, or several layers are present and
            ``layer`` is ``None``.
        """
        unknown = sorted(k for k in mapping if not _LAYER_KEY.match(k))
        if unknown:
            raise ValueError(
                f"{cls.__name__} state dict has unexpected keys {unknown}; expected "
                "PyTorch's weight_ih_lK, weight_hh_lK, bias_ih_lK, bias_hh_lK"
            )
        layers = torch_layers(mapping)
        if layer is None:
            if len(layers) > 1:
                raise ValueError(
                    f"{cls.__name__} state dict holds layers {layers}; pass layer=K for "
                    "one of them, or load all with rnncore.Model.from_torch"
                )
            layer = layers[0] if layers else 0
        params = {
            n: np.asarray(mapping[f"{n}_l{layer}"]) for n in _NAMES if f"{n}_l{layer}" in mapping
        }
        if "bias_ih" not in params and "bias_hh" not in params and "weight_ih" in params:
            rows = params["weight_ih"].shape[0]
            params["bias_ih"] = params["bias_hh"] = np.zeros(rows, params["weight_ih"].dtype)
        return cls(params, **options)

    def _reference(self, xp: ModuleType, x: Any, state: State) -> tuple[Any, State]:
        xp, x, missing = self.prepare_input(x)
        p = self.params_for(xp, x.dtype)
        steps, batch = x.shape[:2]
        x_proj = x @ p["weight_ih"].T + p["bias_ih"]
        y = xp.empty((steps, batch, self.hidden_size), x.dtype)
        gaps = may_hold_any(missing)
        for t in range(steps):
            new = self.step(xp, p, x_proj[t], state)
            state = _keep(xp, missing[t], state, new) if gaps else new
            y[t] = self.output(state)
        return xp.where(missing, xp.nan, y), state

    @abstractmethod
    def step(self, xp: ModuleType, p: Params, x_proj: Any, state: State) -> State:
        """One step from the projected input ``x_proj = x_t @ W_ih.T + b_ih``."""

    def output(self, state: State) -> Any:
        """The layer's output ``h`` from its state."""
        return state


def _keep(xp: ModuleType, missing: Any, old: State, new: State) -> State:
    """``old`` where ``missing``, else ``new`` (for a state array or tuple of them)."""
    if isinstance(old, tuple):
        return tuple(xp.where(missing, o, n) for o, n in zip(old, new, strict=True))
    return xp.where(missing, old, new)


class Elman(NonlinearCell):
    """Elman RNN, as ``torch.nn.RNN(nonlinearity='tanh')``.

    ``h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``.

    Examples
    --------
    >>> import numpy as np
    >>> y, h = Elman.init(2, 3)(np.zeros((4, 1, 2), np.float32))
    >>> y.shape, h.shape
    ((4, 1, 3), (1, 3))
    """

    kernel_kind = "elman"

    def step(self, xp: ModuleType, p: Params, x_proj: Any, state: State) -> State:
        return xp.tanh(x_proj + state @ p["weight_hh"].T + p["bias_hh"])


class GRU(NonlinearCell):
    """Gated recurrent unit, as ``torch.nn.GRU`` (gate order ``r, z, n``).

    ``r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)``, ``z`` likewise,
    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) * n + z * h``.
    """

    n_blocks = 3
    kernel_kind = "gru"

    def step(self, xp: ModuleType, p: Params, x_proj: Any, state: State) -> State:
        h = self.hidden_size
        hh = state @ p["weight_hh"].T + p["bias_hh"]
        r = sigmoid(xp, x_proj[:, :h] + hh[:, :h])
        z = sigmoid(xp, x_proj[:, h : 2 * h] + hh[:, h : 2 * h])
        n = xp.tanh(x_proj[:, 2 * h :] + r * hh[:, 2 * h :])
        return n + z * (state - n)


class LSTM(NonlinearCell):
    """Long short-term memory, as ``torch.nn.LSTM`` (gate order ``i, f, g, o``).

    ``c' = f * c + i * g``, ``h' = o * tanh(c')``. The state is the pair ``(h, c)``.
    """

    n_blocks = 4
    state_names = ("h", "c")
    kernel_kind = "lstm"

    def step(self, xp: ModuleType, p: Params, x_proj: Any, state: State) -> State:
        h_prev, c_prev = state
        n = self.hidden_size
        gates = x_proj + h_prev @ p["weight_hh"].T + p["bias_hh"]
        i, f = sigmoid(xp, gates[:, :n]), sigmoid(xp, gates[:, n : 2 * n])
        g, o = xp.tanh(gates[:, 2 * n : 3 * n]), sigmoid(xp, gates[:, 3 * n :])
        c = f * c_prev + i * g
        return o * xp.tanh(c), c

    def output(self, state: State) -> Any:
        return state[0]

"""Cells linear in their state: exactly parallel over time.

Each cell's gates depend on the input only, so a step is the affine map
``c_t = a_t * c_{t-1} + b_t``. A cell exposes that ``(a, b)`` through
:meth:`LinearStateCell.transition` and maps the scanned state to its output with
:meth:`LinearStateCell.emit`; chunk summaries and stitching come from
:mod:`rnncore.scan`, never from per-cell code.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import numpy as np

from .. import kernels
from ..activations import g, log_sigmoid, sigmoid
from ..arrays import may_hold_any
from ..scan import linear_scan, scan_summary
from .base import Cell, State, fan_in_bound, uniform

__all__ = ["QRNN", "DiagonalLinear", "LinearStateCell", "MinGRU", "MinLSTM"]

Params = dict[str, Any]


class LinearStateCell(Cell):
    """A cell whose recurrence is the linear scan ``c_t = a_t * c_{t-1} + b_t``.

    The state carried between steps (and between chunks) is ``c``; the output is
    ``emit(c, x)`` (``c`` itself unless the cell says otherwise).
    """

    linear_state = True

    def transition(self, x: Any) -> tuple[Any, Any]:
        """The decays ``a`` and inputs ``b`` that ``x`` feeds to the scan.

        Parameters
        ----------
        x
            ``(T, B, F)`` inputs; NaN marks a missing step.

        Returns
        -------
        a, b
            ``(T, B, H)`` arrays; a missing step has ``a = 1, b = 0`` (the identity).
        """
        xp, x = self.check_input(x)
        spec = self.kernel_spec(xp, x.dtype)
        if (module := kernels.cell_kernels(xp, spec)) is not None:
            return module.transition(spec, x)
        xp, x, missing = self.prepare_input(x)
        a, b = self._transition(xp, self.params_for(xp, x.dtype), x)
        if may_hold_any(missing):
            a, b = xp.where(missing, 1, a), xp.where(missing, 0, b)
        return a.astype(x.dtype, copy=False), b.astype(x.dtype, copy=False)

    def summary(self, x: Any) -> tuple[Any, Any]:
        """The affine map ``c_end = A * c_start + B`` of this layer over inputs ``x``.

        Equal to ``scan_summary(*self.transition(x))``; the fused kernel computes it
        without storing the gates.

        Parameters
        ----------
        x
            ``(T, B, F)`` inputs; NaN marks a missing step.

        Returns
        -------
        A, B
            ``(B, H)`` arrays: the identity ``(1, 0)`` when ``T = 0``.

        Examples
        --------
        >>> import numpy as np
        >>> from rnncore import MinGRU
        >>> A, B = MinGRU.init(1, 2, seed=0).summary(np.zeros((5, 3, 1)))
        >>> A.shape, B.shape
        ((3, 2), (3, 2))
        """
        xp, x = self.check_input(x)
        spec = self.kernel_spec(xp, x.dtype)
        if (module := kernels.cell_kernels(xp, spec)) is not None:
            return module.summary(spec, x)
        return scan_summary(*self.transition(x))

    def emit(self, c: Any, x: Any) -> Any:
        """Outputs for scanned states ``c`` ``(T, B, H)`` and inputs ``x``; NaN where missing."""
        xp, x = self.check_input(x)
        spec = self.kernel_spec(xp, x.dtype)
        if (module := kernels.cell_kernels(xp, spec)) is not None:
            return module.emit(spec, c, x)
        xp, x, missing = self.prepare_input(x)
        y = self._emit(xp, self.params_for(xp, x.dtype), c, x)
        if may_hold_any(missing):
            y = xp.where(missing, xp.nan, y)
        return y.astype(x.dtype, copy=False)

    def _reference(self, xp: ModuleType, x: Any, state: State) -> tuple[Any, State]:
        a, b = self.transition(x)
        c = linear_scan(a, b, state)
        return self.emit(c, x), (c[-1] if c.shape[0] else state)

    def _kernel_params(self, xp: ModuleType, dtype: np.dtype) -> dict[str, Any]:
        """The parameters, with decays of 1 for cells that have none of their own."""
        p = self.params_for(xp, dtype)
        return p if "decay" in p else {**p, "decay": xp.ones(self.hidden_size, dtype)}

    def projection(self, xp: ModuleType, p: Params, x: Any) -> list[Any]:
        """``x @ weight.T + bias``, split into the cell's ``n_blocks`` gate blocks."""
        u = x @ p["weight"].T + p["bias"]
        h = self.hidden_size
        return [u[..., k * h : (k + 1) * h] for k in range(self.n_blocks)]

    @classmethod
    def _init_params(
        cls, rng: np.random.Generator, input_size: int, hidden_size: int, **options: Any
    ) -> dict[str, np.ndarray]:
        bound, rows = fan_in_bound(input_size), cls.n_blocks * hidden_size
        return {
            "weight": uniform(rng, bound, (rows, input_size)),
            "bias": uniform(rng, bound, (rows,)),
        }

    @abstractmethod
    def _transition(self, xp: ModuleType, p: Params, x: Any) -> tuple[Any, Any]:
        """``(a, b)`` for inputs ``x`` with no missing steps."""

    def _emit(self, xp: ModuleType, p: Params, c: Any, x: Any) -> Any:
        return c


class _CandidateActivation:
    """Mixin for cells whose candidate state may pass through ``g`` (log-space variant)."""

    options: dict[str, Any]

    @classmethod
    def _check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        activation = options.pop("activation", "identity")
        if options:
            raise TypeError(f"{cls.__name__} takes only the option 'activation'; got {options}")
        if activation not in ("identity", "g"):
            raise ValueError(f"activation must be 'identity' or 'g'; got {activation!r}")
        return {"activation": activation}

    def candidate(self, xp: ModuleType, u: Any) -> Any:
        """The candidate state: ``u``, or ``g(u)`` with ``activation='g'``."""
        return g(xp, u) if self.options["activation"] == "g" else u


class MinGRU(_CandidateActivation, LinearStateCell):
    """minGRU (Feng et al. 2024, "Were RNNs All We Needed?").

    ``z_t = sigmoid(W_z x_t + b_z)``, ``h~_t = W_h x_t + b_h``,
    ``h_t = (1 - z_t) * h_{t-1} + z_t * h~_t``. With ``activation='g'`` the
    candidate is ``g(h~_t)``, as in the paper's log-space variant (which computes
    the same recurrence with positive states).

    Parameters: ``weight`` ``(2H, F)`` with rows ``[z; h]``, ``bias`` ``(2H,)``.

    Examples
    --------
    >>> import numpy as np
    >>> cell = MinGRU.init(1, 4, seed=0)
    >>> y, h = cell(np.ones((5, 2, 1), np.float32))
    >>> y.shape, h.shape
    ((5, 2, 4), (2, 4))
    """

    n_blocks = 2
    kernel_kind = "mingru"

    def _transition(self, xp: ModuleType, p: Params, x: Any) -> tuple[Any, Any]:
        uz, uh = self.projection(xp, p, x)
        return sigmoid(xp, -uz), sigmoid(xp, uz) * self.candidate(xp, uh)


class MinLSTM(_CandidateActivation, LinearStateCell):
    """minLSTM (Feng et al. 2024).

    ``f_t = sigmoid(W_f x_t + b_f)``, ``i_t = sigmoid(W_i x_t + b_i)``, normalised
    ``f'_t = f_t / (f_t + i_t)`` and ``i'_t = i_t / (f_t + i_t)``,
    ``h_t = f'_t * h_{t-1} + i'_t * h~_t`` with ``h~_t = W_h x_t + b_h``
    (``g`` of it with ``activation='g'``). The normalisation is computed as
    ``f' = sigmoid(log f - log i)``, exact where ``f`` and ``i`` underflow.

    Parameters: ``weight`` ``(3H, F)`` with rows ``[f; i; h]``, ``bias`` ``(3H,)``.
    """

    n_blocks = 3
    kernel_kind = "minlstm"

    def _transition(self, xp: ModuleType, p: Params, x: Any) -> tuple[Any, Any]:
        uf, ui, uh = self.projection(xp, p, x)
        log_ratio = log_sigmoid(xp, uf) - log_sigmoid(xp, ui)
        return sigmoid(xp, log_ratio), sigmoid(xp, -log_ratio) * self.candidate(xp, uh)


class QRNN(LinearStateCell):
    """Quasi-recurrent layer with f-pooling (Bradbury et al. 2017), window width 1.

    ``z_t = tanh(W_z x_t + b_z)``, ``f_t = sigmoid(W_f x_t + b_f)``,
    ``o_t = sigmoid(W_o x_t + b_o)``; ``c_t = f_t * c_{t-1} + (1 - f_t) * z_t`` and
    ``h_t = o_t * c_t``. The carried state is ``c``; outputs are ``h``.

    Parameters: ``weight`` ``(3H, F)`` with rows ``[z; f; o]``, ``bias`` ``(3H,)``.
    """

    n_blocks = 3
    state_names = ("c",)
    kernel_kind = "qrnn"

    def _transition(self, xp: ModuleType, p: Params, x: Any) -> tuple[Any, Any]:
        uz, uf, _ = self.projection(xp, p, x)
        return sigmoid(xp, uf), sigmoid(xp, -uf) * xp.tanh(uz)

    def _emit(self, xp: ModuleType, p: Params, c: Any, x: Any) -> Any:
        return sigmoid(xp, self.projection(xp, p, x)[2]) * c


class DiagonalLinear(LinearStateCell):
    """Diagonal linear RNN: ``h_t = decay * h_{t-1} + W x_t + b``, ``0 < decay < 1``.

    A bank of exponential memories. :meth:`init` spreads the decays over
    ``timescales`` (in steps, log-spaced: ``decay = exp(-1 / tau)``) and scales
    each unit's input weights by ``1 - decay``, so every unit is a moving average.

    Parameters: ``weight`` ``(H, F)``, ``bias`` ``(H,)``, ``decay`` ``(H,)``.

    Examples
    --------
    >>> cell = DiagonalLinear.init(1, 3, timescales=(1.0, 100.0), dtype="float64")
    >>> cell.params["decay"].round(3)
    array([0.368, 0.905, 0.99 ])
    """

    init_only = ("timescales",)
    kernel_kind = "diagonal"

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {**super().param_shapes(), "decay": (self.hidden_size,)}

    def feasible(self, state: Mapping[str, Any]) -> dict[str, Any]:
        """``state`` with its decays clipped into ``(0, 1)``, to the nearest floats inside."""
        decay = np.asarray(state["decay"])
        one = decay.dtype.type(1)
        inside = np.clip(decay, np.finfo(decay.dtype).tiny, np.nextafter(one, 0 * one))
        return {**state, "decay": inside}

    def _check_params(self, params: Any) -> dict[str, np.ndarray]:
        checked = super()._check_params(params)
        decay = checked["decay"]
        if not ((decay > 0) & (decay < 1)).all():
            raise ValueError(
                f"DiagonalLinear.decay must lie strictly between 0 and 1; "
                f"got values in [{decay.min()}, {decay.max()}]"
            )
        return checked

    @classmethod
    def _init_params(
        cls,
        rng: np.random.Generator,
        input_size: int,
        hidden_size: int,
        timescales: tuple[float, float] = (1.0, 1000.0),
        **options: Any,
    ) -> dict[str, np.ndarray]:
        low, high = timescales
        if not 0 < low <= high:
            raise ValueError(f"timescales must satisfy 0 < low <= high; got {timescales}")
        decay = np.exp(-1.0 / np.geomspace(low, high, hidden_size))
        weight = uniform(rng, fan_in_bound(input_size), (hidden_size, input_size))
        return {
            "weight": weight * (1 - decay)[:, None],
            "bias": np.zeros(hidden_size),
            "decay": decay,
        }

    def _transition(self, xp: ModuleType, p: Params, x: Any) -> tuple[Any, Any]:
        (u,) = self.projection(xp, p, x)
        return xp.broadcast_to(p["decay"], u.shape), u

"""Reverse-mode gradients of one recurrent layer: its vector-Jacobian product.

Linear-state cells are differentiated through their three stages in reverse: the
output's cotangent goes through ``emit`` to the states ``c``, through the scan by
:func:`~rnncore.grad.scan.linear_scan_vjp` (the adjoint is itself a reversed scan) to
the decays and inputs ``(a, b)``, and through the cell's gates to its input projection
``u = x @ weight.T + bias``, from which the weight, bias and input gradients follow by
one matrix product each. Nonlinear cells (PyTorch's ``Elman``, ``GRU``, ``LSTM``) are
differentiated by backpropagation through time: the forward states are stored, and
the state's cotangent is carried back step by step (it is linear in that cotangent).

A missing step (NaN in ``x``) is the identity: its output's cotangent is ignored, no
gradient reaches ``x`` or the parameters from it, and the state's cotangent passes
through unchanged. Everything is written against the array namespace of ``x``.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple

from .. import kernels
from ..activations import g, log_sigmoid, sigmoid
from ..arrays import namespace
from ..cells import (
    GRU,
    LSTM,
    QRNN,
    Cell,
    DiagonalLinear,
    Elman,
    LinearStateCell,
    MinGRU,
    MinLSTM,
    NonlinearCell,
    State,
)
from ..readout import Readout
from ..scan import linear_scan
from .scan import linear_scan_vjp

__all__ = ["CellGradients", "cell_forward", "cell_vjp", "fused_readout_vjp", "takes_readout"]

Params = dict[str, Any]
Parts = tuple[Any, ...]


class CellGradients(NamedTuple):
    """The gradients of one layer.

    Attributes
    ----------
    params
        By parameter name, keyed as :meth:`rnncore.Cell.state_dict` keys them.
    x
        ``(T, B, F)``: zero at missing steps.
    h0
        Of the cell's state (LSTM: the pair ``(h, c)``).
    """

    params: dict[str, Any]
    x: Any
    h0: State


def cell_forward(
    cell: Cell, x: Any, h0: State = None, readout: Readout | None = None
) -> tuple[Any, State, Any]:
    """One layer's forward pass, keeping what :func:`cell_vjp` can reuse.

    Parameters
    ----------
    cell
        Any of rnncore's cells.
    x, h0
        As for :meth:`rnncore.Cell.__call__`.
    readout
        Applied to the outputs, if given; only where :func:`takes_readout` holds, so
        that :func:`fused_readout_vjp` can differentiate it from the tape.

    Returns
    -------
    y, state
        As :meth:`rnncore.Cell.run` returns them.
    tape
        For ``cell_vjp(..., tape=tape)`` (or :func:`fused_readout_vjp`): what a cell
        on the fused backward kernels keeps of its forward pass (the steps a
        nonlinear cell records, :mod:`rnncore.kernels.nonlinear_vjp`; a linear-state
        cell's state at the start of every tile, :mod:`rnncore.kernels.linear_vjp`);
        ``None`` for any other cell or path, whose :func:`cell_vjp` recomputes what
        it needs.
    """
    xp, x = cell.check_input(x)
    spec = cell.kernel_spec(xp, x.dtype)
    if readout is not None and not takes_readout(cell, x):
        raise ValueError(f"{type(cell).__name__}'s backward pass here takes no readout")
    state0 = cell.prepare_state(xp, h0, x.shape[1], x.dtype)
    if isinstance(cell, NonlinearCell) and (fused := kernels.nonlinear_vjp_kernels(xp, spec)):
        return fused.forward(spec, x, state0)
    if (module := kernels.linear_vjp_kernels(xp, spec)) is not None and x.shape[0] > 0:
        arrays = None if readout is None else readout.arrays(xp, x.dtype)
        return module.forward(spec, x, state0, arrays)
    return *cell(x, h0), None


def takes_readout(cell: Cell, x: Any) -> bool:
    """True where a fused kernel differentiates ``cell`` over ``x`` and a readout together.

    Then :func:`cell_forward` may apply a readout and :func:`fused_readout_vjp` returns
    the gradients of both: the top layer's outputs are never stored.
    """
    xp, x = cell.check_input(x)
    spec = cell.kernel_spec(xp, x.dtype)
    return kernels.linear_vjp_kernels(xp, spec) is not None and x.shape[0] > 0


def cell_vjp(
    cell: Cell,
    x: Any,
    grad_y: Any,
    h0: State = None,
    grad_state: State = None,
    tape: Any = None,
) -> CellGradients:
    """Gradients of one layer's outputs and final state, pulled back from their cotangents.

    For a scalar ``L`` of the outputs ``y, state = cell(x, h0)``, given
    ``grad_y = dL/dy`` and ``grad_state = dL/dstate``, returns ``dL/dparams``,
    ``dL/dx`` and ``dL/dh0``.

    Parameters
    ----------
    cell
        Any of rnncore's cells.
    x, h0
        As for :meth:`rnncore.Cell.__call__`.
    grad_y
        ``(T, B, H)``: the cotangent of the outputs; ignored at missing steps (it may
        be NaN there, as the outputs are).
    grad_state
        The cotangent of the final state (LSTM: a pair); zeros if ``None``.
    tape
        What :func:`cell_forward` kept of the forward pass on the same ``x`` and
        ``h0``, if it was run: then not recomputed.

    Returns
    -------
    CellGradients
        In the dtype of ``x`` (as the forward pass computes).

    Examples
    --------
    >>> import numpy as np
    >>> from rnncore import MinGRU
    >>> cell = MinGRU.init(1, 2, dtype=np.float64)
    >>> grads = cell_vjp(cell, np.ones((5, 3, 1)), np.ones((5, 3, 2)))
    >>> sorted(grads.params), grads.x.shape, grads.h0.shape
    (['bias', 'weight'], (5, 3, 1), (3, 2))
    """
    xp, x = cell.check_input(x)
    grad_y = xp.asarray(grad_y, dtype=x.dtype)
    expected = (*x.shape[:2], cell.hidden_size)
    if grad_y.shape != expected:
        raise ValueError(f"grad_y has shape {grad_y.shape}; expected (T, B, H) = {expected}")
    state0 = cell.prepare_state(xp, h0, x.shape[1], x.dtype)
    grad_state = cell.prepare_state(xp, grad_state, x.shape[1], x.dtype)
    if x.shape[0] == 0:
        params = {k: xp.zeros(v.shape, x.dtype) for k, v in cell.params.items()}
        grad_x, grad_h0 = xp.zeros_like(x), grad_state
    elif isinstance(cell, LinearStateCell):
        params, grad_x, grad_h0 = _linear_vjp(cell, x, grad_y, state0, grad_state, tape)
    else:
        params, grad_x, grad_h0 = _nonlinear_vjp(cell, x, grad_y, state0, grad_state, tape)
    names = {k: f"{k}_l0" if isinstance(cell, NonlinearCell) else k for k in params}
    return CellGradients({names[k]: v for k, v in params.items()}, grad_x, grad_h0)


def fused_readout_vjp(
    cell: Cell,
    readout: Readout,
    x: Any,
    grad_out: Any,
    h0: State = None,
    grad_state: State = None,
    tape: Any = None,
) -> tuple[CellGradients, Any, Any] | None:
    """A top layer's and its readout's gradients in one fused pass, where a kernel takes them.

    As :func:`cell_vjp` for ``cell``, but from ``grad_out`` ``(T, B, outputs)``, the
    cotangent of ``readout(cell(x, h0)[0])`` (ignored at missing steps): the fused
    backward kernel of the linear-state cells pulls it back through the readout as it
    goes, so the cotangent of the cell's outputs is never stored.

    Returns
    -------
    tuple or None
        The cell's :class:`CellGradients` and the gradients of the readout's weight
        and bias; ``None`` where no fused kernel applies (:func:`takes_readout`; then
        :func:`cell_vjp` after the readout's own vector-Jacobian product gives the same).
    """
    if not takes_readout(cell, x):
        return None
    xp, x = cell.check_input(x)
    spec = cell.kernel_spec(xp, x.dtype)
    module = kernels.linear_vjp_kernels(xp, spec)
    state0 = cell.prepare_state(xp, h0, x.shape[1], x.dtype)
    grad_state = cell.prepare_state(xp, grad_state, x.shape[1], x.dtype)
    arrays = readout.arrays(xp, x.dtype)
    grad_out = xp.asarray(grad_out, dtype=x.dtype)
    params, grad_x, grad_h0, (weight, bias) = module.linear_vjp(
        spec, x, grad_out, state0, grad_state, arrays, tape
    )
    return CellGradients(params, grad_x, grad_h0), weight, bias


# -- linear-state cells -------------------------------------------------------------


def _linear_vjp(
    cell: LinearStateCell, x: Any, grad_y: Any, h0: Any, grad_state: Any, tape: Any
) -> tuple[Params, Any, Any]:
    """Parameter, input and initial-state gradients of a linear-state cell (``T > 0``).

    The fused kernel (:mod:`rnncore.kernels.linear_vjp`, from ``tape`` if given)
    where one takes ``x``; else the reference path below.
    """
    xp = namespace(x)
    spec = cell.kernel_spec(xp, x.dtype)
    if (module := kernels.linear_vjp_kernels(xp, spec)) is not None:
        return module.linear_vjp(spec, x, grad_y, h0, grad_state, tape=tape)[:3]
    a, b = cell.transition(x)
    xp, x, missing = cell.prepare_input(x)
    p = cell.params_for(xp, x.dtype)
    u = cell.projection(xp, p, x)
    c = linear_scan(a, b, h0)
    grad_c, du_emit = _EMIT.get(type(cell), _emit_identity)(xp, u, c, xp.where(missing, 0, grad_y))
    grad_c[-1] += grad_state
    grad_a, grad_b, grad_h0 = linear_scan_vjp(a, b, grad_c, h0, h=c)
    grad_a, grad_b = xp.where(missing, 0, grad_a), xp.where(missing, 0, grad_b)
    du, extra = _TRANSITION[type(cell)](cell, xp, p, u, grad_a, grad_b)
    du = xp.concatenate(du, axis=-1)
    if du_emit is not None:
        du = du + du_emit
    grad_weight, grad_bias = affine_grads(du, x)
    return {"weight": grad_weight, "bias": grad_bias, **extra}, du @ p["weight"], grad_h0


def affine_grads(du: Any, x: Any) -> tuple[Any, Any]:
    """The weight and bias gradients of ``u = x @ weight.T + bias`` from ``du = dL/du``."""
    flat_du, flat_x = du.reshape(-1, du.shape[-1]), x.reshape(-1, x.shape[-1])
    return flat_du.T @ flat_x, flat_du.sum(axis=0)


def _candidate(cell: LinearStateCell, xp: ModuleType, u: Any) -> tuple[Any, Any]:
    """The candidate state and its derivative: ``(u, 1)``, or ``g(u)`` and ``g'(u)``."""
    if cell.options.get("activation", "identity") == "identity":
        return u, 1
    s = sigmoid(xp, u)
    return g(xp, u), xp.where(u >= 0, 1, s * (1 - s))


def _mingru(cell: MinGRU, xp: ModuleType, p: Params, u: list, ga: Any, gb: Any) -> tuple:
    # a = 1 - z, b = z * cand; dz/du = z (1 - z).
    z = sigmoid(xp, u[0])
    cand, dcand = _candidate(cell, xp, u[1])
    return [z * (1 - z) * (gb * cand - ga), gb * z * dcand], {}


def _minlstm(cell: MinLSTM, xp: ModuleType, p: Params, u: list, ga: Any, gb: Any) -> tuple:
    # r = log sigmoid(uf) - log sigmoid(ui); a = sigmoid(r), b = sigmoid(-r) * cand.
    a = sigmoid(xp, log_sigmoid(xp, u[0]) - log_sigmoid(xp, u[1]))
    cand, dcand = _candidate(cell, xp, u[2])
    dr = a * (1 - a) * (ga - gb * cand)
    return [dr * sigmoid(xp, -u[0]), -dr * sigmoid(xp, -u[1]), gb * (1 - a) * dcand], {}


def _qrnn(cell: QRNN, xp: ModuleType, p: Params, u: list, ga: Any, gb: Any) -> tuple:
    # a = f, b = (1 - f) * tanh(uz).
    f, z = sigmoid(xp, u[1]), xp.tanh(u[0])
    return [gb * (1 - f) * (1 - z * z), f * (1 - f) * (ga - gb * z), xp.zeros_like(u[2])], {}


def _diagonal(cell: DiagonalLinear, xp: ModuleType, p: Params, u: list, ga: Any, gb: Any) -> tuple:
    return [gb], {"decay": ga.sum(axis=(0, 1))}


def _emit_identity(xp: ModuleType, u: list, c: Any, gy: Any) -> tuple[Any, Any]:
    return gy, None


def _qrnn_emit(xp: ModuleType, u: list, c: Any, gy: Any) -> tuple[Any, Any]:
    # y = o * c with o = sigmoid(uo).
    o = sigmoid(xp, u[2])
    du_o = gy * c * o * (1 - o)
    zero = xp.zeros_like(du_o)
    return gy * o, xp.concatenate([zero, zero, du_o], axis=-1)


_TRANSITION: dict[type, Callable[..., tuple[list, Params]]] = {
    MinGRU: _mingru,
    MinLSTM: _minlstm,
    QRNN: _qrnn,
    DiagonalLinear: _diagonal,
}
_EMIT: dict[type, Callable[..., tuple[Any, Any]]] = {QRNN: _qrnn_emit}


# -- nonlinear cells ------------------------------------------------------------------


def _nonlinear_vjp(
    cell: NonlinearCell, x: Any, grad_y: Any, h0: State, grad_state: State, tape: Any
) -> tuple[Params, Any, State]:
    """The same for a nonlinear cell: the states stored, then carried back step by step.

    NumPy inputs take the fused kernels (:mod:`rnncore.kernels.nonlinear_vjp`) when
    numba is selected, from ``tape`` if given.
    """
    xp = namespace(x)
    spec = cell.kernel_spec(xp, x.dtype)
    if (fused := kernels.nonlinear_vjp_kernels(xp, spec)) is not None:
        tape = fused.forward(spec, x, h0)[2] if tape is None else tape
        return fused.backward(tape, cell.prepare_input(x)[1], grad_y, grad_state)
    xp, x, missing = cell.prepare_input(x)
    p = cell.params_for(xp, x.dtype)
    x_proj = x @ p["weight_ih"].T + p["bias_ih"]
    states = [h0]
    for t in range(x.shape[0]):
        new = cell.step(xp, p, x_proj[t], states[-1])
        states.append(_join(_where(xp, missing[t], _parts(states[-1]), _parts(new))))
    rule = _STEP[type(cell)]
    gy = xp.where(missing, 0, grad_y)
    d_proj, d_hh = xp.zeros_like(x_proj), xp.zeros_like(x_proj)
    carried = _parts(grad_state)
    for t in reversed(range(x.shape[0])):
        carried = (carried[0] + gy[t], *carried[1:])
        dp, dh, direct = rule(cell, xp, p, x_proj[t], states[t], carried)
        d_proj[t], d_hh[t] = xp.where(missing[t], 0, dp), xp.where(missing[t], 0, dh)
        back = (direct[0] + dh @ p["weight_hh"], *direct[1:])
        carried = _where(xp, missing[t], carried, back)
    h_prev = xp.stack([_parts(s)[0] for s in states[:-1]])
    grads = dict(zip(("weight_ih", "bias_ih"), affine_grads(d_proj, x), strict=True))
    grads |= dict(zip(("weight_hh", "bias_hh"), affine_grads(d_hh, h_prev), strict=True))
    return grads, d_proj @ p["weight_ih"], _join(carried)


def _parts(state: State) -> Parts:
    return state if isinstance(state, tuple) else (state,)


def _join(parts: Parts) -> State:
    return parts if len(parts) > 1 else parts[0]


def _where(xp: ModuleType, mask: Any, old: Parts, new: Parts) -> Parts:
    return tuple(xp.where(mask, o, n) for o, n in zip(old, new, strict=True))


def _elman_step(cell: Elman, xp: ModuleType, p: Params, x_proj: Any, prev: Any, g: Parts):
    h = cell.step(xp, p, x_proj, prev)
    d = g[0] * (1 - h * h)
    return d, d, (0,)


def _gru_step(cell: GRU, xp: ModuleType, p: Params, x_proj: Any, prev: Any, g: Parts):
    n_h = cell.hidden_size
    hh = prev @ p["weight_hh"].T + p["bias_hh"]
    r = sigmoid(xp, x_proj[:, :n_h] + hh[:, :n_h])
    z = sigmoid(xp, x_proj[:, n_h : 2 * n_h] + hh[:, n_h : 2 * n_h])
    n = xp.tanh(x_proj[:, 2 * n_h :] + r * hh[:, 2 * n_h :])
    (gh,) = g
    dn = gh * (1 - z) * (1 - n * n)
    dr = dn * hh[:, 2 * n_h :] * r * (1 - r)
    dz = gh * (prev - n) * z * (1 - z)
    d_proj = xp.concatenate([dr, dz, dn], axis=1)
    d_hh = xp.concatenate([dr, dz, dn * r], axis=1)
    return d_proj, d_hh, (gh * z,)


def _lstm_step(cell: LSTM, xp: ModuleType, p: Params, x_proj: Any, prev: Parts, g: Parts):
    h_prev, c_prev = prev
    n_h = cell.hidden_size
    gates = x_proj + h_prev @ p["weight_hh"].T + p["bias_hh"]
    i, f = sigmoid(xp, gates[:, :n_h]), sigmoid(xp, gates[:, n_h : 2 * n_h])
    cand, o = xp.tanh(gates[:, 2 * n_h : 3 * n_h]), sigmoid(xp, gates[:, 3 * n_h :])
    tc = xp.tanh(f * c_prev + i * cand)
    gh, gc = g
    dc = gc + gh * o * (1 - tc * tc)
    d = xp.concatenate(
        [
            dc * cand * i * (1 - i),
            dc * c_prev * f * (1 - f),
            dc * i * (1 - cand * cand),
            gh * tc * o * (1 - o),
        ],
        axis=1,
    )
    return d, d, (0, dc * f)


_STEP: dict[type, Callable[..., tuple[Any, Any, Parts]]] = {
    Elman: _elman_step,
    GRU: _gru_step,
    LSTM: _lstm_step,
}

"""Fused backpropagation through time of the nonlinear cells (Elman, GRU, LSTM), for NumPy.

The forward pass is the cells' own kernel (:func:`rnncore.kernels.cells.run_nonlinear`)
recording, per step, the state before it and the gates' activations on a *tape*
(:data:`~rnncore.kernels.cells.TAPE_BLOCKS`). The backward pass is one kernel walking
time in reverse, groups of series in parallel: per step it forms the cotangents of the
gates' pre-activations ``d`` from the tape (no exponential is recomputed), writing them
over the gates, and carries the state's cotangent back through the recurrent product
``d @ W_hh``. What sums over time (the weight, bias and input gradients) is left to
the matrix products of BLAS over all steps at once, as cuDNN and PyTorch do:
``dW_hh = d.T @ h_prev`` and ``dW_ih = d.T @ x`` over ``T * B`` rows.

A missing step (NaN in ``x``) is the identity: its ``d`` is zero, its output's
cotangent is ignored and the state's cotangent passes through unchanged.

The gradients are those of :func:`rnncore.grad.cell_vjp` (whose reference path, the
vectorised array code, the tests hold this to); arithmetic is in the input's dtype,
fusing a multiply and an add into one rounding and summing the recurrent product in
any order.

The tape is the pass's largest array (LSTM: ``6 * H`` numbers a step and series), and
the first writes to freshly mapped memory cost the system about as much as the forward
pass itself, and vary with the machine's state. :func:`backward` therefore hands its
consumed tape's memory to the next :func:`forward` of the same shape and dtype (one
spare at a time, kept until replaced), so that a training loop writes over the same
pages every step.

numba's on-disk cache checks only the file of the function it caches: the kernels here
compile in three helpers of :mod:`rnncore.kernels.cells` (``_like``, a cast,
``_tanh``, LSTM's recomputed ``tanh(c)``, and ``_add_rows_product``, the recurrent
product the forward step shares), which must keep their meaning, or this module be
touched with them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from numba import prange

from . import KINDS
from .cells import SPARE_ROWS, TAPE_BLOCKS, _add_rows_product, _like, _tanh, run_nonlinear
from .interface import KernelSpec

__all__ = ["Tape", "backward", "forward", "supports"]

_ELMAN, _GRU, _LSTM = KINDS["elman"], KINDS["gru"], KINDS["lstm"]

# Series per parallel task, as the forward kernel's.
_GROUP = 16
_JIT = {"nogil": True, "cache": True, "error_model": "numpy", "fastmath": {"contract"}}
_LEAF = {**_JIT, "_nrt": False}
_INLINE = {**_LEAF, "inline": "always"}

# The memory of the last consumed tape, for the next one of its shape and dtype.
_spare: list[np.ndarray] = []
_spare_lock = threading.Lock()


@dataclass(frozen=True)
class Tape:
    """What the forward pass of a nonlinear cell keeps for its backward pass.

    Attributes
    ----------
    spec
        The cell.
    missing
        ``(T, B)`` boolean: the missing steps.
    steps
        ``(T + 1, B, width)``: row ``t`` holds the state before step ``t`` and that
        step's gates (:data:`~rnncore.kernels.cells.TAPE_BLOCKS`); row ``T`` the final
        state.
    """

    spec: KernelSpec
    missing: np.ndarray
    steps: np.ndarray


def supports(spec: KernelSpec) -> bool:
    """True for the nonlinear cells (``elman``, ``gru``, ``lstm``)."""
    return spec.kind in TAPE_BLOCKS


def forward(spec: KernelSpec, x: np.ndarray, state: Any) -> tuple[np.ndarray, Any, Tape]:
    """Run the cell as :func:`rnncore.kernels.cells.run` does, keeping the tape.

    Parameters
    ----------
    spec
        A nonlinear cell (:func:`supports`).
    x
        ``(T, B, F)`` checked float inputs; NaN marks a missing step.
    state
        The initial state: ``(B, H)`` of ``x``'s dtype (LSTM: a pair of them).

    Returns
    -------
    y
        ``(T, B, H)`` outputs, NaN at missing steps.
    state
        The final state.
    tape
        For :func:`backward`.
    """
    steps, batch = x.shape[:2]
    width = len(TAPE_BLOCKS[spec.kind]) * spec.hidden
    tape = _tape_memory((steps + 1, batch, width), x.dtype)
    y = np.empty((steps, batch, spec.hidden), x.dtype)
    final = run_nonlinear(spec, x, state, None, y, tape)
    return y, final, Tape(spec, np.isnan(x).any(axis=2), tape)


def backward(
    tape: Tape, x: np.ndarray, grad_y: np.ndarray, grad_state: Any
) -> tuple[dict[str, np.ndarray], np.ndarray, Any]:
    """The cell's parameter, input and initial-state gradients from its tape.

    The tape is consumed: the gates' cotangents are written over the gates, and its
    memory is then handed to the next :func:`forward` of its shape.

    Parameters
    ----------
    tape
        Of :func:`forward` on ``x``.
    x
        ``(T, B, F)``: the inputs, missing steps set to zero.
    grad_y
        ``(T, B, H)``: the outputs' cotangent (ignored at missing steps).
    grad_state
        The final state's cotangent, as the state (LSTM: a pair).

    Returns
    -------
    params
        ``weight_ih``, ``weight_hh``, ``bias_ih`` and ``bias_hh``.
    grad_x
        ``(T, B, F)``, zero at missing steps.
    grad_h0
        The initial state's cotangent, as the state.
    """
    spec, missing = tape.spec, tape.missing
    steps, batch = missing.shape
    hidden, rows = spec.hidden, spec.params["weight_hh"].shape[0]
    lstm = isinstance(grad_state, tuple)
    lam = np.stack(grad_state if lstm else (grad_state, grad_state))
    lam = np.ascontiguousarray(lam, x.dtype)
    # Where the cotangents go (in units of H): those of the recurrent product, those of
    # the input projection. GRU's candidate takes W_hn h scaled by r, so that the two
    # differ: [dn * r, dr, dz, dn] over [r, z, n, W_hn h + b_hn], the recurrent ones
    # first (W_hh's rows rolled to n, r, z to match), the input ones last.
    hh, ih = _COTANGENTS[spec.kind]
    gru = spec.kind == "gru"
    weight_hh = spec.params["weight_hh"]
    weight_hh = np.roll(weight_hh, hidden, axis=0) if gru else weight_hh
    blocks = tape.steps.reshape(steps + 1, batch, -1, hidden)
    _backward(
        KINDS[spec.kind],
        missing,
        blocks,
        tape.steps[:, :, hh * hidden : hh * hidden + rows],
        np.ascontiguousarray(weight_hh),
        np.ascontiguousarray(grad_y),
        lam,
    )
    flat = tape.steps[:steps].reshape(steps * batch, -1)
    d_hh, d_ih = (flat[:, k * hidden : k * hidden + rows] for k in (hh, ih))
    h_prev, flat_x = flat[:, :hidden], x.reshape(steps * batch, -1)
    ones = np.ones(steps * batch, x.dtype)  # the bias gradients as products: BLAS is faster
    bias_ih = ones @ d_ih
    params = {
        "weight_ih": d_ih.T @ flat_x,
        "weight_hh": d_hh.T @ h_prev,
        "bias_ih": bias_ih,
        "bias_hh": bias_ih.copy() if hh == ih else ones @ d_hh,  # the same cotangents
    }
    if gru:
        for name in ("weight_hh", "bias_hh"):
            params[name] = np.roll(params[name], -hidden, axis=0)
    grad_h0 = (lam[0], lam[1]) if lstm else lam[0]
    grad_x = (d_ih @ spec.params["weight_ih"]).reshape(x.shape)
    with _spare_lock:
        _spare[:] = [tape.steps]
    return params, grad_x, grad_h0


def _tape_memory(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised ``shape`` array of ``dtype``: the spare consumed tape's if it fits."""
    with _spare_lock:
        if _spare and _spare[0].shape == shape and _spare[0].dtype == dtype:
            return _spare.pop()
    return np.empty(shape, dtype)


# By kind, the blocks of the tape from which the cotangents of the recurrent product
# and of the input projection start, in units of H (see backward).
_COTANGENTS = {"elman": (1, 1), "gru": (1, 2), "lstm": (2, 2)}


@numba.njit(**_INLINE)
def _step_cotangents(kind, tape, t, s, gy, lam, q):
    """Series ``s``'s gate cotangents at step ``t``, written over its gates in ``tape``.

    ``tape`` is viewed in blocks of ``H`` (``(T + 1, B, blocks, H)``, so that the loops
    over units vectorise); the cotangents' layout is :data:`_COTANGENTS`'. ``lam[:, q]``
    holds the cotangents of the state after the step (``h`` and LSTM's ``c``) and
    receives those of the state before it, but for the recurrent product.
    """
    hidden = lam.shape[2]
    one = _like(gy[t, s, 0], 1.0)
    if kind == _ELMAN:
        for j in range(hidden):
            h = tape[t + 1, s, 0, j]
            tape[t, s, 1, j] = (lam[0, q, j] + gy[t, s, j]) * (one - h * h)
            lam[0, q, j] = 0
    elif kind == _GRU:
        for j in range(hidden):
            gh = lam[0, q, j] + gy[t, s, j]
            h, r, z, n = tape[t, s, 0, j], tape[t, s, 1, j], tape[t, s, 2, j], tape[t, s, 3, j]
            dn = gh * (one - z) * (one - n * n)
            tape[t, s, 1, j] = dn * r
            tape[t, s, 2, j] = dn * tape[t, s, 4, j] * r * (one - r)
            tape[t, s, 3, j] = gh * (h - n) * z * (one - z)
            tape[t, s, 4, j] = dn
            lam[0, q, j] = gh * z
    else:
        for j in range(hidden):
            gh = lam[0, q, j] + gy[t, s, j]
            c, i, f = tape[t, s, 1, j], tape[t, s, 2, j], tape[t, s, 3, j]
            g, o, tanh_c = tape[t, s, 4, j], tape[t, s, 5, j], _tanh(tape[t + 1, s, 1, j])
            dc = lam[1, q, j] + gh * o * (one - tanh_c * tanh_c)
            tape[t, s, 2, j] = dc * g * i * (one - i)
            tape[t, s, 3, j] = dc * c * f * (one - f)
            tape[t, s, 4, j] = dc * i * (one - g * g)
            tape[t, s, 5, j] = gh * tanh_c * o * (one - o)
            lam[0, q, j] = 0
            lam[1, q, j] = dc * f


@numba.njit(**_LEAF)
def _group_step(kind, missing, tape, d_hh, w_hh, gy, lam, t, first):
    """Step ``t`` of the group from series ``first`` backwards (see :func:`backward`).

    ``tape`` in blocks of ``H``; ``d_hh`` ``(T + 1, B, R)``, a view of its cotangents of
    the recurrent product.
    """
    start = _like(gy[0, 0, 0], 0.0)
    for q in range(lam.shape[1] - SPARE_ROWS):
        s = first + q
        if missing[t, s]:  # no cotangent; LSTM's c stays, for the step before
            for k in range(2 if kind == _LSTM else 1, tape.shape[2]):
                for j in range(tape.shape[3]):
                    tape[t, s, k, j] = start
        else:
            _step_cotangents(kind, tape, t, s, gy, lam, q)
    _add_rows_product(lam[0], d_hh[t], first, w_hh)


@numba.njit(parallel=True, **_JIT)
def _backward(kind, missing, tape, d_hh, w_hh, gy, lam):
    steps, batch = missing.shape
    for group in prange(-(-batch // _GROUP)):
        first, last = group * _GROUP, min(batch, (group + 1) * _GROUP)
        # the group's carried cotangents, with spare rows (see kernels.cells._add_rows_product)
        own = np.zeros((2, last - first + SPARE_ROWS, lam.shape[2]), lam.dtype)
        own[:, : last - first] = lam[:, first:last]
        for t in range(steps - 1, -1, -1):
            _group_step(kind, missing, tape, d_hh, w_hh, gy, own, t, first)
        lam[:, first:last] = own[:, : last - first]

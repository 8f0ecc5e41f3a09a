"""Fused numba kernels of the backward pass of the linear-state cells.

The vector-Jacobian product of :class:`~rnncore.MinGRU`, :class:`~rnncore.MinLSTM`,
:class:`~rnncore.QRNN` and :class:`~rnncore.DiagonalLinear` (with their ``g``
variants), beside the reference path of :func:`rnncore.grad.cell_vjp`, in two kernels:

- :func:`forward` runs the cell with :func:`rnncore.kernels.cells.run`'s kernel (its
  readout fused in, if given), keeping a *tape*: the state at the start of every tile
  of ``_TILE`` steps (no hidden states stored);
- :func:`linear_vjp` takes that tape (or runs :func:`forward` for it, writing no
  outputs). Each parallel task takes a group of series and walks the tiles
  backwards: recomputes a tile's projections and gates from ``x`` and its states
  from the tile's first one, then carries the adjoint
  ``lam_t = g_t + a_{t+1} lam_{t+1}`` back through it, turns the cotangents of the
  decays and inputs into that of the projection ``u = x @ weight.T + bias``,
  and pulls ``du`` back to the weight, bias and inputs. With few input features this
  is done in the kernel too; with more, ``du`` is written out and the two products
  are left to BLAS.

Given a readout, the cotangent taken is that of the readout's outputs: the kernel pulls
it back to the cell's outputs step by step (the top layer's ``(T, B, H)`` cotangent is
never stored) and sums the readout's weight and bias gradients too.

What sums over steps and series (the parameters' gradients) is summed over each tile
of one series in the inputs' dtype (sixteen terms), and those sums in float64.

A step where any input feature is NaN is the identity: its output's cotangent is
ignored, ``du`` and the input gradient are zero there and the adjoint passes through.

Numba's on-disk cache checks only the file of the function it caches, while the
backward kernel inlines the gate maths of :mod:`rnncore.kernels.cells`; it is
therefore a closure over a digest of that file, which numba's cache key includes.
Its helpers here are not cached on their own: they are compiled into the kernel.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numba
import numpy as np
from numba import prange

from ..arrays import empty_steps
from . import KINDS, cells
from .cells import (
    _GROUP,
    _INLINE,
    _JIT,
    _LEAF,
    _TILE,
    _dot,
    _frozen,
    _gate_operands,
    _in_tail,
    _like,
    _normalised_gates,
    _normalised_tail_gates,
    _project,
    _readout_operands,
    _scan_linear,
    _sigmoids,
    _tanh,
    _tile_scratch,
)
from .interface import KernelSpec, ReadoutArrays

__all__ = ["forward", "linear_vjp", "supports"]

_MINGRU, _MINLSTM, _QRNN = (KINDS[k] for k in ("mingru", "minlstm", "qrnn"))

#: Input features up to which the kernel itself pulls ``du`` back to the weight and
#: inputs; above, the two matrix products are BLAS's.
FUSED_FEATURES = 8

# Compiled into the kernel (see the module's docstring), so not cached on their own.
_PART = {**_LEAF, "cache": False}
_PART_INLINE = {**_INLINE, "cache": False}


def supports(spec: KernelSpec) -> bool:
    """True for a linear-state cell of a kind in :data:`rnncore.kernels.KINDS`."""
    return spec.linear and spec.kind in KINDS


def forward(
    spec: KernelSpec, x: np.ndarray, state: np.ndarray, readout: ReadoutArrays | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the cell as :func:`rnncore.kernels.cells.run` does, keeping a tape.

    Parameters
    ----------
    spec
        The cell (:func:`supports`).
    x
        ``(T, B, F)`` checked float inputs; NaN marks a missing step.
    state
        ``(B, H)``: the initial state, of ``x``'s dtype.
    readout
        Applied to the outputs within the kernel, if given.

    Returns
    -------
    y
        ``(T, B, H)`` outputs, or ``(T, B, outputs)`` with a readout; NaN at missing
        steps.
    state
        The state after the last step.
    tape
        For :func:`linear_vjp`: ``(tiles, B, H)``, the state at the start of every
        tile of ``_TILE`` steps.
    """
    y = empty_steps(x, spec.hidden if readout is None else readout.output_size)
    return y, *_run(spec, x, state, readout, y)


def _run(
    spec: KernelSpec, x: np.ndarray, state: np.ndarray, readout: ReadoutArrays | None, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`forward` into outputs ``y`` (no outputs if of width 0): final state and tape."""
    steps, batch = x.shape[:2]
    tape = np.empty((-(-steps // _TILE), batch, spec.hidden), x.dtype)
    c = np.empty((batch, spec.hidden), x.dtype)
    c0 = state.astype(x.dtype, copy=False)
    _scan_linear(spec, x, c0=c0, c=c, y=y, readout=readout, starts=tape)
    return c, tape


def linear_vjp(
    spec: KernelSpec,
    x: np.ndarray,
    grad_y: np.ndarray,
    h0: np.ndarray,
    grad_state: np.ndarray,
    readout: ReadoutArrays | None = None,
    tape: np.ndarray | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """Parameter, input and initial-state gradients of a linear-state cell (and its readout).

    Parameters
    ----------
    spec
        The cell (:func:`supports`).
    x
        ``(T, B, F)`` checked float inputs, ``T > 0``; NaN marks a missing step.
    grad_y
        ``(T, B, H)`` cotangent of the outputs, or ``(T, B, outputs)`` that of the
        readout's outputs when ``readout`` is given; ignored at missing steps.
    h0, grad_state
        ``(B, H)``: the initial state and the cotangent of the final one.
    readout
        A readout ``y = h @ weight.T + bias`` of the cell's outputs ``h``, or ``None``.
    tape
        What :func:`forward` kept of the forward pass on the same ``x`` and ``h0``;
        recomputed if ``None``.

    Returns
    -------
    params
        By parameter name (``weight``, ``bias``, and DiagonalLinear's ``decay``).
    grad_x
        ``(T, B, F)``, zero at missing steps.
    grad_h0
        ``(B, H)``.
    readout_grads
        With ``readout``: the gradients of its weight and bias; else ``None``.
    """
    steps, batch, features = x.shape
    dtype, rows = x.dtype, spec.params["bias"].size
    fused = features <= FUSED_FEATURES
    groups = -(-batch // _GROUP)
    grad_x = np.empty(x.shape if fused else (0, 0, features), dtype)
    du = np.empty((0, 0, rows), dtype) if fused else np.empty((steps, batch, rows), dtype)
    grad_w = np.zeros((groups, features if fused else 0, rows))
    grad_b = np.zeros((groups, rows))
    grad_decay = np.zeros((groups, spec.hidden))
    grad_h0 = np.empty((batch, spec.hidden), dtype)
    ro_w = _readout_operands(spec, x, readout)[0]
    grad_ro = np.zeros((groups, *ro_w.shape))
    grad_rb = np.zeros((groups, ro_w.shape[0]))
    if tape is None:
        tape = _run(spec, x, h0, None, np.empty((steps, batch, 0), dtype))[1]
    _backward(
        *_gate_operands(spec, x),
        _frozen(grad_y.astype(dtype, copy=False)),
        _frozen(tape),
        _frozen(grad_state.astype(dtype, copy=False)),
        fused,
        du,
        grad_x,
        grad_w,
        grad_b,
        grad_decay,
        grad_h0,
        ro_w,
        grad_ro,
        grad_rb,
    )
    if fused:
        weight = grad_w.sum(axis=0).T
    else:
        flat = du.reshape(-1, rows)
        weight = flat.T @ np.where(np.isnan(x), 0, x).reshape(-1, features)
        grad_x = du @ spec.params["weight"]
    params = {"weight": weight.astype(dtype), "bias": grad_b.sum(axis=0).astype(dtype)}
    if spec.kind == "diagonal":
        params["decay"] = grad_decay.sum(axis=0).astype(dtype)
    readout_grads = None
    if readout is not None:
        readout_grads = grad_ro.sum(axis=0).astype(dtype), grad_rb.sum(axis=0).astype(dtype)
    return params, grad_x, grad_h0, readout_grads


# -- one tile of one series ------------------------------------------------------------
#
# Each loop over the hidden units below writes one or two arrays and indexes every
# array with its bare loop variable, so that it vectorises.


@numba.njit(**_PART_INLINE)
def _candidates(g, u, i, block, cand, dcand):
    """Step ``i``'s candidates from ``u[i, block]`` and their derivatives: ``(u, 1)``,
    or ``(g(u), g'(u))``; the branch outside the loop, so that only one is computed."""
    if not g:
        for j in range(cand.shape[1]):
            cand[i, j] = u[i, block, j]
        for j in range(cand.shape[1]):
            dcand[i, j] = 1
        return
    for j in range(cand.shape[1]):
        v = u[i, block, j]
        s, r = _sigmoids(v)
        cand[i, j] = v + _like(v, 0.5) if v >= 0 else s
        dcand[i, j] = _like(v, 1.0) if v >= 0 else s * r


@numba.njit(**_PART)
def _forward_tile(kind, g, x, start, s, w, bias, decay, u, d, c, cs, gap):
    """Gates, their derivatives and states of series ``s`` over ``len(gap)`` steps from ``start``.

    ``cs[0]`` holds the state before the tile; ``cs[i + 1]`` receives the state after
    step ``i`` (``c`` ``(H,)`` is scratch). ``d`` ``(7, n, H)`` receives the decays in
    ``d[0]``, the inputs in ``d[6]`` and in between what :func:`_backward_tile` needs
    of the cell; ``u`` the projections and ``gap`` which steps are missing.
    """
    n, hidden = gap.size, decay.size
    for i in range(n):
        gap[i] = _project(u, i, w, bias, x, start + i, s)
    u = u.reshape(u.shape[0], -1, hidden)  # (n, blocks, H)
    a, d1, d2, d3, d4, d5, b = d[0], d[1], d[2], d[3], d[4], d[5], d[6]
    if kind == _MINGRU:  # d[1:4]: z, cand, dcand
        for i in range(n):
            for j in range(hidden):
                d1[i, j], a[i, j] = _sigmoids(u[i, 0, j])
            _candidates(g, u, i, 1, d2, d3)
            for j in range(hidden):
                b[i, j] = d1[i, j] * d2[i, j]
    elif kind == _MINLSTM:  # d[1:6]: 1 - a, cand, dcand, sigmoid(-uf), sigmoid(-ui)
        for i in range(n):
            tail = False
            for j in range(hidden):
                a[i, j], d1[i, j] = _normalised_gates(u[i, 0, j], u[i, 1, j])
                tail |= _in_tail(u[i, 0, j]) | _in_tail(u[i, 1, j])
            if tail:  # rare: this step again, with the exact tail formula
                for j in range(hidden):
                    a[i, j], d1[i, j] = _normalised_tail_gates(u[i, 0, j], u[i, 1, j])
            _candidates(g, u, i, 2, d2, d3)
            for j in range(hidden):
                d4[i, j] = _sigmoids(u[i, 0, j])[1]
            for j in range(hidden):
                d5[i, j] = _sigmoids(u[i, 1, j])[1]
            for j in range(hidden):
                b[i, j] = d1[i, j] * d2[i, j]
    elif kind == _QRNN:  # d[1:4]: 1 - f, tanh(uz), o
        for i in range(n):
            for j in range(hidden):
                a[i, j], d1[i, j] = _sigmoids(u[i, 1, j])
            for j in range(hidden):
                d2[i, j] = _tanh(u[i, 0, j])
            for j in range(hidden):
                d3[i, j] = _sigmoids(u[i, 2, j])[0]
            for j in range(hidden):
                b[i, j] = d1[i, j] * d2[i, j]
    else:
        for i in range(n):
            for j in range(hidden):
                a[i, j] = decay[j]
            for j in range(hidden):
                b[i, j] = u[i, 0, j]
    for j in range(hidden):  # the state runs in c, each step's copied out
        c[j] = cs[0, j]
    for i in range(n):
        if not gap[i]:
            for j in range(hidden):
                c[j] = a[i, j] * c[j] + b[i, j]
        for j in range(hidden):
            cs[i + 1, j] = c[j]


@numba.njit(**_PART_INLINE)
def _output_cotangent(gy, t, s, ro, h, out, sums_ro, sums_rb):
    """The cotangent of the cell's outputs ``h`` ``(H,)`` at step ``t`` of series ``s``.

    Written to ``out``: ``gy``'s own, or with a readout ``ro`` ``(outputs, H)`` (none
    if it has no rows) ``gy``'s pulled back through it, whose weight and bias
    gradients are added to ``sums_ro`` and ``sums_rb``.
    """
    if ro.shape[0] == 0:
        for j in range(h.size):
            out[j] = gy[t, s, j]
        return
    for j in range(h.size):
        out[j] = 0
    for o in range(ro.shape[0]):
        go = gy[t, s, o]
        sums_rb[o] += go
        for j in range(h.size):
            out[j] += go * ro[o, j]
        for j in range(h.size):
            sums_ro[o, j] += go * h[j]


@numba.njit(**_PART)
def _backward_tile(kind, gy, start, s, d, cs, gap, lam, du, ro, gb, sums_ro, sums_rb,
                   sums_decay):  # fmt: skip
    """Carry the adjoint ``lam`` ``(H,)`` of series ``s`` back through a tile.

    Takes :func:`_forward_tile`'s ``d``, ``cs`` and ``gap``, and the cotangents ``gy``
    of the outputs (of the readout ``ro``'s, if it has rows: see
    :func:`_output_cotangent`); writes ``du`` ``(n, blocks * H)`` (zero at missing
    steps) and adds the readout's gradients to ``sums_ro`` and ``sums_rb`` and the
    decays' cotangents to ``sums_decay`` (DiagonalLinear's). ``gb`` ``(_TILE + 1, H)``
    is scratch: row ``i`` receives the cotangent of step ``i``'s input ``b``.

    Three passes: the outputs' cotangents (forwards), the adjoint (backwards, one
    loop a step), then ``du`` from them (forwards). Only the adjoint walks backwards:
    loops over the hidden units within a backward walk vectorise poorly (the
    compiler's overlap checks do not hoist), and each step's ``du`` needs no order.
    """
    n, hidden = gap.size, lam.size
    du = du.reshape(du.shape[0], -1, hidden)  # (n, blocks, H)
    a, d1, d2, d3, d4, d5 = d[0], d[1], d[2], d[3], d[4], d[5]
    h = gb[_TILE]
    for i in range(n):  # gb[i] = the outputs' cotangent (QRNN's: before its output gate)
        if gap[i]:
            continue
        if kind == _QRNN:  # the cell's outputs y = o * c: o's cotangent now, b's is g * o
            for j in range(hidden):
                h[j] = cs[i + 1, j] * d3[i, j]
            _output_cotangent(gy, start + i, s, ro, h, gb[i], sums_ro, sums_rb)
            for j in range(hidden):
                o = d3[i, j]
                du[i, 2, j] = gb[i, j] * cs[i + 1, j] * o * (_like(o, 1.0) - o)
        else:
            _output_cotangent(gy, start + i, s, ro, cs[i + 1], gb[i], sums_ro, sums_rb)
    for i in range(n - 1, -1, -1):  # lam_i = gb_i a_i, gb_i += lam_{i+1}
        if gap[i]:  # the identity: lam passes through
            continue
        if kind == _QRNN:  # b's part g * o, in one rounding with lam
            for j in range(hidden):
                gb[i, j] = gb[i, j] * d3[i, j] + lam[j]
        else:
            for j in range(hidden):
                gb[i, j] += lam[j]
        for j in range(hidden):
            lam[j] = gb[i, j] * a[i, j]
    for i in range(n):  # du from b's cotangent and the decay's, gb * c
        if gap[i]:
            du[i] = 0
        elif kind == _MINGRU:  # a = 1 - z, b = z * cand
            for j in range(hidden):
                du[i, 0, j] = d1[i, j] * a[i, j] * (gb[i, j] * d2[i, j] - gb[i, j] * cs[i, j])
            for j in range(hidden):
                du[i, 1, j] = gb[i, j] * d1[i, j] * d3[i, j]
        elif kind == _MINLSTM:  # a = sigmoid(r), b = (1 - a) cand, r = log f - log i
            for j in range(hidden):  # r's cotangent, in h
                h[j] = a[i, j] * d1[i, j] * (gb[i, j] * cs[i, j] - gb[i, j] * d2[i, j])
            for j in range(hidden):
                du[i, 0, j] = h[j] * d4[i, j]
            for j in range(hidden):
                du[i, 1, j] = -h[j] * d5[i, j]
            for j in range(hidden):
                du[i, 2, j] = gb[i, j] * d1[i, j] * d3[i, j]
        elif kind == _QRNN:  # a = f, b = (1 - f) tanh(uz)
            for j in range(hidden):
                z = d2[i, j]
                du[i, 0, j] = gb[i, j] * d1[i, j] * (_like(z, 1.0) - z * z)
            for j in range(hidden):
                du[i, 1, j] = a[i, j] * d1[i, j] * (gb[i, j] * cs[i, j] - gb[i, j] * d2[i, j])
        else:  # a = decay, b = u
            for j in range(hidden):
                sums_decay[j] += gb[i, j] * cs[i, j]
            for j in range(hidden):
                du[i, 0, j] = gb[i, j]


@numba.njit(**_PART)
def _pull_back_tile(fused, x, start, s, w, gap, dut, du, grad_x, sums_b, sums_w):
    """Pull a tile's ``dut`` (its ``du``) back to the bias, weight and inputs.

    Adds it up into ``sums_b``; ``fused``, also its products with the inputs into
    ``sums_w`` ``(F, blocks * H)`` and writes the inputs' gradient, else copies it
    to ``du`` for BLAS.
    """
    tile = dut.reshape(1, dut.shape[0], dut.shape[1])
    for i in range(gap.size):
        t = start + i
        for e in range(dut.shape[1]):
            sums_b[e] += dut[i, e]
        if not fused:
            for e in range(dut.shape[1]):
                du[t, s, e] = dut[i, e]
            continue
        for f in range(w.shape[0]):
            grad_x[t, s, f] = _dot(_like(dut[0, 0], 0.0), w, f, tile, 0, i)
            if not gap[i]:  # NaN inputs there, times a zero du
                xf = x[t, s, f]
                for e in range(dut.shape[1]):
                    sums_w[f, e] += xf * dut[i, e]


@numba.njit(**_PART_INLINE)
def _flush(sums, totals):
    """Add ``sums`` to the float64 ``totals`` of the same shape, and zero them."""
    sums, totals = sums.reshape(-1), totals.reshape(-1)
    for e in range(sums.size):
        totals[e] += sums[e]
        sums[e] = 0


def _kernels(cells_digest: str) -> Callable[..., None]:
    """The backward kernel, a closure over ``cells_digest`` (numba's cache key)."""

    @numba.njit(parallel=True, **_JIT)
    def backward(kind, g, x, w, bias, decay, gy, starts, lam0, fused, du, grad_x, grad_w,
                 grad_b, grad_decay, grad_h0, ro, grad_ro, grad_rb):  # fmt: skip
        cells_digest  # noqa: B018 -- part of numba's cache key (see the module's docstring)
        steps, batch = x.shape[:2]
        hidden, rows = decay.size, bias.size
        for group in prange(-(-batch // _GROUP)):
            first, last = group * _GROUP, min(batch, (group + 1) * _GROUP)
            u, _, gaps = _tile_scratch(x, rows, hidden)
            d = np.empty((7, _TILE, hidden), x.dtype)
            c, cs = np.empty(hidden, x.dtype), np.empty((_TILE + 1, hidden), x.dtype)
            dut = np.empty((_TILE, rows), x.dtype)
            gb = np.empty((_TILE + 1, hidden), x.dtype)
            # A tile's sums, in the inputs' dtype, added to the group's float64 totals.
            sums_b, sums_w = np.zeros(rows, x.dtype), np.zeros(grad_w.shape[1:], x.dtype)
            sums_decay = np.zeros(hidden, x.dtype)
            sums_ro, sums_rb = np.zeros(ro.shape, x.dtype), np.zeros(ro.shape[0], x.dtype)
            lam = lam0[first:last].copy()
            for k in range(starts.shape[0] - 1, -1, -1):
                start = k * _TILE
                gap = gaps[: min(_TILE, steps - start)]
                for s in range(first, last):
                    cs[0] = starts[k, s]
                    _forward_tile(kind, g, x, start, s, w, bias, decay, u, d, c, cs, gap)
                    _backward_tile(kind, gy, start, s, d, cs, gap, lam[s - first], dut, ro, gb,
                                   sums_ro, sums_rb, sums_decay)  # fmt: skip
                    _pull_back_tile(fused, x, start, s, w, gap, dut, du, grad_x, sums_b, sums_w)
                    _flush(sums_b, grad_b[group])
                    _flush(sums_w, grad_w[group])
                    _flush(sums_decay, grad_decay[group])
                    _flush(sums_ro, grad_ro[group])
                    _flush(sums_rb, grad_rb[group])
            grad_h0[first:last] = lam

    return backward


_backward = _kernels(hashlib.sha256(Path(cells.__file__).read_bytes()).hexdigest())

"""Fused numba kernel of the backward pass of the linear-state cells.

The vector-Jacobian product of :class:`~rnncore.MinGRU`, :class:`~rnncore.MinLSTM`,
:class:`~rnncore.QRNN` and :class:`~rnncore.DiagonalLinear` (with their ``g``
variants) in one kernel, beside the reference path of
:func:`rnncore.grad.cell_vjp`. Each parallel task takes a group of series and

1. runs the cell forward over the whole series, keeping only the state at the start
   of every tile of ``_TILE`` steps (no hidden states stored);
2. walks the tiles backwards: recomputes a tile's projections and gates from ``x``
   and its states from the tile's first one, then carries the adjoint
   ``lam_t = g_t + a_{t+1} lam_{t+1}`` back through it, turning the cotangents of the
   decays and inputs into that of the projection ``u = x @ weight.T + bias`` at once;
3. pulls ``du`` back to the weight, bias and inputs. With few input features this
   is done in the kernel too (the weight and bias gradients summed per task in
   float64); with more, ``du`` is written out and the two products are left to BLAS.

Given a readout, the cotangent taken is that of the readout's outputs: the kernel pulls
it back to the cell's outputs step by step (the top layer's ``(T, B, H)`` cotangent is
never stored) and sums the readout's weight and bias gradients in float64.

A step where any input feature is NaN is the identity: its output's cotangent is
ignored, ``du`` and the input gradient are zero there and the adjoint passes through.

Numba's on-disk cache checks only the file of the function it caches, while this
kernel inlines the gate maths of :mod:`rnncore.kernels.cells`; the kernel is
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
    _gate_tile,
    _in_tail,
    _like,
    _normalised_gates,
    _normalised_tail_gates,
    _project,
    _readout_operands,
    _scan_tile,
    _sigmoids,
    _tanh,
    _tile_scratch,
)
from .interface import KernelSpec, ReadoutArrays

__all__ = ["linear_vjp", "supports"]

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


def linear_vjp(
    spec: KernelSpec,
    x: np.ndarray,
    grad_y: np.ndarray,
    h0: np.ndarray,
    grad_state: np.ndarray,
    readout: ReadoutArrays | None = None,
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
    _backward(
        *_gate_operands(spec, x),
        _frozen(grad_y.astype(dtype, copy=False)),
        _frozen(h0.astype(dtype, copy=False)),
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


@numba.njit(**_PART_INLINE)
def _candidate(g, u):
    """The candidate and its derivative: ``(u, 1)``, or ``(g(u), g'(u))``."""
    if not g:
        return u, _like(u, 1.0)
    if u >= 0:
        return u + _like(u, 0.5), _like(u, 1.0)
    s, r = _sigmoids(u)
    return s, s * r


@numba.njit(**_PART)
def _forward_tile(kind, g, x, start, s, w, bias, decay, u, d, cs, gap):
    """Gates, their derivatives and states of series ``s`` over ``len(gap)`` steps from ``start``.

    ``cs[0]`` holds the state before the tile; ``cs[i + 1]`` receives the state after
    step ``i``. ``d`` ``(7, n, H)`` receives the decays in ``d[0]``, the inputs in
    ``d[6]`` and in between what :func:`_backward_tile` needs of the cell; ``u`` the
    projections and ``gap`` which steps are missing.
    """
    n, hidden = gap.size, decay.size
    for i in range(n):
        gap[i] = _project(u, i, w, bias, x, start + i, s)
    u = u.reshape(u.shape[0], -1, hidden)  # (n, blocks, H)
    for i in range(n):
        if kind == _MINGRU:  # d[1:4]: z, cand, dcand
            for j in range(hidden):
                d[1, i, j], d[0, i, j] = _sigmoids(u[i, 0, j])
                d[2, i, j], d[3, i, j] = _candidate(g, u[i, 1, j])
                d[6, i, j] = d[1, i, j] * d[2, i, j]
        elif kind == _MINLSTM:  # d[1:6]: 1 - a, cand, dcand, sigmoid(-uf), sigmoid(-ui)
            tail = False
            for j in range(hidden):
                d[0, i, j], d[1, i, j] = _normalised_gates(u[i, 0, j], u[i, 1, j])
                tail |= _in_tail(u[i, 0, j]) | _in_tail(u[i, 1, j])
            if tail:  # rare: this step again, with the exact tail formula
                for j in range(hidden):
                    d[0, i, j], d[1, i, j] = _normalised_tail_gates(u[i, 0, j], u[i, 1, j])
            for j in range(hidden):
                d[2, i, j], d[3, i, j] = _candidate(g, u[i, 2, j])
                d[4, i, j] = _sigmoids(u[i, 0, j])[1]
                d[5, i, j] = _sigmoids(u[i, 1, j])[1]
                d[6, i, j] = d[1, i, j] * d[2, i, j]
        elif kind == _QRNN:  # d[1:4]: 1 - f, tanh(uz), o
            for j in range(hidden):
                d[0, i, j], d[1, i, j] = _sigmoids(u[i, 1, j])
                d[2, i, j] = _tanh(u[i, 0, j])
                d[3, i, j] = _sigmoids(u[i, 2, j])[0]
                d[6, i, j] = d[1, i, j] * d[2, i, j]
        else:
            for j in range(hidden):
                d[0, i, j] = decay[j]
                d[6, i, j] = u[i, 0, j]
    for i in range(n):
        for j in range(hidden):
            cs[i + 1, j] = cs[i, j] if gap[i] else d[0, i, j] * cs[i, j] + d[6, i, j]


@numba.njit(**_PART_INLINE)
def _output_cotangent(gy, t, s, ro, h, out, grad_ro, grad_rb):
    """The cotangent of the cell's outputs ``h`` ``(H,)`` at step ``t`` of series ``s``.

    Written to ``out``: ``gy``'s own, or with a readout ``ro`` ``(outputs, H)`` (none
    if it has no rows) ``gy``'s pulled back through it, whose weight and bias
    gradients are added to ``grad_ro`` and ``grad_rb`` (float64).
    """
    if ro.shape[0] == 0:
        for j in range(h.size):
            out[j] = gy[t, s, j]
        return
    out[:] = 0
    for o in range(ro.shape[0]):
        go = gy[t, s, o]
        grad_rb[o] += go
        for j in range(h.size):
            out[j] += go * ro[o, j]
            grad_ro[o, j] += np.float64(go) * np.float64(h[j])


@numba.njit(**_PART)
def _backward_tile(kind, gy, start, s, d, cs, gap, lam, du, grad_decay, ro, gh, grad_ro,
                   grad_rb):  # fmt: skip
    """Carry the adjoint ``lam`` ``(H,)`` of series ``s`` back through a tile.

    Takes :func:`_forward_tile`'s ``d``, ``cs`` and ``gap``, and the cotangents ``gy``
    of the outputs (of the readout ``ro``'s, if it has rows: see
    :func:`_output_cotangent`, whose ``grad_ro`` and ``grad_rb`` these are; ``gh``
    ``(2, H)`` is scratch); writes ``du`` ``(n, blocks * H)`` (zero at missing steps)
    and adds the decays' cotangents to ``grad_decay`` (DiagonalLinear's).
    """
    hidden = lam.size
    du = du.reshape(du.shape[0], -1, hidden)  # (n, blocks, H)
    for i in range(gap.size - 1, -1, -1):
        if gap[i]:  # the identity: lam passes through
            du[i] = 0
            continue
        t = start + i
        if ro.shape[0]:  # the cell's outputs, read out
            for j in range(hidden):
                gh[1, j] = cs[i + 1, j] * d[3, i, j] if kind == _QRNN else cs[i + 1, j]
        _output_cotangent(gy, t, s, ro, gh[1], gh[0], grad_ro, grad_rb)
        # The cotangents of the decays (into du[i, 0]) and inputs (into d[6]).
        for j in range(hidden):
            g = gh[0, j]
            if kind == _QRNN:  # y = o * c
                o = d[3, i, j]
                du[i, 2, j] = g * cs[i + 1, j] * o * (_like(o, 1.0) - o)
                g *= o
            lam[j] += g
            d[6, i, j] = lam[j]
            du[i, 0, j] = lam[j] * cs[i, j]
            lam[j] *= d[0, i, j]
        if kind == _MINGRU:  # a = 1 - z, b = z * cand
            for j in range(hidden):
                ga, gb = du[i, 0, j], d[6, i, j]
                z = d[1, i, j]
                du[i, 0, j] = z * d[0, i, j] * (gb * d[2, i, j] - ga)
                du[i, 1, j] = gb * z * d[3, i, j]
        elif kind == _MINLSTM:  # a = sigmoid(r), b = (1 - a) cand, r = log f - log i
            for j in range(hidden):
                ga, gb = du[i, 0, j], d[6, i, j]
                dr = d[0, i, j] * d[1, i, j] * (ga - gb * d[2, i, j])
                du[i, 0, j] = dr * d[4, i, j]
                du[i, 1, j] = -dr * d[5, i, j]
                du[i, 2, j] = gb * d[1, i, j] * d[3, i, j]
        elif kind == _QRNN:  # a = f, b = (1 - f) tanh(uz)
            for j in range(hidden):
                ga, gb = du[i, 0, j], d[6, i, j]
                f, one_f, z = d[0, i, j], d[1, i, j], d[2, i, j]
                du[i, 0, j] = gb * one_f * (_like(z, 1.0) - z * z)
                du[i, 1, j] = f * one_f * (ga - gb * z)
        else:  # a = decay, b = u
            for j in range(hidden):
                grad_decay[j] += du[i, 0, j]
                du[i, 0, j] = d[6, i, j]


@numba.njit(**_PART)
def _pull_back_tile(fused, x, start, s, w, gap, dut, du, grad_x, grad_w, grad_b):
    """Pull a tile's ``dut`` (its ``du``) back to the bias, weight and inputs.

    Adds it up into the bias's gradient; ``fused``, also into the weight's
    (``grad_w`` ``(F, blocks * H)``, float64) and writes the inputs' gradient, else
    copies it to ``du`` for BLAS.
    """
    tile = dut.reshape(1, dut.shape[0], dut.shape[1])
    for i in range(gap.size):
        t = start + i
        for e in range(dut.shape[1]):
            grad_b[e] += dut[i, e]
        if not fused:
            for e in range(dut.shape[1]):
                du[t, s, e] = dut[i, e]
            continue
        for f in range(w.shape[0]):
            grad_x[t, s, f] = _dot(_like(dut[0, 0], 0.0), w, f, tile, 0, i)
            if not gap[i]:  # NaN inputs there, times a zero du
                xf = np.float64(x[t, s, f])
                for e in range(dut.shape[1]):
                    grad_w[f, e] += xf * dut[i, e]


def _kernel(cells_digest: str) -> Callable[..., None]:
    """The kernel, a closure over ``cells_digest`` so that numba's cache keys on it."""

    @numba.njit(parallel=True, **_JIT)
    def backward(kind, g, x, w, bias, decay, gy, h0, lam0, fused, du, grad_x, grad_w, grad_b,
                 grad_decay, grad_h0, ro, grad_ro, grad_rb):  # fmt: skip
        cells_digest  # noqa: B018 -- part of numba's cache key (see the module's docstring)
        steps, batch = x.shape[:2]
        hidden, tiles = decay.size, -(-steps // _TILE)
        for group in prange(-(-batch // _GROUP)):
            first, last = group * _GROUP, min(batch, (group + 1) * _GROUP)
            u, ab, gaps = _tile_scratch(x, bias.size, hidden)
            starts = np.empty((tiles, last - first, hidden), x.dtype)  # each tile's first state
            c = h0[first:last].copy()
            none = np.empty((0, hidden), x.dtype)
            for k in range(tiles):
                gap = gaps[: min(_TILE, steps - k * _TILE)]
                for s in range(first, last):
                    starts[k, s - first] = c[s - first]
                    _gate_tile(kind, g, x, k * _TILE, s, w, bias, decay, u, ab, gap)
                    _scan_tile(kind, ab, gap, c, s - first, none)
            d = np.empty((7, _TILE, hidden), x.dtype)
            cs = np.empty((_TILE + 1, hidden), x.dtype)
            dut = np.empty((_TILE, bias.size), x.dtype)
            lam = lam0[first:last].copy()
            gh = np.empty((2, hidden), x.dtype)
            for k in range(tiles - 1, -1, -1):
                start = k * _TILE
                gap = gaps[: min(_TILE, steps - start)]
                for s in range(first, last):
                    cs[0] = starts[k, s - first]
                    _forward_tile(kind, g, x, start, s, w, bias, decay, u, d, cs, gap)
                    _backward_tile(kind, gy, start, s, d, cs, gap, lam[s - first], dut,
                                   grad_decay[group], ro, gh, grad_ro[group],
                                   grad_rb[group])  # fmt: skip
                    _pull_back_tile(fused, x, start, s, w, gap, dut, du, grad_x, grad_w[group],
                                    grad_b[group])  # fmt: skip
            grad_h0[first:last] = lam

    return backward


_backward = _kernel(hashlib.sha256(Path(cells.__file__).read_bytes()).hexdigest())

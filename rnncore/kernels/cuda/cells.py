"""Fused cell kernels on the GPU: the twin of :mod:`rnncore.kernels.cells`, same interface.

- Linear-state cells run gates, the tile scan of ``common.cuh`` and their outputs
  (or a readout of them) in one kernel, which splits time as well as series, so a
  few long series fill the GPU; hidden states are never stored when a readout is
  fused.
- Elman, GRU and LSTM step a few series per block through time with the transposed
  recurrent weights in shared memory; series are independent, so no block waits
  for another. A readout follows as one matrix product.

Inputs of any layout are made C-contiguous first; everything stays on the device.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ...backend import namespace
from .. import KINDS
from . import (
    CTYPES,
    device_limits,
    dtype_name,
    kernel,
    tile_launch,
    tile_plan,
    tile_shared_bytes,
)

if TYPE_CHECKING:
    from ...cells import Cell, LinearStateCell
    from ...model import Readout

__all__ = ["emit", "expressions", "run", "summary", "supports", "transition"]

_SOURCE = "cells.cu"
_NONLINEAR = KINDS["elman"]
_WRITE_Y, _SUMMARY, _FINAL, _READOUT = 1, 2, 4, 8
# Hidden units at most: a linear cell's block holds a whole series' units, one
# thread each, and 256 threads fit a multiprocessor's 64 K registers whatever a
# kernel uses (255 a thread at most).
_MAX_HIDDEN = 256
# Threads of a nonlinear block (they stride over the gate rows); series it may step
# together.
_NONLINEAR_THREADS = 256
_SERIES_PER_BLOCK = (8, 4, 2, 1)
# Steps per thread of a linear cell's tile: gates take registers beside the maps
# (QRNN: 91 registers at 8 steps in float32, 142 at 16).
_STEPS_PER_THREAD = 8


def supports(cell: Cell) -> bool:
    """True when the kernels here run ``cell``: at most 256 hidden units."""
    return cell.kernel in KINDS and cell.hidden_size <= _MAX_HIDDEN


def expressions() -> list[str]:
    """The kernel instantiations this module may launch."""
    out = []
    for ctype in CTYPES.values():
        for kind in range(_NONLINEAR):
            for g in (False, True):
                out.append(_linear_cell(ctype, _STEPS_PER_THREAD, kind, g))
                out.append(_linear_maps(ctype, kind, g))
        for kind in range(_NONLINEAR, len(KINDS)):
            out.extend(_nonlinear_cell(ctype, kind, sb) for sb in _SERIES_PER_BLOCK)
    return out


def _linear_cell(ctype: str, k: int, kind: int, g: bool) -> str:
    return f"linear_cell<{ctype}, {k}, {kind}, {str(g).lower()}>"


def _linear_maps(ctype: str, kind: int, g: bool) -> str:
    return f"linear_maps<{ctype}, {kind}, {str(g).lower()}>"


def _nonlinear_cell(ctype: str, kind: int, series_per_block: int) -> str:
    return f"nonlinear_cell<{ctype}, {kind}, {series_per_block}>"


def run(cell: Cell, x: Any, state: Any, readout: Readout | None) -> tuple[Any, Any]:
    """Run ``cell`` over checked inputs ``x`` from ``state``, then ``readout`` if given.

    As :func:`rnncore.kernels.cells.run`, on the inputs' device.
    """
    xp = namespace(x)
    x = xp.ascontiguousarray(x)
    if KINDS[cell.kernel] >= _NONLINEAR:
        y, state = _nonlinear(xp, cell, x, state)
        return (y if readout is None else readout(y)), state
    steps, batch = x.shape[:2]
    hidden = cell.hidden_size
    outputs = hidden if readout is None else readout.output_size
    y = xp.empty((steps, batch, outputs), x.dtype)
    c = xp.empty((batch, hidden), x.dtype)
    if steps == 0 or batch == 0:
        c[...] = state
        return y, c
    if readout is None:
        ro_w, ro_b, mode = y[:0], y[:0], _WRITE_Y | _FINAL
    else:
        (ro_w, ro_b), mode = readout.arrays(xp, x.dtype), _WRITE_Y | _FINAL | _READOUT
    _linear(xp, cell, x, xp.ascontiguousarray(state), ro_w, ro_b, y, c, c[:0], c[:0], mode)
    return y, c


def summary(cell: LinearStateCell, x: Any) -> tuple[Any, Any]:
    """The summary ``(A, B)`` of checked inputs ``x``, without storing the gates."""
    xp = namespace(x)
    x = xp.ascontiguousarray(x)
    shape = (x.shape[1], cell.hidden_size)
    big_a, big_b = xp.ones(shape, x.dtype), xp.zeros(shape, x.dtype)
    if x.shape[0] and x.shape[1]:
        zeros, unused = xp.zeros_like(big_b), big_b[:0]
        _linear(xp, cell, x, zeros, unused, unused, unused, unused, big_a, big_b, _SUMMARY)
    return big_a, big_b


def transition(cell: LinearStateCell, x: Any) -> tuple[Any, Any]:
    """The decays and inputs ``(a, b)`` that checked inputs ``x`` feed to the scan."""
    xp = namespace(x)
    a = xp.empty((*x.shape[:2], cell.hidden_size), x.dtype)
    b = xp.empty_like(a)
    _maps(xp, cell, x, a, a, b, 0)
    return a, b


def emit(cell: LinearStateCell, c: Any, x: Any) -> Any:
    """Outputs for scanned states ``c`` and checked inputs ``x``; NaN where missing."""
    xp = namespace(x, c)
    y = xp.empty((*x.shape[:2], cell.hidden_size), x.dtype)
    _maps(xp, cell, x, xp.ascontiguousarray(c.astype(x.dtype, copy=False)), y, y, 1)
    return y


# -- launches -----------------------------------------------------------------------


def _params(xp: Any, cell: LinearStateCell, dtype: Any) -> tuple[Any, Any, Any]:
    """Projection weight, bias and (diagonal cells') decays, contiguous on the device."""
    p = cell.params_for(xp, dtype)
    decay = p.get("decay", xp.ones(cell.hidden_size, dtype))
    return tuple(xp.ascontiguousarray(v) for v in (p["weight"], p["bias"], decay))


def _kind(cell: Cell) -> tuple[int, bool]:
    """The cell's id, and whether its candidate passes through ``g``."""
    return KINDS[cell.kernel], cell.options.get("activation") == "g"


def _linear(
    xp: Any,
    cell: LinearStateCell,
    x: Any,
    c0: Any,
    ro_w: Any,
    ro_b: Any,
    y: Any,
    c: Any,
    big_a: Any,
    big_b: Any,
    mode: int,
) -> None:
    """Launch ``linear_cell`` over ``x`` (at least one step)."""
    steps, batch, features = x.shape
    hidden, itemsize = cell.hidden_size, x.dtype.itemsize
    per_chain = max(1, 32 // hidden)
    plan = tile_plan(batch * hidden, steps, itemsize, per_chain * hidden, _STEPS_PER_THREAD)
    n_chains = plan.n_chains(batch * hidden)
    shared = tile_shared_bytes(plan, itemsize)
    if mode & _READOUT:
        shared += plan.groups * plan.steps_per_thread * plan.cols * itemsize
    expression = _linear_cell(dtype_name(x), plan.steps_per_thread, *_kind(cell))
    blocks, scratch = tile_launch(xp, plan, n_chains, x.dtype)
    args = (
        x,
        *_params(xp, cell, x.dtype),
        c0,
        ro_w,
        ro_b,
        y,
        c,
        big_a,
        big_b,
        *scratch,
        np.int64(steps),
        np.int64(batch),
        np.int32(features),
        np.int32(hidden),
        np.int32(y.shape[-1] if mode & _READOUT else 0),
        np.int32(mode),
    )
    launch = kernel(xp, _SOURCE, expression, shared)
    launch((blocks,), (plan.threads,), args, shared_mem=shared)


def _maps(
    xp: Any, cell: LinearStateCell, x: Any, c: Any, out_a: Any, out_b: Any, mode: int
) -> None:
    """Launch ``linear_maps``: one thread per output element."""
    x = xp.ascontiguousarray(x)
    if not out_a.size:
        return
    steps, batch, features = x.shape
    launch = kernel(xp, _SOURCE, _linear_maps(dtype_name(x), *_kind(cell)))
    args = (
        x,
        *_params(xp, cell, x.dtype),
        c,
        out_a,
        out_b,
        np.int64(steps),
        np.int64(batch),
        np.int32(features),
        np.int32(cell.hidden_size),
        np.int32(mode),
    )
    launch((-(-out_a.size // 256),), (256,), args)


def _nonlinear(xp: Any, cell: Cell, x: Any, state: Any) -> tuple[Any, Any]:
    """Launch ``nonlinear_cell``; returns hidden outputs and the final state."""
    steps, batch, features = x.shape
    hidden, itemsize = cell.hidden_size, x.dtype.itemsize
    h0, c0 = state if isinstance(state, tuple) else (state, state)
    y = xp.empty((steps, batch, hidden), x.dtype)
    h, c = xp.ascontiguousarray(h0).copy(), xp.ascontiguousarray(c0).copy()
    if steps == 0 or batch == 0:
        return y, ((h, c) if isinstance(state, tuple) else h)
    p = cell.params_for(xp, x.dtype)
    rows = p["weight_hh"].shape[0]
    multiprocessors, max_shared = device_limits(xp)

    def scratch(sb: int) -> int:  # states, gate rows and missing flags of sb series
        return (2 * sb * hidden + 2 * sb * rows) * itemsize + 4 * sb

    sb = next(
        (
            s
            for s in _SERIES_PER_BLOCK
            if -(-batch // s) >= multiprocessors and scratch(s) <= max_shared
        ),
        1,
    )
    weights = hidden * rows * itemsize
    w_shared = scratch(sb) + weights <= max_shared
    shared = scratch(sb) + (weights if w_shared else 0)
    expression = _nonlinear_cell(dtype_name(x), KINDS[cell.kernel], sb)
    args = (
        x,
        *(xp.ascontiguousarray(p[k].T) for k in ("weight_ih", "weight_hh")),
        *(xp.ascontiguousarray(p[k]) for k in ("bias_ih", "bias_hh")),
        xp.ascontiguousarray(h0),
        xp.ascontiguousarray(c0),
        y,
        h,
        c,
        np.int64(steps),
        np.int64(batch),
        np.int32(features),
        np.int32(hidden),
        np.int32(w_shared),
    )
    threads = min(_NONLINEAR_THREADS, -(-rows // 32) * 32)
    launch = kernel(xp, _SOURCE, expression, shared)
    launch((-(-batch // sb),), (threads,), args, shared_mem=shared)
    return y, ((h, c) if isinstance(state, tuple) else h)

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

from typing import Any

import numpy as np

from ...arrays import namespace
from .. import KINDS
from ..interface import KernelSpec, ReadoutArrays
from .compiler import CTYPES, dtype_name, kernel
from .device import device_limits
from .launch import tile_launch
from .tiles import tile_plan, tile_shared_bytes

__all__ = ["emit", "expressions", "run", "summary", "supports", "transition"]

_SOURCE = "cells.cu"
_WRITE_Y, _SUMMARY, _FINAL, _READOUT = 1, 2, 4, 8
# The kinds each template of cells.cu implements.
_LINEAR_KINDS = ("mingru", "minlstm", "qrnn", "diagonal")
_NONLINEAR_KINDS = ("elman", "gru", "lstm")
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


def supports(spec: KernelSpec) -> bool:
    """True when the kernels here run the cell ``spec`` describes: at most 256 hidden units."""
    kinds = _LINEAR_KINDS if spec.linear else _NONLINEAR_KINDS
    return spec.kind in kinds and spec.hidden <= _MAX_HIDDEN


def expressions() -> list[str]:
    """The kernel instantiations this module may launch."""
    out = []
    for ctype in CTYPES.values():
        for kind in _LINEAR_KINDS:
            for g in (False, True):
                out.append(_linear_cell(ctype, _STEPS_PER_THREAD, KINDS[kind], g))
                out.append(_linear_maps(ctype, KINDS[kind], g))
        for kind in _NONLINEAR_KINDS:
            out.extend(_nonlinear_cell(ctype, KINDS[kind], sb) for sb in _SERIES_PER_BLOCK)
    return out


def _linear_cell(ctype: str, k: int, kind: int, g: bool) -> str:
    return f"linear_cell<{ctype}, {k}, {kind}, {str(g).lower()}>"


def _linear_maps(ctype: str, kind: int, g: bool) -> str:
    return f"linear_maps<{ctype}, {kind}, {str(g).lower()}>"


def _nonlinear_cell(ctype: str, kind: int, series_per_block: int) -> str:
    return f"nonlinear_cell<{ctype}, {kind}, {series_per_block}>"


def run(spec: KernelSpec, x: Any, state: Any, readout: ReadoutArrays | None) -> tuple[Any, Any]:
    """Run the cell over checked inputs ``x`` from ``state``, then ``readout`` if given.

    As :func:`rnncore.kernels.cells.run`, on the inputs' device.
    """
    xp = namespace(x)
    x = xp.ascontiguousarray(x)
    if not spec.linear:
        y, state = _nonlinear(xp, spec, x, state)
        return (y if readout is None else readout(y)), state
    steps, batch = x.shape[:2]
    outputs = spec.hidden if readout is None else readout.output_size
    y = xp.empty((steps, batch, outputs), x.dtype)
    c = xp.empty((batch, spec.hidden), x.dtype)
    if steps == 0 or batch == 0:
        c[...] = state
        return y, c
    _launch_linear(xp, spec, x, c0=xp.ascontiguousarray(state), y=y, c=c, readout=readout)
    return y, c


def summary(spec: KernelSpec, x: Any) -> tuple[Any, Any]:
    """The summary ``(A, B)`` of checked inputs ``x``, without storing the gates."""
    xp = namespace(x)
    x = xp.ascontiguousarray(x)
    shape = (x.shape[1], spec.hidden)
    big_a, big_b = xp.ones(shape, x.dtype), xp.zeros(shape, x.dtype)
    if x.shape[0] and x.shape[1]:
        _launch_linear(xp, spec, x, c0=xp.zeros_like(big_b), summary=(big_a, big_b))
    return big_a, big_b


def transition(spec: KernelSpec, x: Any) -> tuple[Any, Any]:
    """The decays and inputs ``(a, b)`` that checked inputs ``x`` feed to the scan."""
    xp = namespace(x)
    a = xp.empty((*x.shape[:2], spec.hidden), x.dtype)
    b = xp.empty_like(a)
    _launch_maps(xp, spec, x, out=a, out_b=b)
    return a, b


def emit(spec: KernelSpec, c: Any, x: Any) -> Any:
    """Outputs for scanned states ``c`` and checked inputs ``x``; NaN where missing."""
    xp = namespace(x, c)
    y = xp.empty((*x.shape[:2], spec.hidden), x.dtype)
    _launch_maps(xp, spec, x, out=y, states=xp.ascontiguousarray(c.astype(x.dtype, copy=False)))
    return y


# -- launches: named fields in, the kernels' positional arguments out ------------------


def _params(xp: Any, spec: KernelSpec) -> tuple[Any, Any, Any]:
    """A linear cell's projection weight, bias and decays, contiguous on the device."""
    return tuple(xp.ascontiguousarray(spec.params[k]) for k in ("weight", "bias", "decay"))


def _launch_linear(
    xp: Any,
    spec: KernelSpec,
    x: Any,
    *,
    c0: Any,
    y: Any = None,
    c: Any = None,
    readout: ReadoutArrays | None = None,
    summary: tuple[Any, Any] | None = None,
) -> None:
    """Launch ``linear_cell`` over ``x`` (at least one step), its state running from ``c0``.

    Writes what it is given: each step's outputs (or their ``readout``) to ``y``, the
    final state to ``c``, the summary ``(A, B)`` to ``summary``.
    """
    steps, batch, features = x.shape
    hidden, itemsize = spec.hidden, x.dtype.itemsize
    unused = c0[:0]
    mode = (
        (_WRITE_Y if y is not None else 0)
        | (_FINAL if c is not None else 0)
        | (_SUMMARY if summary is not None else 0)
        | (_READOUT if readout is not None else 0)
    )
    ro_w, ro_b = (unused, unused) if readout is None else (readout.weight, readout.bias)
    big_a, big_b = (unused, unused) if summary is None else summary
    per_chain = max(1, 32 // hidden)
    plan = tile_plan(batch * hidden, steps, itemsize, per_chain * hidden, _STEPS_PER_THREAD)
    n_chains = plan.n_chains(batch * hidden)
    shared = tile_shared_bytes(plan, itemsize)
    if readout is not None:
        shared += plan.groups * plan.steps_per_thread * plan.cols * itemsize
    expression = _linear_cell(
        dtype_name(x), plan.steps_per_thread, KINDS[spec.kind], spec.activation == "g"
    )
    blocks, scratch = tile_launch(xp, plan, n_chains, x.dtype)
    args = (
        x,
        *_params(xp, spec),
        c0,
        ro_w,
        ro_b,
        unused if y is None else y,
        unused if c is None else c,
        big_a,
        big_b,
        *scratch,
        np.int64(steps),
        np.int64(batch),
        np.int32(features),
        np.int32(hidden),
        np.int32(0 if readout is None else readout.output_size),
        np.int32(mode),
    )
    launch = kernel(xp, _SOURCE, expression, shared)
    launch((blocks,), (plan.threads,), args, shared_mem=shared)


def _launch_maps(
    xp: Any, spec: KernelSpec, x: Any, *, out: Any, out_b: Any = None, states: Any = None
) -> None:
    """Launch ``linear_maps``, one thread per output element.

    With ``states`` (scanned states ``c``), write the cell's outputs to ``out``;
    without, its transition: the decays to ``out``, the inputs to ``out_b``.
    """
    x = xp.ascontiguousarray(x)
    if not out.size:
        return
    steps, batch, features = x.shape
    expression = _linear_maps(dtype_name(x), KINDS[spec.kind], spec.activation == "g")
    args = (
        x,
        *_params(xp, spec),
        out if states is None else states,
        out,
        out if out_b is None else out_b,
        np.int64(steps),
        np.int64(batch),
        np.int32(features),
        np.int32(spec.hidden),
        np.int32(states is not None),
    )
    launch = kernel(xp, _SOURCE, expression)
    launch((-(-out.size // 256),), (256,), args)


def _nonlinear(xp: Any, spec: KernelSpec, x: Any, state: Any) -> tuple[Any, Any]:
    """Launch ``nonlinear_cell``; returns hidden outputs and the final state."""
    steps, batch, features = x.shape
    hidden, itemsize = spec.hidden, x.dtype.itemsize
    h0, c0 = state if isinstance(state, tuple) else (state, state)
    y = xp.empty((steps, batch, hidden), x.dtype)
    h, c = xp.ascontiguousarray(h0).copy(), xp.ascontiguousarray(c0).copy()
    if steps == 0 or batch == 0:
        return y, ((h, c) if isinstance(state, tuple) else h)
    p = spec.params
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
    expression = _nonlinear_cell(dtype_name(x), KINDS[spec.kind], sb)
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

"""Fused kernels of the cells: gates, recurrence and readout in one pass over the data.

Each kernel runs groups of series in parallel and, within a group, walks time once:

- linear-state cells (:class:`~rnncore.MinGRU`, :class:`~rnncore.MinLSTM`,
  :class:`~rnncore.QRNN`, :class:`~rnncore.DiagonalLinear`) take a tile of
  ``_TILE`` steps of one series, project it, compute the gates of the whole tile
  with vectorised exponentials, scan it, and write the outputs (or their readout)
  without storing hidden states;
- nonlinear cells (:class:`~rnncore.Elman`, :class:`~rnncore.GRU`,
  :class:`~rnncore.LSTM`) step every series of the group through time, the recurrent
  product and the gate maths fused.

A step where any input feature is NaN is the identity with NaN outputs, as in the
reference path. Arithmetic is in the input's dtype; the only liberty taken is fusing
a multiply and an add into one rounding (``fastmath="contract"``), and summing a
readout's products in any order. The exponentials are written out (a range reduction
and a polynomial, accurate to about one unit in the last place) so that the compiler
can vectorise them: numba's calls into the C library cannot be.

All numba code of the cells' forward passes lives in this one module: numba's on-disk
cache checks only the file of the function it caches, so a kernel and the helpers it
inlines must change together. (The backward kernel of
:mod:`rnncore.kernels.linear_vjp`, which inlines helpers of this module, keys its cache
on a digest of this file.)
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.extending import intrinsic, overload
from numba.np.numpy_support import as_dtype

from ..arrays import empty_steps
from . import KINDS
from .interface import KernelSpec, ReadoutArrays

__all__ = [
    "SPARE_ROWS",
    "TAPE_BLOCKS",
    "emit",
    "run",
    "run_nonlinear",
    "summary",
    "supports",
    "transition",
]

_MINGRU, _MINLSTM, _QRNN, _ELMAN, _GRU, _LSTM = (
    KINDS[k] for k in ("mingru", "minlstm", "qrnn", "elman", "gru", "lstm")
)

#: Blocks of ``H`` values per step that a recording run of a nonlinear cell keeps, by
#: kind: the state before the step, then the gates' activations (GRU: also the
#: recurrent part of the candidate's pre-activation, ``W_hn h + b_hn``; Elman: a
#: spare block, where the backward pass writes its cotangents as it writes the
#: others' over their gates). LSTM's ``tanh`` of the new cell state is not kept: the
#: backward pass recomputes it from the next step's ``c``.
TAPE_BLOCKS = {"elman": ("h", "spare"), "gru": ("h", "r", "z", "n", "hn"),
               "lstm": ("h", "c", "i", "f", "g", "o")}  # fmt: skip

# Steps per tile of a linear cell (its gates fit in the L1 cache), and series per
# parallel task (a cache line of inputs and outputs).
_TILE = 16
_GROUP = 16

_JIT = {"nogil": True, "cache": True, "error_model": "numpy", "fastmath": {"contract"}}
# Helpers taking arrays skip numba's reference counting, which would cost atomic
# operations on counts shared between threads at every call (their callers own the
# arrays); they work on a tile of steps, so that calls are few.
_LEAF = {**_JIT, "_nrt": False}
# Scalar maths and per-step helpers are inlined by numba, so that loops vectorise and
# no call (with its many arguments) is paid per step.
_INLINE = {**_LEAF, "inline": "always"}


def supports(spec: KernelSpec) -> bool:
    """True when a kernel here runs the cell ``spec`` describes: its kind is in :data:`KINDS`."""
    return spec.kind in KINDS


def run(
    spec: KernelSpec, x: np.ndarray, state: Any, readout: ReadoutArrays | None
) -> tuple[np.ndarray, Any]:
    """Run the cell over checked inputs ``x`` from ``state``, then ``readout`` if given.

    Parameters
    ----------
    spec
        The cell, of a kind in :data:`KINDS`.
    x
        ``(T, B, F)`` float inputs; NaN marks a missing step.
    state
        The cell's initial state (arrays ``(B, H)`` of ``x``'s dtype).
    readout
        Applied to the outputs within the kernel, if given.

    Returns
    -------
    y
        ``(T, B, H)`` outputs, or ``(T, B, outputs)`` with a readout.
    state
        The state after the last step.
    """
    y = empty_steps(x, spec.hidden if readout is None else readout.output_size)
    if spec.linear:
        c = np.empty((x.shape[1], spec.hidden), x.dtype)
        _scan_linear(spec, x, c0=state, c=c, y=y, readout=readout)
        return y, c
    return y, run_nonlinear(spec, x, state, readout, y, np.empty((0, 0, 0), x.dtype))


def run_nonlinear(
    spec: KernelSpec,
    x: np.ndarray,
    state: Any,
    readout: ReadoutArrays | None,
    y: np.ndarray,
    tape: np.ndarray,
) -> Any:
    """:func:`run` of a nonlinear cell into outputs ``y``, recording its steps on ``tape``.

    ``tape`` is empty (nothing recorded), or ``(T + 1, B, width)`` with the width of
    :data:`TAPE_BLOCKS`: row ``t`` receives the state before step ``t`` and, unless
    that step is missing, its gates (row ``T``: the final state), as
    :mod:`rnncore.kernels.nonlinear_vjp` reads them. Returns the final state.
    """
    p = spec.params
    hc0 = np.stack(state if isinstance(state, tuple) else (state, state))
    hc = np.empty_like(hc0)
    ro_w, ro_b = _readout_operands(spec, x, readout)
    _nonlinear(
        KINDS[spec.kind],
        readout is not None,
        _read_only(x),
        *map(_frozen, (p["weight_ih"].T, p["weight_hh"].T, p["bias_ih"], p["bias_hh"], hc0)),
        ro_w,
        ro_b,
        y,
        hc,
        tape,
    )
    return (hc[0], hc[1]) if isinstance(state, tuple) else hc[0]


def transition(spec: KernelSpec, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The decays and inputs ``(a, b)`` that checked inputs ``x`` feed to the scan.

    As :meth:`rnncore.cells.LinearStateCell.transition`, with the gate maths of :func:`run`.
    """
    a, b = (np.empty((*x.shape[:2], spec.hidden), x.dtype) for _ in range(2))
    _map_linear(spec, x, out=a, out_b=b)
    return a, b


def summary(spec: KernelSpec, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The summary ``(A, B)`` of checked inputs ``x``, without storing the gates.

    As :meth:`rnncore.cells.LinearStateCell.summary`, with the gate maths of :func:`run`:
    the recurrence runs from zero with no outputs, multiplying up the decays on the way.
    """
    shape = (x.shape[1], spec.hidden)
    big_a, big_b = np.ones(shape, x.dtype), np.empty(shape, x.dtype)
    _scan_linear(spec, x, c0=np.zeros(shape, x.dtype), c=big_b, decay_product=big_a)
    return big_a, big_b


def emit(spec: KernelSpec, c: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Outputs for scanned states ``c`` and checked inputs ``x``; NaN where missing.

    As :meth:`rnncore.cells.LinearStateCell.emit`, with the gate maths of :func:`run`.
    """
    y = np.empty(c.shape, x.dtype)
    _map_linear(spec, x, out=y, states=c.astype(x.dtype, copy=False))
    return y


# -- launches: named fields in, the jitted kernels' positional arguments out ----------


def _scan_linear(
    spec: KernelSpec,
    x: np.ndarray,
    *,
    c0: np.ndarray,
    c: np.ndarray,
    y: np.ndarray | None = None,
    readout: ReadoutArrays | None = None,
    decay_product: np.ndarray | None = None,
    starts: np.ndarray | None = None,
) -> None:
    """Run a linear cell's gates and scan over ``x`` (:func:`_linear`).

    The state runs from ``c0`` and ends in ``c``. Each step's outputs, or their
    ``readout``, go to ``y`` when given; ``decay_product`` ``(B, H)``, when given, is
    multiplied by every step's decays (a summary's ``A``); ``starts``
    ``(ceil(T / TILE), B, H)``, when given, receives the state at the start of every
    tile of ``_TILE`` steps (the tape of :mod:`rnncore.kernels.linear_vjp`).
    """
    steps, batch = x.shape[:2]
    if y is None:
        y = np.empty((steps, batch, 0), x.dtype)
    if decay_product is None:
        decay_product = np.ones((0, spec.hidden), x.dtype)
    if starts is None:
        starts = np.empty((0, batch, spec.hidden), x.dtype)
    _linear(
        *_gate_operands(spec, x),
        readout is not None,
        _frozen(c0),
        *_readout_operands(spec, x, readout),
        y,
        c,
        decay_product,
        starts,
    )


def _map_linear(
    spec: KernelSpec,
    x: np.ndarray,
    *,
    out: np.ndarray,
    out_b: np.ndarray | None = None,
    states: np.ndarray | None = None,
) -> None:
    """Map a linear cell's gates over ``x``, step by step (:func:`_maps`).

    With ``states`` (scanned states ``c``), write the cell's outputs to ``out``;
    without, its transition: the decays to ``out``, the inputs to ``out_b``.
    """
    emitting = states is not None
    c = _frozen(states if emitting else out_b)  # unread without states
    _maps(*_gate_operands(spec, x), emitting, c, out, out if out_b is None else out_b)


def _gate_operands(spec: KernelSpec, x: np.ndarray) -> tuple[Any, ...]:
    """The leading kernel arguments of a linear cell: kind, ``g``, inputs and parameters."""
    p = spec.params
    weights = map(_frozen, (p["weight"].T, p["bias"], p["decay"]))
    return KINDS[spec.kind], spec.activation == "g", _read_only(x), *weights


def _readout_operands(
    spec: KernelSpec, x: np.ndarray, readout: ReadoutArrays | None
) -> tuple[np.ndarray, np.ndarray]:
    """The readout's weight and bias, or arrays of zero outputs when there is none."""
    if readout is None:
        return _frozen(np.zeros((0, spec.hidden), x.dtype)), _frozen(np.zeros(0, x.dtype))
    return _frozen(readout.weight), _frozen(readout.bias)


def _frozen(x: np.ndarray) -> np.ndarray:
    """A read-only C-contiguous view: one kernel signature per dtype, whatever the caller."""
    return _read_only(np.ascontiguousarray(x))


def _read_only(x: np.ndarray) -> np.ndarray:
    """A view of ``x`` that cannot be written to.

    Inputs are passed so, in their own layout, never copied: contiguous ones take
    the kernels' C signature, any other strides (data stored ``(series, time)`` and
    viewed time-major, slices) their strided one.
    """
    x = x.view()
    x.flags.writeable = False
    return x


# -- maths that vectorises ---------------------------------------------------------


def _like(x: Any, value: float) -> Any:
    """``value`` in the float type of ``x`` (numba only)."""
    raise NotImplementedError


@overload(_like)
def _like_impl(x, value):
    cast = as_dtype(x).type
    return lambda x, value: cast(value)


def _tiny(x: Any) -> Any:
    """The smallest normal number of the float type of ``x`` (numba only).

    Products of decays (a summary's ``A``) are flushed to zero below it: a decay
    above 1/2 rounds the smallest subnormal to itself, so an underflowed product
    would otherwise stay subnormal, and each multiply by it costs a hundred cycles.
    The error is below ``tiny * |h|``.
    """
    raise NotImplementedError


@overload(_tiny)
def _tiny_impl(x):
    cast = as_dtype(x).type
    tiny = cast(np.finfo(cast).tiny)
    return lambda x: tiny


# Bits and mantissa bits m of each float type. Adding 1.5 * 2**m to a float of magnitude
# below 2**(m - 1) rounds it to an integer n, held in the low bits of the sum's mantissa.
_BITS = {types.float32: (32, 23), types.float64: (64, 52)}


@intrinsic
def _pow2(typingctx, shifted):
    """``2**n`` from ``shifted = 1.5 * 2**m + n``, ``n`` within the normal exponents."""
    bits, mantissa = _BITS[shifted]
    bias = 2 ** (bits - mantissa - 2) - 1
    offset = (bias + mantissa) << mantissa | 1 << (mantissa - 1)  # the bits of 1.5 * 2**m

    def codegen(context, builder, signature, args):
        ity = ir.IntType(bits)
        n = builder.bitcast(args[0], ity)
        n = builder.sub(n, ir.Constant(ity, offset - bias))  # n + bias
        n = builder.shl(n, ir.Constant(ity, mantissa))
        return builder.bitcast(n, context.get_value_type(shifted))

    return shifted(shifted), codegen


def _exp_parts(v: Any) -> tuple[Any, Any]:
    """``(s, q)`` with ``exp(v) = s * (1 + q)``, ``s`` a power of two (numba only)."""
    raise NotImplementedError


# Per dtype: the clamp below which exp(v) is ~0 (keeping 2**n normal), ln 2 split in
# a head exact in products with n and a tail, and how many Taylor terms of e**r - 1
# reach the dtype's precision for |r| <= ln(2) / 2.
_EXP = {
    np.float32: (-87.0, 0.693359375, -2.12194440e-4, 7),
    np.float64: (-708.0, 6.93147180369123816490e-01, 1.90821492927058770002e-10, 14),
}


@overload(_exp_parts)
def _exp_parts_impl(v):
    cast = as_dtype(v).type
    low, ln2_head, ln2_tail, terms = (cast(c) for c in _EXP[cast])
    log2e, shifter = cast(1 / math.log(2)), cast(1.5 * 2.0 ** _BITS[v][1])
    coeffs = tuple(cast(1 / math.factorial(n)) for n in range(int(terms), 1, -1))

    def impl(v):
        v = low if v < low else v  # keeps NaN, which then flows into q
        shifted = v * log2e + shifter
        n = shifted - shifter  # round(v / ln 2)
        r = (v - n * ln2_head) - n * ln2_tail
        p = coeffs[0]
        for c in coeffs[1:]:
            p = p * r + c
        return _pow2(shifted), r + r * r * p

    return impl


def _in_tail(u: Any) -> bool:
    """True where ``exp(-|u|)`` nears the floor of :func:`_exp` (numba only)."""
    raise NotImplementedError


@overload(_in_tail)
def _in_tail_impl(u):
    cast = as_dtype(u).type
    limit = cast(-_EXP[cast][0] - 8)  # e**8 above the floor, where products stay normal

    return lambda u: abs(u) > limit


@numba.njit(**_INLINE)
def _exp(v):
    """``exp(v)`` for ``v <= 0`` (NaN gives NaN)."""
    s, q = _exp_parts(v)
    return s + s * q


@numba.njit(**_INLINE)
def _sigmoids(u):
    """``(sigmoid(u), sigmoid(-u))``, each accurate far into its tail."""
    e = _exp(-abs(u))
    big = _like(u, 1.0) / (_like(u, 1.0) + e)
    small = e * big
    return (big, small) if u >= 0 else (small, big)


@numba.njit(**_INLINE)
def _tanh(u):
    """``tanh(u)`` from ``expm1``, accurate for small ``|u|`` too."""
    s, q = _exp_parts(_like(u, -2.0) * abs(u))
    m = s * q + (s - _like(u, 1.0))
    t = -m / (m + _like(u, 2.0))
    return t if u >= 0 else -t


@numba.njit(**_INLINE)
def _g(u):
    """The log-space activation ``g``: ``u + 0.5`` for ``u >= 0``, else ``sigmoid(u)``."""
    return u + _like(u, 0.5) if u >= 0 else _sigmoids(u)[0]


# Inner loops index arrays with their bare loop variable (other subscripts fixed):
# ``v[offset + j]`` would make numba wrap negative indices, which the compiler can
# only vectorise as gathers.


@numba.njit(nogil=True, cache=True, fastmath={"contract", "reassoc"}, _nrt=False)
def _dot(acc, w, o, v, p, q):
    """``acc + w[o] @ v[p, q]``, summed in any order (so it vectorises)."""
    for j in range(w.shape[1]):
        acc += w[o, j] * v[p, q, j]
    return acc


@numba.njit(**_INLINE)
def _write(y, t, s, missing, v, p, q, readout, ro_w, ro_b):
    """Write step ``t`` of series ``s`` from hidden outputs ``v[p, q]``."""
    if missing:
        for o in range(y.shape[2]):
            y[t, s, o] = np.nan
    elif readout:
        for o in range(ro_w.shape[0]):
            y[t, s, o] = _dot(ro_b[o], ro_w, o, v, p, q)
    else:
        for j in range(y.shape[2]):
            y[t, s, j] = v[p, q, j]


@numba.njit(**_INLINE)
def _project(out, i, w, bias, x, t, s):
    """``out[i] = bias + x[t, s] @ w`` (``w`` is ``(F, R)``); True if ``x[t, s]`` has a NaN."""
    missing = False
    for e in range(bias.size):
        out[i, e] = bias[e]
    for f in range(w.shape[0]):
        xf = x[t, s, f]
        missing |= np.isnan(xf)
        for e in range(bias.size):
            out[i, e] += xf * w[f, e]
    return missing


# -- linear-state cells ------------------------------------------------------------


@numba.njit(**_INLINE)
def _normalised_gates(uf, ui):
    """minLSTM's ``(f / (f + i), i / (f + i))`` for ``f, i = sigmoid(uf), sigmoid(ui)``.

    With ``pf = 1 + exp(-|uf|)``, ``f = af / pf`` where ``af`` is 1 or ``exp(-|uf|)``
    (likewise ``i``), so the ratio is ``af pi / (af pi + ai pf)``: two exponentials
    and one division. Exact unless both gates are deep in their tails, where ``af``
    and ``ai`` reach the floor of :func:`_exp` (see :func:`_in_tail`).
    """
    one = _like(uf, 1.0)
    ef, ei = _exp(-abs(uf)), _exp(-abs(ui))
    pf, pi = one + ef, one + ei
    nf = (one if uf >= 0 else ef) * pi
    ni = (one if ui >= 0 else ei) * pf
    total = one / (nf + ni)
    return nf * total, ni * total


@numba.njit(**_INLINE)
def _normalised_tail_gates(uf, ui):
    """:func:`_normalised_gates` where a gate is deep in its tail: three exponentials.

    With ``m = max(-u, 0)``, ``sigmoid(u) = exp(-m) / (1 + exp(-|u|))``: the ratio of
    the two is formed from ``exp(-|mf - mi|)`` and factors in ``(1, 2]``, so it stays
    exact where both gates underflow.
    """
    one, zero = _like(uf, 1.0), _like(uf, 0.0)
    pf = one + _exp(-abs(uf))
    pi = one + _exp(-abs(ui))
    gap = (zero if uf > 0 else -uf) - (zero if ui > 0 else -ui)  # log(f/i) = log(pi/pf) - gap
    e = _exp(-abs(gap))
    nf = pi if gap <= 0 else e * pi
    ni = e * pf if gap <= 0 else pf
    total = one / (nf + ni)
    return nf * total, ni * total


@numba.njit(**_INLINE)
def _qrnn_gates(uz, uf, uo):
    """QRNN's ``(sigmoid(uf), sigmoid(-uf) * tanh(uz), sigmoid(uo))`` with one division.

    Each factor is a ratio whose denominator lies in ``[1, 2]``; the three share one
    reciprocal of the product of the denominators.
    """
    one, two = _like(uz, 1.0), _like(uz, 2.0)
    ef, eo = _exp(-abs(uf)), _exp(-abs(uo))
    s, q = _exp_parts(-two * abs(uz))
    m = s * q + (s - one)  # expm1(-2|uz|): tanh(|uz|) = -m / (2 + m)
    den_f, den_z, den_o = one + ef, two + m, one + eo
    inv = one / (den_f * den_z * den_o)
    tanh_z = -m if uz >= 0 else m
    a = (one if uf >= 0 else ef) * (den_z * den_o * inv)
    b = (ef if uf >= 0 else one) * tanh_z * (den_o * inv)
    o = (one if uo >= 0 else eo) * (den_f * den_z * inv)
    return a, b, o


@numba.njit(**_LEAF)
def _gate_tile(kind, g, x, start, s, w, bias, decay, u, ab, gap):
    """The gates of series ``s`` of a linear cell over the ``len(gap)`` steps from ``start``.

    ``u`` ``(n, blocks * H)`` receives the projections, ``ab`` ``(3, n, H)`` the decays,
    the inputs and QRNN's output gate, and ``gap`` which steps are missing.
    """
    n, hidden = gap.size, decay.size
    for i in range(n):
        gap[i] = _project(u, i, w, bias, x, start + i, s)
    u = u.reshape(u.shape[0], -1, hidden)  # (n, blocks, H)
    if g:
        for i in range(n):
            for j in range(hidden):
                u[i, -1, j] = _g(u[i, -1, j])
    for i in range(n):
        if kind == _MINGRU:
            for j in range(hidden):
                z, ab[0, i, j] = _sigmoids(u[i, 0, j])
                ab[1, i, j] = z * u[i, 1, j]
        elif kind == _MINLSTM:
            tail = False
            for j in range(hidden):
                ab[0, i, j], i_bar = _normalised_gates(u[i, 0, j], u[i, 1, j])
                ab[1, i, j] = i_bar * u[i, 2, j]
                tail |= _in_tail(u[i, 0, j]) | _in_tail(u[i, 1, j])
            if tail:  # rare: this step again, with the exact tail formula
                for j in range(hidden):
                    ab[0, i, j], i_bar = _normalised_tail_gates(u[i, 0, j], u[i, 1, j])
                    ab[1, i, j] = i_bar * u[i, 2, j]
        elif kind == _QRNN:
            for j in range(hidden):
                ab[0, i, j], ab[1, i, j], ab[2, i, j] = _qrnn_gates(
                    u[i, 0, j], u[i, 1, j], u[i, 2, j]
                )
        else:
            for j in range(hidden):
                ab[0, i, j] = decay[j]
                ab[1, i, j] = u[i, 0, j]


@numba.njit(**_LEAF)
def _scan_tile(kind, ab, gap, c, s, prod):
    """Run the state ``c[s]`` through a tile's gates, leaving each step's outputs in ``ab[0]``.

    With rows in ``prod``, ``prod[s]`` is also multiplied by the decays (a summary's ``A``).
    """
    track = prod.shape[0] > 0
    for i in range(gap.size):
        if not gap[i]:
            if track:  # flushed to zero below the normal range, where it would stay (slowly)
                for j in range(c.shape[1]):
                    p = prod[s, j] * ab[0, i, j]
                    prod[s, j] = p if abs(p) >= _tiny(p) else _like(p, 0.0)
            for j in range(c.shape[1]):
                c[s, j] = ab[0, i, j] * c[s, j] + ab[1, i, j]
                ab[0, i, j] = c[s, j]
        if kind == _QRNN:
            for j in range(c.shape[1]):
                ab[0, i, j] *= ab[2, i, j]


@numba.njit(**_LEAF)
def _write_tile(y, start, s, gap, ab, readout, ro_w, ro_b):
    """Write the ``len(gap)`` steps of series ``s`` from ``start`` from outputs ``ab[0]``."""
    for i in range(gap.size):
        _write(y, start + i, s, gap[i], ab, 0, i, readout, ro_w, ro_b)


@numba.njit(inline="always", **_JIT)  # allocates: reference counting kept
def _tile_scratch(x, projections, hidden):
    """A task's tile buffers: projections ``u``, gates ``ab`` (see :func:`_gate_tile`), gaps."""
    u = np.empty((_TILE, projections), x.dtype)
    ab = np.empty((3, _TILE, hidden), x.dtype)
    return u, ab, np.empty(_TILE, np.bool_)


@numba.njit(parallel=True, **_JIT)
def _linear(kind, g, x, w, bias, decay, readout, c0, ro_w, ro_b, y, c, prod, starts):
    steps, batch = x.shape[:2]
    hidden = decay.size
    record = starts.shape[0] > 0
    for group in prange(-(-batch // _GROUP)):
        u, ab, gaps = _tile_scratch(x, bias.size, hidden)
        first, last = group * _GROUP, min(batch, (group + 1) * _GROUP)
        c[first:last] = c0[first:last]
        for start in range(0, steps, _TILE):
            gap = gaps[: min(_TILE, steps - start)]
            for s in range(first, last):
                if record:
                    starts[start // _TILE, s] = c[s]
                _gate_tile(kind, g, x, start, s, w, bias, decay, u, ab, gap)
                _scan_tile(kind, ab, gap, c, s, prod)
                _write_tile(y, start, s, gap, ab, readout, ro_w, ro_b)


@numba.njit(**_LEAF)
def _map_tile(kind, emit, start, s, gap, ab, c, out_a, out_b):
    """Write a tile's transition (``emit`` False) or its outputs from states ``c``."""
    for i in range(gap.size):
        t = start + i
        for j in range(ab.shape[2]):
            if emit:
                out = ab[2, i, j] * c[t, s, j] if kind == _QRNN else c[t, s, j]
                out_a[t, s, j] = np.nan if gap[i] else out
            else:  # a missing step is the identity (a = 1, b = 0)
                out_a[t, s, j] = 1 if gap[i] else ab[0, i, j]
                out_b[t, s, j] = 0 if gap[i] else ab[1, i, j]


@numba.njit(parallel=True, **_JIT)
def _maps(kind, g, x, w, bias, decay, emit, c, out_a, out_b):
    steps, batch = x.shape[:2]
    hidden = decay.size
    for group in prange(-(-batch // _GROUP)):
        u, ab, gaps = _tile_scratch(x, bias.size, hidden)
        for start in range(0, steps, _TILE):
            gap = gaps[: min(_TILE, steps - start)]
            for s in range(group * _GROUP, min(batch, (group + 1) * _GROUP)):
                _gate_tile(kind, g, x, start, s, w, bias, decay, u, ab, gap)
                _map_tile(kind, emit, start, s, gap, ab, c, out_a, out_b)


# -- nonlinear cells ---------------------------------------------------------------


@numba.njit(**_INLINE)
def _record_state(tape, t, s, hc, kind):
    """Copy series ``s``'s state (``h``, and LSTM's ``c``) to its leading blocks in ``tape[t]``."""
    hidden = hc.shape[2]
    for j in range(hidden):
        tape[t, s, j] = hc[0, s, j]
    if kind == _LSTM:
        for j in range(hidden):
            tape[t, s, hidden + j] = hc[1, s, j]


@numba.njit(**_INLINE)
def _record_gates(tape, t, s, gates, hn, kind):
    """Copy a step's gates ``gates`` (and GRU's ``hn`` after them) to ``tape[t, s]``."""
    offset = (2 if kind == _LSTM else 1) * hn.size
    for e in range(gates.size):
        tape[t, s, offset + e] = gates[e]
    if kind == _GRU:
        offset += gates.size
        for j in range(hn.size):
            tape[t, s, offset + j] = hn[j]


#: Spare rows an accumulator of :func:`_add_rows_product` has past the group's series.
SPARE_ROWS = 3


@numba.njit(**_LEAF)
def _add_rows_product(acc, rows, first, w):
    """``acc[q] += rows[first + q, :R] @ w`` for the group's ``len(acc) - SPARE_ROWS`` series.

    ``w`` is ``(R, N)``. Eight rows of ``w`` and four series at a time, so that each
    row of ``w`` is read once per four series and ``acc`` loaded and stored an eighth
    as often; past the group's last series, its last is taken again, into ``acc``'s
    spare rows (:data:`SPARE_ROWS`). The recurrent product of the forward step and of
    its cotangent (:mod:`rnncore.kernels.nonlinear_vjp`).
    """
    group, n_rows, width = acc.shape[0] - SPARE_ROWS, w.shape[0], w.shape[1]
    blocked = n_rows - n_rows % 8
    for m in range(0, blocked, 8):
        for q in range(0, group, 4):
            a, b = rows[first + q], rows[first + min(q + 1, group - 1)]
            c, d = rows[first + min(q + 2, group - 1)], rows[first + min(q + 3, group - 1)]
            a0, a1, a2, a3, a4, a5, a6, a7 = _eight(a, m)
            b0, b1, b2, b3, b4, b5, b6, b7 = _eight(b, m)
            c0, c1, c2, c3, c4, c5, c6, c7 = _eight(c, m)
            d0, d1, d2, d3, d4, d5, d6, d7 = _eight(d, m)
            for e in range(width):
                w0, w1, w2, w3 = w[m, e], w[m + 1, e], w[m + 2, e], w[m + 3, e]
                w4, w5, w6, w7 = w[m + 4, e], w[m + 5, e], w[m + 6, e], w[m + 7, e]
                acc[q, e] += ((a0 * w0 + a1 * w1) + (a2 * w2 + a3 * w3)) + (
                    (a4 * w4 + a5 * w5) + (a6 * w6 + a7 * w7)
                )
                acc[q + 1, e] += ((b0 * w0 + b1 * w1) + (b2 * w2 + b3 * w3)) + (
                    (b4 * w4 + b5 * w5) + (b6 * w6 + b7 * w7)
                )
                acc[q + 2, e] += ((c0 * w0 + c1 * w1) + (c2 * w2 + c3 * w3)) + (
                    (c4 * w4 + c5 * w5) + (c6 * w6 + c7 * w7)
                )
                acc[q + 3, e] += ((d0 * w0 + d1 * w1) + (d2 * w2 + d3 * w3)) + (
                    (d4 * w4 + d5 * w5) + (d6 * w6 + d7 * w7)
                )
    for m in range(blocked, n_rows):
        for q in range(group):
            rm = rows[first + q, m]
            for e in range(width):
                acc[q, e] += rm * w[m, e]


@numba.njit(**_INLINE)
def _eight(v, m):
    """``v[m:m + 8]`` as eight scalars."""
    return v[m], v[m + 1], v[m + 2], v[m + 3], v[m + 4], v[m + 5], v[m + 6], v[m + 7]


@numba.njit(**_INLINE)
def _gates(kind, ux, uh, q, hc, s):
    """Step series ``s`` from its projections ``ux[q]`` and ``uh[q]`` (``(blocks, H)`` each).

    Leaves the gates' activations in ``ux[q]`` (LSTM: ``tanh`` of the new cell state
    in ``uh[q, 0]``). One loop per gate and per update, each writing one array, so
    that every loop vectorises.
    """
    hidden = hc.shape[2]
    if kind == _ELMAN:
        for j in range(hidden):
            hc[0, s, j] = _tanh(ux[q, 0, j] + uh[q, 0, j])
    elif kind == _GRU:
        for k in range(2):  # r, z
            for j in range(hidden):
                ux[q, k, j] = _sigmoids(ux[q, k, j] + uh[q, k, j])[0]
        for j in range(hidden):
            ux[q, 2, j] = _tanh(ux[q, 2, j] + ux[q, 0, j] * uh[q, 2, j])
        for j in range(hidden):
            hc[0, s, j] = ux[q, 2, j] + ux[q, 1, j] * (hc[0, s, j] - ux[q, 2, j])
    else:
        for k in range(4):  # i, f, g, o
            if k == 2:
                for j in range(hidden):
                    ux[q, k, j] = _tanh(ux[q, k, j] + uh[q, k, j])
            else:
                for j in range(hidden):
                    ux[q, k, j] = _sigmoids(ux[q, k, j] + uh[q, k, j])[0]
        for j in range(hidden):
            hc[1, s, j] = ux[q, 1, j] * hc[1, s, j] + ux[q, 0, j] * ux[q, 2, j]
        for j in range(hidden):
            uh[q, 0, j] = _tanh(hc[1, s, j])
        for j in range(hidden):
            hc[0, s, j] = ux[q, 3, j] * uh[q, 0, j]


@numba.njit(**_LEAF)
def _nonlinear_step(
    kind, readout, x, t, first, w_ih, w_hh, b_ih, b_hh, gx, gh, hc, ro_w, ro_b, y, tape
):
    """Step series ``first`` to ``first + len(gx)`` through step ``t``.

    The state is ``h = hc[0]`` (and LSTM's ``c = hc[1]``); ``gx`` ``(group, blocks * H)``
    and ``gh`` (:data:`SPARE_ROWS` more) receive the group's projections. The recurrent
    product runs over the whole group eight inputs and four series at a time, so
    that each row of ``w_hh`` is read once per step and four series. The gate
    maths leaves the activations in ``gx``, which a non-empty ``tape`` records (see
    :func:`run_nonlinear`).
    """
    group, hidden = gx.shape[0], hc.shape[2]
    for q in range(gh.shape[0]):
        for e in range(b_hh.size):
            gh[q, e] = b_hh[e]
    _add_rows_product(gh, hc[0], first, w_hh)
    ux, uh = gx.reshape(group, -1, hidden), gh[:group].reshape(group, -1, hidden)
    record = tape.shape[0] > 0
    for q in range(group):
        s = first + q
        if record:
            _record_state(tape, t, s, hc, kind)
        gap = _project(gx, q, w_ih, b_ih, x, t, s)
        if not gap:
            _gates(kind, ux, uh, q, hc, s)
            if record and kind != _ELMAN:
                _record_gates(tape, t, s, gx[q], uh[q, 2], kind)
        _write(y, t, s, gap, hc, 0, s, readout, ro_w, ro_b)


@numba.njit(parallel=True, **_JIT)
def _nonlinear(kind, readout, x, w_ih, w_hh, b_ih, b_hh, hc0, ro_w, ro_b, y, hc, tape):
    steps, batch = x.shape[:2]
    for group in prange(-(-batch // _GROUP)):
        first, last = group * _GROUP, min(batch, (group + 1) * _GROUP)
        gx = np.empty((last - first, b_ih.size), x.dtype)
        gh = np.empty((last - first + SPARE_ROWS, b_hh.size), x.dtype)
        hc[:, first:last] = hc0[:, first:last]
        for t in range(steps):
            args = (w_ih, w_hh, b_ih, b_hh, gx, gh, hc, ro_w, ro_b, y, tape)
            _nonlinear_step(kind, readout, x, t, first, *args)
        if tape.shape[0] > 0:
            for s in range(first, last):
                _record_state(tape, steps, s, hc, kind)

"""The affine scan: the one primitive behind every linear-in-the-state cell.

A linear recurrence ``h_t = a_t * h_{t-1} + b_t`` maps a chunk's entry state to its
exit state by an affine map ``h_end = A * h_start + B`` (its *summary*), and such maps
compose associatively. Running a long recurrence in parallel is therefore three
steps, the same ones whether the chunks are blocks of one array (here) or Dask
chunks on a cluster (:mod:`rnncore.chunked`):

1. *summaries*: each chunk's ``(A, B)``, computed independently;
2. *stitch*: an exclusive prefix over the summaries, giving each chunk's entry state;
3. *fix-up*: each chunk scanned again from its entry state.

The stitch is the scan itself over the chunks' summaries, so states are carried chunk
to chunk: no product of decays is formed over more than one chunk, and no state is
ever divided by one, so long spans whose decay products underflow stay exact. (The
log-depth stitch of Dask chunks in :mod:`rnncore.chunked` does multiply decays across
chunks: an entry state above about 1e15 in float64, 1e7 in float32, is read as zero
where their product underflows, within the norm-wise tolerances.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from . import kernels
from .arrays import float_dtype, namespace
from .trees import reduce_stacked

__all__ = ["IDENTITY", "compose", "linear_scan", "scan_summary", "stitch"]

Summary = tuple[Any, Any]

#: The identity summary: leaves every state unchanged.
IDENTITY: Summary = (1.0, 0.0)

# Below this many elements per time step, one chunk leaves the vector units idle
# and Python's per-step overhead dominates: split time into blocks scanned side by side
# (the reference path; the kernels have their own threshold).
_MIN_STEP_WIDTH = 16384


def compose(first: Summary, second: Summary) -> Summary:
    """Compose two chunk summaries: apply ``first``, then ``second``.

    ``(A1, B1)`` then ``(A2, B2)`` is ``(A2 * A1, A2 * B1 + B2)``. The operation is
    associative, with :data:`IDENTITY` ``(1, 0)`` as its identity.

    Parameters
    ----------
    first, second
        Summaries ``(A, B)`` of arrays (or scalars) that broadcast together.

    Returns
    -------
    tuple
        The summary of the two chunks run one after the other.

    Examples
    --------
    >>> compose((0.5, 1.0), (2.0, 3.0))
    (1.0, 5.0)
    """
    a1, b1 = first
    a2, b2 = second
    return a2 * a1, a2 * b1 + b2


def linear_scan(
    a: Any,
    b: Any,
    h0: Any = None,
    *,
    axis: int = 0,
    chunk: int | Sequence[int] | None = None,
    out: Any = None,
) -> Any:
    """Run the linear recurrence ``h_t = a_t * h_{t-1} + b_t`` along ``axis``.

    Parameters
    ----------
    a
        Decays; broadcasts against ``b``.
    b
        Inputs. The result has ``b``'s dtype (integers are promoted to float64)
        and array type: NumPy in, NumPy out; CuPy in, CuPy out.
    h0
        The state before the first step, broadcasting against one time slice;
        zeros if ``None``.
    axis
        The time axis.
    chunk
        ``None`` lets rnncore choose; an ``int`` L splits time into chunks of L
        steps (the last may be shorter); a sequence gives the chunk lengths, which
        must sum to the length of the time axis. Every chunking gives the same
        result up to rounding.
    out
        An array of the result's shape, dtype and array type to write ``h`` into,
        as with NumPy's ``out=``: a buffer used again saves allocating the result
        and faulting its fresh pages in. ``a`` and ``b`` must not overlap it.

    Returns
    -------
    array
        ``h`` with the broadcast shape of ``a`` and ``b`` (``out`` if given);
        ``h[t]`` is the state after step ``t``. A time axis of length 0 gives an
        empty result.

    Notes
    -----
    NaN is not treated specially here: it propagates as IEEE arithmetic says.
    Cells turn missing observations into identity steps (``a = 1, b = 0``)
    before they reach the scan.

    Examples
    --------
    >>> import numpy as np
    >>> linear_scan(np.full(4, 0.5), np.ones(4))
    array([1.   , 1.5  , 1.75 , 1.875])
    >>> linear_scan(np.full(4, 0.5), np.ones(4), h0=2.0, chunk=[1, 3])
    array([2., 2., 2., 2.])
    """
    xp = namespace(a, b, h0, out)
    a, b, h0 = _prepare(xp, a, b, h0, axis)
    target = None if out is None else _out_view(xp, out, b, axis)
    sizes = _chunk_sizes(b.shape[0], chunk, _width(b), _min_step_width(xp))
    ab, bb = _blocks(xp, a, sizes, 1), _blocks(xp, b, sizes, 0)
    entries = h0[None] if len(sizes) <= 1 else _stitch_stacked(*_block_summaries(xp, ab, bb), h0)
    direct = _blocks_view(target, bb, len(b))
    h = _unblock(xp, _scan_from(xp, ab, bb, entries, direct), sizes)
    if target is None:
        return xp.moveaxis(h, 0, axis)
    if direct is None:
        target[...] = h
    return out


def scan_summary(a: Any, b: Any, *, axis: int = 0) -> Summary:
    """Summarise a chunk as the affine map ``h_end = A * h_start + B``.

    ``A`` is the product of the decays and ``B`` the chunk's scan from a zero
    state, evaluated at its last step. An empty chunk gives the identity.

    Parameters
    ----------
    a, b
        Decays and inputs, as for :func:`linear_scan`.
    axis
        The time axis, which the summary removes.

    Returns
    -------
    tuple of arrays
        ``(A, B)``, each of the broadcast shape of ``a`` and ``b`` without ``axis``.

    Examples
    --------
    >>> import numpy as np
    >>> A, B = scan_summary(np.full(3, 0.5), np.ones(3))
    >>> float(A), float(B)
    (0.125, 1.75)
    """
    xp = namespace(a, b)
    a, b, zero = _prepare(xp, a, b, None, axis)
    sizes = _chunk_sizes(b.shape[0], None, _width(b), _min_step_width(xp))
    ab, bb = _blocks(xp, a, sizes, 1), _blocks(xp, b, sizes, 0)
    big_a, big_b = _block_summaries(xp, ab, bb)
    if big_a.shape[0] == 0:
        return xp.ones_like(zero), zero
    return reduce_stacked((big_a, big_b), compose)


def stitch(summaries: Sequence[Summary], h0: Any = None) -> Any:
    """Give each chunk its entry state from the summaries of the chunks before it.

    The exclusive prefix ``entry[0] = h0``, ``entry[k] = (S_0 ∘ ... ∘ S_{k-1})(h0)``,
    computed as the affine scan over the summaries: chunk after chunk, carrying
    states, so that decays are never multiplied across chunks.

    Parameters
    ----------
    summaries
        The chunks' summaries ``(A_k, B_k)`` in time order.
    h0
        The state before the first chunk; zeros if ``None``.

    Returns
    -------
    array
        ``entries`` stacked along a new leading axis: ``entries[k]`` is the state
        entering chunk ``k``.

    Examples
    --------
    >>> stitch([(0.5, 1.0), (0.5, 1.0), (0.5, 1.0)], h0=0.0)
    array([0. , 1. , 1.5])
    """
    if len(summaries) == 0:
        raise ValueError("stitch needs at least one chunk summary; got none")
    xp = namespace(*(x for s in summaries for x in s), h0)
    pairs = [xp.broadcast_arrays(xp.asarray(a), xp.asarray(b)) for a, b in summaries]
    big_a = xp.stack([p[0] for p in pairs])
    big_b = xp.stack([p[1] for p in pairs])
    dtype = float_dtype(np.result_type(big_a.dtype, big_b.dtype), what="summaries")
    h0 = xp.zeros(big_b.shape[1:], dtype) if h0 is None else xp.asarray(h0, dtype=dtype)
    return _stitch_stacked(big_a.astype(dtype), big_b.astype(dtype), h0)


# -- internals ----------------------------------------------------------------------


def _prepare(xp: ModuleType, a: Any, b: Any, h0: Any, axis: int) -> tuple[Any, Any, Any]:
    """Validate and align the scan's operands, with time moved to axis 0."""
    a, b = xp.asarray(a), xp.asarray(b)
    dtype = float_dtype(b.dtype, what="b")
    float_dtype(a.dtype, what="a")
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(
            f"a with shape {a.shape} does not broadcast against b with shape {b.shape}"
        ) from None
    if len(shape) == 0:
        raise ValueError("a and b are scalars; expected arrays with a time axis")
    if not -len(shape) <= axis < len(shape):
        raise ValueError(f"axis {axis} is out of range for arrays with {len(shape)} dimensions")
    a = xp.moveaxis(xp.broadcast_to(a.astype(dtype, copy=False), shape), axis, 0)
    b = xp.moveaxis(xp.broadcast_to(b.astype(dtype, copy=False), shape), axis, 0)
    step_shape = b.shape[1:]
    if h0 is None:
        return a, b, xp.zeros(step_shape, dtype)
    h0 = xp.asarray(h0)
    float_dtype(h0.dtype, what="h0")
    try:
        h0 = xp.broadcast_to(h0.astype(dtype, copy=False), step_shape)
    except ValueError:
        raise ValueError(
            f"h0 with shape {h0.shape} does not broadcast against one time step "
            f"of shape {step_shape}"
        ) from None
    return a, b, h0


def _out_view(xp: ModuleType, out: Any, b: Any, axis: int) -> Any:
    """``out`` with time moved first, after checking it can hold the result ``b`` shapes."""
    shape = xp.moveaxis(b, 0, axis).shape
    if not isinstance(out, xp.ndarray) or out.shape != shape or out.dtype != b.dtype:
        what = f"{type(out).__name__} {getattr(out, 'shape', '')} {getattr(out, 'dtype', '')}"
        raise ValueError(
            f"out is a {what.strip()}; expected a {xp.__name__} array of shape {shape} "
            f"and dtype {b.dtype}"
        )
    return xp.moveaxis(out, axis, 0)


def _blocks_view(target: Any, bb: Any, length: int) -> Any:
    """``target`` as a view of ``bb``'s block shape, if the scan can write into it directly.

    It can when ``target`` is contiguous and the blocks hold no padding; otherwise
    (``None``) the result is copied in.
    """
    if target is None or not target.flags.c_contiguous or bb.shape[0] * bb.shape[1] != length:
        return None
    return target.reshape(bb.shape)


def _width(b: Any) -> int:
    """The number of independent recurrences: elements per time step."""
    return math.prod(b.shape[1:])


def _min_step_width(xp: ModuleType) -> int:
    """Elements per time step below which ``chunk=None`` splits time into blocks."""
    module = kernels.scan_kernels(xp)
    return _MIN_STEP_WIDTH if module is None else module.min_step_width()


def _chunk_sizes(
    length: int, chunk: int | Sequence[int] | None, width: int, min_width: int
) -> list[int]:
    """Turn a ``chunk`` argument into a list of chunk lengths covering ``length``.

    ``chunk=None`` splits time into about ``sqrt(length)`` equal blocks, fewer when
    ``width`` elements per step reach ``min_width`` by themselves.
    """
    if chunk is None:
        if length == 0:
            return []
        n = min(math.isqrt(length - 1) + 1, -(-min_width // max(width, 1)))
        chunk = -(-length // n)
    if isinstance(chunk, int | np.integer):
        if chunk < 1:
            raise ValueError(f"chunk must be a positive number of steps; got {chunk}")
        return [min(chunk, length - start) for start in range(0, length, int(chunk))]
    sizes = [int(s) for s in chunk]
    if any(s < 0 for s in sizes) or sum(sizes) != length:
        raise ValueError(
            f"chunk lengths {sizes} must be non-negative and sum to the time length {length}"
        )
    return [s for s in sizes if s > 0]


def _blocks(xp: ModuleType, x: Any, sizes: list[int], fill: float) -> Any:
    """Lay chunks of ``x`` side by side as ``(n_chunks, max_len, ...)``.

    Short chunks are padded at their end with identity steps (``a = 1``, ``b = 0``),
    which leave the state unchanged. Equal chunks are a view of ``x``.
    """
    n, longest = len(sizes), max(sizes, default=0)
    if all(s == longest for s in sizes):
        return x.reshape((n, longest, *x.shape[1:]))
    out = xp.full((n, longest, *x.shape[1:]), fill, dtype=x.dtype)
    start = 0
    for k, size in enumerate(sizes):
        out[k, :size] = x[start : start + size]
        start += size
    return out


def _unblock(xp: ModuleType, blocks: Any, sizes: list[int]) -> Any:
    """Invert :func:`_blocks`, dropping the padding."""
    if all(s == blocks.shape[1] for s in sizes):
        return blocks.reshape((blocks.shape[0] * blocks.shape[1], *blocks.shape[2:]))
    return xp.concatenate([blocks[k, :size] for k, size in enumerate(sizes)])


def _block_summaries(xp: ModuleType, ab: Any, bb: Any) -> Summary:
    """The summary of each block: ``A`` the product of decays, ``B`` the scan from zero."""
    if (module := kernels.scan_kernels(xp)) is not None:
        return module.summarise_blocks(ab, bb)
    state = xp.zeros((ab.shape[0], *ab.shape[2:]), ab.dtype)
    for s in range(ab.shape[1]):
        state *= ab[:, s]
        state += bb[:, s]
    return xp.prod(ab, axis=1), state


def _scan_from(xp: ModuleType, ab: Any, bb: Any, entries: Any, out: Any = None) -> Any:
    """Scan every block from its entry state, writing each step's state (into ``out``)."""
    if (module := kernels.scan_kernels(xp)) is not None:
        return module.scan_blocks(ab, bb, entries, out)
    h = xp.empty(bb.shape, bb.dtype) if out is None else out
    prev = entries
    for s in range(bb.shape[1]):
        xp.multiply(ab[:, s], prev, out=h[:, s])
        h[:, s] += bb[:, s]
        prev = h[:, s]
    return h


def _stitch_stacked(big_a: Any, big_b: Any, h0: Any) -> Any:
    """Entry state of every chunk from stacked summaries ``(n, ...)``.

    The scan itself, run over the chunks' maps from ``h0``: states are carried chunk
    to chunk, so decays are never multiplied across chunks.
    """
    xp = namespace(big_a, big_b, h0)
    h0 = xp.broadcast_to(h0, big_b.shape[1:])
    if big_b.shape[0] <= 1:
        return xp.array(h0[None])
    after = _scan_from(xp, big_a[None, :-1], big_b[None, :-1], xp.ascontiguousarray(h0[None]))
    return xp.concatenate([h0[None], after[0]])

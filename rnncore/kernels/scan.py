"""Fused kernels of the affine scan ``h_t = a_t * h_{t-1} + b_t`` over blocks of time.

The kernels take the blocks :mod:`rnncore.scan` lays side by side,
``(n_blocks, steps, ...)``, flattened to ``(n_blocks, steps, columns)``. Blocks run in
parallel (summaries also split columns when blocks are too few); a task keeps its
running state in a small local array and streams its rows of ``a``, ``b`` (and ``h``)
once. The arithmetic is the reference's: a multiply then an add, in order, in
the operands' dtype.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

__all__ = ["min_step_width", "scan_blocks", "summarise_blocks"]

# Columns per thread below which splitting time into blocks pays for a second pass.
_MIN_COLUMNS_PER_THREAD = 64


def min_step_width() -> int:
    """Elements per time step below which time is best split into blocks run in parallel."""
    return _MIN_COLUMNS_PER_THREAD * numba.get_num_threads()


def scan_blocks(
    ab: np.ndarray, bb: np.ndarray, entries: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """Scan every block from its entry state, writing each step's state.

    Parameters
    ----------
    ab, bb
        Decays and inputs ``(n_blocks, steps, ...)`` of one float dtype.
    entries
        ``(n_blocks, ...)``: the state entering each block.
    out
        A C-contiguous array of ``bb``'s shape and dtype to write into, or ``None``.

    Returns
    -------
    numpy.ndarray
        ``h`` of ``bb``'s shape and dtype (``out`` if given).
    """
    h = np.empty(bb.shape, bb.dtype) if out is None else out
    if h.size:
        _scan(_input(ab, 2), _input(bb, 2), _input(entries, 1), _merged(h, 2))
    return h


def summarise_blocks(ab: np.ndarray, bb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The summary of each block: ``A`` the product of decays, ``B`` the scan from zero.

    Parameters
    ----------
    ab, bb
        As for :func:`scan_blocks`.

    Returns
    -------
    tuple of numpy.ndarray
        ``(A, B)``, each ``(n_blocks, ...)``: the identity ``(1, 0)`` for empty blocks.
    """
    shape = (bb.shape[0], *bb.shape[2:])
    big_a, big_b = np.ones(shape, bb.dtype), np.zeros(shape, bb.dtype)
    if bb.size:
        a2, b2 = _merged(big_a, 1), _merged(big_b, 1)
        tiny = bb.dtype.type(np.finfo(bb.dtype).tiny)
        _summarise(_input(ab, 2), _input(bb, 2), a2, b2, *_split(*b2.shape), tiny)
    return big_a, big_b


def _merged(x: np.ndarray, lead: int) -> np.ndarray:
    """``x`` with every axis after the first ``lead`` merged into one (a view if contiguous)."""
    return x.reshape(*x.shape[:lead], -1)


def _input(x: np.ndarray, lead: int) -> np.ndarray:
    """A read-only C-contiguous :func:`_merged` view of ``x``.

    Read-only views of one layout give every call the same kernel signature per
    dtype, so each kernel is compiled (and cached) once per dtype.
    """
    x = _merged(np.ascontiguousarray(x), lead).view()
    x.flags.writeable = False
    return x


def _split(n_blocks: int, width: int) -> tuple[int, int]:
    """Column ranges per block, and columns per range, to keep every thread busy when summarising.

    Few wide ranges stream memory best, so columns are split only as far as the
    blocks alone leave threads idle.
    """
    ranges = -(-numba.get_num_threads() // n_blocks)
    ranges = max(1, min(ranges, width // _MIN_COLUMNS_PER_THREAD))
    return ranges, -(-width // ranges)


@numba.njit(nogil=True, cache=True, parallel=True)
def _scan(ab, bb, entries, h):
    # One task per block, never splitting columns: threads writing the same fresh pages
    # of ``h`` contend on their page faults, which costs more than a second thread gains
    # on a scan bound by memory.
    n_blocks, steps, width = bb.shape
    for k in prange(n_blocks):
        state = entries[k].copy()
        for s in range(steps):
            for n in range(width):
                state[n] = ab[k, s, n] * state[n] + bb[k, s, n]
                h[k, s, n] = state[n]


@numba.njit(nogil=True, cache=True, parallel=True)
def _summarise(ab, bb, big_a, big_b, ranges, span, tiny):
    # Products of decays are flushed to zero below ``tiny``, the smallest normal number:
    # a decay above 1/2 rounds the smallest subnormal to itself, so an underflowed
    # product would stay subnormal, at a hundred cycles a multiply. The error in
    # ``A * h`` is below ``tiny * |h|``.
    n_blocks, steps, width = bb.shape
    for task in prange(n_blocks * ranges):
        k, lo = task // ranges, (task % ranges) * span
        hi = min(width, lo + span)
        prod, state = big_a[k, lo:hi], big_b[k, lo:hi]
        for s in range(steps):
            a, b = ab[k, s, lo:hi], bb[k, s, lo:hi]
            for n in range(hi - lo):
                p = prod[n] * a[n]
                prod[n] = p if abs(p) >= tiny else 0
                state[n] = a[n] * state[n] + b[n]

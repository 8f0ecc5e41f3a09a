"""The affine scan on the GPU: the twin of :mod:`rnncore.kernels.scan`, same interface.

:mod:`rnncore.scan` lays blocks of time side by side, ``(n_blocks, steps, ...)``;
here each block is scanned by the tile scan of ``common.cuh``, which splits time
itself where columns are too few to fill the GPU, so long, narrow inputs (a few
series, millions of steps) fill it too and :func:`min_step_width` asks
:mod:`rnncore.scan` for no blocks of its own. Inputs
are read once, outputs written once, and nothing is synchronised with the host.

Examples
--------
Run on NumPy arrays through the tests' CPU emulation, or on CuPy arrays::

    h = scan_blocks(a[None], b[None], h0[None])[0]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...arrays import namespace
from .compiler import CTYPES, dtype_name, kernel
from .launch import tile_launch
from .tiles import tile_plan, tile_shared_bytes

__all__ = ["expressions", "min_step_width", "scan_blocks", "summarise_blocks"]

_SOURCE = "scan.cu"
_WRITE, _SUMMARISE = 1, 2


def min_step_width() -> int:
    """Elements per step below which :mod:`rnncore.scan` splits time: never, here."""
    return 1


def expressions() -> list[str]:
    """The kernel instantiations this module may launch."""
    return [
        _expression(ctype, tile_plan(1, 1, np.dtype(name).itemsize).steps_per_thread)
        for name, ctype in CTYPES.items()
    ]


def _expression(ctype: str, steps_per_thread: int) -> str:
    return f"scan_blocks<{ctype}, {steps_per_thread}>"


def scan_blocks(ab: Any, bb: Any, entries: Any, out: Any = None) -> Any:
    """Scan every block from its entry state (see :func:`rnncore.kernels.scan.scan_blocks`)."""
    xp = namespace(ab, bb)
    h = xp.empty(bb.shape, bb.dtype) if out is None else out
    entries = _dense(xp, entries, (bb.shape[0], *bb.shape[2:]))
    _launch(xp, ab, bb, entries, h, h[:0], h[:0], _WRITE)
    return h


def summarise_blocks(ab: Any, bb: Any) -> tuple[Any, Any]:
    """Each block's ``(A, B)`` (see :func:`rnncore.kernels.scan.summarise_blocks`)."""
    xp = namespace(ab, bb)
    shape = (bb.shape[0], *bb.shape[2:])
    big_a, big_b = xp.ones(shape, bb.dtype), xp.zeros(shape, bb.dtype)
    _launch(xp, ab, bb, xp.zeros(shape, bb.dtype), bb[:0], big_a, big_b, _SUMMARISE)
    return big_a, big_b


def _launch(
    xp: Any, ab: Any, bb: Any, entries: Any, h: Any, big_a: Any, big_b: Any, mode: int
) -> None:
    """Launch the scan over ``(n_blocks, steps, ...)`` blocks of time."""
    if not bb.size:
        return
    n_blocks, steps = bb.shape[:2]
    width = math.prod(bb.shape[2:])
    plan = tile_plan(width, steps, bb.dtype.itemsize)
    n_chains = plan.n_chains(width, n_blocks)
    shared = tile_shared_bytes(plan, bb.dtype.itemsize)
    launch = kernel(xp, _SOURCE, _expression(dtype_name(bb), plan.steps_per_thread), shared)
    blocks, scratch = tile_launch(xp, plan, n_chains, bb.dtype)
    a, b = _dense(xp, ab, bb.shape), _dense(xp, bb, bb.shape)
    args = (
        a,
        b,
        entries,
        h,
        big_a,
        big_b,
        *scratch,
        np.int64(steps),
        np.int64(width),
        np.int32(mode),
    )
    launch((blocks,), (plan.threads,), args, shared_mem=shared)


def _dense(xp: Any, x: Any, shape: tuple[int, ...]) -> Any:
    """``x`` broadcast to ``shape`` as a C-contiguous array of its dtype."""
    return xp.ascontiguousarray(xp.broadcast_to(x, shape))

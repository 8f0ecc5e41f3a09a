"""CUDA kernels of the affine scan for CuPy arrays: the GPU twin of :mod:`rnncore.kernels.scan`.

Same interface, other backend: the blocks :mod:`rnncore.scan` lays side by side,
``(n_blocks, steps, ...)``, are scanned by one GPU thread per (block, column) pair,
so that long, narrow inputs (a few series, millions of steps) are cut into enough
blocks to fill the GPU (:func:`min_step_width`), and wide ones run one pass with
one thread per column. Neighbouring threads read neighbouring columns: every load
and store is coalesced. Everything stays on the device; nothing is synchronised.

.. note:: Written for CuPy's ``RawModule``; it has not yet been run on a GPU.
   ``scripts/gpu_check.sh`` runs the tests that exercise it.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import cupy

__all__ = ["min_step_width", "scan_blocks", "summarise_blocks"]

# Threads in flight needed to hide memory latency on a large GPU (132 SMs x 2048).
_THREADS_IN_FLIGHT = 2**18
_BLOCK = 256

_SOURCE = r"""
template <typename T>
__global__ void scan_blocks(const T* a, const T* b, const T* entries, T* h,
                            long long n_blocks, long long steps, long long width) {
    long long idx = (long long)blockDim.x * blockIdx.x + threadIdx.x;
    if (idx >= n_blocks * width) return;
    long long block = idx / width, column = idx - block * width;
    long long k = block * steps * width + column;
    T state = entries[idx];
    for (long long s = 0; s < steps; ++s, k += width) {
        state = a[k] * state + b[k];
        h[k] = state;
    }
}

template <typename T>
__global__ void summarise_blocks(const T* a, const T* b, T* big_a, T* big_b,
                                 long long n_blocks, long long steps, long long width) {
    long long idx = (long long)blockDim.x * blockIdx.x + threadIdx.x;
    if (idx >= n_blocks * width) return;
    long long block = idx / width, column = idx - block * width;
    long long k = block * steps * width + column;
    T prod = 1, state = 0;
    for (long long s = 0; s < steps; ++s, k += width) {
        prod *= a[k];
        state = a[k] * state + b[k];
    }
    big_a[idx] = prod;
    big_b[idx] = state;
}
"""

_TYPES = {"float32": "float", "float64": "double"}


@functools.cache
def _kernel(name: str, dtype: str) -> Any:
    module = cupy.RawModule(
        code=_SOURCE, options=("-std=c++14",), name_expressions=[f"{name}<{_TYPES[dtype]}>"]
    )
    return module.get_function(f"{name}<{_TYPES[dtype]}>")


def min_step_width() -> int:
    """Elements per time step below which time is split into blocks run side by side."""
    return _THREADS_IN_FLIGHT


def scan_blocks(ab: Any, bb: Any, entries: Any, out: Any = None) -> Any:
    """Scan every block from its entry state (see :func:`rnncore.kernels.scan.scan_blocks`)."""
    h = cupy.empty(bb.shape, bb.dtype) if out is None else out
    _over_blocks("scan_blocks", ab, bb, _dense(entries, (bb.shape[0], *bb.shape[2:])), h)
    return h


def summarise_blocks(ab: Any, bb: Any) -> tuple[Any, Any]:
    """Each block's ``(A, B)`` (see :func:`rnncore.kernels.scan.summarise_blocks`)."""
    shape = (bb.shape[0], *bb.shape[2:])
    big_a, big_b = cupy.ones(shape, bb.dtype), cupy.zeros(shape, bb.dtype)
    _over_blocks("summarise_blocks", ab, bb, big_a, big_b)
    return big_a, big_b


def _over_blocks(name: str, ab: Any, bb: Any, *arrays: Any) -> None:
    """Launch kernel ``name(a, b, *arrays, n_blocks, steps, width)``, one thread a column."""
    if not bb.size:
        return
    n_blocks, steps = bb.shape[:2]
    width = math.prod(bb.shape[2:])
    a, b = _dense(ab, bb.shape), _dense(bb, bb.shape)
    kernel = _kernel(name, cupy.dtype(bb.dtype).name)
    args = (a, b, *arrays, cupy.int64(n_blocks), cupy.int64(steps), cupy.int64(width))
    kernel((-(-n_blocks * width // _BLOCK),), (_BLOCK,), args)


def _dense(x: Any, shape: tuple[int, ...]) -> Any:
    """``x`` broadcast to ``shape`` as a C-contiguous device array of its dtype."""
    return cupy.ascontiguousarray(cupy.broadcast_to(x, shape))

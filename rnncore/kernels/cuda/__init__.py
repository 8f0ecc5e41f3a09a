"""CUDA kernels for CuPy arrays: the GPU twin of :mod:`rnncore.kernels`.

The kernels are CUDA C++ sources beside this file (``*.cu``, with the shared device
code in ``common.cuh``), compiled on first use by CuPy's ``RawModule`` (NVRTC) and
cached per template instantiation (in memory, and by CuPy on disk). The Python glue
(:mod:`.scan`, :mod:`.cells`) is written against the inputs' array namespace and
launches kernels through :func:`kernel`, which picks a compiler by that namespace:
CuPy's for CuPy arrays. The tests register a second one for NumPy arrays that runs
the same sources on the CPU (``tests/cuda_host.py``), so that kernels and glue are
checked without a GPU.

Examples
--------
>>> from rnncore.kernels import cuda
>>> cuda.tile_plan(width=3, steps=10, itemsize=4)
TilePlan(cols=4, groups=64, steps_per_thread=16, n_tiles=1)
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = [
    "SERIAL_CHAINS_PER_MULTIPROCESSOR",
    "SOURCE_DIR",
    "TilePlan",
    "device_limits",
    "expressions",
    "kernel",
    "options",
    "register",
    "source",
    "tile_launch",
    "tile_plan",
    "tile_shared_bytes",
]

#: The folder holding the CUDA sources.
SOURCE_DIR = Path(__file__).parent

#: C++ type of each float dtype.
CTYPES = {"float32": "float", "float64": "double"}

# Threads per block of the tile scan, and steps each thread holds in registers.
_TILE_THREADS = 256
_STEPS_PER_THREAD = {4: 16, 8: 8}
# Predecessors a look-back step reads at once (RNN_LOOK_BACK in common.cuh).
_LOOK_BACK = 32
#: Chains per multiprocessor from which a block walks a whole chain instead of
#: tiles looking back: a few waves of blocks, each saving the look-back's waits.
SERIAL_CHAINS_PER_MULTIPROCESSOR = 4

Launch = Callable[..., None]
Compiler = Callable[[str, str, int], Launch]
_compilers: dict[str, Compiler] = {}


def options() -> tuple[str, ...]:
    """Compiler options every source is built with."""
    return ("-std=c++17",)


def source(name: str) -> str:
    """The text of source ``name`` (``"scan.cu"``, ``"cells.cu"``), headers included.

    Each ``#include "header"`` line is replaced by the header's text, so that the
    compiler needs no include path and CuPy's kernel cache, keyed by the text,
    sees a change to a header.
    """
    text = (SOURCE_DIR / name).read_text()
    return re.sub(r'^#include "([^"]+)"$', lambda m: source(m.group(1)), text, flags=re.MULTILINE)


def register(namespace: str, compiler: Compiler) -> None:
    """Let arrays of ``namespace`` launch kernels built by ``compiler``.

    ``compiler(source_name, expression, shared_bytes)`` returns a launcher called as
    CuPy's ``RawKernel``: ``launch(grid, block, args, shared_mem=n)``.
    """
    _compilers[namespace] = compiler


def kernel(xp: ModuleType, source_name: str, expression: str, shared_bytes: int = 0) -> Launch:
    """The kernel ``expression`` (a template instantiation) of ``source_name`` for ``xp``.

    Raises
    ------
    TypeError
        If no compiler is registered for ``xp``'s arrays.
    """
    if xp.__name__ == "cupy" and "cupy" not in _compilers:
        register("cupy", _cupy_kernel)
    try:
        compiler = _compilers[xp.__name__]
    except KeyError:
        raise TypeError(
            f"no CUDA compiler for {xp.__name__} arrays; expected CuPy arrays"
        ) from None
    return compiler(source_name, expression, shared_bytes)


def _cupy_kernel(source_name: str, expression: str, shared_bytes: int) -> Launch:
    import cupy

    function = _cupy_function(source_name, expression, cupy.cuda.Device().id)
    # above the default 48 KiB, a kernel's blocks must opt in to their shared memory
    if shared_bytes > max(48 * 1024, function.max_dynamic_shared_size_bytes):
        function.max_dynamic_shared_size_bytes = shared_bytes
    return function


@functools.cache
def _cupy_function(source_name: str, expression: str, device: int) -> Any:
    """The kernel, loaded on GPU ``device`` (the current one)."""
    import cupy

    module = cupy.RawModule(
        code=source(source_name), options=options(), name_expressions=[expression]
    )
    return module.get_function(expression)


def device_limits(xp: ModuleType) -> tuple[int, int]:
    """Multiprocessors of the current GPU and the shared memory a block may opt in to.

    For CuPy, read from the device; for other arrays (the tests' CPU emulation), an
    H100's: 132 and 227 KiB.
    """
    if xp.__name__ != "cupy":
        return 132, 227 * 1024
    return _cupy_limits(xp.cuda.Device().id)


@functools.cache
def _cupy_limits(device: int) -> tuple[int, int]:
    import cupy

    attributes = cupy.cuda.Device(device).attributes
    return attributes["MultiProcessorCount"], attributes["MaxSharedMemoryPerBlockOptin"]


@dataclass(frozen=True)
class TilePlan:
    """How the tile scan (``common.cuh``) cuts ``width`` columns by ``steps`` steps.

    Attributes
    ----------
    cols
        Neighbouring columns per chain (and per block).
    groups
        Groups of ``steps_per_thread`` steps per tile: threads per block are
        ``cols * groups``.
    steps_per_thread
        Steps each thread holds in registers (the kernels' template argument ``K``).
    n_tiles
        Tiles per chain, in time.
    """

    cols: int
    groups: int
    steps_per_thread: int
    n_tiles: int

    @property
    def threads(self) -> int:
        """Threads per block."""
        return self.cols * self.groups

    def n_chains(self, width: int, repeats: int = 1) -> int:
        """Chains of ``repeats`` independent problems of ``width`` columns."""
        return repeats * -(-width // self.cols)


def tile_plan(
    width: int,
    steps: int,
    itemsize: int,
    cols: int | None = None,
    steps_per_thread: int | None = None,
) -> TilePlan:
    """Plan the tile scan of ``width`` columns over ``steps`` steps.

    Parameters
    ----------
    width
        Independent columns (``>= 1``).
    steps
        Time steps (``>= 1``).
    itemsize
        Bytes per value: 4 or 8.
    cols
        Columns per chain; by default the power of two that reaches ``width``, at
        most 32 (a warp of neighbouring loads).
    steps_per_thread
        By default 16 for 4-byte values and 8 for 8-byte ones: 32 registers of maps.
    """
    if cols is None:
        cols = min(32, 1 << max(0, math.ceil(math.log2(width))))
    groups = max(1, _TILE_THREADS // cols)
    k = steps_per_thread or _STEPS_PER_THREAD[itemsize]
    return TilePlan(cols, groups, k, -(-steps // (groups * k)))


def tile_shared_bytes(plan: TilePlan, itemsize: int) -> int:
    """Shared memory of the tile scan, rounded up to 16 bytes: what follows may be any type.

    As ``after_tile`` in ``common.cuh``: ``2 * groups + 1`` values per column and the
    look-back's flags.
    """
    used = (2 * plan.groups + 1) * plan.cols * itemsize + 4 * _LOOK_BACK
    return -(-used // 16) * 16


def expressions() -> dict[str, list[str]]:
    """Every kernel instantiation the glue may launch, by source: what the tests compile."""
    from . import cells, scan

    return {"scan.cu": scan.expressions(), "cells.cu": cells.expressions()}


def dtype_name(x: Any) -> str:
    """The C++ type of array ``x``'s dtype."""
    return CTYPES[str(x.dtype)]


def tile_launch(xp: ModuleType, plan: TilePlan, n_chains: int, dtype: Any) -> tuple[int, list[Any]]:
    """Blocks to launch for the tile scan, and its kernel arguments.

    Where the chains alone are enough blocks to fill the GPU
    (:data:`SERIAL_CHAINS_PER_MULTIPROCESSOR` a multiprocessor), a block walks a
    whole chain (serial); otherwise every tile is a block and looks back. The
    arguments: ``flags`` (zeros: one per block, then the work counter), ``maps``
    (four values per tile and column, for the look-back), ``n_chains``, ``n_tiles``,
    ``cols`` and ``serial``.
    """
    import numpy as np

    serial = n_chains >= SERIAL_CHAINS_PER_MULTIPROCESSOR * device_limits(xp)[0]
    blocks = n_chains if serial else n_chains * plan.n_tiles
    flags = xp.zeros(blocks + 1, np.int32)
    maps = xp.empty(0 if serial else blocks * 4 * plan.cols, dtype)
    sizes = (np.int64(n_chains), np.int64(plan.n_tiles), np.int32(plan.cols), np.int32(serial))
    return blocks, [flags, maps, *sizes]

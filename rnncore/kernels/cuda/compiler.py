"""The CUDA sources and their compilers: CuPy's for CuPy arrays, any registered for others.

The kernels are CUDA C++ sources beside this file (``*.cu``, with the shared device
code in ``common.cuh``), compiled on first use by CuPy's ``RawModule`` (NVRTC) and
cached per template instantiation (in memory, and by CuPy on disk). :func:`kernel`
picks a compiler by the arrays' namespace. The tests register a second one for NumPy
arrays that runs the same sources on the CPU (``tests/rnncore/kernels/cuda_host.py``),
so that kernels and glue are checked without a GPU.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = [
    "CTYPES",
    "SOURCE_DIR",
    "Compiler",
    "Launch",
    "dtype_name",
    "expressions",
    "kernel",
    "options",
    "register",
    "source",
]

#: The folder holding the CUDA sources.
SOURCE_DIR = Path(__file__).parent

#: C++ type of each float dtype.
CTYPES = {"float32": "float", "float64": "double"}

#: A compiled kernel, called as CuPy's ``RawKernel``: ``launch(grid, block, args, shared_mem=n)``.
Launch = Callable[..., None]
#: ``compiler(source_name, expression, shared_bytes)``: the :data:`Launch` of ``expression``.
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


def expressions() -> dict[str, list[str]]:
    """Every kernel instantiation the glue may launch, by source: what the tests compile."""
    from . import cells, scan

    return {"scan.cu": scan.expressions(), "cells.cu": cells.expressions()}


def dtype_name(x: Any) -> str:
    """The C++ type of array ``x``'s dtype."""
    return CTYPES[str(x.dtype)]


def register(namespace: str, compiler: Compiler) -> None:
    """Let arrays of ``namespace`` launch kernels built by ``compiler`` (a :data:`Compiler`)."""
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

"""Run rnncore's CUDA kernels on the CPU: the tests' compiler for NumPy arrays.

:func:`host_compiler` builds a CUDA source with the host's C++ compiler and
``cuda_host.h`` (each CUDA thread a host thread, ``__syncthreads`` a barrier) into a
shared library, and returns a launcher called as CuPy's ``RawKernel``. Registered
for NumPy arrays (:func:`rnncore.kernels.cuda.compiler.register`), it lets the GPU glue and
kernels run, unchanged, on NumPy arrays. Slow: for small inputs only.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnncore.kernels.cuda import compiler

HERE = Path(__file__).parent
_BUILD = Path(tempfile.gettempdir()) / "rnnflow-cuda-host"
_SCALARS = {
    np.dtype(np.int32): ctypes.c_int,
    np.dtype(np.int64): ctypes.c_longlong,
    np.dtype(np.float32): ctypes.c_float,
    np.dtype(np.float64): ctypes.c_double,
}
# Blocks run at once: enough for tiles to find predecessors still running.
CONCURRENT_BLOCKS = 3
# Macros defined for the sources (NAME=VALUE), as with nvcc's -D.
DEFINES: tuple[str, ...] = ()


def available() -> bool:
    """True when a C++20 compiler is on the PATH."""
    return shutil.which("g++") is not None


@functools.cache
def _library(
    source_name: str, expressions: tuple[str, ...], defines: tuple[str, ...]
) -> ctypes.CDLL:
    wrappers = "".join(
        f'extern "C" void rnn_launch_{i}(unsigned gx, unsigned bx, std::size_t shared, '
        f"void** args, unsigned concurrent) {{ rnn_host::launch(&{e}, dim3{{gx}}, dim3{{bx}}, "
        f"shared, args, concurrent); }}\n"
        for i, e in enumerate(expressions)
    )
    macros = "".join(f"#define {d.replace('=', ' ', 1)}\n" for d in defines)
    code = f'{macros}#include "cuda_host.h"\n{compiler.source(source_name)}{wrappers}'
    text = code + (HERE / "cuda_host.h").read_text()
    key = hashlib.sha256(text.encode()).hexdigest()[:16]
    library = _BUILD / f"{Path(source_name).stem}-{key}.so"
    if not library.exists():
        _BUILD.mkdir(exist_ok=True)
        # other processes may be building it too: each writes its own files
        wrapper = _BUILD / f"{key}.{os.getpid()}.cpp"
        wrapper.write_text(code)
        partial = library.with_suffix(f".{os.getpid()}.partial")
        subprocess.run(
            [
                "g++",
                "-std=c++20",
                "-O1",
                "-shared",
                "-fPIC",
                "-pthread",
                f"-I{HERE}",
                "-o",
                str(partial),
                str(wrapper),
            ],
            check=True,
        )
        partial.rename(library)
    return ctypes.CDLL(str(library))


def host_compiler(source_name: str, expression: str, shared_bytes: int) -> Any:
    """A launcher of ``expression`` from ``source_name``, run on the CPU."""
    expressions = tuple(compiler.expressions()[source_name])
    function = getattr(
        _library(source_name, expressions, DEFINES), f"rnn_launch_{expressions.index(expression)}"
    )

    def launch(
        grid: Sequence[int], block: Sequence[int], args: Sequence[Any], shared_mem: int = 0
    ) -> None:
        (gx,), (bx,) = grid, block
        values = [_value(a) for a in args]
        pointers = (ctypes.c_void_p * len(values))(*(ctypes.addressof(v) for v in values))
        function(
            ctypes.c_uint(gx),
            ctypes.c_uint(bx),
            ctypes.c_size_t(shared_mem),
            pointers,
            ctypes.c_uint(CONCURRENT_BLOCKS),
        )

    return launch


def _value(arg: Any) -> Any:
    """A ctypes object holding one kernel argument: an array's address, or a scalar."""
    if isinstance(arg, np.ndarray):
        if not arg.flags.c_contiguous:
            raise ValueError("kernel arrays must be C-contiguous")
        return ctypes.c_void_p(arg.ctypes.data)
    return _SCALARS[np.asarray(arg).dtype](arg.item())

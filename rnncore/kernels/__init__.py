"""Fused kernels, and the switch between them and the reference path.

rnncore's maths is written once against an array namespace (:mod:`rnncore.backend`):
that vectorised code is the *reference path*. The hot paths (the affine scan, the
cells, the readout) run instead as fused kernels: for NumPy arrays `numba
<https://numba.pydata.org>`_ kernels (``"numba"``, the default), one pass over the
data, parallel over series, with no intermediate arrays; for CuPy arrays CUDA kernels
(:mod:`rnncore.kernels.cuda`). Kernels and reference agree within the library's
tolerances (1e-12 in float64, 1e-5 in float32), which the tests check on random
inputs.

:func:`use` selects the path for the whole process; the kernel modules (and numba)
are imported on first use, and each kernel is compiled on its first call for a dtype
and cached on disk (``__pycache__``), so later processes load it in milliseconds.

Examples
--------
>>> import numpy as np
>>> from rnncore import kernels, linear_scan
>>> with kernels.use("numpy"):
...     h = linear_scan(np.full(3, 0.5), np.ones(3))
>>> kernels.backend()
'numba'
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..cells import Cell

__all__ = [
    "BACKENDS",
    "KINDS",
    "active",
    "backend",
    "cell_kernels",
    "scan_kernels",
    "threads",
    "use",
]

#: The selectable paths: fused numba kernels, or the reference array-namespace code.
BACKENDS = ("numba", "numpy")

#: The cells with fused kernels (numba and CUDA), by the name their classes give as
#: ``kernel``, with the id the kernels know them by.
KINDS = {"mingru": 0, "minlstm": 1, "qrnn": 2, "diagonal": 3, "elman": 4, "gru": 5, "lstm": 6}

_selected = {"backend": "numba"}
_MODULES = ("cells", "scan")


class use:
    """Select the path NumPy inputs take: ``"numba"`` kernels or the ``"numpy"`` reference.

    Takes effect at once, for the whole process (every thread). Used as a context
    manager, it restores the previous choice on exit.

    Parameters
    ----------
    name
        One of :data:`BACKENDS`.

    Raises
    ------
    ValueError
        If ``name`` is not one of :data:`BACKENDS`.

    Examples
    --------
    >>> from rnncore import kernels
    >>> with kernels.use("numpy"):
    ...     kernels.backend()
    'numpy'
    >>> kernels.backend()
    'numba'
    """

    def __init__(self, name: str) -> None:
        if name not in BACKENDS:
            raise ValueError(f"kernel backend must be one of {BACKENDS}; got {name!r}")
        self._previous = _selected["backend"]
        _selected["backend"] = name

    def __enter__(self) -> use:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _selected["backend"] = self._previous


def backend() -> str:
    """The selected path: ``"numba"`` or ``"numpy"``."""
    return _selected["backend"]


def active(xp: ModuleType) -> bool:
    """True when arrays of namespace ``xp`` take the fused kernels (NumPy, ``"numba"``)."""
    return xp is np and _selected["backend"] == "numba"


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Run the kernels called from this thread on at most ``n`` threads, then restore.

    numba's thread count is a per-thread setting, so other threads are unaffected.
    :mod:`rnncore.chunked` runs each Dask task's kernels on one thread: the task
    graph already keeps every core busy, and tasks whose kernels each spread over
    all cores would oversubscribe them (cores x cores threads).

    Examples
    --------
    >>> import numba
    >>> from rnncore import kernels
    >>> with kernels.threads(1):
    ...     numba.get_num_threads()
    1
    """
    if backend() != "numba":
        yield
        return
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def scan_kernels(xp: ModuleType) -> ModuleType | None:
    """The scan kernels for arrays of namespace ``xp``, or ``None`` for the reference path.

    NumPy arrays take the numba kernels (:mod:`rnncore.kernels.scan`) when ``"numba"``
    is selected; CuPy arrays take the CUDA kernels (:mod:`rnncore.kernels.cuda.scan`),
    which share their interface.
    """
    return _kernel_module(xp, "scan")


def cell_kernels(xp: ModuleType, cell: Cell) -> ModuleType | None:
    """The fused kernels of ``cell`` for arrays of namespace ``xp``, or ``None``.

    NumPy arrays take the numba kernels (:mod:`rnncore.kernels.cells`) when
    ``"numba"`` is selected; CuPy arrays take the CUDA kernels
    (:mod:`rnncore.kernels.cuda.cells`). Both modules offer ``supports``, ``run``,
    ``transition``, ``summary`` and ``emit``; ``None`` means the reference path.
    """
    module = _kernel_module(xp, "cells")
    return module if module is not None and module.supports(cell) else None


def _kernel_module(xp: ModuleType, name: str) -> ModuleType | None:
    """Kernel module ``name``: numba's for NumPy (when active), CUDA's for CuPy."""
    if active(xp):
        return importlib.import_module(f"{__name__}.{name}")
    if xp.__name__ == "cupy":
        return importlib.import_module(f"{__name__}.cuda.{name}")
    return None


def __getattr__(name: str) -> ModuleType:
    """Import the kernel modules (and numba) on first use."""
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

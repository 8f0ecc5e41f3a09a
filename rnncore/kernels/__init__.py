"""Fused kernels, and the switch between them and the reference path.

rnncore's maths is written once against an array namespace (:mod:`rnncore.arrays`):
that vectorised code is the *reference path*. The hot paths (the affine scan, the
cells, the readout, and the backward pass of the linear-state cells,
:mod:`rnncore.kernels.linear_vjp`) run instead as fused kernels: for NumPy arrays `numba
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
>>> with kernels.use("reference"):
...     h = linear_scan(np.full(3, 0.5), np.ones(3))
>>> kernels.selected()
'numba'
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .interface import (
        CellKernels,
        KernelSpec,
        LinearVJPKernels,
        NonlinearVJPKernels,
        ScanKernels,
    )

__all__ = [
    "KINDS",
    "PATHS",
    "cell_kernels",
    "linear_vjp_kernels",
    "nonlinear_vjp_kernels",
    "numba_active",
    "scan_kernels",
    "selected",
    "threads",
    "use",
]

#: The selectable paths of NumPy inputs: fused numba kernels, or the reference
#: array-namespace code.
PATHS = ("numba", "reference")

#: The cells with fused kernels (numba and CUDA), by the ``kind`` of their
#: :class:`~rnncore.kernels.interface.KernelSpec`, with the id the kernels know them by
#: (``cells.cu``'s enum). Whether a cell is linear in its state is the spec's to say.
KINDS = {"mingru": 0, "minlstm": 1, "qrnn": 2, "diagonal": 3, "elman": 4, "gru": 5, "lstm": 6}

_selected = {"path": "numba"}
_MODULES = ("cells", "interface", "linear_vjp", "nonlinear_vjp", "scan")


class use:
    """Select the path NumPy inputs take: ``"numba"`` kernels or the ``"reference"`` path.

    Takes effect at once, for the whole process (every thread). Used as a context
    manager, it restores the previous choice on exit.

    Parameters
    ----------
    name
        One of :data:`PATHS`.

    Raises
    ------
    ValueError
        If ``name`` is not one of :data:`PATHS`.

    Examples
    --------
    >>> from rnncore import kernels
    >>> with kernels.use("reference"):
    ...     kernels.selected()
    'reference'
    >>> kernels.selected()
    'numba'
    """

    def __init__(self, name: str) -> None:
        if name not in PATHS:
            raise ValueError(f"the path must be one of {PATHS}; got {name!r}")
        self._previous = _selected["path"]
        _selected["path"] = name

    def __enter__(self) -> use:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _selected["path"] = self._previous


def selected() -> str:
    """The selected path of NumPy inputs: ``"numba"`` or ``"reference"``."""
    return _selected["path"]


def numba_active(xp: ModuleType) -> bool:
    """True when arrays of namespace ``xp`` take the numba kernels (NumPy, ``"numba"``)."""
    return xp is np and _selected["path"] == "numba"


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
    if selected() != "numba":
        yield
        return
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def scan_kernels(xp: ModuleType) -> ScanKernels | None:
    """The scan kernels for arrays of namespace ``xp``, or ``None`` for the reference path.

    NumPy arrays take the numba kernels (:mod:`rnncore.kernels.scan`) when ``"numba"``
    is selected; CuPy arrays take the CUDA kernels (:mod:`rnncore.kernels.cuda.scan`).
    Both satisfy :class:`~rnncore.kernels.interface.ScanKernels`.
    """
    return _kernel_module(xp, "scan")


def cell_kernels(xp: ModuleType, spec: KernelSpec | None) -> CellKernels | None:
    """The fused kernels of the cell ``spec`` describes, for arrays of namespace ``xp``.

    NumPy arrays take the numba kernels (:mod:`rnncore.kernels.cells`) when
    ``"numba"`` is selected; CuPy arrays take the CUDA kernels
    (:mod:`rnncore.kernels.cuda.cells`). Both satisfy
    :class:`~rnncore.kernels.interface.CellKernels`. ``None`` (also for a ``spec`` of
    ``None``: a cell without kernels) means the reference path.
    """
    module = None if spec is None else _kernel_module(xp, "cells")
    return module if module is not None and module.supports(spec) else None


def linear_vjp_kernels(xp: ModuleType, spec: KernelSpec | None) -> LinearVJPKernels | None:
    """The fused backward pass of the linear-state cell ``spec`` describes, or ``None``.

    NumPy arrays take the numba kernel (:mod:`rnncore.kernels.linear_vjp`) when
    ``"numba"`` is selected; it satisfies
    :class:`~rnncore.kernels.interface.LinearVJPKernels`. ``None`` (also for CuPy
    arrays, and for a ``spec`` of ``None`` or of a nonlinear cell) means the reference
    path of :func:`rnncore.grad.cell_vjp`.
    """
    return _fused_backward(xp, spec, "linear_vjp")


def nonlinear_vjp_kernels(xp: ModuleType, spec: KernelSpec | None) -> NonlinearVJPKernels | None:
    """The fused backward pass of the nonlinear cell ``spec`` describes, or ``None``.

    NumPy arrays take :mod:`rnncore.kernels.nonlinear_vjp` when ``"numba"`` is
    selected; anything else (CuPy arrays included), a linear cell or a ``spec`` of
    ``None`` takes the reference path.
    """
    return _fused_backward(xp, spec, "nonlinear_vjp")


def _fused_backward(xp: ModuleType, spec: KernelSpec | None, name: str) -> Any:
    """numba's backward module ``name`` when it differentiates ``spec``'s cell, else ``None``."""
    if spec is None or not numba_active(xp):
        return None
    module = importlib.import_module(f"{__name__}.{name}")
    return module if module.supports(spec) else None


def _kernel_module(xp: ModuleType, name: str) -> Any:
    """Kernel module ``name``: numba's for NumPy (when active), CUDA's for CuPy."""
    if numba_active(xp):
        return importlib.import_module(f"{__name__}.{name}")
    if xp.__name__ == "cupy":
        return importlib.import_module(f"{__name__}.cuda.{name}")
    return None


def __getattr__(name: str) -> ModuleType:
    """Import the kernel modules (and numba) on first use."""
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

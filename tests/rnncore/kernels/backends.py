"""The kernel backends the tests drive: numba's, and the CUDA kernels run on the host."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from rnncore import kernels
from rnncore.kernels.cuda import launch
from rnncore.kernels.interface import CellKernels, ScanKernels
from tests.rnncore.kernels import cuda_host


@dataclass(frozen=True)
class Backend:
    """One implementation of the kernel interface, as the tests drive it."""

    name: str
    cells: CellKernels
    scan: ScanKernels

    @contextlib.contextmanager
    def walking(self, serial: bool) -> Iterator[None]:
        """CUDA: blocks walk whole chains (``serial``) or take a tile each and look back.

        numba's kernels have one way to walk: nothing to choose.
        """
        if self.name != "cuda":
            yield
            return
        saved = launch.SERIAL_CHAINS_PER_MULTIPROCESSOR
        launch.SERIAL_CHAINS_PER_MULTIPROCESSOR = 0 if serial else 10**9
        try:
            yield
        finally:
            launch.SERIAL_CHAINS_PER_MULTIPROCESSOR = saved


def cuda_backend() -> Backend:
    """The CUDA kernels, with the host compiler registered for NumPy arrays."""
    from rnncore.kernels.cuda import cells, compiler, scan

    compiler.register("numpy", cuda_host.host_compiler)
    return Backend("cuda", cells, scan)


def numba_backend() -> Backend:
    """The numba kernels."""
    return Backend("numba", kernels.cells, kernels.scan)

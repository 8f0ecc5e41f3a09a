"""The kernel backends under test: numba's, and the CUDA kernels run on the host.

Both satisfy :mod:`rnncore.kernels.interface`, so a test of a property they share takes
the :func:`backend` fixture and runs once for each. The CUDA kernels run on NumPy
arrays through :mod:`tests.rnncore.kernels.cuda_host` (skipped without a C++ compiler).
"""

from __future__ import annotations

from typing import Any

import pytest

from rnncore import kernels
from rnncore.kernels.interface import CellKernels, ScanKernels
from tests.rnncore.kernels import cuda_host
from tests.rnncore.kernels.backends import Backend, cuda_backend, numba_backend


@pytest.fixture(
    scope="session",
    params=["numba", pytest.param("cuda", marks=pytest.mark.slow)],  # host-compiled emulation
)
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each kernel backend in turn."""
    if request.param == "numba":
        return numba_backend()
    if not cuda_host.available():
        pytest.skip("no C++ compiler to emulate CUDA")
    return cuda_backend()


@pytest.fixture
def routed(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> Backend:
    """NumPy arrays take ``backend``'s kernels wherever rnncore would take numba's."""

    def scan_kernels(xp: Any) -> ScanKernels | None:
        return backend.scan if kernels.numba_active(xp) else None

    def cell_kernels(xp: Any, spec: Any) -> CellKernels | None:
        wanted = spec is not None and kernels.numba_active(xp) and backend.cells.supports(spec)
        return backend.cells if wanted else None

    monkeypatch.setattr(kernels, "scan_kernels", scan_kernels)
    monkeypatch.setattr(kernels, "cell_kernels", cell_kernels)
    return backend

"""The limits of the GPU kernels launch on: multiprocessors and shared memory."""

from __future__ import annotations

import functools
from types import ModuleType

__all__ = ["device_limits"]


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

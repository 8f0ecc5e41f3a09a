"""How the tile scan is launched: blocks walking whole chains, or a tile each looking back."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from .device import device_limits
from .tiles import TilePlan

__all__ = ["SERIAL_CHAINS_PER_MULTIPROCESSOR", "tile_launch"]

#: Chains per multiprocessor from which a block walks a whole chain instead of
#: tiles looking back: a few waves of blocks, each saving the look-back's waits.
SERIAL_CHAINS_PER_MULTIPROCESSOR = 4


def tile_launch(xp: ModuleType, plan: TilePlan, n_chains: int, dtype: Any) -> tuple[int, list[Any]]:
    """Blocks to launch for the tile scan, and its kernel arguments.

    Where the chains alone are enough blocks to fill the GPU
    (:data:`SERIAL_CHAINS_PER_MULTIPROCESSOR` a multiprocessor), a block walks a
    whole chain (serial); otherwise every tile is a block and looks back. The
    arguments: ``flags`` (zeros: one per block, then the work counter), ``maps``
    (four values per tile and column, for the look-back), ``n_chains``, ``n_tiles``,
    ``cols`` and ``serial``.
    """
    serial = n_chains >= SERIAL_CHAINS_PER_MULTIPROCESSOR * device_limits(xp)[0]
    blocks = n_chains if serial else n_chains * plan.n_tiles
    flags = xp.zeros(blocks + 1, np.int32)
    maps = xp.empty(0 if serial else blocks * 4 * plan.cols, dtype)
    sizes = (np.int64(n_chains), np.int64(plan.n_tiles), np.int32(plan.cols), np.int32(serial))
    return blocks, [flags, maps, *sizes]

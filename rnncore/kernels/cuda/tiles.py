"""Tile planning: how the tile scan of ``common.cuh`` cuts columns and steps into blocks.

Examples
--------
>>> from rnncore.kernels.cuda.tiles import tile_plan
>>> tile_plan(width=3, steps=10, itemsize=4)
TilePlan(cols=4, groups=64, steps_per_thread=16, n_tiles=1)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["TilePlan", "tile_plan", "tile_shared_bytes"]

# Threads per block of the tile scan, and steps each thread holds in registers.
_TILE_THREADS = 256
_STEPS_PER_THREAD = {4: 16, 8: 8}
# Predecessors a look-back step reads at once (RNN_LOOK_BACK in common.cuh).
_LOOK_BACK = 32


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

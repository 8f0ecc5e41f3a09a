"""Log-depth trees over an associative combine: a reduction and an inclusive prefix.

Every join of rnnflow that combines many parts is one of these: chunk summaries
composed into entry states (:func:`prefix_scan`, in :mod:`rnncore.chunked`), block
summaries composed into a chunk's map (:func:`reduce_stacked`, in
:func:`rnncore.scan_summary`), and the forecaster's Gram moments summed over blocks
(:func:`tree_reduce`). The combine may compute directly or build graph nodes (a
``dask.delayed`` function), so the same tree serves both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from .arrays import namespace

__all__ = ["prefix_scan", "reduce_stacked", "tree_reduce"]

T = TypeVar("T")


def tree_reduce(items: Sequence[T], combine: Callable[[T, T], T]) -> T:
    """Combine ``items`` pairwise in a balanced tree of depth ``ceil(log2(n))``.

    Adjacent items are combined level by level (an odd one out is carried up), so
    the order of ``items`` is kept and ``combine`` need only be associative. With
    ``combine = dask.delayed(f)`` and delayed items this builds the graph of a tree
    reduction; with plain objects it computes one.

    Examples
    --------
    >>> tree_reduce([1, 2, 3, 4, 5], lambda a, b: a + b)
    15
    >>> tree_reduce(["a", "b", "c"], lambda a, b: a + b)
    'abc'
    """
    if not items:
        raise ValueError("tree_reduce needs at least one item")
    level = list(items)
    while len(level) > 1:
        paired = [combine(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        level = paired + level[len(paired) * 2 :]
    return level[0]


def reduce_stacked(stack: tuple[Any, ...], combine: Callable[..., tuple[Any, ...]]) -> tuple:
    """:func:`tree_reduce` of items stacked along axis 0, one vectorised combine a level.

    Parameters
    ----------
    stack
        Arrays with a common leading axis: item ``k`` is ``tuple(x[k] for x in stack)``.
    combine
        Takes two such tuples of stacked arrays (the left and right items of every
        pair) and returns their combinations, stacked the same way.

    Returns
    -------
    tuple of arrays
        The one remaining item, each array without the leading axis.

    Examples
    --------
    >>> import numpy as np
    >>> from rnncore import compose
    >>> a, b = reduce_stacked((np.full(5, 0.5), np.ones(5)), compose)
    >>> float(a), float(b)
    (0.03125, 1.9375)
    """
    xp = namespace(*stack)
    n = stack[0].shape[0]
    if n == 0:
        raise ValueError("reduce_stacked needs at least one item")
    while n > 1:
        even = n - n % 2
        paired = combine(tuple(x[0:even:2] for x in stack), tuple(x[1:even:2] for x in stack))
        stack = tuple(xp.concatenate([p, x[even:]]) for p, x in zip(paired, stack, strict=True))
        n = stack[0].shape[0]
    return tuple(x[0] for x in stack)


def prefix_scan(items: Sequence[T], op: Callable[[T, T], T]) -> list[T]:
    """Inclusive prefix of ``items`` under the associative ``op``, as a log-depth tree.

    ``out[i] = op(...op(op(items[0], items[1]), items[2])..., items[i])``, computed
    with about ``2 n`` applications of ``op`` in ``2 log2(n)`` levels: adjacent pairs
    are combined, the pairs' prefix is taken recursively, and the even positions
    are filled in from it. ``op`` may build graph nodes (Dask delayed calls) or
    compute directly.

    Examples
    --------
    >>> prefix_scan([1, 2, 3, 4, 5], lambda a, b: a + b)
    [1, 3, 6, 10, 15]
    """
    n = len(items)
    if n <= 1:
        return list(items)
    pairs = [op(items[i], items[i + 1]) for i in range(0, n - 1, 2)]
    pair_prefix = prefix_scan(pairs, op)
    out = [items[0]]
    for i in range(1, n):
        out.append(pair_prefix[i // 2] if i % 2 else op(pair_prefix[i // 2 - 1], items[i]))
    return out

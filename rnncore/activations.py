"""Activation functions written once against an array namespace.

Each takes the namespace ``xp`` explicitly so the same code runs on NumPy and CuPy.
All are free of overflow warnings for any finite input.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

__all__ = ["g", "log_sigmoid", "sigmoid"]


def sigmoid(xp: ModuleType, x: Any) -> Any:
    """Logistic sigmoid ``1 / (1 + exp(-x))``, accurate to the last digits in both tails.

    Formed from ``e = exp(-|x|) <= 1`` (never overflows): ``1 / (1 + e)`` for
    ``x >= 0``, ``e / (1 + e)`` otherwise, so a small result (a tail, or ``1 - z``
    written as ``sigmoid(-u)``) keeps its relative accuracy; ``(1 + tanh(x / 2)) / 2``
    would lose it to cancellation.

    Examples
    --------
    >>> import numpy as np
    >>> float(sigmoid(np, np.float64(0.0)))
    0.5
    """
    e = xp.exp(-xp.abs(x))
    r = 1 / (1 + e)
    return xp.where(x >= 0, r, e * r)


def log_sigmoid(xp: ModuleType, x: Any) -> Any:
    """``log(sigmoid(x)) = -log(1 + exp(-x))``, accurate far into both tails."""
    return -xp.logaddexp(0.0, -x)


def g(xp: ModuleType, x: Any) -> Any:
    """The positive activation of log-space minGRU/minLSTM (Feng et al. 2024).

    ``g(x) = x + 0.5`` for ``x >= 0`` and ``sigmoid(x)`` otherwise: continuous,
    strictly positive, linear for large inputs.

    Examples
    --------
    >>> import numpy as np
    >>> g(np, np.array([-100.0, 0.0, 2.0])).round(3)
    array([0. , 0.5, 2.5])
    """
    return xp.where(x >= 0, x + 0.5, sigmoid(xp, x))

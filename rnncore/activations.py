"""Activation functions written once against an array namespace.

Each takes the namespace ``xp`` explicitly so the same code runs on NumPy and CuPy.
All are free of overflow warnings for any finite input.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

__all__ = ["g", "log_sigmoid", "sigmoid"]


def sigmoid(xp: ModuleType, x: Any) -> Any:
    """Logistic sigmoid ``1 / (1 + exp(-x))``, as ``(1 + tanh(x / 2)) / 2`` (never overflows).

    Examples
    --------
    >>> import numpy as np
    >>> float(sigmoid(np, np.float64(0.0)))
    0.5
    """
    return 0.5 + 0.5 * xp.tanh(0.5 * x)


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

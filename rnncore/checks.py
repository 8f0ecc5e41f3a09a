"""Argument checks shared across rnncore (the forecaster, the synthetic generator, ...)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["check_int"]


def check_int(name: str, value: Any, low: int) -> int:
    """Return ``value`` as an ``int`` after checking it is an integer of at least ``low``.

    Raises
    ------
    ValueError
        If ``value`` is not an integer (booleans are not) or is below ``low``.

    Examples
    --------
    >>> check_int("horizon", 24, 1)
    24
    >>> check_int("n_series", True, 1)
    Traceback (most recent call last):
    ...
    ValueError: n_series must be an integer of at least 1; got True
    """
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer of at least {low}; got {value!r}")
    return int(value)

"""Array helpers: the namespace of arrays (NumPy or CuPy), dtypes, layouts, parameter checks.

Every piece of rnncore maths is written once against an array namespace ``xp``
(``numpy`` or ``cupy``), chosen from the arrays it is handed: NumPy in, NumPy
out; CuPy in, CuPy out. CuPy is optional and imported only when present.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

try:  # pragma: no cover - exercised only where CuPy is installed
    import cupy as _cupy
except ImportError:  # pragma: no cover - the CPU-only case
    _cupy = None

__all__ = [
    "FLOAT_DTYPES",
    "check_param",
    "empty_steps",
    "float_dtype",
    "may_hold_any",
    "namespace",
    "to_numpy",
]

#: The floating dtypes rnncore computes in.
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def namespace(*arrays: Any) -> ModuleType:
    """Return the array namespace (``numpy`` or ``cupy``) of ``arrays``.

    Parameters
    ----------
    *arrays
        Arrays, scalars or ``None``; ``None`` and Python scalars are ignored.

    Returns
    -------
    module
        ``cupy`` if any argument is a CuPy array, else ``numpy``.

    Examples
    --------
    >>> import numpy as np
    >>> namespace(np.zeros(3), None).__name__
    'numpy'
    """
    if _cupy is not None and any(isinstance(a, _cupy.ndarray) for a in arrays):
        return _cupy
    return np


def may_hold_any(mask: Any) -> bool:
    """Whether boolean ``mask`` may hold a True: ``mask.any()`` where that is free.

    On NumPy the answer is exact. On a device (CuPy) it is always True, because
    asking would make the host wait for the device; callers take the path that is
    right either way (for example ``where(mask, fill, x)``), only skipping it when
    it is certainly not needed.

    Examples
    --------
    >>> import numpy as np
    >>> may_hold_any(np.zeros(3, bool))
    False
    """
    return bool(mask.any()) if namespace(mask) is np else True


def to_numpy(array: Any) -> np.ndarray:
    """Return ``array`` as a NumPy array, copying from the device if needed."""
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy.asnumpy(array)
    return np.asarray(array)


def float_dtype(dtype: Any, *, what: str) -> np.dtype:
    """Return the float dtype to compute in for data of ``dtype``.

    float32 and float64 stay as they are; booleans and integers are promoted to
    float64. Anything else (complex, strings, objects) cannot be computed with
    and raises a ``TypeError`` that names ``what`` was given.

    Examples
    --------
    >>> float_dtype(np.int32, what="x")
    dtype('float64')
    """
    dtype = np.dtype(dtype)
    if dtype in FLOAT_DTYPES:
        return dtype
    if dtype == np.float16:
        return np.dtype(np.float32)
    if dtype.kind in "biu":
        return np.dtype(np.float64)
    raise TypeError(
        f"{what} has dtype {dtype}, which rnncore cannot compute with; "
        "expected float32 or float64 (integers and booleans are promoted to float64)"
    )


def empty_steps(x: Any, width: int, dtype: Any = None) -> Any:
    """An uninitialised ``(T, B, width)`` array laid out like the ``(T, B, F)`` array ``x``.

    Series-major (a view of a C-ordered ``(B, T, width)`` array) when ``x`` steps
    faster along time than along series, as data stored ``(series, time)`` do;
    time-major (C order) otherwise. Outputs in their inputs' layout are written back
    to such storage without a transpose.

    Examples
    --------
    >>> import numpy as np
    >>> stored = np.zeros((4, 10, 1))  # (series, time, feature)
    >>> empty_steps(stored.transpose(1, 0, 2), 2).transpose(1, 0, 2).flags.c_contiguous
    True
    """
    xp = namespace(x)
    steps, batch = x.shape[:2]
    dtype = x.dtype if dtype is None else dtype
    if batch > 1 and steps > 1 and abs(x.strides[0]) < abs(x.strides[1]):
        return xp.empty((batch, steps, width), dtype).transpose(1, 0, 2)
    return xp.empty((steps, batch, width), dtype)


def check_param(what: str, value: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Return parameter ``value`` as a fresh NumPy array after checking it.

    Raises
    ------
    TypeError
        If it is not float32/float64, or not of ``dtype`` (parameters share one dtype).
    ValueError
        If its shape is not ``shape`` or it holds NaN or inf.
    """
    value = np.asarray(value)
    if value.dtype not in (np.float32, np.float64):
        raise TypeError(f"{what} has dtype {value.dtype}; expected float32 or float64")
    if value.dtype != dtype:
        raise TypeError(
            f"{what} has dtype {value.dtype} but the other parameters have {dtype}; "
            "all parameters must share one dtype"
        )
    if value.shape != shape:
        raise ValueError(f"{what} has shape {value.shape}; expected {shape}")
    if not np.isfinite(value).all():
        raise ValueError(f"{what} contains NaN or inf; parameters must be finite")
    return np.array(value)

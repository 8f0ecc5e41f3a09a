"""Reverse-mode gradients of the affine scan, computed by the scan itself.

For ``h_t = a_t * h_{t-1} + b_t`` (``h_{-1} = h0``) and a cotangent ``g_t`` of every
``h_t``, the adjoint ``lam_t`` (the total cotangent of ``h_t``) obeys

    ``lam_t = g_t + a_{t+1} * lam_{t+1}``,   ``lam_{T-1} = g_{T-1}``:

an affine scan run backwards in time, with the decays shifted one step. It runs
through :func:`rnncore.linear_scan` on reversed views, so it inherits the scan's
chunking, kernels and exactness. Then ``grad_a_t = lam_t * h_{t-1}``,
``grad_b_t = lam_t`` and ``grad_h0 = a_0 * lam_0``.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from ..arrays import namespace
from ..scan import _prepare, linear_scan

__all__ = ["adjoint_scan", "linear_scan_vjp", "reduce_to_shape"]


def adjoint_scan(a: Any, grad_h: Any, *, chunk: int | Sequence[int] | None = None) -> Any:
    """The adjoint ``lam_t = g_t + a_{t+1} * lam_{t+1}`` along axis 0, by a reversed scan.

    Parameters
    ----------
    a
        Decays ``(T, ...)``, of the shape of ``grad_h``.
    grad_h
        Cotangents ``g`` of the states ``h_t``, ``(T, ...)``.
    chunk
        As for :func:`rnncore.linear_scan`, counted from the end of time.

    Returns
    -------
    array
        ``lam`` ``(T, ...)``: the cotangent of each ``h_t`` through every later step.

    Examples
    --------
    >>> import numpy as np
    >>> adjoint_scan(np.full(3, 0.5), np.ones(3))
    array([1.75, 1.5 , 1.  ])
    """
    xp = namespace(a, grad_h)
    if grad_h.shape[0] == 0:
        return xp.zeros_like(grad_h)
    # a[1:] after a zero: the reversed scan's first step multiplies a zero start.
    shifted = xp.concatenate([a[1:], xp.zeros_like(a[:1])])
    return linear_scan(shifted[::-1], grad_h[::-1], chunk=_reversed(chunk))[::-1]


def linear_scan_vjp(
    a: Any,
    b: Any,
    grad_h: Any,
    h0: Any = None,
    *,
    h: Any = None,
    axis: int = 0,
    chunk: int | Sequence[int] | None = None,
) -> tuple[Any, Any, Any]:
    """Gradients of :func:`rnncore.linear_scan` with respect to ``a``, ``b`` and ``h0``.

    Parameters
    ----------
    a, b, h0, axis, chunk
        As for :func:`rnncore.linear_scan`.
    grad_h
        The cotangent of the scan's result: an array of its shape.
    h
        The scan's result, if already computed; recomputed otherwise.

    Returns
    -------
    grad_a, grad_b, grad_h0
        Of the shapes of ``a``, ``b`` and ``h0`` (broadcast dimensions summed out;
        ``grad_h0`` of one time step's shape when ``h0`` is ``None``), in the scan's
        dtype. A time axis of length 0 gives empty ``grad_a``, ``grad_b`` and a zero
        ``grad_h0``.

    Examples
    --------
    >>> import numpy as np
    >>> grad_a, grad_b, grad_h0 = linear_scan_vjp(np.full(3, 0.5), np.ones(3), np.ones(3), 2.0)
    >>> grad_a, grad_b, float(grad_h0)
    (array([3.5, 3. , 2. ]), array([1.75, 1.5 , 1.  ]), 0.875)
    """
    xp = namespace(a, b, grad_h, h0, h)
    a_in, b_in = xp.asarray(a), xp.asarray(b)
    at, bt, h0t = _prepare(xp, a_in, b_in, h0, axis)
    if h is None:
        h = linear_scan(at, bt, h0t, chunk=chunk)
    else:
        h = xp.moveaxis(xp.asarray(h), axis, 0)
    g = xp.moveaxis(xp.asarray(grad_h, dtype=bt.dtype), axis, 0)
    if g.shape != bt.shape:
        raise ValueError(f"grad_h has shape {g.shape} (time first); expected {bt.shape}")
    lam = adjoint_scan(at, g, chunk=chunk)
    h_prev = xp.concatenate([h0t[None], h[:-1]])
    grad_h0 = at[0] * lam[0] if lam.shape[0] else xp.zeros_like(h0t)
    return (
        reduce_to_shape(xp, xp.moveaxis(lam * h_prev, 0, axis), a_in.shape),
        reduce_to_shape(xp, xp.moveaxis(lam, 0, axis), b_in.shape),
        grad_h0 if h0 is None else reduce_to_shape(xp, grad_h0, xp.asarray(h0).shape),
    )


def reduce_to_shape(xp: ModuleType, grad: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``grad`` over the dimensions that broadcasting ``shape`` to ``grad.shape`` added.

    Examples
    --------
    >>> import numpy as np
    >>> reduce_to_shape(np, np.ones((4, 2, 3)), (2, 1))
    array([[12.],
           [12.]])
    """
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + k for k, n in enumerate(shape) if n == 1 and grad.shape[lead + k] != 1
    )
    return grad.sum(axis=axes, keepdims=True).reshape(shape) if axes else grad


def _reversed(chunk: int | Sequence[int] | None) -> int | Sequence[int] | None:
    """``chunk`` for the time-reversed scan: a list of lengths reversed, else as it is."""
    return chunk if chunk is None or isinstance(chunk, int | np.integer) else list(chunk)[::-1]

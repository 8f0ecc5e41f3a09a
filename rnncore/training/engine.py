"""Where the training loop computes: in memory, or on Dask's active scheduler.

The loop (:mod:`rnncore.training.loop`) is written once against an :class:`Engine`,
two computations whose results are the size of the parameters or of a batch's
states, never of the data:

- :func:`in_memory`: NumPy windows, the model called directly;
- :func:`on_dask`: Dask windows, chunked along time and series as the data are. The
  gradients are :func:`rnncore.grad.chunked.value_and_grad_chunked`'s, the states and
  outputs :func:`rnncore.chunked.run_chunked`'s, and the losses' sums are reduced
  block by block: every graph computes on the active scheduler (a
  ``distributed.Client``'s cluster), and only losses, gradients and states come back.
  A window's gradients and the states it ends in are one graph, one round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple

import dask
import dask.array as da
import numpy as np

from ..cells import State
from ..chunked import run_chunked
from ..grad.chunked import value_and_grad_chunked
from ..grad.model import errors, masked_mse
from ..model import Model
from ..states import pack_states, unpack_states

__all__ = ["Engine", "GradFn", "in_memory", "on_dask"]

#: ``grad_fn(model, x, target, h0=None, mask=None) -> (loss, grads)``, as
#: :func:`rnncore.grad.value_and_grad`: the loss and its gradient in every parameter.
GradFn = Callable[..., tuple[float, dict[str, Any]]]


class Engine(NamedTuple):
    """The loop's computations on windows ``(time, series, feature)`` of the data.

    Attributes
    ----------
    step
        ``step(model, x, y, h0, grad=..., states=...)``: the parameter gradients of the
        loss of ``model`` over ``x`` from ``h0`` (per-layer states, or ``None`` for
        zeros) if ``grad``, and the per-layer states it ends in if ``states``; ``None``
        for what is not asked.
    losses
        ``losses(model, x, y, masks)``: the masked MSE of ``model`` run over ``x``, for
        each mask (:func:`rnncore.grad.masked_mse`), as floats.
    """

    step: Callable[..., tuple[dict[str, Any] | None, list[State] | None]]
    losses: Callable[[Model, Any, Any, Sequence[np.ndarray]], list[float]]


def in_memory(grad_fn: GradFn) -> Engine:
    """The engine for NumPy (or CuPy) data, with ``grad_fn`` for the gradients."""
    return Engine(partial(_step, grad_fn=grad_fn), _losses)


def on_dask(method: str, grad_fn: GradFn | None = None) -> Engine:
    """The engine for Dask data, joining time chunks by ``method`` (exact).

    ``grad_fn`` (given Dask windows and per-layer ``h0``) replaces the default,
    :func:`rnncore.grad.chunked.value_and_grad_chunked` by ``method``.
    """
    step = _chunked_step if grad_fn is None else _step
    return Engine(
        partial(step, grad_fn=grad_fn, method=method), partial(_chunked_losses, method=method)
    )


def _step(
    model: Model,
    x: Any,
    y: Any,
    h0: Sequence[State] | None,
    *,
    grad: bool,
    states: bool,
    grad_fn: GradFn,
    method: str | None = None,
) -> tuple[dict[str, Any] | None, list[State] | None]:
    """The step by ``grad_fn``, the states by a forward pass (on Dask: by ``method``)."""
    final = None
    if states and method is None:
        final = model(x, h0)[1]
    elif states:
        packed = None if h0 is None else pack_states(model, list(h0))
        (ends,) = dask.compute(run_chunked(model, x, packed, method=method).states)
        final = unpack_states(model, ends)
    return (grad_fn(model, x, y, h0=h0)[1] if grad else None), final


def _chunked_step(
    model: Model,
    x: da.Array,
    y: da.Array,
    h0: Sequence[State] | None,
    *,
    grad: bool,
    states: bool,
    grad_fn: None,
    method: str,
) -> tuple[dict[str, Any] | None, list[State] | None]:
    """The gradients and the final states from one graph."""
    if not grad:
        return _step(model, x, y, h0, grad=False, states=states, grad_fn=grad_fn, method=method)
    packed = None if h0 is None else pack_states(model, list(h0))
    result = value_and_grad_chunked(model, x, y, packed, method=method, final_states=states)
    return result[1], unpack_states(model, result[2]) if states else None


def _losses(model: Model, x: Any, y: Any, masks: Sequence[np.ndarray]) -> list[float]:
    outputs, _ = model(x)
    return [masked_mse(outputs, y, mask)[0] for mask in masks]


def _chunked_losses(
    model: Model, x: da.Array, y: da.Array, masks: Sequence[np.ndarray], *, method: str
) -> list[float]:
    """The losses' squared errors and counts summed block by block, both from one run."""
    outputs = run_chunked(model, x, method=method).output
    sums = []
    for mask in masks:
        parts = [c if n > 1 else (n,) for c, n in zip(outputs.chunks, mask.shape, strict=True)]
        mask = da.broadcast_to(da.from_array(mask, parts), outputs.shape, outputs.chunks)
        chunks = (*(len(c) * (1,) for c in outputs.chunks[:2]), (2,))
        blocks = da.map_blocks(_block_sums, outputs, y, mask, dtype=np.float64, chunks=chunks)
        sums.append(blocks.sum(axis=(0, 1)))
    computed = dask.compute(*sums)
    return [float(squares / max(count, 1)) for squares, count in computed]


def _block_sums(outputs: Any, y: Any, mask: Any) -> np.ndarray:
    """``[[[squared errors summed, values counted]]]`` of one block (both float64)."""
    diff, count = errors(outputs, y, mask)
    return np.array([float((diff * diff).sum()), float(count)]).reshape(1, 1, 2)

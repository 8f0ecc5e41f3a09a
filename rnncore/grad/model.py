"""Gradients of a whole model: its vector-Jacobian product and a masked MSE loss.

The model's forward pass keeps each layer's outputs (the next layer's inputs) and what
its backward pass can reuse (:func:`~rnncore.grad.cells.cell_forward`); the backward
pass runs the readout's, then each layer's vector-Jacobian product
(:func:`~rnncore.grad.cells.cell_vjp`, which recomputes what was not kept) from the
last layer to the first, passing each layer's input cotangent down as the cotangent
of the outputs of the layer below. Where a fused kernel differentiates the top layer
and the readout together (:func:`~rnncore.grad.cells.takes_readout`), the readout
runs within that layer's forward pass too, and the layer's outputs are never stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from ..arrays import may_hold_any, namespace
from ..cells import State
from ..model import Model
from .cells import affine_grads, cell_forward, cell_vjp, fused_readout_vjp, takes_readout

__all__ = ["ModelGradients", "errors", "masked_mse", "model_vjp", "value_and_grad"]


class ModelGradients(NamedTuple):
    """The gradients of a model.

    Attributes
    ----------
    params
        Keyed as :meth:`rnncore.Model.state_dict` keys the parameters.
    x
        ``(T, B, F)``: zero at missing steps.
    h0
        One per layer, each of its cell's state (LSTM: a pair).
    """

    params: dict[str, Any]
    x: Any
    h0: list[State]


def model_vjp(
    model: Model,
    x: Any,
    grad_outputs: Any,
    h0: Sequence[State] | None = None,
    grad_final_states: Sequence[State] | None = None,
) -> ModelGradients:
    """Pull the cotangents of a model's outputs and final states back to its inputs.

    For a scalar ``L`` of ``y, states = model(x, h0)``, given ``grad_outputs = dL/dy``
    and ``grad_final_states = dL/dstates``, returns ``dL/dparams``, ``dL/dx`` and
    ``dL/dh0``.

    Parameters
    ----------
    model
        Any :class:`rnncore.Model`.
    x, h0
        As for :meth:`rnncore.Model.__call__`.
    grad_outputs
        ``(T, B, output_size)``; ignored at missing steps (where the outputs are NaN).
    grad_final_states
        One cotangent per layer (``None`` entries for zeros), or ``None`` for all zeros.

    Returns
    -------
    ModelGradients
        In the dtype of ``x``, as the forward pass computes.

    Examples
    --------
    >>> import numpy as np
    >>> from rnncore import Model
    >>> model = Model.init("GRU", input_size=2, hidden_sizes=[4, 3], output_size=1)
    >>> grads = model_vjp(model, np.ones((6, 5, 2), np.float32), np.ones((6, 5, 1), np.float32))
    >>> grads.params["layers.1.weight_hh_l0"].shape, grads.x.shape, len(grads.h0)
    ((9, 3), (6, 5, 2), 2)
    """
    inputs, tapes, _ = _layer_inputs(model, x, h0)
    return _backward(model, inputs, tapes, grad_outputs, h0, grad_final_states)


def value_and_grad(
    model: Model, x: Any, target: Any, h0: Sequence[State] | None = None, mask: Any = None
) -> tuple[float, dict[str, Any]]:
    """The masked mean squared error of a model's outputs and its parameter gradients.

    Parameters
    ----------
    model
        Any :class:`rnncore.Model`.
    x, h0
        As for :meth:`rnncore.Model.__call__`.
    target
        ``(T, B, output_size)``; NaN marks a value to ignore.
    mask
        Boolean, broadcasting against ``target``: True where a value counts (all of
        them if ``None``), as :func:`masked_mse` takes it.

    Returns
    -------
    loss
        :func:`masked_mse` of the outputs.
    grads
        Its gradient with respect to every parameter, keyed as
        :meth:`rnncore.Model.state_dict` keys them, in the dtype of ``x``.

    Examples
    --------
    >>> import numpy as np
    >>> from rnncore import Model
    >>> model = Model.init("MinGRU", input_size=1, hidden_sizes=[8], output_size=1)
    >>> x = np.sin(np.arange(20.0)).reshape(20, 1, 1).astype(np.float32)
    >>> loss, grads = value_and_grad(model, x[:-1], x[1:])
    >>> loss > 0, sorted(grads) == sorted(model.state_dict())
    (True, True)
    """
    inputs, tapes, y = _layer_inputs(model, x, h0)
    loss, grad_y = masked_mse(y, target, mask)
    return loss, _backward(model, inputs, tapes, grad_y, h0, None).params


def masked_mse(y: Any, target: Any, mask: Any = None) -> tuple[float, Any]:
    """Mean squared error over the values that count, and its gradient in ``y``.

    A value counts where ``mask`` is True and neither ``target`` nor ``y`` is NaN
    (outputs are NaN at missing input steps, where they depend on no parameter).
    With no value counting the loss and its gradient are zero.

    Parameters
    ----------
    y
        Predictions.
    target
        Of ``y``'s shape; NaN marks a value to ignore.
    mask
        Boolean, broadcasting against ``y``; ``None`` counts every value.

    Returns
    -------
    loss
        ``sum((y - target)**2) / n`` over the ``n`` values that count.
    grad_y
        ``2 * (y - target) / n`` where a value counts, zero elsewhere.

    Examples
    --------
    >>> import numpy as np
    >>> loss, grad = masked_mse(np.array([1.0, 2.0, np.nan]), np.array([0.0, np.nan, 1.0]))
    >>> loss, grad
    (1.0, array([2., 0., 0.]))
    """
    xp = namespace(y, target, mask)
    diff, count = errors(y, target, mask)
    n = xp.maximum(count, 1)
    return float((diff * diff).sum() / n), (2 * diff / n).astype(diff.dtype)


def errors(y: Any, target: Any, mask: Any = None) -> tuple[Any, Any]:
    """``y - target`` where a value counts (zero elsewhere), and how many values count.

    The pieces of :func:`masked_mse` that add up over blocks of the data (its
    arguments are as there): the squared errors summed, and the counts.

    Examples
    --------
    >>> import numpy as np
    >>> errors(np.array([1.0, 2.0, np.nan]), np.array([0.0, np.nan, 1.0]))
    (array([1., 0., 0.]), np.int64(1))
    """
    xp = namespace(y, target, mask)
    y = xp.asarray(y)
    target = xp.asarray(target, dtype=y.dtype)
    if target.shape != y.shape:
        raise ValueError(f"target has shape {target.shape}; expected the outputs' {y.shape}")
    counts = ~(xp.isnan(y) | xp.isnan(target))
    if mask is not None:
        counts &= xp.asarray(mask, dtype=bool)
    return xp.where(counts, y - target, 0), counts.sum()


def _layer_inputs(model: Model, x: Any, h0: Sequence[State] | None) -> tuple[list, list, Any]:
    """The forward pass, keeping ``x`` and every layer's outputs (no readout), and tapes.

    The tapes are what each layer's :func:`~rnncore.grad.cells.cell_vjp` can reuse
    (:func:`~rnncore.grad.cells.cell_forward`). Also returns the model's outputs.
    Where :func:`~rnncore.grad.cells.takes_readout` holds for the top layer, the
    readout runs in its forward pass and its outputs are not kept: the last entry
    of the inputs is ``None``.
    """
    if h0 is not None and len(h0) != len(model.layers):
        raise ValueError(f"h0 has {len(h0)} states; the model has {len(model.layers)} layers")
    inputs, tapes, last = [x], [], len(model.layers) - 1
    for k, cell in enumerate(model.layers):
        fuse = k == last and model.readout is not None and takes_readout(cell, inputs[-1])
        readout = model.readout if fuse else None
        y, _, tape = cell_forward(cell, inputs[-1], None if h0 is None else h0[k], readout)
        inputs.append(None if fuse else y)
        tapes.append(tape)
    if model.readout is not None and inputs[-1] is not None:
        y = model.readout(y)
    return inputs, tapes, y


def _backward(
    model: Model,
    inputs: list[Any],
    tapes: list[Any],
    grad_outputs: Any,
    h0: Sequence[State] | None,
    grad_final_states: Sequence[State] | None,
    lowest: int = 0,
) -> ModelGradients:
    """The backward pass from the outputs of :func:`_layer_inputs`, down to layer ``lowest``.

    Layers below ``lowest`` are left out: no parameter gradients and a ``None``
    ``h0`` gradient for them, and ``x``'s gradient is that of layer ``lowest``'s inputs.
    """
    n = len(model.layers)
    if grad_final_states is not None and len(grad_final_states) != n:
        raise ValueError(f"grad_final_states has {len(grad_final_states)} states; expected {n}")
    h = inputs[-1]  # None where the top layer's forward pass took the readout
    below = inputs[-2]
    xp = namespace(below)
    grad = xp.asarray(grad_outputs) if h is None else xp.asarray(grad_outputs, dtype=h.dtype)
    params: dict[str, Any] = {}
    grad_h0: list[State] = [None] * n
    fused = None
    if model.readout is not None:
        _check_readout_cotangent(model, below, grad)
        if lowest < n:  # the top layer's backward pass may take the readout's
            fused = fused_readout_vjp(
                model.layers[-1],
                model.readout,
                below,
                grad,
                None if h0 is None else h0[-1],
                None if grad_final_states is None else grad_final_states[-1],
                tapes[-1],
            )
        if fused is None:
            if h is None:
                raise RuntimeError("the kernel path changed between the forward and backward pass")
            grad, params["readout.weight"], params["readout.bias"] = _readout_vjp(model, h, grad)
        else:
            top, params["readout.weight"], params["readout.bias"] = fused
    for k in reversed(range(lowest, n)):
        if fused is not None and k == n - 1:
            cell_grads = top
        else:
            cell_grads = cell_vjp(
                model.layers[k],
                inputs[k],
                grad,
                None if h0 is None else h0[k],
                None if grad_final_states is None else grad_final_states[k],
                tapes[k],
            )
        params |= {f"layers.{k}.{name}": v for name, v in cell_grads.params.items()}
        grad, grad_h0[k] = cell_grads.x, cell_grads.h0
    ordered = {key: params[key] for key in model.state_dict() if key in params}
    return ModelGradients(ordered, grad, grad_h0)


def _check_readout_cotangent(model: Model, x: Any, grad_y: Any) -> None:
    """Refuse a cotangent ``grad_y`` not of the shape of the outputs on ``(T, B, F)`` ``x``."""
    expected = (*x.shape[:-1], model.readout.output_size)
    if grad_y.shape != expected:
        raise ValueError(f"grad_outputs has shape {grad_y.shape}; expected {expected}")


def _readout_vjp(model: Model, h: Any, grad_y: Any) -> tuple[Any, Any, Any]:
    """Gradients of ``y = h @ weight.T + bias`` for ``h``, weight and bias; NaN rows ignored."""
    xp = namespace(h)
    weight = model.readout.arrays(xp, h.dtype).weight
    missing = xp.isnan(h).any(axis=-1, keepdims=True)
    if may_hold_any(missing):  # else spared a copy of h
        h, grad_y = xp.where(missing, 0, h), xp.where(missing, 0, grad_y)
    flat = grad_y.reshape(-1, weight.shape[0])
    return (flat @ weight).reshape(h.shape), *affine_grads(grad_y, h)

"""Model states as one array: ``(series, layer, state_unit)``.

A model's state is a list with one entry per layer: a ``(B, H)`` array, or a tuple
of them (LSTM's ``(h, c)``). To store it beside the data, and to warm-start a later
run from it, it is packed into a single array: along ``state_unit`` each layer
holds its state arrays one after the other (LSTM: ``h`` then ``c``), padded with
NaN up to the widest layer.
"""

from __future__ import annotations

from typing import Any

from .arrays import namespace
from .model import Model

__all__ = ["pack_states", "state_width", "unpack_states"]


def state_width(model: Model) -> int:
    """The length of the ``state_unit`` axis for ``model``."""
    return max(len(cell.state_names) * cell.hidden_size for cell in model.layers)


def pack_states(model: Model, states: list[Any]) -> Any:
    """Pack per-layer states into one ``(B, n_layers, state_width)`` array.

    Examples
    --------
    >>> import numpy as np
    >>> from rnncore import Model
    >>> model = Model.init("LSTM", 1, [2, 3])
    >>> _, states = model(np.zeros((4, 5, 1), np.float32))
    >>> pack_states(model, states).shape
    (5, 2, 6)
    """
    parts = [s if isinstance(s, tuple) else (s,) for s in states]
    first = parts[0][0]
    xp = namespace(first)
    packed = xp.full((first.shape[0], len(model.layers), state_width(model)), xp.nan, first.dtype)
    for k, layer_parts in enumerate(parts):
        flat = xp.concatenate(layer_parts, axis=1)
        packed[:, k, : flat.shape[1]] = flat
    return packed


def unpack_states(model: Model, packed: Any) -> list[Any]:
    """Invert :func:`pack_states`: one state per layer, as the cells take them.

    Raises
    ------
    ValueError
        If ``packed`` does not have the shape ``(B, n_layers, state_width)`` for ``model``.
    """
    expected = (len(model.layers), state_width(model))
    if packed.ndim != 3 or tuple(packed.shape[1:]) != expected:
        raise ValueError(
            f"packed states have shape {tuple(packed.shape)}; expected "
            f"(series, layer, state_unit) = (B, {expected[0]}, {expected[1]}) for this model"
        )
    states = []
    for k, cell in enumerate(model.layers):
        h = cell.hidden_size
        parts = tuple(packed[:, k, i * h : (i + 1) * h] for i in range(len(cell.state_names)))
        states.append(parts if len(parts) > 1 else parts[0])
    return states

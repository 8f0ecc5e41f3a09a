"""Exact gradients over a Dask array chunked along time and series.

The loss is the masked mean squared error of :func:`rnncore.grad.value_and_grad`
over the whole ``(time, series, feature)`` array, and its gradient is the same, up to
rounding, for every chunking. The graph is built the way :mod:`rnncore.chunked` builds
a run's, from its pieces:

*Forward*
    The states entering every chunk, for every layer, exactly: carried from chunk to
    chunk (``"sequential"``), or by the prefix tree over the chunks' summaries
    (``"prefix_scan"``, linear-state models).
*Backward across time*
    The cotangent of the state leaving each chunk (its *adjoint*), the mirror of the
    forward join. Carried (``"sequential"``): the chunks' vector-Jacobian products
    (:func:`rnncore.grad.model_vjp`) run right to left, each chunk's ``h0`` gradient
    being the cotangent leaving the chunk before it. Stitched (``"prefix_scan"``):
    a linear-state layer's adjoint is itself an affine scan run backwards, so a
    chunk maps the cotangent leaving it to the one entering it by
    ``lam_in = A * lam_out + G``, with ``A`` the chunk's forward decay product and
    ``G`` its ``h0`` gradient from a zero ``lam_out``. These summaries are joined
    by the same log-depth tree (:func:`rnncore.trees.prefix_scan` over
    :func:`rnncore.compose`) on the chunks in reverse, layer by layer from the top
    (a layer's output cotangents need the exact adjoints of the layers above, as
    the forward join needs the exact entries of the layers below), and every chunk's
    vector-Jacobian product then runs at once from its exact adjoints.
*Series*
    Series chunks are independent; the blocks' squared errors, counts and
    parameter gradients are summed by a tree reduction
    (:func:`rnncore.trees.tree_reduce`).

Each block's vector-Jacobian product is taken of the sum of squared errors (its
cotangent ``2 (y - target)``): the mean's divisor, the number of values that count
over the whole array, is known only at the end, and the gradients, linear in the
cotangent, are divided by it once summed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np

from .. import kernels
from ..arrays import to_numpy
from ..cells import State
from ..chunked import (
    MULTIPLE_SHOOTING,
    PREFIX_SCAN,
    SEQUENTIAL,
    _Graph,
    carried_entries,
    default_resources,
    prepare_input,
    resolve_method,
    scanned_entries,
    scheduler_slots,
    split_states,
)
from ..model import Model
from ..states import pack_states
from ..trees import prefix_scan, tree_reduce
from .model import ModelGradients, _backward, _layer_inputs, errors

__all__ = ["value_and_grad_chunked"]

#: A block's share of the loss: squared errors summed, values counted, parameter gradients.
Totals = tuple[Any, Any, dict[str, Any]]


def value_and_grad_chunked(
    model: Model,
    x: da.Array,
    target: da.Array,
    h0: Any = None,
    mask: Any = None,
    method: str = "auto",
    *,
    final_states: bool = False,
) -> tuple[float, dict[str, Any]] | tuple[float, dict[str, Any], np.ndarray]:
    """:func:`rnncore.grad.value_and_grad` over Dask arrays, computed with Dask.

    Parameters
    ----------
    model
        Any :class:`rnncore.Model`.
    x
        Dask array ``(time, series, feature)``; NaN marks missing steps. Its time
        and series chunks are the blocks of the computation.
    target
        ``(time, series, output)`` (Dask or NumPy); NaN marks a value to ignore.
        Rechunked like ``x``.
    h0
        Packed initial states ``(series, layer, state_unit)`` (see
        :mod:`rnncore.states`), as :func:`rnncore.chunked.run_chunked` takes them, or
        ``None`` for zeros.
    mask
        Boolean, broadcasting against ``target`` (Dask or NumPy): True where a value
        counts; all of them if ``None``.
    method
        How time chunks are joined, forward and backward: ``"auto"`` (as
        :func:`rnncore.chunked.resolve_method` chooses), ``"sequential"``, or
        ``"prefix_scan"`` / ``"parallel"`` (linear-state models). Every method is
        exact; multiple shooting (``"parallel"`` for nonlinear models) is refused.
    final_states
        Also return the states the model ends in, from the same graph (its forward
        join computes them anyway).

    Returns
    -------
    loss
        The masked mean squared error of the outputs.
    grads
        Its gradient with respect to every parameter, keyed as
        :meth:`rnncore.Model.state_dict` keys them: NumPy arrays in the dtype of ``x``.
    states
        With ``final_states``: the final states, packed ``(series, layer,
        state_unit)`` (NumPy), as :func:`rnncore.chunked.run_chunked` gives them.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> from rnncore import Model
    >>> from rnncore.grad import value_and_grad
    >>> model = Model.init("MinGRU", input_size=1, hidden_sizes=[4], output_size=1,
    ...                    dtype=np.float64)
    >>> x = np.sin(np.arange(40.0)).reshape(20, 2, 1)
    >>> loss, grads = value_and_grad_chunked(
    ...     model, da.from_array(x, chunks=(7, 1, 1)), da.from_array(2 * x, chunks=(5, 2, 1))
    ... )
    >>> expected_loss, expected = value_and_grad(model, x, 2 * x)
    >>> bool(np.isclose(loss, expected_loss))
    True
    >>> all(np.allclose(grads[k], expected[k], rtol=1e-12) for k in expected)
    True
    """
    x = prepare_input(model, x)
    target, mask = _like_x(model, x, target, mask)
    algorithm = _exact_method(model, method, len(x.chunks[1]))
    inputs = [target] if mask is None else [target, mask]
    resources = default_resources(x, None)
    graph = _Graph(model, x, algorithm, resources, kind="grad", inputs=inputs)
    blocks = _Blocks(graph, target, mask)
    totals, finals = [], []
    for j, h0_j in enumerate(split_states(model, x, h0)):
        if algorithm == PREFIX_SCAN and len(x.chunks[0]) > 1:
            entries, summaries = scanned_entries(graph, j, h0_j)
            totals += _backward_by_prefix_scan(blocks, j, entries, summaries)
        else:
            entries = carried_entries(graph, j, h0_j)
            totals += _backward_sequentially(blocks, j, entries)
        if final_states:
            finals.append(graph.call("states", pack_states, graph.model_key, entries[-1]))
    total = tree_reduce(totals, lambda a, b: graph.call("sum", _add, a, b))
    (squares, count, params), *states = graph.compute([total, *finals])
    n = max(int(count), 1)
    loss, grads = float(squares) / n, {name: to_numpy(value / n) for name, value in params.items()}
    if final_states:
        return loss, grads, np.concatenate([to_numpy(part) for part in states])
    return loss, grads


def _like_x(model: Model, x: da.Array, target: Any, mask: Any) -> tuple[da.Array, Any]:
    """``target`` and ``mask`` as Dask arrays chunked like ``x`` (``mask`` may be ``None``)."""
    expected = (*x.shape[:2], model.output_size)
    target = da.asarray(target)
    if target.shape != expected:
        raise ValueError(f"target has shape {target.shape}; expected {expected}")
    chunks = (*x.chunks[:2], -1)
    target = target.astype(x.dtype).rechunk(chunks)
    if mask is not None:
        mask = da.broadcast_to(da.asarray(mask).astype(bool), expected).rechunk(chunks)
    return target, mask


def _exact_method(model: Model, method: str, series_chunks: int) -> str:
    """The exact algorithm ``method`` asks for; multiple shooting is refused."""
    algorithm = resolve_method(model, method, series_chunks, scheduler_slots())
    if algorithm == MULTIPLE_SHOOTING:
        raise ValueError(
            f"gradients are exact: method {method!r} means {MULTIPLE_SHOOTING!r} for this "
            f"nonlinear model; use {SEQUENTIAL!r} (or 'auto')"
        )
    return algorithm


class _Blocks:
    """Adds the tasks of one block ``(i, j)``: its data's keys and its backward pass."""

    def __init__(self, graph: _Graph, target: da.Array, mask: da.Array | None) -> None:
        self.graph, self.target, self.mask = graph, target, mask

    def data(self, i: int, j: int) -> tuple[Any, ...]:
        """The keys of ``x``, ``target`` and ``mask`` (or ``None``) of block ``(i, j)``."""
        mask = None if self.mask is None else self.graph.block(i, j, self.mask)
        return self.graph.block(i, j), self.graph.block(i, j, self.target), mask

    def backward(self, i: int, j: int, entries: Any, adjoints: Any) -> tuple:
        """The task: block ``(i, j)``'s ``(h0 gradients, totals)`` (:func:`_block_backward`)."""
        graph = self.graph
        return graph.call(
            "backward", _block_backward, graph.model_key, *self.data(i, j), entries, adjoints
        )

    def adjoint_summary(
        self, i: int, j: int, entries: Any, adjoints: list[Any], summary: Any, layer: int
    ) -> tuple:
        """The task: the affine map of ``layer``'s adjoint across block ``(i, j)``."""
        graph = self.graph
        return graph.call(
            "adjoint-summary",
            _adjoint_summary,
            graph.model_key,
            *self.data(i, j),
            entries,
            adjoints,
            summary,
            layer,
        )


# -- the two backward joins across time (one series chunk at a time) ------------------


def _backward_sequentially(blocks: _Blocks, j: int, entries: list[Any]) -> list[tuple]:
    """Carried adjoints: chunks right to left, each from the ``h0`` gradient after it."""
    graph, totals, adjoints = blocks.graph, [], None
    for i in reversed(range(len(graph.x.chunks[0]))):
        result = blocks.backward(i, j, entries[i], adjoints)
        adjoints = graph.item(result, 0)
        totals.append(graph.item(result, 1))
    return totals[::-1]


def _backward_by_prefix_scan(
    blocks: _Blocks, j: int, entries: list[Any], summaries: list[list[Any]]
) -> list[tuple]:
    """Stitched adjoints of linear-state layers: summaries, reversed prefix tree, then vjps.

    ``adjoints[l][i]``, the cotangent of layer ``l``'s state leaving chunk ``i``, is
    zero for the last chunk, and ``lam_in = A * lam_out + G`` from chunk to chunk
    back in time: the prefix of the summaries of chunks ``n - 1, ..., 1``.
    """
    graph = blocks.graph
    n_time, n_layers = len(graph.x.chunks[0]), len(summaries)
    adjoints: list[list[Any]] = [[None] * n_time for _ in range(n_layers)]
    for layer in reversed(range(n_layers)):
        backward_summaries = [
            blocks.adjoint_summary(
                i, j, entries[i], [a[i] for a in adjoints], summaries[layer][i], layer
            )
            for i in reversed(range(1, n_time))
        ]
        prefix = prefix_scan(backward_summaries, graph.compose)
        for i in range(n_time - 1):
            adjoints[layer][i] = graph.item(prefix[n_time - 2 - i], 1)
    return [
        graph.item(blocks.backward(i, j, entries[i], [a[i] for a in adjoints]), 1)
        for i in range(n_time)
    ]


# -- block-level work (runs on the workers) ------------------------------------------


def _block_backward(
    model: Model,
    x: Any,
    target: Any,
    mask: Any,
    entries: Sequence[State] | None,
    adjoints: Sequence[State] | None,
) -> tuple[list[State], Totals]:
    """One block's ``h0`` gradients and its totals, its exit states' cotangents ``adjoints``."""
    grads, squares, count = _pullback(model, x, target, mask, entries, adjoints)
    return grads.h0, (squares, count, grads.params)


def _adjoint_summary(
    model: Model,
    x: Any,
    target: Any,
    mask: Any,
    entries: Sequence[State],
    adjoints: Sequence[State],
    summary: tuple[Any, Any],
    layer: int,
) -> tuple[Any, Any]:
    """``(A, G)``: ``layer``'s adjoint across one block, ``lam_in = A * lam_out + G``.

    ``A`` is the layer's forward decay product over the block (of its forward
    ``summary``); ``G`` is its ``h0`` gradient when the cotangent of its exit state
    is zero and those of the layers above are their exact ``adjoints``.
    """
    above = [None] * (layer + 1) + list(adjoints[layer + 1 :])
    grads, _, _ = _pullback(model, x, target, mask, entries, above, lowest=layer)
    return summary[0], grads.h0[layer]


def _pullback(
    model: Model,
    x: Any,
    target: Any,
    mask: Any,
    entries: Sequence[State] | None,
    adjoints: Sequence[State] | None,
    lowest: int = 0,
) -> tuple[ModelGradients, Any, Any]:
    """The vjp of a block's summed squared errors, and those errors and their count."""
    with kernels.threads(1):
        inputs, tapes, y = _layer_inputs(model, x, entries)
        diff, count = errors(y, target, mask)
        grads = _backward(model, inputs, tapes, 2 * diff, entries, adjoints, lowest)
    return grads, (diff * diff).sum(), count


def _add(first: Totals, second: Totals) -> Totals:
    """Two blocks' totals added."""
    return (
        first[0] + second[0],
        first[1] + second[1],
        {name: value + second[2][name] for name, value in first[2].items()},
    )

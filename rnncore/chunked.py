"""Run a :class:`~rnncore.Model` over a Dask array chunked along time and series.

The array is time-major, ``(time, series, feature)``. Series chunks are
independent; time chunks are joined by their boundary states by one of three
algorithms (:data:`ALGORITHMS`), each named once, here, by what it is:

``"prefix_scan"`` (linear-state models, exact)
    Each time chunk is summarised as an affine map without keeping its hidden
    states, the summaries are joined by a log-depth prefix tree
    (:func:`rnncore.trees.prefix_scan` over :func:`rnncore.compose`), and each chunk is run
    again from its entry state. Multi-layer models do this layer by layer:
    layer ``l``'s summaries are taken from the outputs of layers ``< l`` run
    from their entry states. The graph holds O(chunks x layers) tasks,
    each touching one chunk.
``"sequential"`` (any model, exact)
    The state is carried from chunk to chunk along time; series chunks still run
    in parallel.
``"multiple_shooting"`` (any model, to a tolerance)
    All time chunks run at once from guessed entry states; the entry states are
    replaced by the previous chunks' exit states until they change by at most
    ``tol`` (multiple shooting). After ``k`` sweeps the first ``k`` chunks are
    exact, so ``n_time_chunks - 1`` sweeps always suffice. Only chunks whose entry
    changed are run again. The sweeps are computed when the run is set up; the
    outputs stay lazy.

A user's ``method`` (:data:`METHODS`) is one of these algorithms, or ``"auto"``
(the exact algorithm with the least work, :func:`resolve_method`) or ``"parallel"``
(all time chunks at once: the prefix scan, or multiple shooting for nonlinear
models). A run records the algorithm it used (:attr:`ChunkedRun.method`).
"""

from __future__ import annotations

import contextlib
import itertools
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import dask.local
import numpy as np
from dask.base import tokenize
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph
from dask.system import CPU_COUNT

from . import kernels
from .arrays import empty_steps, float_dtype, namespace
from .model import Model
from .scan import compose
from .states import pack_states, state_width, unpack_states
from .trees import prefix_scan

__all__ = [
    "METHODS",
    "ChunkedRun",
    "ConvergenceError",
    "resolve_method",
    "run_chunked",
    "scheduler_slots",
]

#: The algorithms that join time chunks: what a run records as its ``method``.
SEQUENTIAL, PREFIX_SCAN, MULTIPLE_SHOOTING = "sequential", "prefix_scan", "multiple_shooting"
ALGORITHMS = (SEQUENTIAL, PREFIX_SCAN, MULTIPLE_SHOOTING)
#: The ``method`` values users pass: an algorithm, or a choice of one.
METHODS = ("auto", "parallel", *ALGORITHMS)


class ConvergenceError(RuntimeError):
    """Multiple shooting did not bring the boundary states within ``tol`` in ``max_iter`` sweeps."""


@dataclass(frozen=True)
class ChunkedRun:
    """The lazy result of :func:`run_chunked`.

    Attributes
    ----------
    output
        ``(time, series, output)`` outputs, chunked like the input.
    states
        ``(series, layer, state_unit)`` final states (see :mod:`rnncore.states`).
    method
        The algorithm that joined the time chunks (one of :data:`ALGORITHMS`).
    iterations
        Sweeps made by multiple shooting (``None`` otherwise).
    boundary_change
        The largest change of a boundary state in the last sweep, 0 once the
        boundaries are an exact fixed point (multiple shooting).
    """

    output: da.Array
    states: da.Array
    method: str
    iterations: int | None = None
    boundary_change: float | None = None


def resolve_method(model: Model, method: str, series_chunks: int = 1, slots: int = 1) -> str:
    """Map a user's ``method`` (:data:`METHODS`) to the algorithm used (:data:`ALGORITHMS`).

    ``"auto"`` picks the exact algorithm that keeps ``slots`` worker threads busy
    with the least work. Carrying the state runs each chunk once, but one series
    chunk's time chunks one after another; the prefix scan runs all time chunks at
    once but reads and runs each chunk twice. So a linear-state model is scanned
    only when its ``series_chunks`` independent chains are fewer than ``slots``;
    nonlinear models always carry (multiple shooting is approximate and must be
    asked for). An algorithm a model cannot use is refused.


    Examples
    --------
    >>> from rnncore import Model
    >>> model = Model.init("MinGRU", 1, [4], 1)
    >>> resolve_method(model, "auto", series_chunks=1, slots=8)
    'prefix_scan'
    >>> resolve_method(model, "auto", series_chunks=64, slots=8)
    'sequential'
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    if method == PREFIX_SCAN and not model.is_linear_state:
        raise ValueError(
            f"method {PREFIX_SCAN!r} needs a model whose layers are all linear in the state; "
            f"this one has nonlinear layers: use {SEQUENTIAL!r} (exact) or "
            f"{MULTIPLE_SHOOTING!r}"
        )
    if method == "auto":
        scan = model.is_linear_state and series_chunks < slots
        return PREFIX_SCAN if scan else SEQUENTIAL
    if method == "parallel":
        return PREFIX_SCAN if model.is_linear_state else MULTIPLE_SHOOTING
    return method


def scheduler_slots() -> int:
    """How many tasks the active Dask scheduler runs at once (its worker threads)."""
    scheduler = dask.base.get_scheduler()
    client = getattr(scheduler, "__self__", None)
    if client is not None and hasattr(client, "nthreads"):
        return max(1, sum(client.nthreads().values()))
    if scheduler is dask.local.get_sync:
        return 1
    return dask.config.get("num_workers", None) or CPU_COUNT


def run_chunked(
    model: Model,
    x: da.Array,
    h0: Any = None,
    *,
    method: str = "auto",
    tol: float = 1e-6,
    max_iter: int | None = None,
    resources: Mapping[str, float] | None = None,
) -> ChunkedRun:
    """Run ``model`` over the chunked ``(time, series, feature)`` array ``x``.

    Parameters
    ----------
    model
        The model to run.
    x
        Dask array ``(time, series, feature)``; NaN marks missing steps. The
        feature axis is brought into one chunk; the time axis is never rechunked.
    h0
        Packed initial states ``(series, layer, state_unit)`` (a NumPy or CuPy
        array, see :mod:`rnncore.states`), or ``None`` for zeros.
    method
        One of :data:`METHODS`: ``"auto"`` (exact: the prefix scan or sequential, see
        :func:`resolve_method`), ``"parallel"`` (the prefix scan, or multiple shooting
        for nonlinear models), or an algorithm by name (:data:`ALGORITHMS`).
    tol
        Largest boundary-state change at which multiple shooting stops.
    max_iter
        Most multiple-shooting sweeps; ``None`` allows ``n_time_chunks - 1`` (always enough).
    resources
        Worker resources every task of the run needs on a distributed cluster
        (annotated with :func:`dask.annotate`): only workers declaring them run
        the model. ``None`` asks ``{"GPU": 1}`` for CuPy-backed chunks and nothing
        for NumPy ones; ``{}`` asks nothing. Dask's low-level task fusion drops
        annotations (dask/dask#7036): compute under
        ``dask.config.set({"optimization.fuse.active": False})`` for them to hold.

    Returns
    -------
    ChunkedRun
        Lazy outputs and final states, and how they were joined.

    Raises
    ------
    ConvergenceError
        If multiple shooting has not converged after ``max_iter`` sweeps.
    """
    x = prepare_input(model, x)
    algorithm = resolve_method(model, method, len(x.chunks[1]), scheduler_slots())
    graph = _Graph(model, x, algorithm, default_resources(x, resources))
    h0_chunks = split_states(model, x, h0)
    n_time, n_series = len(x.chunks[0]), len(x.chunks[1])
    iterations, change = None, None
    if algorithm == MULTIPLE_SHOOTING:
        entries, iterations, change = _multiple_shooting(graph, h0_chunks, tol, max_iter)
        finals = []
        for j in range(n_series):
            for i in range(n_time):
                result = graph.run_block(i, j, graph.put("entry", entries[j][i]))
                graph.output(i, j, graph.item(result, 0))
            finals.append(graph.item(result, 1))
    else:
        join = _join_by_prefix_scan if algorithm == PREFIX_SCAN else _join_sequentially
        finals = [join(graph, j, h0_chunks[j]) for j in range(n_series)]
    return ChunkedRun(
        output=graph.output_array(),
        states=graph.states_array(finals),
        method=algorithm,
        iterations=iterations,
        boundary_change=change,
    )


def prepare_input(model: Model, x: da.Array) -> da.Array:
    """``x`` checked against ``model``, in a float dtype, with its feature axis in one chunk."""
    if x.ndim != 3 or x.shape[2] != model.input_size:
        raise ValueError(
            f"x has shape {x.shape}; expected (time, series, {model.input_size} features)"
        )
    return x.astype(float_dtype(x.dtype, what="x")).rechunk({2: -1})


def default_resources(x: da.Array, resources: Mapping[str, float] | None) -> Mapping[str, float]:
    """``resources``, or for ``None`` ``{"GPU": 1}`` for CuPy-backed chunks and ``{}`` else."""
    if resources is None:
        return {"GPU": 1} if namespace(x._meta).__name__ == "cupy" else {}
    return resources


def split_states(model: Model, x: da.Array, h0: Any) -> list[list[Any]]:
    """The per-layer initial states of each series chunk of ``x`` from packed ``h0``."""
    starts = np.cumsum((0, *x.chunks[1]))
    return [
        [None] * len(model.layers) if h0 is None else unpack_states(model, h0[s:e])
        for s, e in itertools.pairwise(starts)
    ]


class _Graph:
    """Builds the task graph of one run: ``(function, *args)`` tasks keyed by tuples."""

    def __init__(
        self,
        model: Model,
        x: da.Array,
        algorithm: str,
        resources: Mapping[str, float],
        *,
        kind: str = "run",
        inputs: Sequence[da.Array] = (),
    ) -> None:
        self.model, self.x = model, x
        self.collections = [x, *inputs]
        self.annotations = {"resources": dict(resources)} if resources else {}
        token = tokenize(*(c.name for c in self.collections), model.fingerprint(), algorithm)
        self.name = f"rnncore-{kind}-{token}"
        self.states_name = f"rnncore-states-{token}"
        self.tasks: dict[tuple, Any] = {}
        self._counter = itertools.count()
        self.model_key = self.put("model", model)

    def _key(self, tag: str) -> tuple:
        return (f"{self.name}-{tag}", next(self._counter))

    def put(self, tag: str, value: Any) -> tuple:
        """Store a literal value in the graph; returns its key."""
        key = self._key(tag)
        self.tasks[key] = value
        return key

    def call(self, tag: str, func: Callable, *args: Any) -> tuple:
        """Add the task ``func(*args)`` (keys among ``args`` are replaced by their values)."""
        key = self._key(tag)
        self.tasks[key] = (func, *args)
        return key

    def item(self, key: tuple, index: int) -> tuple:
        """The task ``value_of(key)[index]``."""
        return self.call("item", operator.getitem, key, index)

    def block(self, i: int, j: int, array: da.Array | None = None) -> tuple:
        """The key of chunk ``(i, j)`` of ``x`` (or of ``array``, chunked like it)."""
        return ((self.x if array is None else array).name, i, j, 0)

    def run_block(self, i: int, j: int, entries: Any) -> tuple:
        """``model(x_ij, entries)``: the pair ``(outputs, exit states)``."""
        return self.call("block", _run_model, self.model_key, self.block(i, j), entries)

    def output(self, i: int, j: int, key: tuple) -> None:
        """Make ``key`` output chunk ``(i, j)``."""
        self.tasks[(self.name, i, j, 0)] = key

    def compose(self, first: Any, second: Any) -> tuple:
        return self.call("compose", compose, first, second)

    @contextlib.contextmanager
    def scratch(self) -> Iterator[None]:
        """Tasks added inside this block are dropped from the graph at its end."""
        saved = dict(self.tasks)
        try:
            yield
        finally:
            self.tasks = saved

    def layer(self, name: str, tasks: dict, dependencies: list[Any]) -> HighLevelGraph:
        """A graph of ``tasks`` over ``dependencies``, annotated with the run's resources."""
        with dask.annotate(**self.annotations):
            return HighLevelGraph.from_collections(name, tasks, dependencies)

    def compute(self, keys: list[tuple]) -> tuple:
        """Compute ``keys`` now, on the active scheduler."""
        graph = self.layer(self.name, dict(self.tasks), self.collections)
        return dask.compute(*(Delayed(key, graph, layer=self.name) for key in keys))

    def output_array(self) -> da.Array:
        graph = self.layer(self.name, self.tasks, self.collections)
        chunks = (*self.x.chunks[:2], (self.model.output_size,))
        return da.Array(graph, self.name, chunks, meta=_meta(self.x, 3))

    def states_array(self, finals: list[Any]) -> da.Array:
        output = self.output_array()
        tasks = {
            (self.states_name, j, 0, 0): (pack_states, self.model_key, final)
            for j, final in enumerate(finals)
        }
        graph = self.layer(self.states_name, tasks, [output])
        width = state_width(self.model)
        chunks = (self.x.chunks[1], (len(self.model.layers),), (width,))
        return da.Array(graph, self.states_name, chunks, meta=_meta(self.x, 3))


# -- the three ways of joining time chunks (one series chunk at a time) ---------------


def _join_by_prefix_scan(graph: _Graph, j: int, h0: list[Any]) -> list[Any]:
    """Exact parallel join of linear-state layers: summaries, prefix tree, rerun."""
    n_time = len(graph.x.chunks[0])
    if n_time == 1:  # no boundary to join: one pass, no summaries
        return _join_sequentially(graph, j, h0)
    entries, _ = scanned_entries(graph, j, h0)
    for i in range(n_time):
        result = graph.run_block(i, j, entries[i])
        graph.output(i, j, graph.item(result, 0))
    return entries[-1]


def scanned_entries(graph: _Graph, j: int, h0: list[Any]) -> tuple[list[Any], list[list[Any]]]:
    """The states entering each time chunk of series chunk ``j``, by the prefix tree.

    Returns
    -------
    entries
        ``entries[i]``: the per-layer states entering chunk ``i`` (a list of keys);
        ``entries[n_time]``: the final states.
    summaries
        ``summaries[l][i]``: the key of layer ``l``'s summary ``(A, B)`` over chunk ``i``.
    """
    n_time = len(graph.x.chunks[0])
    layers: list[list[Any]] = []  # layers[l][i]: state of layer l entering chunk i
    all_summaries = []
    for layer in range(len(h0)):
        summaries = [
            graph.call(
                "summary",
                _layer_summary,
                graph.model_key,
                graph.block(i, j),
                [layers[k][i] for k in range(layer)],
                layer,
            )
            for i in range(n_time)
        ]
        all_summaries.append(summaries)
        if h0[layer] is None:
            prefix = prefix_scan(summaries, graph.compose)
            layers.append([None, *(graph.item(p, 1) for p in prefix)])
        else:
            start = graph.put("h0", (0.0, h0[layer]))
            prefix = prefix_scan([start, *summaries], graph.compose)
            layers.append([graph.put("h0", h0[layer]), *(graph.item(p, 1) for p in prefix[1:])])
    entries = [[states[i] for states in layers] for i in range(n_time + 1)]
    return entries, all_summaries


def _join_sequentially(graph: _Graph, j: int, h0: list[Any]) -> Any:
    """Exact sequential join: each chunk starts from the previous chunk's exit state."""
    return carried_entries(graph, j, h0, outputs=True)[-1]


def carried_entries(graph: _Graph, j: int, h0: list[Any], *, outputs: bool = False) -> list[Any]:
    """The keys of the states entering each time chunk of series chunk ``j``, carried.

    Each chunk is run from the previous chunk's exit state; the last entry is the
    final states. With ``outputs`` the runs' outputs are the run's output chunks.
    """
    states: list[Any] = [graph.put("h0", h0)]
    for i in range(len(graph.x.chunks[0])):
        result = graph.run_block(i, j, states[-1])
        if outputs:
            graph.output(i, j, graph.item(result, 0))
        states.append(graph.item(result, 1))
    return states


def _multiple_shooting(
    graph: _Graph, h0: list[list[Any]], tol: float, max_iter: int | None
) -> tuple[list[list[Any]], int, float]:
    """Multiple shooting over all series chunks at once; returns the converged entries."""
    n_time, n_series = len(graph.x.chunks[0]), len(graph.x.chunks[1])
    limit = max(n_time - 1, 0) if max_iter is None else max_iter
    entries = [[h0[j]] + [[None] * len(h0[j])] * (n_time - 1) for j in range(n_series)]
    stale = [(i, j) for j in range(n_series) for i in range(n_time - 1)]
    iterations, change = 0, 0.0
    while stale:
        if iterations == limit:
            raise ConvergenceError(
                f"multiple shooting did not converge in {limit} sweeps: the boundary states "
                f"still changed by {change:.3g} > tol={tol:g}. Raise max_iter (at most "
                f"{n_time - 1} sweeps are ever needed), raise tol, or use method='sequential'"
            )
        with graph.scratch():
            exits = graph.compute(
                [
                    graph.item(graph.run_block(i, j, graph.put("entry", entries[j][i])), 1)
                    for i, j in stale
                ]
            )
        iterations += 1
        changed, change = [], 0.0
        for (i, j), new in zip(stale, exits, strict=True):
            delta = _max_abs_difference(new, entries[j][i + 1])
            change = max(change, delta)
            entries[j][i + 1] = new
            if delta > 0 and i + 1 < n_time - 1:
                changed.append((i + 1, j))
        if not changed:  # every boundary now equals its predecessor's exit: exact
            change = 0.0
        stale = changed if change > tol else []
    return entries, iterations, change


# -- block-level work (runs on the workers) ------------------------------------------


# Hidden-state elements one tile of a chunk may hold per layer: a chunk sized for its
# input (about 100 MB) would otherwise hold `hidden_size` times that in hidden states.
_TILE_ELEMENTS = 2**22


def _time_tiles(model: Model, x: Any) -> list[slice]:
    """Slices of ``x``'s time axis whose hidden states stay within :data:`_TILE_ELEMENTS`.

    Only hidden states a layer stores count: a fused kernel with a readout (the top
    layer, with :mod:`rnncore.kernels` active) stores none, its outputs being the
    result, which is whole anyway.
    """
    layers = model.layers
    if model.readout is not None and kernels.numba_active(namespace(x)):
        layers = layers[:-1]
    widest = max((cell.hidden_size * len(cell.state_names) for cell in layers), default=0)
    if widest == 0:
        return [slice(0, max(x.shape[0], 1))]
    step = max(1, _TILE_ELEMENTS // max(1, x.shape[1] * widest))
    return [slice(t, t + step) for t in range(0, max(x.shape[0], 1), step)]


def _run_model(model: Model, x: Any, entries: list[Any]) -> tuple[Any, list[Any]]:
    """``model(x, entries)``, one time tile at a time (memory bounded by a tile)."""
    tiles = _time_tiles(model, x)
    with kernels.threads(1):
        if len(tiles) == 1:
            return model(x, entries)
        out, states = None, list(entries)
        for tile in tiles:
            y, states = model(x[tile], states)
            if out is None:
                out = empty_steps(x, y.shape[2], y.dtype)
            out[tile] = y
    return out, states


def _layer_summary(model: Model, x: Any, entries: list[Any], layer: int) -> tuple[Any, Any]:
    """Summary ``(A, B)`` of ``layer`` over one chunk, lower layers run from ``entries``.

    Computed tile by tile along time, composing the tiles' summaries, so the decays
    and inputs of the whole chunk are never held at once.
    """
    states, summary = list(entries[:layer]), None
    with kernels.threads(1):
        for tile in _time_tiles(model, x):
            y = x[tile]
            for k, cell in enumerate(model.layers[:layer]):
                y, states[k] = cell(y, states[k])
            part = model.layers[layer].summary(y)
            summary = part if summary is None else compose(summary, part)
    return summary


def _max_abs_difference(new: list[Any], old: list[Any]) -> float:
    """Largest absolute difference between two per-layer states (``None`` is zeros)."""
    largest = 0.0
    for new_layer, old_layer in zip(new, old, strict=True):
        new_parts = _parts(new_layer)
        old_parts = (None,) * len(new_parts) if old_layer is None else _parts(old_layer)
        for n_part, o_part in zip(new_parts, old_parts, strict=True):
            diff = abs(n_part if o_part is None else n_part - o_part)
            if diff.size:
                largest = max(largest, float(namespace(diff).nanmax(diff)))
    return largest


def _parts(state: Any) -> tuple[Any, ...]:
    return state if isinstance(state, tuple) else (state,)


def _meta(x: da.Array, ndim: int) -> Any:
    return namespace(x._meta).empty((0,) * ndim, dtype=x.dtype)

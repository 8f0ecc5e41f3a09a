import itertools
import math

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from dask.core import get_deps
from hypothesis import given
from hypothesis import strategies as st

from rnncore import CELLS, ConvergenceError, Model, kernels, run
from rnncore.chunked import ALGORITHMS, resolve_method, run_chunked, scheduler_slots
from rnncore.states import pack_states
from rnncore.trees import prefix_scan
from tests.rnncore.reference import rel_err

TOL = {np.float32: 1e-5, np.float64: 1e-12}


@st.composite
def chunking(draw, max_chunks=6, max_size=9):
    """A partition into chunks, length-1 and uneven ones included."""
    return tuple(draw(st.lists(st.integers(1, max_size), min_size=1, max_size=max_chunks)))


def make_inputs(rng, steps, series, features, dtype, gaps):
    x = rng.normal(size=(steps, series, features)).astype(dtype)
    if gaps:
        x[rng.uniform(size=x.shape[:2]) < 0.2] = np.nan
        x[:, 0] = np.nan  # an all-NaN series
        if series > 1:
            x[: steps // 2, 1] = np.nan  # a late start
    return x


@pytest.mark.slow  # every cell and method on Dask
@given(
    cell=st.sampled_from(sorted(CELLS)),
    dtype=st.sampled_from([np.float32, np.float64]),
    time_chunks=chunking(),
    series_chunks=chunking(max_chunks=3, max_size=4),
    gaps=st.booleans(),
    warm=st.booleans(),
    method=st.sampled_from(["auto", "sequential", "parallel"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_dask_run_equals_in_memory(
    cell, dtype, time_chunks, series_chunks, gaps, warm, method, seed
):
    rng = np.random.default_rng(seed)
    model = Model.init(cell, 2, [3, 4], output_size=2, seed=seed, dtype=dtype)
    x = make_inputs(rng, sum(time_chunks), sum(series_chunks), 2, dtype, gaps)
    h0 = None
    if warm:
        _, states = model(rng.normal(size=(3, x.shape[1], 2)).astype(dtype))
        h0 = states
    y, states = model(x, h0)
    data = xr.DataArray(x, dims=("time", "series", "feature")).chunk(
        {"time": time_chunks, "series": series_chunks}
    )
    h0_packed = None if h0 is None else pack_states(model, h0)
    with dask.config.set(scheduler="synchronous"):
        # tol=0: shooting sweeps to the exact fixed point
        result = run(model, data, h0=h0_packed, method=method, tol=0.0)
        assert result.output.chunks[:2] == (series_chunks, time_chunks)
        computed = result.compute()
    assert computed.output.dtype == dtype
    assert rel_err(computed.output.values, y.transpose(1, 0, 2)) < TOL[dtype]
    assert rel_err(computed.state.values, pack_states(model, states)) < TOL[dtype]


@pytest.mark.parametrize("cell", ["Elman", "GRU", "LSTM"])
def test_shooting_equals_sequential_and_reports_iterations(rng, cell):
    model = Model.init(cell, 1, [8, 8], output_size=1, seed=3, dtype=np.float64)
    x = da.from_array(rng.normal(size=(200, 6, 1)), chunks=(20, 3, 1))
    with dask.config.set(scheduler="synchronous"):
        sequential = run_chunked(model, x, method="sequential")
        parallel = run_chunked(model, x, method="parallel", tol=1e-10)
        y_seq, y_par = dask.compute(sequential.output, parallel.output)
    assert parallel.method == "multiple_shooting" and sequential.method == "sequential"
    assert 1 <= parallel.iterations <= 9
    assert parallel.boundary_change <= 1e-10
    np.testing.assert_allclose(y_par, y_seq, atol=1e-8)


def test_shooting_ends_exact_after_n_minus_one_sweeps(rng):
    model = Model.init("GRU", 1, [4], seed=1, dtype=np.float64)
    x = da.from_array(rng.normal(size=(12, 2, 1)), chunks=(3, 2, 1))
    with dask.config.set(scheduler="synchronous"):
        result = run_chunked(model, x, method="parallel", tol=0.0)
        y = result.output.compute()
    assert result.iterations <= 3
    np.testing.assert_array_equal(y, model(x.compute())[0])


def test_shooting_reports_non_convergence(rng):
    model = Model.init("LSTM", 1, [4], seed=1, dtype=np.float64)
    x = da.from_array(rng.normal(size=(40, 2, 1)), chunks=(4, 2, 1))
    with (
        dask.config.set(scheduler="synchronous"),
        pytest.raises(ConvergenceError, match="did not converge in 1 sweeps"),
    ):
        run_chunked(model, x, method="parallel", tol=1e-14, max_iter=1)


def test_resolve_method():
    linear, nonlinear = Model.init("MinGRU", 1, [2]), Model.init("GRU", 1, [2])
    assert resolve_method(linear, "parallel", series_chunks=9, slots=2) == "prefix_scan"
    # auto scans only when the series chunks cannot fill the threads
    assert resolve_method(linear, "auto", series_chunks=1, slots=2) == "prefix_scan"
    assert resolve_method(linear, "auto", series_chunks=2, slots=2) == "sequential"
    assert resolve_method(nonlinear, "auto", series_chunks=1, slots=8) == "sequential"
    assert resolve_method(nonlinear, "parallel") == "multiple_shooting"
    assert resolve_method(linear, "sequential", series_chunks=1, slots=8) == "sequential"
    with pytest.raises(ValueError, match="method must be one of"):
        resolve_method(linear, "fast")


def test_an_algorithm_asked_for_by_name_is_the_one_used():
    linear, nonlinear = Model.init("MinGRU", 1, [2]), Model.init("GRU", 1, [2])
    for algorithm in ALGORITHMS:
        assert resolve_method(linear if algorithm == "prefix_scan" else nonlinear, algorithm) == (
            algorithm
        )
    assert resolve_method(linear, "multiple_shooting") == "multiple_shooting"
    with pytest.raises(ValueError, match="'prefix_scan' needs a model whose layers are all linear"):
        resolve_method(nonlinear, "prefix_scan")


def test_scheduler_slots_follow_the_active_scheduler():
    with dask.config.set(scheduler="synchronous"):
        assert scheduler_slots() == 1
    with dask.config.set(scheduler="threads", num_workers=5):
        assert scheduler_slots() == 5


@pytest.mark.parametrize(("series_chunk", "expected"), [(6, "prefix_scan"), (2, "sequential")])
def test_auto_method_depends_on_series_chunks(series_chunk, expected):
    model = Model.init("MinGRU", 1, [3], output_size=1, dtype=np.float64)
    x = np.random.default_rng(0).normal(size=(20, 6, 1))
    with dask.config.set(scheduler="threads", num_workers=2):
        result = run_chunked(model, da.from_array(x, chunks=(5, series_chunk, 1)))
        assert result.method == expected
        assert rel_err(result.output.compute(), model(x)[0]) < 1e-12


@given(st.lists(st.text(max_size=2), max_size=40))
def test_prefix_scan_is_an_ordered_inclusive_prefix(items):
    # String concatenation is associative but not commutative: order errors show.
    assert prefix_scan(items, lambda a, b: a + b) == list(itertools.accumulate(items))


def graph_shape(array):
    """Number of tasks and the longest dependency chain of a Dask collection's graph."""
    graph = dict(array.__dask_graph__())
    dependencies, _ = get_deps(graph)
    depth = {}
    for key in _topological(dependencies):
        depth[key] = 1 + max((depth[d] for d in dependencies[key]), default=0)
    return len(graph), max(depth.values())


def _topological(dependencies):
    order, seen = [], set()
    for root in dependencies:
        stack = [(root, False)]
        while stack:
            key, done = stack.pop()
            if done:
                order.append(key)
            elif key not in seen:
                seen.add(key)
                stack.append((key, True))
                stack.extend((d, False) for d in dependencies[key] if d not in seen)
    return order


def test_stitch_graph_is_linear_in_chunks_and_log_deep():
    model = Model.init("MinGRU", 1, [4, 4], output_size=1)
    shapes = {}
    for n in (8, 32, 128):
        x = da.zeros((n * 4, 6, 1), chunks=(4, 3, 1))
        result = run_chunked(model, x, method="parallel")
        shapes[n] = graph_shape(result.output)
    for n, (tasks, _) in shapes.items():
        assert tasks <= 40 * n * 2, f"{tasks} tasks for {n} x 2 chunks"
    per_chunk = [tasks / n for n, (tasks, _) in shapes.items()]
    assert max(per_chunk) / min(per_chunk) < 1.3, per_chunk
    depth_growth = shapes[128][1] - shapes[8][1]
    # two layers, each with a tree of 2 log2(n) levels (plus getitem steps)
    assert depth_growth <= 2 * 3 * math.log2(128 / 8), shapes
    sequential = run_chunked(
        model, da.zeros((128 * 4, 6, 1), chunks=(4, 3, 1)), method="sequential"
    )
    assert graph_shape(sequential.output)[1] > 128, "a carried state is n chunks deep"


def test_feature_chunks_are_joined_but_time_chunks_kept(rng):
    model = Model.init("QRNN", 4, [3])
    x = da.from_array(rng.normal(size=(10, 2, 4)), chunks=(3, 1, 2))
    result = run_chunked(model, x)
    assert result.output.chunks == ((3, 3, 3, 1), (1, 1), (3,))
    np.testing.assert_allclose(result.output.compute(), model(x.compute())[0], rtol=1e-12)


def test_wrong_feature_count_is_refused():
    model = Model.init("QRNN", 4, [3])
    with pytest.raises(ValueError, match="expected \\(time, series, 4 features\\)"):
        run_chunked(model, da.zeros((5, 2, 3)))


def test_a_fused_readout_layer_stores_no_hidden_states_to_tile(monkeypatch):
    import rnncore.chunked

    monkeypatch.setattr(rnncore.chunked, "_TILE_ELEMENTS", 40)
    x = np.zeros((40, 5, 1), np.float32)
    one, two = (Model.init("MinGRU", 1, sizes, output_size=1) for sizes in ([8], [2, 8]))
    assert rnncore.chunked._time_tiles(one, x) == [slice(0, 40)]
    assert len(rnncore.chunked._time_tiles(two, x)) == 10  # 40 // (5 series x 2 units)
    with kernels.use("reference"):  # the reference path stores the 8 hidden units
        assert len(rnncore.chunked._time_tiles(one, x)) == 40


@pytest.mark.parametrize("cell", ["MinGRU", "LSTM"])
def test_chunks_are_worked_in_time_tiles_with_the_same_result(rng, monkeypatch, cell):
    import rnncore.chunked

    monkeypatch.setattr(rnncore.chunked, "_TILE_ELEMENTS", 40)  # tiles of a few steps
    model = Model.init(cell, 2, [4, 3], output_size=1, dtype=np.float64)
    x = rng.normal(size=(60, 5, 2))
    x[10:20, 1] = np.nan
    assert len(rnncore.chunked._time_tiles(model, x[:30])) > 5
    with dask.config.set(scheduler="synchronous"):
        result = run_chunked(model, da.from_array(x, chunks=(30, 5, 2)))
        y = result.output.compute()
    assert rel_err(y, model(x)[0]) < 1e-12

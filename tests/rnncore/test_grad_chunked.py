"""Chunked gradients over Dask equal the in-memory ones, for every chunking."""

import math

import dask
import dask.array as da
import numpy as np
import pytest
from dask.core import get_deps
from hypothesis import given, settings
from hypothesis import strategies as st

from rnncore import Model
from rnncore.chunked import _Graph
from rnncore.grad import value_and_grad
from rnncore.grad.chunked import value_and_grad_chunked
from rnncore.states import pack_states
from tests.rnncore.reference import rel_err
from tests.rnncore.reference_path import in_dtype

LINEAR = ["MinGRU", "MinLSTM", "QRNN", "DiagonalLinear"]
NONLINEAR = ["Elman", "GRU", "LSTM"]
#: Relative, against the float64 in-memory gradient (of float32 arguments too).
TOL = {np.float64: 1e-10, np.float32: 1e-4}


@st.composite
def chunking(draw, max_chunks=5, max_size=6, empty=False):
    """A partition into chunks, length-1, prime and uneven ones included.

    With ``empty``, also no steps at all: one chunk of length 0.
    """
    sizes = draw(
        st.lists(st.integers(1, max_size), min_size=0 if empty else 1, max_size=max_chunks)
    )
    return tuple(sizes) or (0,)


def make_case(seed, cell, layers, readout, steps, series, *, warm, gaps, masked):
    """A float64 model, inputs with gaps, targets with NaNs, a mask and packed h0."""
    rng = np.random.default_rng(seed)
    sizes = [3, 2][:layers]
    model = Model.init(cell, 2, sizes, 2 if readout else None, seed=seed, dtype=np.float64)
    x = rng.normal(size=(steps, series, 2))
    target = rng.normal(size=(steps, series, model.output_size))
    if gaps:
        x[rng.uniform(size=x.shape[:2]) < 0.25] = np.nan
        target[rng.uniform(size=target.shape) < 0.2] = np.nan
    h0 = model(rng.normal(size=(3, series, 2)))[1] if warm else None
    mask = rng.uniform(size=(steps, series, 1)) < 0.7 if masked else None
    return model, x, target, h0, mask


def check(model, x, target, h0, mask, time_chunks, series_chunks, method, dtype=np.float64):
    """The chunked gradient in ``dtype`` against the float64 in-memory one.

    In float32, of the model and arguments rounded to float32; the reference is the
    float64 gradient of those rounded values.
    """
    model, x, target, h0 = in_dtype(dtype, model, x, target, h0)
    loss, grads = value_and_grad(*in_dtype(np.float64, model, x, target, h0), mask)
    packed = None if h0 is None else pack_states(model, h0)
    data = da.from_array(x, chunks=(time_chunks, series_chunks, -1))
    with dask.config.set(scheduler="synchronous"):
        got_loss, got = value_and_grad_chunked(
            model, data, da.from_array(target), packed, mask, method=method
        )
    tol = TOL[dtype]
    assert list(got) == list(grads)
    assert abs(got_loss - loss) <= tol * abs(loss)
    for name, expected in grads.items():
        assert isinstance(got[name], np.ndarray) and got[name].dtype == dtype
        assert rel_err(got[name], expected) < tol, name
    return got


@pytest.mark.parametrize("cell", [*LINEAR, *NONLINEAR])
@pytest.mark.parametrize("layers", [1, 2])
def test_chunked_gradient_equals_in_memory(cell, layers):
    method = "prefix_scan" if cell in LINEAR else "sequential"
    case = make_case(3, cell, layers, True, 9, 4, warm=True, gaps=True, masked=True)
    check(*case, (2, 3, 1, 3), (3, 1), method)


@pytest.mark.parametrize("method", ["sequential", "prefix_scan", "parallel", "auto"])
def test_every_exact_method_and_no_readout_gives_the_same_gradient(method):
    case = make_case(4, "MinGRU", 2, False, 7, 3, warm=False, gaps=True, masked=False)
    check(*case, (1, 1, 5), (2, 1), method)


@pytest.mark.parametrize("cell", ["QRNN", "LSTM"])
def test_one_step_and_one_step_chunks(cell):
    case = make_case(5, cell, 2, True, 1, 3, warm=True, gaps=False, masked=False)
    check(*case, (1,), (1, 2), "auto")
    case = make_case(6, cell, 2, True, 4, 2, warm=True, gaps=True, masked=False)
    check(*case, (1, 1, 1, 1), (2,), "auto")


@settings(max_examples=40)  # about 4 s
@given(
    cell=st.sampled_from([*LINEAR, *NONLINEAR]),
    layers=st.sampled_from([1, 2]),
    readout=st.booleans(),
    time_chunks=chunking(empty=True),
    series_chunks=chunking(max_chunks=3, max_size=3),
    warm=st.booleans(),
    gaps=st.booleans(),
    masked=st.booleans(),
    scanned=st.booleans(),
    dtype=st.sampled_from(list(TOL)),
    seed=st.integers(0, 2**32 - 1),
)
def test_gradient_does_not_depend_on_the_chunking(
    cell, layers, readout, time_chunks, series_chunks, warm, gaps, masked, scanned, dtype, seed
):
    """Any chunking, no steps at all included, in float64 and float32."""
    steps, series = sum(time_chunks), sum(series_chunks)
    case = make_case(
        seed, cell, layers, readout, steps, series, warm=warm, gaps=gaps, masked=masked
    )
    method = "prefix_scan" if scanned and cell in LINEAR else "sequential"
    check(*case, time_chunks, series_chunks, method, dtype)


@pytest.mark.parametrize(("cell", "method"), [("MinGRU", "prefix_scan"), ("LSTM", "sequential")])
def test_the_final_states_come_with_the_gradients(cell, method):
    model, x, target, h0, _ = make_case(9, cell, 2, True, 9, 5, warm=True, gaps=True, masked=False)
    expected_loss, expected = value_and_grad(model, x, target, h0)
    with dask.config.set(scheduler="synchronous"):
        loss, grads, states = value_and_grad_chunked(
            model, da.from_array(x, chunks=(2, 3, 2)), target, pack_states(model, h0),
            method=method, final_states=True,
        )  # fmt: skip
    np.testing.assert_allclose(states, pack_states(model, model(x, h0)[1]), rtol=TOL[np.float64])
    assert abs(loss - expected_loss) <= TOL[np.float64] * expected_loss
    assert all(rel_err(grads[k], expected[k]) < TOL[np.float64] for k in expected)


@pytest.mark.parametrize(("cell", "method"), [("MinGRU", "prefix_scan"), ("LSTM", "sequential")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_no_steps_give_zero_gradients_and_the_initial_states(cell, method, dtype):
    model, x, target, h0, _ = make_case(9, cell, 2, True, 0, 5, warm=True, gaps=False, masked=False)
    model, h0 = in_dtype(dtype, model, h0)
    packed = pack_states(model, h0)
    with dask.config.set(scheduler="synchronous"):
        loss, grads, states = value_and_grad_chunked(
            model, da.from_array(x.astype(dtype), chunks=(0, (2, 3), 2)), target.astype(dtype),
            packed, method=method, final_states=True,
        )  # fmt: skip
    assert loss == 0.0 and list(grads) == list(model.state_dict())
    assert all(g.dtype == dtype and not g.any() for g in grads.values())
    np.testing.assert_array_equal(states, packed)  # NaN where a layer's state is narrower


def test_no_value_counting_gives_zero_loss_and_gradients():
    model, x, target, _, _ = make_case(
        7, "GRU", 1, True, 4, 2, warm=False, gaps=False, masked=False
    )
    loss, grads = value_and_grad_chunked(
        model, da.from_array(x, chunks=(2, 1, 2)), np.full(target.shape, np.nan)
    )
    assert loss == 0.0 and all(not g.any() for g in grads.values())


def test_multiple_shooting_and_bad_targets_are_refused():
    model = Model.init("GRU", 1, [2], 1, dtype=np.float64)
    x = da.zeros((4, 2, 1), chunks=(2, 1, 1))
    with pytest.raises(ValueError, match="gradients are exact"):
        value_and_grad_chunked(model, x, da.zeros((4, 2, 1)), method="parallel")
    with pytest.raises(ValueError, match="target has shape"):
        value_and_grad_chunked(model, x, da.zeros((4, 2, 2)))
    with pytest.raises(ValueError, match="prefix_scan"):
        value_and_grad_chunked(model, x, da.zeros((4, 2, 1)), method="prefix_scan")


@pytest.mark.parametrize("cell", [*LINEAR, *NONLINEAR])
def test_on_a_local_cluster(client, cell):
    """Every cell kind, by every exact method, on a cluster's workers."""
    model, x, target, h0, mask = make_case(
        8, cell, 2, True, 10, 6, warm=True, gaps=True, masked=True
    )
    loss, grads = value_and_grad(model, x, target, h0, mask)
    for method in ("prefix_scan", "sequential") if cell in LINEAR else ("sequential",):
        got_loss, got = value_and_grad_chunked(
            model,
            da.from_array(x, chunks=(3, 2, 2)),
            da.from_array(target, chunks=(5, 3, 2)),
            pack_states(model, h0),
            da.from_array(mask, chunks=(4, 6, 1)),
            method=method,
        )
        assert abs(got_loss - loss) <= TOL[np.float64] * loss, method
        assert all(rel_err(got[k], grads[k]) < TOL[np.float64] for k in grads), method


def graph_depth(monkeypatch, method, n_chunks):
    """The longest dependency chain of the gradient's graph over ``n_chunks`` time chunks."""
    seen = {}
    compute = _Graph.compute

    def record(self, keys):
        seen.update(self.tasks)
        return compute(self, keys)

    monkeypatch.setattr(_Graph, "compute", record)
    model = Model.init("MinGRU", 1, [2, 2], 1, dtype=np.float64)
    x = da.zeros((n_chunks * 2, 2, 1), chunks=(2, 2, 1))
    with dask.config.set(scheduler="synchronous"):
        value_and_grad_chunked(model, x, da.zeros((n_chunks * 2, 2, 1)), method=method)
    dependencies, _ = get_deps(seen)
    depth = {}
    for key in sorted(dependencies, key=lambda k: k[1]):  # keys are numbered in order
        depth[key] = 1 + max((depth[d] for d in dependencies[key]), default=0)
    return max(depth.values())


def test_the_stitched_backward_is_log_deep_and_the_carried_one_linear(monkeypatch):
    shallow, deep = (graph_depth(monkeypatch, "prefix_scan", n) for n in (8, 64))
    # two layers forward and backward, each a tree of 2 log2(n) levels (and getitem steps)
    assert deep - shallow <= 4 * 3 * math.log2(64 / 8), (shallow, deep)
    assert graph_depth(monkeypatch, "sequential", 64) > 2 * 64, "carried there and back"

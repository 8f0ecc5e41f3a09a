"""The fused backward pass of the linear-state cells against the reference path.

The reference path is itself checked against PyTorch's autograd in
``tests/rnncore/test_gradients.py`` (which, run on the default path, checks the
fused kernel against PyTorch too).
"""

import functools
import types

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnncore import CELLS, Model, Readout, kernels
from rnncore.grad import cell_vjp, model_vjp, value_and_grad
from rnncore.grad.cells import cell_forward
from rnncore.grad.model import _layer_inputs
from rnncore.kernels import linear_vjp
from tests.rnncore.kernels.cases import gappy_inputs, random_state
from tests.rnncore.reference import rel_err
from tests.rnncore.reference_path import DTYPES, TOL, assert_close, in_dtype, reference

KINDS = ["MinGRU", "MinGRU-g", "MinLSTM", "MinLSTM-g", "QRNN", "DiagonalLinear"]
# Few features take the kernel's own pull-back to the weight and inputs; more, BLAS's.
FEATURES = st.sampled_from([1, 2, linear_vjp.FUSED_FEATURES, linear_vjp.FUSED_FEATURES + 3])
#: Around and across the kernel's tiles of steps (filtered where T = 0 is not a case).
STEPS = st.sampled_from([0, 1, 2, 15, 16, 17, 41])
BATCH = st.integers(1, 35)  # around and across its groups of series
HIDDEN = st.integers(1, 6)
SEED = st.integers(0, 2**32 - 1)


def make(kind, features, hidden, dtype, rng):
    """A cell of ``kind`` (``"-g"``: the ``g`` activation) with parameters scaled at random."""
    name, _, activation = kind.partition("-")
    options = {"activation": activation} if activation else {}
    cell = CELLS[name].init(features, hidden, seed=int(rng.integers(2**31)), **options)
    params = {
        k: v if k == "decay" else v * rng.uniform(0.5, 3) for k, v in cell.state_dict().items()
    }
    return type(cell).from_state_dict({k: v.astype(dtype) for k, v in params.items()}, **options)


def both_paths(fn, *args):
    """``fn(*args)`` on the kernels' path and on the reference path."""
    return fn(*args), reference(fn, *args)


#: ``args`` in float64: arrays cast, cells and models rebuilt.
in_float64 = functools.partial(in_dtype, np.float64)


def flat(params):
    """The gradient with respect to all of ``params`` as one vector: judged norm-wise
    as a whole, since a float32 tensor of one or two entries that nearly cancel keeps
    few correct digits relative to itself (the kernel sums each tile in float32)."""
    dtype = next(iter(params.values())).dtype
    return np.concatenate([np.ravel(grad) for grad in params.values()]).astype(dtype)


#: Gradients' tolerance: float32's is the issue's bar against PyTorch (a float32 chain
#: of steps whose terms cancel, such as a one-unit ``h0`` gradient, keeps fewer digits
#: than the forward pass's 1e-5); float64's is the forward pass's.
GRAD_TOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): TOL[np.dtype(np.float64)]}


def assert_as_exact(fused, expected, exact, dtype):
    """``fused`` within the dtype's gradient tolerance of the reference path's ``expected``.

    Or, where that holds no more exact a value (float32 sums with cancellation, which
    the kernel adds up in float64 and the reference path in float32), no further from
    the float64 reference ``exact`` than the tolerance or twice the reference path.
    """
    assert fused.shape == expected.shape and fused.dtype == expected.dtype == dtype
    tol = GRAD_TOL[np.dtype(dtype)]
    if rel_err(fused, expected) >= tol:
        assert rel_err(fused, exact) < max(tol, 2 * rel_err(expected, exact))


@pytest.mark.parametrize("kind", KINDS)
@given(
    dtype=DTYPES,
    steps=STEPS,
    batch=BATCH,
    features=FEATURES,
    hidden=HIDDEN,
    with_h0=st.booleans(),
    with_grad_state=st.booleans(),
    seed=SEED,
)
def test_cell_vjp_matches_reference(
    kind, dtype, steps, batch, features, hidden, with_h0, with_grad_state, seed
):
    rng = np.random.default_rng(seed)
    cell = make(kind, features, hidden, dtype, rng)
    x = gappy_inputs(rng, steps, batch, features, dtype)
    grad_y = rng.normal(size=(steps, batch, hidden)).astype(dtype)
    grad_y[np.isnan(x).any(axis=2)] = np.nan  # ignored where the outputs are missing
    h0 = random_state(cell, rng, batch, dtype) if with_h0 else None
    grad_state = random_state(cell, rng, batch, dtype) if with_grad_state else None
    fused, expected = both_paths(cell_vjp, cell, x, grad_y, h0, grad_state)
    exact = reference(cell_vjp, *in_float64(cell, x, grad_y, h0, grad_state))
    assert list(fused.params) == list(expected.params) == list(cell.params)
    assert_as_exact(*map(flat, (fused.params, expected.params, exact.params)), dtype)
    assert_as_exact(fused.x, expected.x, exact.x, dtype)
    assert_as_exact(fused.h0, expected.h0, exact.h0, dtype)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_two_layer_training_step_matches_reference(rng, kind, dtype):
    """A readout, h0 and NaN gaps; the upper layer's inputs are too wide for the fused pull-back."""
    name, _, activation = kind.partition("-")
    options = {"activation": activation} if activation else {}
    hidden = linear_vjp.FUSED_FEATURES + 2
    model = Model.init(name, 2, [hidden, 3], 2, seed=1, dtype=dtype, **options)
    x = gappy_inputs(rng, 37, 20, 2, dtype)
    target = rng.normal(size=(37, 20, 2)).astype(dtype)
    h0 = [random_state(cell, rng, 20, dtype) for cell in model.layers]
    (loss, grads), (expected_loss, expected) = both_paths(value_and_grad, model, x, target, h0)
    assert loss == pytest.approx(expected_loss, rel=1e-5 if dtype == np.float32 else 1e-12)
    assert list(grads) == list(expected)
    for key, grad in expected.items():
        assert_close(grads[key], grad, dtype)


@pytest.mark.parametrize("kind", KINDS)
@given(
    dtype=DTYPES,
    steps=STEPS.filter(bool),
    batch=BATCH,
    features=FEATURES,
    hidden=HIDDEN,
    outputs=st.integers(1, 3),
    with_h0=st.booleans(),
    with_grad_state=st.booleans(),
    seed=SEED,
)
def test_readout_fused_into_the_top_layer_matches_reference(
    kind, dtype, steps, batch, features, hidden, outputs, with_h0, with_grad_state, seed
):
    """The readout's backward pass in the top layer's kernel, from its outputs' cotangent."""
    rng = np.random.default_rng(seed)
    name, _, activation = kind.partition("-")
    options = {"activation": activation} if activation else {}
    model = Model.init(name, features, [hidden], outputs, seed=seed % 2**31, dtype=dtype,
                       **options)  # fmt: skip
    x = gappy_inputs(rng, steps, batch, features, dtype)
    grad_y = rng.normal(size=(steps, batch, outputs)).astype(dtype)
    grad_y[np.isnan(x).any(axis=2)] = np.nan  # ignored where the outputs are missing
    h0 = [random_state(model.layers[0], rng, batch, dtype)] if with_h0 else None
    grad_state = [random_state(model.layers[0], rng, batch, dtype)] if with_grad_state else None
    fused, expected = both_paths(model_vjp, model, x, grad_y, h0, grad_state)
    exact = reference(model_vjp, *in_float64(model, x, grad_y, h0, grad_state))
    assert list(fused.params) == list(expected.params)
    assert_as_exact(*map(flat, (fused.params, expected.params, exact.params)), dtype)
    assert_as_exact(fused.x, expected.x, exact.x, dtype)
    assert_as_exact(fused.h0[0], expected.h0[0], exact.h0[0], dtype)


def test_inputs_are_left_untouched_and_strided_ones_taken(rng):
    cell = make("MinGRU", 2, 4, np.float32, rng)
    series_major = gappy_inputs(rng, 9, 17, 2, np.float32).transpose(1, 0, 2).copy()
    x = series_major.transpose(1, 0, 2)  # (T, B, F) over data stored series first
    grad_y = rng.normal(size=(9, 17, 4)).astype(np.float32)
    before = x.copy(), grad_y.copy()
    fused, expected = both_paths(cell_vjp, cell, x, grad_y)
    assert_close(fused.x, expected.x, np.float32)
    np.testing.assert_array_equal(x, before[0])
    np.testing.assert_array_equal(grad_y, before[1])


def test_the_kernel_is_selected_for_numpy_linear_cells_only():
    linear = CELLS["MinLSTM"].init(1, 3).kernel_spec(np, np.float64)
    nonlinear = CELLS["GRU"].init(1, 3).kernel_spec(np, np.float64)
    assert kernels.linear_vjp_kernels(np, linear) is linear_vjp
    assert kernels.linear_vjp_kernels(np, nonlinear) is None
    assert kernels.linear_vjp_kernels(np, None) is None
    assert kernels.linear_vjp_kernels(types.ModuleType("cupy"), linear) is None
    with kernels.use("reference"):
        assert kernels.linear_vjp_kernels(np, linear) is None


@pytest.mark.parametrize("kind", KINDS)
@given(
    dtype=DTYPES,
    steps=STEPS,
    batch=BATCH,
    features=st.integers(1, 3),
    hidden=HIDDEN,
    outputs=st.sampled_from([None, 1, 3]),
    seed=SEED,
)
def test_forward_runs_the_cell_and_keeps_the_states_at_tile_starts(
    kind, dtype, steps, batch, features, hidden, outputs, seed
):
    """The tape-keeping forward pass gives the cell's run, bit for bit, and its tape."""
    rng = np.random.default_rng(seed)
    cell = make(kind, features, hidden, dtype, rng)
    readout = None if outputs is None else Readout(rng.normal(size=(outputs, hidden)).astype(dtype))
    x = gappy_inputs(rng, steps, batch, features, dtype)
    h0 = random_state(cell, rng, batch, dtype)
    spec = cell.kernel_spec(np, dtype)
    arrays = None if readout is None else readout.arrays(np, dtype)
    y, state, tape = linear_vjp.forward(spec, x, h0, arrays)
    expected_y, expected_state = cell.run(x, h0, readout)
    np.testing.assert_array_equal(y, expected_y)
    np.testing.assert_array_equal(state, expected_state)
    tile = linear_vjp._TILE
    assert tape.shape == (-(-steps // tile), batch, hidden) and tape.dtype == dtype
    for k in range(tape.shape[0]):
        np.testing.assert_array_equal(tape[k], cell.run(x[: k * tile], h0)[1])


@pytest.mark.parametrize("kind", KINDS)
@given(
    dtype=DTYPES,
    steps=STEPS.filter(bool),
    batch=BATCH,
    features=FEATURES,
    hidden=HIDDEN,
    with_readout=st.booleans(),
    seed=SEED,
)
def test_the_backward_pass_from_a_tape_is_the_one_without(
    kind, dtype, steps, batch, features, hidden, with_readout, seed
):
    rng = np.random.default_rng(seed)
    cell = make(kind, features, hidden, dtype, rng)
    readout = Readout(rng.normal(size=(2, hidden)).astype(dtype)) if with_readout else None
    arrays = None if readout is None else readout.arrays(np, dtype)
    x = gappy_inputs(rng, steps, batch, features, dtype)
    grad_y = rng.normal(size=(steps, batch, 2 if with_readout else hidden)).astype(dtype)
    h0, grad_state = (random_state(cell, rng, batch, dtype) for _ in range(2))
    spec = cell.kernel_spec(np, dtype)
    tape = linear_vjp.forward(spec, x, h0, arrays)[2]
    taped = linear_vjp.linear_vjp(spec, x, grad_y, h0, grad_state, arrays, tape)
    untaped = linear_vjp.linear_vjp(spec, x, grad_y, h0, grad_state, arrays)
    assert list(taped[0]) == list(untaped[0])
    for name, grad in untaped[0].items():
        np.testing.assert_array_equal(taped[0][name], grad)
    np.testing.assert_array_equal(taped[1], untaped[1])
    np.testing.assert_array_equal(taped[2], untaped[2])
    assert (taped[3] is None) == (untaped[3] is None) == (readout is None)
    for mine, theirs in zip(taped[3] or (), untaped[3] or (), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_the_top_layer_takes_the_readout_in_its_forward_pass_and_stores_no_outputs(rng):
    model = Model.init("MinGRU", 1, [3, 4], 2, seed=0)
    x = gappy_inputs(rng, 20, 5, 1, np.float32)
    inputs, tapes, y = _layer_inputs(model, x, None)
    assert inputs[1].shape == (20, 5, 3) and inputs[2] is None
    assert all(t is not None for t in tapes)
    np.testing.assert_array_equal(y, model(x)[0])
    with kernels.use("reference"):  # no fused kernel: the outputs kept, the readout after
        inputs, tapes, y = _layer_inputs(model, x, None)
    assert inputs[2].shape == (20, 5, 4) and tapes == [None, None]


def test_a_readout_is_refused_where_no_fused_kernel_differentiates_it():
    gru, readout = CELLS["GRU"].init(1, 3), Readout(np.ones((1, 3)))
    with pytest.raises(ValueError, match="takes no readout"):
        cell_forward(gru, np.ones((4, 2, 1)), readout=readout)

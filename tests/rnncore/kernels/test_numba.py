"""The numba kernels: the path switch, and what only they do, against the reference path.

What they share with the CUDA kernels is checked on both in ``test_kernels.py``.
"""

import types
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnncore import CELLS, Model, Readout, kernels, linear_scan, scan_summary
from tests.rnncore.kernels.cases import gappy_inputs, make_cell, random_state
from tests.rnncore.reference_path import DTYPES, TOL, assert_close, reference

# -- the switch -------------------------------------------------------------------------


def test_use_switches_and_restores():
    assert kernels.selected() == "numba" and kernels.numba_active(np)
    with kernels.use("reference"):
        assert kernels.selected() == "reference" and not kernels.numba_active(np)
        with kernels.use("numba"):
            assert kernels.numba_active(np)
        assert not kernels.numba_active(np)
    assert kernels.selected() == "numba"
    kernels.use("reference")
    try:
        assert kernels.selected() == "reference"
    finally:
        kernels.use("numba")


def test_threads_limit_only_the_calling_thread_and_restore():
    before = numba.get_num_threads()
    with kernels.threads(1):
        assert numba.get_num_threads() == 1
        with ThreadPoolExecutor(1) as pool:
            assert pool.submit(numba.get_num_threads).result() == numba.config.NUMBA_NUM_THREADS
    assert numba.get_num_threads() == before
    with kernels.threads(10**6):  # clamped to the threads numba has
        assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS


def test_other_namespaces_never_take_the_kernels():
    assert not kernels.numba_active(types.ModuleType("cupy"))


def test_unknown_path_is_refused():
    with pytest.raises(ValueError, match="one of"):
        kernels.use("cuda")
    assert kernels.selected() == "numba"


# -- the scan ---------------------------------------------------------------------------


@st.composite
def scans(draw, max_steps=60):
    """``(a, b, h0, chunk)`` with random shapes, dtypes, NaN inputs and chunkings."""
    dtype = draw(DTYPES)
    steps = draw(st.integers(0, max_steps))
    width = draw(st.lists(st.integers(1, 5), max_size=2))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    a = rng.uniform(0, 1.2, (steps, *width)).astype(dtype)
    b = rng.normal(size=a.shape).astype(dtype)
    if draw(st.booleans()) and b.size:
        b.flat[rng.integers(b.size)] = np.nan
    h0 = rng.normal(size=width).astype(dtype) if draw(st.booleans()) else None
    chunk = draw(
        st.one_of(
            st.none(),
            st.integers(1, max_steps + 1),
            st.lists(st.integers(0, 9), max_size=12).map(lambda s: [*s, steps - sum(s)]),
        )
    )
    if isinstance(chunk, list) and chunk[-1] < 0:
        chunk = None
    return a, b, h0, chunk


@given(case=scans())
def test_linear_scan_matches_reference(case):
    a, b, h0, chunk = case
    h = linear_scan(a, b, h0, chunk=chunk)
    assert_close(h, reference(linear_scan, a, b, h0, chunk=chunk), b.dtype)


@given(case=scans())
def test_scan_summary_matches_reference(case):
    a, b, _, _ = case
    assert_close(scan_summary(a, b), reference(scan_summary, a, b), b.dtype)


def test_wide_and_long_scans(rng):
    for shape, chunk in (((3, 20000), None), ((5000, 3), None), ((4000, 7), 333)):
        a, b = rng.uniform(0, 1, shape), rng.normal(size=shape)
        h0 = rng.normal(size=shape[1:])
        assert_close(linear_scan(a, b, h0, chunk=chunk), reference(linear_scan, a, b, h0), a.dtype)


def test_scan_of_broadcast_and_strided_operands(rng):
    b = rng.normal(size=(50, 4, 6)).astype(np.float32).transpose(2, 1, 0)
    for a in (0.9, rng.uniform(0, 1, (6, 1, 50)), rng.uniform(0, 1, (50, 4, 6)).T):
        args = (a, b)
        kwargs = {"axis": -1, "chunk": [7, 43]}
        assert_close(linear_scan(*args, **kwargs), reference(linear_scan, *args, **kwargs), b.dtype)


# -- the cells --------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CELLS))
def test_cells_at_benchmark_width(rng, name):
    cell = make_cell(name, np.float32, rng, 1, 64)
    x = gappy_inputs(rng, 67, 40, 1, np.float32)
    readout = Readout(rng.normal(size=(1, 64)).astype(np.float32))
    for args in ((x,), (x, None, readout)):
        assert_close(cell.run(*args), reference(cell.run, *args), np.float32)


def test_saturated_and_underflowing_gates_stay_exact():
    # Gates far in the sigmoid's tails: sigmoid(-120) is 0 in float32.
    x = np.array([[[1.0]], [[1.0]], [[5.0]], [[-400.0]]], np.float32)
    weight = np.array([[-120.0], [-130.0], [1.0]], np.float32)
    for name, rows in (("MinLSTM", weight), ("QRNN", weight), ("MinGRU", weight[:2])):
        cell = CELLS[name].from_state_dict(
            {"weight": rows, "bias": np.zeros(len(rows), np.float32)}
        )
        h0 = np.ones((1, 1), np.float32)
        y, _ = cell(x, h0)
        assert np.isfinite(y).all()
        assert_close(y, reference(cell, x, h0)[0], np.float32)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_series_major_inputs_give_series_major_outputs(rng, name):
    model = Model.init(name, 2, [5, 3], output_size=2, seed=1)
    stored = rng.normal(size=(7, 40, 2)).astype(np.float32)  # (series, time, feature)
    stored[rng.uniform(size=stored.shape[:2]) < 0.2, 0] = np.nan
    y, states = model(stored.transpose(1, 0, 2))
    y_c, states_c = model(np.ascontiguousarray(stored.transpose(1, 0, 2)))
    assert y.transpose(1, 0, 2).flags.c_contiguous  # no transpose needed to store it
    np.testing.assert_array_equal(y, y_c)
    for mine, theirs in zip(states, states_c, strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_inputs_may_be_read_only_or_strided_and_stay_untouched(rng):
    x = gappy_inputs(rng, 30, 8, 2, np.float64).transpose(1, 0, 2).copy().transpose(1, 0, 2)
    x.flags.writeable = False
    before = x.copy()
    for name in ("MinGRU", "LSTM"):
        cell = make_cell(name, np.float64, rng, 2, 4)
        h0 = random_state(cell, rng, 8, np.float64)
        assert_close(cell(x, h0), reference(cell, x, h0), np.float64)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_underflowed_decay_products_are_flushed_to_zero(dtype):
    # A decay above 1/2 would hold an underflowed product at the smallest subnormal
    # (slow to multiply); the kernels flush it to zero, an error below `tiny`.
    steps = 3000 if dtype == np.float64 else 400
    a, b = np.full((steps, 256), 0.75, dtype), np.ones((steps, 256), dtype)  # one block
    expected = reference(scan_summary, a, b)
    assert (expected[0] < np.finfo(dtype).tiny).all()
    cell = CELLS["DiagonalLinear"].from_state_dict(
        {"weight": np.ones((256, 1), dtype), "bias": np.zeros(256, dtype), "decay": a[0]}
    )
    x = np.ones((steps, 1, 1), dtype)
    for big_a, big_b in (scan_summary(a, b), cell.summary(x)):
        assert (big_a == 0).all()
        np.testing.assert_allclose(big_b.ravel(), expected[1], rtol=TOL[np.dtype(dtype)])

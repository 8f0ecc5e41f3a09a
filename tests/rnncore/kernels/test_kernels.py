"""What the numba and CUDA kernels share, checked on each (the ``backend`` fixture).

Each kernel module is driven through the interface of :mod:`rnncore.kernels.interface`
and compared with the reference path (or the sequential float64 scan) on random
shapes, dtypes, states and gaps; ``routed`` runs rnncore itself on a backend.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnncore import CELLS, Model, Readout, linear_scan, run, scan_summary
from tests.rnncore.kernels.cases import gappy_inputs, make_cell, random_state
from tests.rnncore.reference import rel_err, scan
from tests.rnncore.reference_path import DTYPES, TOL, assert_close, reference

LINEAR = ["DiagonalLinear", "MinGRU", "MinLSTM", "QRNN"]
NONLINEAR = ["Elman", "GRU", "LSTM"]

# (steps, batch, features, hidden): no steps, one, primes, several tiles; series in
# one group of numba's or several; several series per CUDA block, or one.
SHAPES = st.tuples(
    st.sampled_from([0, 1, 2, 13, 40, 67, 150]),
    st.integers(1, 37),
    st.integers(1, 3),
    st.sampled_from([1, 2, 5, 8, 11, 33]),
)
# The same, fewer elements: the CUDA maps run a host thread per element.
MAP_SHAPES = st.tuples(
    st.sampled_from([0, 1, 2, 13, 40, 67]),
    st.integers(1, 20),
    st.integers(1, 3),
    st.sampled_from([1, 5, 8, 11, 33]),
)


def readout_arrays(readout, dtype):
    return None if readout is None else readout.arrays(np, dtype)


# -- the scan --------------------------------------------------------------------------


@given(st.tuples(st.integers(1, 3), st.integers(1, 300), st.integers(1, 40)), DTYPES, st.data())
def test_scan_blocks_match_the_sequential_reference(backend, shape, dtype, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    a = rng.uniform(0, 1.2, shape).astype(dtype)
    b = rng.normal(size=shape).astype(dtype)
    entries = rng.normal(size=(shape[0], shape[2])).astype(dtype)
    with backend.walking(data.draw(st.booleans())):
        h = backend.scan.scan_blocks(a, b, entries)
        big_a, big_b = backend.scan.summarise_blocks(a, b)
    expected = np.stack([scan(a[k], b[k], entries[k]) for k in range(shape[0])])
    assert h.dtype == dtype and rel_err(h, expected) < TOL[np.dtype(dtype)]
    from_zero = np.stack([scan(a[k], b[k])[-1] for k in range(shape[0])])
    assert rel_err(big_b, from_zero) < TOL[np.dtype(dtype)]
    products = np.prod(a.astype(np.float64), axis=1)
    np.testing.assert_allclose(big_a, products, rtol=1e-4, atol=np.finfo(dtype).tiny * 1e3)


@pytest.mark.parametrize("chunk", [None, 1, 7, [5, 0, 31, 64]])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_scan_on_the_kernels_matches_the_sequential_reference(routed, rng, chunk, dtype):
    a = rng.uniform(0, 1, (3, 100, 5)).astype(dtype)
    b = rng.normal(size=a.shape).astype(dtype)
    h0 = rng.normal(size=(3, 5)).astype(dtype)
    at, bt = a.transpose(1, 0, 2), b.transpose(1, 0, 2)  # time first, for the reference
    out = np.empty_like(b)
    h = linear_scan(a, b, h0, axis=1, chunk=chunk, out=out)
    assert h is out and rel_err(h, scan(at, bt, h0).transpose(1, 0, 2)) < TOL[np.dtype(dtype)]
    big_a, big_b = scan_summary(a, b, axis=1)
    assert rel_err(big_b, scan(at, bt)[-1]) < TOL[np.dtype(dtype)]
    products = np.prod(at.astype(np.float64), axis=0)
    np.testing.assert_allclose(big_a, products, rtol=1e-4, atol=np.finfo(dtype).tiny * 1e3)


# -- the cells -------------------------------------------------------------------------


@pytest.mark.parametrize("name", LINEAR + NONLINEAR)
@given(
    shape=SHAPES,
    dtype=DTYPES,
    with_h0=st.booleans(),
    outputs=st.sampled_from([None, 1, 3]),
    serial=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_cells_match_the_reference_path(
    backend, name, shape, dtype, with_h0, outputs, serial, seed
):
    rng = np.random.default_rng(seed)
    steps, batch, features, hidden = shape
    cell = make_cell(name, dtype, rng, features, hidden)
    x = gappy_inputs(rng, steps, batch, features, dtype)
    h0 = random_state(cell, rng, batch, dtype) if with_h0 else None
    readout = Readout(rng.normal(size=(outputs, hidden)).astype(dtype)) if outputs else None
    expected = reference(cell.run, x, h0, readout)
    state = cell.prepare_state(np, h0, batch, np.dtype(dtype))
    with backend.walking(serial):
        got = backend.cells.run(
            cell.kernel_spec(np, dtype), x, state, readout_arrays(readout, dtype)
        )
    assert_close(got, expected, dtype)


@pytest.mark.parametrize("name", LINEAR)
@given(shape=MAP_SHAPES, dtype=DTYPES, serial=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_transition_summary_and_emit_match_the_reference_path(
    backend, name, shape, dtype, serial, seed
):
    rng = np.random.default_rng(seed)
    steps, batch, features, hidden = shape
    cell = make_cell(name, dtype, rng, features, hidden)
    spec = cell.kernel_spec(np, dtype)
    x = gappy_inputs(rng, steps, batch, features, dtype)
    a, b = reference(cell.transition, x)
    assert_close(backend.cells.transition(spec, x), (a, b), dtype)
    c = rng.normal(size=a.shape)
    assert_close(backend.cells.emit(spec, c, x), reference(cell.emit, c, x), dtype)
    big_a, big_b = reference(scan_summary, a, b)
    # products of decays below the smallest normal number may be flushed to zero
    summary = np.where(np.abs(big_a) < np.finfo(dtype).tiny, 0, big_a).astype(dtype), big_b
    series_major = np.ascontiguousarray(x.transpose(1, 0, 2)).transpose(1, 0, 2)
    with backend.walking(serial):
        assert_close(backend.cells.summary(spec, x), summary, dtype)
        assert_close(backend.cells.summary(spec, series_major), summary, dtype)


@pytest.mark.parametrize("name", LINEAR + NONLINEAR)
def test_cells_of_no_series(backend, name):
    cell = CELLS[name].init(2, 3, dtype="float32")
    spec = cell.kernel_spec(np, np.float32)
    x = np.zeros((5, 0, 2), np.float32)
    h0 = cell.prepare_state(np, None, 0, x.dtype)
    assert_close(backend.cells.run(spec, x, h0, None), reference(cell.run, x, h0), np.float32)
    if name in LINEAR:
        assert_close(backend.cells.summary(spec, x), reference(cell.summary, x), np.float32)


def test_fortran_ordered_readout_weights(backend, rng):
    cell = CELLS["MinGRU"].init(1, 4, seed=0, dtype="float64")
    readout = Readout(np.asfortranarray(rng.normal(size=(3, 4))))
    x = gappy_inputs(rng, 20, 3, 1, np.float64)
    h0 = cell.prepare_state(np, None, 3, x.dtype)
    got = backend.cells.run(cell.kernel_spec(np, x.dtype), x, h0, readout_arrays(readout, x.dtype))
    assert_close(got, reference(cell.run, x, h0, readout), np.float64)


# -- rnncore on the kernels ------------------------------------------------------------


@pytest.mark.parametrize(("cell", "method"), [("MinGRU", "parallel"), ("QRNN", "sequential"),
                                              ("GRU", "parallel"), ("LSTM", "auto")])  # fmt: skip
def test_models_and_chunked_runs_on_the_kernels_equal_the_reference(routed, rng, cell, method):
    import dask
    import xarray as xr

    model = Model.init(cell, 2, [8, 4], output_size=1, seed=1, dtype=np.float64)
    values = rng.normal(size=(9, 70, 2))
    values[rng.uniform(size=values.shape[:2]) < 0.1] = np.nan
    data = xr.DataArray(values, dims=("series", "time", "feature"))
    expected = reference(run, model, data)
    x = values.transpose(1, 0, 2)  # time first
    y, states = model(x)
    y_ref, states_ref = reference(model, x)
    assert_close(y, y_ref, np.float64)
    for state, state_ref in zip(states, states_ref, strict=True):
        assert_close(state, state_ref, np.float64)
    with dask.config.set(scheduler="synchronous"):
        lazy = run(model, data.chunk({"series": 4, "time": 23}), method=method, tol=1e-12)
        computed = lazy.compute()
    assert rel_err(computed.output.values, expected.output.values) < 1e-10
    assert rel_err(computed.state.values, expected.state.values) < 1e-10

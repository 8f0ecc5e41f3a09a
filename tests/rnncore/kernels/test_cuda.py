"""The CUDA kernels and their glue, without a GPU.

- The sources compile for a Hopper GPU (sm_90) with NVRTC, the compiler CuPy uses
  (``cuda-bindings`` and ``nvidia-cuda-nvrtc``, in the ``dev`` extra), with no
  register spills.
- The glue and kernels run unchanged on NumPy arrays through ``cuda_host`` (each
  CUDA thread a host thread) and match the sequential float64 scan and the
  reference path within the library's tolerances, on random shapes, gaps and
  states, so their logic is checked here.
  ``tests/test_gpu.py`` repeats the checks on a real GPU.
"""

import contextlib
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnncore import CELLS, Readout, kernels, linear_scan, scan_summary
from rnncore.kernels import cuda
from rnncore.kernels.cuda import cells as cuda_cells
from rnncore.kernels.cuda import scan as cuda_scan
from tests.rnncore.kernels import cuda_host
from tests.rnncore.kernels.cuda_host import available, host_compiler
from tests.rnncore.reference import rel_err, scan
from tests.rnncore.reference_path import DTYPES, TOL, assert_close, reference

pytestmark = pytest.mark.skipif(not available(), reason="no C++ compiler to emulate CUDA")

LINEAR = ["DiagonalLinear", "MinGRU", "MinLSTM", "QRNN"]
NONLINEAR = ["Elman", "GRU", "LSTM"]
cuda.register("numpy", host_compiler)


@contextlib.contextmanager
def walking(serial):
    """Blocks walk whole chains (``serial``) or take a tile each and look back."""
    saved = cuda.SERIAL_CHAINS_PER_MULTIPROCESSOR
    cuda.SERIAL_CHAINS_PER_MULTIPROCESSOR = 0 if serial else 10**9
    try:
        yield
    finally:
        cuda.SERIAL_CHAINS_PER_MULTIPROCESSOR = saved


# -- compiled by nvcc ------------------------------------------------------------------


@pytest.mark.parametrize("source", ["scan.cu", "cells.cu"])
def test_every_instantiation_compiles_with_nvrtc_for_hopper_without_spills(source):
    # NVRTC is CuPy's compiler; ptxas reports each kernel's registers, stack and spills
    nvrtc = pytest.importorskip("cuda.bindings.nvrtc")
    expressions = cuda.expressions()[source]
    err, program = nvrtc.nvrtcCreateProgram(
        cuda.source(source).encode(), source.encode(), 0, [], []
    )
    assert err == nvrtc.nvrtcResult.NVRTC_SUCCESS
    for expression in expressions:
        (err,) = nvrtc.nvrtcAddNameExpression(program, expression.encode())
    options = [o.encode() for o in (*cuda.options(), "-arch=sm_90", "--ptxas-options=-v")]
    (compiled,) = nvrtc.nvrtcCompileProgram(program, len(options), options)
    err, size = nvrtc.nvrtcGetProgramLogSize(program)
    log = b" " * size
    nvrtc.nvrtcGetProgramLog(program, log)
    log = log.decode()
    assert compiled == nvrtc.nvrtcResult.NVRTC_SUCCESS, log
    assert "warning" not in log, log
    for expression in expressions:
        err, lowered = nvrtc.nvrtcGetLoweredName(program, expression.encode())
        assert err == nvrtc.nvrtcResult.NVRTC_SUCCESS and lowered
    frames = [line for line in log.splitlines() if "stack frame" in line]
    assert len(frames) == len(expressions)
    assert all(
        line.split(".", 1)[1].strip().startswith("0 bytes stack frame, 0 bytes spill")
        for line in frames
    ), log


# -- plans -----------------------------------------------------------------------------


@given(st.integers(1, 10**6), st.integers(1, 10**7), st.sampled_from([4, 8]))
def test_tile_plan_covers_every_column_and_step(width, steps, itemsize):
    plan = cuda.tile_plan(width, steps, itemsize)
    assert plan.threads == 256 and plan.cols <= 32 and plan.cols & (plan.cols - 1) == 0
    assert plan.cols >= min(width, 32)
    tile = plan.groups * plan.steps_per_thread
    assert plan.n_tiles * tile >= steps > (plan.n_tiles - 1) * tile
    assert plan.n_chains(width) * plan.cols >= width > (plan.n_chains(width) - 1) * plan.cols
    assert plan.steps_per_thread * itemsize == 64


def test_blocks_walk_whole_chains_once_chains_fill_the_gpu():
    plan = cuda.tile_plan(32, 10_000, 4)
    chains = cuda.SERIAL_CHAINS_PER_MULTIPROCESSOR * cuda.device_limits(np)[0]
    blocks, args = cuda.tile_launch(np, plan, chains, np.float32)
    assert blocks == chains and args[-1] == 1 and args[1].size == 0
    blocks, args = cuda.tile_launch(np, plan, chains - 1, np.float32)
    assert blocks == (chains - 1) * plan.n_tiles and args[-1] == 0
    assert args[0].shape == (blocks + 1,) and not args[0].any()


def test_kernel_refuses_arrays_without_a_compiler():
    with pytest.raises(TypeError, match="no CUDA compiler for math arrays; expected CuPy"):
        cuda.kernel(math, "scan.cu", cuda.expressions()["scan.cu"][0])


# -- the scan --------------------------------------------------------------------------

SHAPES = st.tuples(st.integers(1, 3), st.integers(1, 300), st.integers(1, 40))


@given(SHAPES, DTYPES, st.booleans(), st.data())
def test_scan_blocks_match_the_sequential_reference(shape, dtype, serial, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    a = rng.uniform(0, 1.2, shape).astype(dtype)
    b = rng.normal(size=shape).astype(dtype)
    entries = rng.normal(size=(shape[0], shape[2])).astype(dtype)
    with walking(serial):
        h = cuda_scan.scan_blocks(a, b, entries)
        big_a, big_b = cuda_scan.summarise_blocks(a, b)
    expected = np.stack([scan(a[k], b[k], entries[k]) for k in range(shape[0])])
    assert h.dtype == dtype and rel_err(h, expected) < TOL[np.dtype(dtype)]
    from_zero = np.stack([scan(a[k], b[k])[-1] for k in range(shape[0])])
    assert rel_err(big_b, from_zero) < TOL[np.dtype(dtype)]
    products = np.prod(a.astype(np.float64), axis=1)
    np.testing.assert_allclose(big_a, products, rtol=1e-4, atol=np.finfo(dtype).tiny * 1e3)


@pytest.mark.parametrize("serial", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_long_narrow_scan_spreads_over_many_tiles(rng, dtype, serial):
    # one column, 20011 steps (prime): 5 to 10 tiles, looking back across each other
    a = rng.uniform(0.9, 1.0, (1, 20011, 1)).astype(dtype)
    b = rng.normal(size=a.shape).astype(dtype)
    assert cuda.tile_plan(1, 20011, a.itemsize).n_tiles >= 5
    out = np.empty_like(b)
    with walking(serial):
        assert cuda_scan.scan_blocks(a, b, np.ones((1, 1), dtype), out) is out
    assert rel_err(out[0], scan(a[0], b[0], np.ones(1, dtype))) < TOL[np.dtype(dtype)]


@pytest.mark.parametrize("window", [32, 2])
def test_scan_with_many_tiles_in_flight(rng, monkeypatch, window):
    # 50 tiles of one chain, 16 running at once: look-backs find predecessors holding
    # only their own maps, and with a window of 2 tiles go on to earlier windows
    monkeypatch.setattr(cuda_host, "CONCURRENT_BLOCKS", 16)
    monkeypatch.setattr(cuda_host, "DEFINES", (f"RNN_LOOK_BACK={window}",))
    plan = cuda.tile_plan(32, 64 * 50, 8)
    assert (plan.n_tiles, plan.n_chains(32)) == (50, 1)
    a = rng.uniform(0.9, 1.0, (1, 64 * 50, 32))
    b = rng.normal(size=a.shape)
    h = cuda_scan.scan_blocks(a, b, np.zeros((1, 32)))
    assert rel_err(h[0], scan(a[0], b[0])) < 1e-12


@pytest.mark.parametrize("serial", [False, True])
def test_states_stay_exact_where_the_chains_decays_underflow(serial):
    # 0.5 ** 1500 underflows to 0, but 1e300 * 0.5 ** t stays a double: states, not
    # products over the whole chain, carry the entry forward
    a = np.full((1, 1500, 32), 0.5)
    with walking(serial):
        h = cuda_scan.scan_blocks(a, np.zeros_like(a), np.full((1, 32), 1e300))
    expected = scan(a[0], np.zeros_like(a[0]), np.full(32, 1e300))
    assert expected[-1, 0] > 1e-160 and 0.5**1500 == 0
    np.testing.assert_allclose(h[0], expected, rtol=1e-12)


def test_scan_of_broadcast_decays_and_empty_blocks(rng):
    b = rng.normal(size=(2, 50, 3))
    h = cuda_scan.scan_blocks(np.float64(0.5), b, np.zeros((2, 3)))
    expected = np.stack([scan(np.full((50, 3), 0.5), b[k]) for k in range(2)])
    assert rel_err(h, expected) < 1e-12
    assert cuda_scan.scan_blocks(b[:, :0], b[:, :0], np.zeros((2, 3))).shape == (2, 0, 3)


# -- the cells -------------------------------------------------------------------------


def layer(name, features, hidden, dtype, rng):
    options = {"activation": "g"} if name in ("MinGRU", "MinLSTM") and rng.uniform() < 0.5 else {}
    return CELLS[name].init(features, hidden, seed=int(rng.integers(1000)), dtype=dtype, **options)


def inputs(rng, steps, batch, features, dtype):
    x = rng.normal(size=(steps, batch, features)).astype(dtype)
    x[rng.uniform(size=(steps, batch)) < 0.15] = np.nan
    return x


CELL_SHAPES = st.tuples(
    st.sampled_from([0, 1, 2, 13, 67, 150]),  # steps: none, one, primes, several tiles
    st.integers(1, 7),  # batch
    st.integers(1, 3),  # features
    st.sampled_from([1, 5, 8, 33]),  # hidden: several series per block, or one
)


@given(
    st.sampled_from(LINEAR + NONLINEAR),
    CELL_SHAPES,
    DTYPES,
    st.booleans(),
    st.booleans(),
    st.data(),
)
def test_cells_match_the_reference_path(name, shape, dtype, with_readout, serial, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    steps, batch, features, hidden = shape
    cell = layer(name, features, hidden, dtype, rng)
    x = inputs(rng, steps, batch, features, dtype)
    h0 = cell.prepare_state(np, None, batch, np.dtype(dtype))
    h0 = (
        tuple(rng.normal(size=s.shape).astype(dtype) for s in h0)
        if isinstance(h0, tuple)
        else (rng.normal(size=h0.shape).astype(dtype))
    )
    readout = Readout(rng.normal(size=(2, hidden)).astype(dtype)) if with_readout else None
    expected = reference(cell.run, x, h0, readout)
    with walking(serial):
        assert_close(cuda_cells.run(cell, x, h0, readout), expected, dtype)


@pytest.mark.parametrize("name", LINEAR + NONLINEAR)
def test_cells_of_no_series(name):
    cell = CELLS[name].init(2, 3, dtype="float32")
    x = np.zeros((5, 0, 2), np.float32)
    h0 = cell.prepare_state(np, None, 0, x.dtype)
    assert_close(cuda_cells.run(cell, x, h0, None), reference(cell.run, x, h0), np.float32)
    if name in LINEAR:
        assert_close(cuda_cells.summary(cell, x), reference(cell.summary, x), np.float32)


def test_fortran_ordered_readout_weights(rng):
    cell = CELLS["MinGRU"].init(1, 4, seed=0, dtype="float64")
    readout = Readout(np.asfortranarray(rng.normal(size=(3, 4))))
    x = inputs(rng, 20, 3, 1, np.float64)
    h0 = cell.prepare_state(np, None, 3, x.dtype)
    expected = reference(cell.run, x, h0, readout)
    assert_close(cuda_cells.run(cell, x, h0, readout), expected, np.float64)


@given(st.sampled_from(LINEAR), CELL_SHAPES, DTYPES, st.booleans(), st.data())
def test_linear_cell_maps_and_summaries_match_the_reference_path(name, shape, dtype, serial, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    steps, batch, features, hidden = shape
    cell = layer(name, features, hidden, dtype, rng)
    x = inputs(rng, steps, batch, features, dtype)
    a, b = reference(cell.transition, x)
    assert_close(cuda_cells.transition(cell, x), (a, b), dtype)
    c = rng.normal(size=a.shape).astype(dtype)
    assert_close(cuda_cells.emit(cell, c, x), reference(cell.emit, c, x), dtype)
    with walking(serial):
        assert_close(cuda_cells.summary(cell, x), reference(cell.summary, x), dtype)


@pytest.mark.parametrize("name", NONLINEAR)
@pytest.mark.parametrize("batch", [264, 528, 1056])  # 2, 4 and 8 series per block
def test_nonlinear_blocks_of_several_series(rng, name, batch):
    cell = CELLS[name].init(2, 3, seed=0, dtype="float64")
    x = inputs(rng, 4, batch + 1, 2, np.float64)  # one series past the last full block
    h0 = cell.prepare_state(np, None, batch + 1, np.dtype(np.float64))
    assert_close(cuda_cells.run(cell, x, h0, None), reference(cell.run, x, h0), np.float64)


@pytest.mark.parametrize("name", NONLINEAR)
def test_nonlinear_weights_too_large_for_shared_memory_are_read_from_memory(rng, name):
    # and more gate rows than threads (GRU: 576 rows, 256 threads)
    cell = CELLS[name].init(1, 192, seed=0, dtype="float64")  # GRU: 864 KiB of weights
    x = inputs(rng, 3, 2, 1, np.float64)
    h0 = cell.prepare_state(np, None, 2, np.dtype(np.float64))
    assert_close(cuda_cells.run(cell, x, h0, None), reference(cell.run, x, h0), np.float64)


def test_supports_cells_whose_units_fit_one_block():
    assert cuda_cells.supports(CELLS["MinGRU"].init(1, 256))
    assert not cuda_cells.supports(CELLS["LSTM"].init(1, 257))
    assert kernels.cell_kernels(np, CELLS["GRU"].init(1, 4)) is kernels.cells
    with kernels.use("numpy"):
        assert kernels.cell_kernels(np, CELLS["GRU"].init(1, 4)) is None


# -- rnncore on the CUDA kernels -------------------------------------------------------


@pytest.fixture
def cuda_for_numpy(monkeypatch):
    """NumPy arrays take the (emulated) CUDA kernels wherever rnncore would take numba's."""

    def scan_kernels(xp):
        return cuda_scan if kernels.active(xp) else None

    def cell_kernels(xp, cell):
        return cuda_cells if kernels.active(xp) and cuda_cells.supports(cell) else None

    monkeypatch.setattr(kernels, "scan_kernels", scan_kernels)
    monkeypatch.setattr(kernels, "cell_kernels", cell_kernels)


@pytest.mark.parametrize("chunk", [None, 1, 7, [5, 0, 31, 64]])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_scan_on_the_cuda_kernels_matches_the_sequential_reference(
    cuda_for_numpy, rng, chunk, dtype
):
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


@pytest.mark.parametrize(("cell", "method"), [("MinGRU", "parallel"), ("QRNN", "sequential"),
                                              ("GRU", "parallel"), ("LSTM", "auto")])  # fmt: skip
def test_models_and_chunked_runs_on_the_cuda_kernels_equal_the_reference(
    cuda_for_numpy, rng, cell, method
):
    import dask
    import xarray as xr

    from rnncore import Model, run

    model = Model.init(cell, 2, [8, 4], output_size=1, seed=1, dtype=np.float64)
    values = rng.normal(size=(9, 70, 2))
    values[rng.uniform(size=values.shape[:2]) < 0.1] = np.nan
    data = xr.DataArray(values, dims=("series", "time", "feature"))
    expected = reference(run, model, data)
    x = values.transpose(1, 0, 2)  # time first
    assert_close(model(x)[0], reference(model, x)[0], np.float64)
    with dask.config.set(scheduler="synchronous"):
        lazy = run(model, data.chunk({"series": 4, "time": 23}), method=method, tol=1e-12)
        computed = lazy.compute()
    assert rel_err(computed.output.values, expected.output.values) < 1e-10
    assert rel_err(computed.state.values, expected.state.values) < 1e-10

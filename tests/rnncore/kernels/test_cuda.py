"""The CUDA kernels and their glue, without a GPU.

- The sources compile for a Hopper GPU (sm_90) with NVRTC, the compiler CuPy uses
  (``cuda-bindings`` and ``nvidia-cuda-nvrtc``, in the ``dev`` extra), with no
  register spills.
- The glue and kernels run unchanged on NumPy arrays through ``cuda_host`` (each
  CUDA thread a host thread) and match the sequential float64 scan and the
  reference path within the library's tolerances, on random shapes, gaps and
  states, so their logic is checked here: what they share with the numba kernels
  in ``test_kernels.py``, what only they do (tiles, blocks, shared memory) here.
  ``tests/rnncore/test_gpu.py`` repeats the checks on a real GPU.
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnncore import CELLS, kernels
from rnncore.kernels.cuda import compiler, device, launch, tiles
from tests.rnncore.kernels import cuda_host
from tests.rnncore.kernels.backends import cuda_backend
from tests.rnncore.kernels.cases import gappy_inputs
from tests.rnncore.reference import rel_err, scan
from tests.rnncore.reference_path import TOL, assert_close, reference

pytestmark = pytest.mark.slow  # host-compiled CUDA emulation and NVRTC builds

pytestmark = pytest.mark.skipif(not cuda_host.available(), reason="no C++ compiler to emulate CUDA")

NONLINEAR = ["Elman", "GRU", "LSTM"]
CUDA = cuda_backend()


# -- compiled by nvcc ------------------------------------------------------------------


@pytest.mark.parametrize("source", ["scan.cu", "cells.cu"])
def test_every_instantiation_compiles_with_nvrtc_for_hopper_without_spills(source):
    # NVRTC is CuPy's compiler; ptxas reports each kernel's registers, stack and spills
    nvrtc = pytest.importorskip("cuda.bindings.nvrtc")
    expressions = compiler.expressions()[source]
    err, program = nvrtc.nvrtcCreateProgram(
        compiler.source(source).encode(), source.encode(), 0, [], []
    )
    assert err == nvrtc.nvrtcResult.NVRTC_SUCCESS
    for expression in expressions:
        (err,) = nvrtc.nvrtcAddNameExpression(program, expression.encode())
    options = [o.encode() for o in (*compiler.options(), "-arch=sm_90", "--ptxas-options=-v")]
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
    plan = tiles.tile_plan(width, steps, itemsize)
    assert plan.threads == 256 and plan.cols <= 32 and plan.cols & (plan.cols - 1) == 0
    assert plan.cols >= min(width, 32)
    tile = plan.groups * plan.steps_per_thread
    assert plan.n_tiles * tile >= steps > (plan.n_tiles - 1) * tile
    assert plan.n_chains(width) * plan.cols >= width > (plan.n_chains(width) - 1) * plan.cols
    assert plan.steps_per_thread * itemsize == 64


def test_blocks_walk_whole_chains_once_chains_fill_the_gpu():
    plan = tiles.tile_plan(32, 10_000, 4)
    chains = launch.SERIAL_CHAINS_PER_MULTIPROCESSOR * device.device_limits(np)[0]
    blocks, args = launch.tile_launch(np, plan, chains, np.float32)
    assert blocks == chains and args[-1] == 1 and args[1].size == 0
    blocks, args = launch.tile_launch(np, plan, chains - 1, np.float32)
    assert blocks == (chains - 1) * plan.n_tiles and args[-1] == 0
    assert args[0].shape == (blocks + 1,) and not args[0].any()


def test_kernel_refuses_arrays_without_a_compiler():
    with pytest.raises(TypeError, match="no CUDA compiler for math arrays; expected CuPy"):
        compiler.kernel(math, "scan.cu", compiler.expressions()["scan.cu"][0])


# -- the scan --------------------------------------------------------------------------


@pytest.mark.parametrize("serial", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_long_narrow_scan_spreads_over_many_tiles(rng, dtype, serial):
    # one column, 20011 steps (prime): 5 to 10 tiles, looking back across each other
    a = rng.uniform(0.9, 1.0, (1, 20011, 1)).astype(dtype)
    b = rng.normal(size=a.shape).astype(dtype)
    assert tiles.tile_plan(1, 20011, a.itemsize).n_tiles >= 5
    out = np.empty_like(b)
    with CUDA.walking(serial):
        assert CUDA.scan.scan_blocks(a, b, np.ones((1, 1), dtype), out) is out
    assert rel_err(out[0], scan(a[0], b[0], np.ones(1, dtype))) < TOL[np.dtype(dtype)]


@pytest.mark.parametrize("window", [32, 2])
def test_scan_with_many_tiles_in_flight(rng, monkeypatch, window):
    # 50 tiles of one chain, 16 running at once: look-backs find predecessors holding
    # only their own maps, and with a window of 2 tiles go on to earlier windows
    monkeypatch.setattr(cuda_host, "CONCURRENT_BLOCKS", 16)
    monkeypatch.setattr(cuda_host, "DEFINES", (f"RNN_LOOK_BACK={window}",))
    plan = tiles.tile_plan(32, 64 * 50, 8)
    assert (plan.n_tiles, plan.n_chains(32)) == (50, 1)
    a = rng.uniform(0.9, 1.0, (1, 64 * 50, 32))
    b = rng.normal(size=a.shape)
    h = CUDA.scan.scan_blocks(a, b, np.zeros((1, 32)))
    assert rel_err(h[0], scan(a[0], b[0])) < 1e-12


@pytest.mark.parametrize("serial", [False, True])
def test_states_stay_exact_where_the_chains_decays_underflow(serial):
    # 0.5 ** 1500 underflows to 0, but 1e300 * 0.5 ** t stays a double: states, not
    # products over the whole chain, carry the entry forward
    a = np.full((1, 1500, 32), 0.5)
    with CUDA.walking(serial):
        h = CUDA.scan.scan_blocks(a, np.zeros_like(a), np.full((1, 32), 1e300))
    expected = scan(a[0], np.zeros_like(a[0]), np.full(32, 1e300))
    assert expected[-1, 0] > 1e-160 and 0.5**1500 == 0
    np.testing.assert_allclose(h[0], expected, rtol=1e-12)


def test_scan_of_broadcast_decays_and_empty_blocks(rng):
    b = rng.normal(size=(2, 50, 3))
    h = CUDA.scan.scan_blocks(np.float64(0.5), b, np.zeros((2, 3)))
    expected = np.stack([scan(np.full((50, 3), 0.5), b[k]) for k in range(2)])
    assert rel_err(h, expected) < 1e-12
    assert CUDA.scan.scan_blocks(b[:, :0], b[:, :0], np.zeros((2, 3))).shape == (2, 0, 3)


@pytest.mark.parametrize("name", NONLINEAR)
@pytest.mark.parametrize("batch", [264, 528, 1056])  # 2, 4 and 8 series per block
def test_nonlinear_blocks_of_several_series(rng, name, batch):
    cell = CELLS[name].init(2, 3, seed=0, dtype="float64")
    x = gappy_inputs(rng, 4, batch + 1, 2, np.float64)  # one series past the last full block
    h0 = cell.prepare_state(np, None, batch + 1, np.dtype(np.float64))
    spec = cell.kernel_spec(np, x.dtype)
    assert_close(CUDA.cells.run(spec, x, h0, None), reference(cell.run, x, h0), np.float64)


@pytest.mark.parametrize("name", NONLINEAR)
def test_nonlinear_weights_too_large_for_shared_memory_are_read_from_memory(rng, name):
    # and more gate rows than threads (GRU: 576 rows, 256 threads)
    cell = CELLS[name].init(1, 192, seed=0, dtype="float64")  # GRU: 864 KiB of weights
    x = gappy_inputs(rng, 3, 2, 1, np.float64)
    h0 = cell.prepare_state(np, None, 2, np.dtype(np.float64))
    spec = cell.kernel_spec(np, x.dtype)
    assert_close(CUDA.cells.run(spec, x, h0, None), reference(cell.run, x, h0), np.float64)


def test_supports_cells_whose_units_fit_one_block():
    assert CUDA.cells.supports(CELLS["MinGRU"].init(1, 256).kernel_spec(np, np.float32))
    assert not CUDA.cells.supports(CELLS["LSTM"].init(1, 257).kernel_spec(np, np.float32))
    gru = CELLS["GRU"].init(1, 4).kernel_spec(np, np.float32)
    assert kernels.cell_kernels(np, gru) is kernels.cells
    with kernels.use("reference"):
        assert kernels.cell_kernels(np, gru) is None

"""The CuPy backend: the same API, CuPy in, CuPy out, on the GPU.

Skipped where CuPy or a GPU is missing; ``scripts/gpu_check.sh`` runs it on a GPU machine.
"""

import numpy as np
import pytest

from rnncore import CELLS, Model, Readout, linear_scan, scan_summary
from tests.rnncore.reference import params_rel_err, rel_err, scan

cupy = pytest.importorskip("cupy")
cupyx = pytest.importorskip("cupyx")
try:
    cupy.cuda.runtime.getDeviceCount()
except Exception as err:  # CuPy installed, no usable GPU
    pytest.skip(f"no usable GPU: {err}", allow_module_level=True)

TOL = {np.float32: 1e-5, np.float64: 1e-12}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (4096, 3), (100_000, 2), (257, 5000)])
@pytest.mark.parametrize("chunk", [None, 1, 97, [7, 11]])
def test_linear_scan_on_gpu_matches_cpu_reference(rng, dtype, shape, chunk):
    if isinstance(chunk, list):
        chunk = [*chunk, shape[0] - sum(chunk)] if shape[0] > sum(chunk) else None
    a = rng.uniform(0, 1, shape).astype(dtype)
    b = rng.normal(size=shape).astype(dtype)
    h0 = rng.normal(size=shape[1:]).astype(dtype)
    h = linear_scan(cupy.asarray(a), cupy.asarray(b), cupy.asarray(h0), chunk=chunk)
    assert isinstance(h, cupy.ndarray) and h.dtype == dtype
    assert rel_err(cupy.asnumpy(h), scan(a, b, h0)) < TOL[dtype]
    _, big_b = scan_summary(cupy.asarray(a), cupy.asarray(b))
    assert isinstance(big_b, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(big_b), scan(a, b)[-1], rtol=TOL[dtype] * 10)


def test_linear_scan_does_not_synchronise(rng):
    a = cupy.asarray(rng.uniform(0, 1, (10_000, 64)).astype(np.float32))
    b = cupy.asarray(rng.normal(size=(10_000, 64)).astype(np.float32))
    linear_scan(a, b)  # compile first
    with cupyx.allow_synchronize(False):
        linear_scan(a, b)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_models_do_not_synchronise(rng, cell):
    model = Model.init(cell, 2, [8, 8], output_size=1)
    x = rng.normal(size=(50, 16, 2)).astype(np.float32)
    x[rng.uniform(size=x.shape[:2]) < 0.1] = np.nan
    x = cupy.asarray(x)
    model(x)  # compile first
    with cupyx.allow_synchronize(False):
        model(x)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_models_on_gpu_equal_cpu(rng, cell):
    model = Model.init(cell, 2, [8, 8], output_size=1, dtype=np.float64)
    x = rng.normal(size=(300, 16, 2))
    x[rng.uniform(size=x.shape[:2]) < 0.1] = np.nan
    y_cpu, _ = model(x)
    y_gpu, _ = model(cupy.asarray(x))
    assert isinstance(y_gpu, cupy.ndarray)
    assert rel_err(cupy.asnumpy(y_gpu), y_cpu) < 1e-12


def test_chunked_run_with_cupy_chunks(rng, tmp_path):
    dask_array = pytest.importorskip("dask.array")
    xr = pytest.importorskip("xarray")
    from rnncore import io, run

    model = Model.init("MinGRU", 1, [8], output_size=1)
    values = rng.normal(size=(6, 200, 1)).astype(np.float32)
    expected = run(model, xr.DataArray(values, dims=("series", "time", "feature")))
    data = dask_array.from_array(values, chunks=(3, 50, 1)).map_blocks(cupy.asarray)
    result = run(model, xr.DataArray(data, dims=("series", "time", "feature")))
    computed = result.compute()
    assert isinstance(computed.output.data, cupy.ndarray)
    assert rel_err(cupy.asnumpy(computed.output.data), expected.output.values) < 1e-5
    # written from the host, chunk by chunk
    written = io.open_dataset(io.write_zarr(result, tmp_path / "out.zarr"))
    assert rel_err(written.output.values, expected.output.values) < 1e-5


@pytest.mark.parametrize(
    ("cell", "steps", "batch", "hidden", "dtype"),
    [
        ("MinGRU", 20_011, 2, 8, np.float32),  # long and narrow: many tiles a series
        ("QRNN", 300, 700, 64, np.float32),  # wide: several series a block
        ("MinLSTM", 97, 5, 256, np.float64),  # a series' units span a block
        ("GRU", 200, 600, 64, np.float32),  # several series a block, weights shared
        ("LSTM", 50, 3, 192, np.float64),  # weights too large for shared memory
        ("Elman", 50, 300, 16, np.float64),
    ],
)
def test_cell_kernels_on_gpu_match_the_reference_path(rng, cell, steps, batch, hidden, dtype):
    from rnncore import kernels

    layer = CELLS[cell].init(3, hidden, seed=1, dtype=dtype)
    x = rng.normal(size=(steps, batch, 3)).astype(dtype)
    x[rng.uniform(size=x.shape[:2]) < 0.1] = np.nan
    readout = Readout(rng.normal(size=(2, hidden)).astype(dtype))
    with kernels.use("reference"):
        for fused in (None, readout):
            expected = layer.run(x, None, fused)
            y, state = layer.run(cupy.asarray(x), None, fused)
            assert isinstance(y, cupy.ndarray)
            assert rel_err(cupy.asnumpy(y), expected[0]) < TOL[dtype]
            states = state if isinstance(state, tuple) else (state,)
            expected_states = expected[1] if isinstance(state, tuple) else (expected[1],)
            for mine, theirs in zip(states, expected_states, strict=True):
                assert rel_err(cupy.asnumpy(mine), theirs) < TOL[dtype]


def test_mixed_cluster_runs_cupy_chunks_on_the_gpu_worker_only(rng):
    """One CPU-only worker and one declaring GPU=1: the same result as a CPU-only run."""
    dask = pytest.importorskip("dask")
    dask_array = pytest.importorskip("dask.array")
    distributed = pytest.importorskip("distributed")
    xr = pytest.importorskip("xarray")
    from rnncore import run

    model = Model.init("GRU", 1, [16], output_size=1, seed=4)
    values = rng.normal(size=(64, 300, 1)).astype(np.float32)
    expected = run(model, xr.DataArray(values, dims=("series", "time", "feature")))
    workers = {
        "cpu": {"cls": distributed.Nanny, "options": {"nthreads": 1}},
        "gpu": {"cls": distributed.Nanny, "options": {"nthreads": 1, "resources": {"GPU": 1}}},
    }
    scheduler = {"cls": distributed.Scheduler, "options": {"dashboard_address": ":0"}}
    with (
        distributed.SpecCluster(workers=workers, scheduler=scheduler) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.wait_for_workers(2)
        data = dask_array.from_array(values, chunks=(16, 100, 1)).map_blocks(cupy.asarray)
        result = run(model, xr.DataArray(data, dims=("series", "time", "feature")))
        with (
            distributed.get_task_stream(client) as stream,
            dask.config.set({"optimization.fuse.active": False}),  # keeps annotations
        ):
            output = result.output.data.map_blocks(cupy.asnumpy).compute()
        gpu = next(a for a, w in client.scheduler_info()["workers"].items() if w["resources"])
    assert {t["worker"] for t in stream.data if "rnncore-run" in str(t["key"])} == {gpu}
    assert rel_err(output, expected.output.values) < 1e-5


# -- gradients: rnncore.grad on CuPy arrays (its reference path, written against xp) ----

GRAD_TOL = {np.float32: 1e-4, np.float64: 1e-10}


def _on_host(grads):
    """Gradients by name, as NumPy arrays."""
    return {name: cupy.asnumpy(value) for name, value in grads.items()}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_model_gradients_on_gpu_equal_cpu(rng, cell, dtype):
    """``value_and_grad`` on CuPy arrays: CuPy gradients, the CPU's float64 ones."""
    from rnncore.grad import value_and_grad

    model = Model.init(cell, 2, [8, 8], output_size=1, dtype=np.float64)
    x = rng.normal(size=(60, 16, 2))
    x[rng.uniform(size=x.shape[:2]) < 0.1] = np.nan
    target = rng.normal(size=(60, 16, 1))
    loss, expected = value_and_grad(model, x, target)
    gpu_loss, grads = value_and_grad(model, cupy.asarray(x, dtype), cupy.asarray(target, dtype))
    assert sorted(grads) == sorted(expected)
    assert all(isinstance(g, cupy.ndarray) and g.dtype == dtype for g in grads.values())
    assert abs(float(gpu_loss) - loss) <= GRAD_TOL[dtype] * loss
    assert params_rel_err(_on_host(grads), expected) < GRAD_TOL[dtype]


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_input_and_state_gradients_on_gpu_equal_cpu(rng, cell):
    """``model_vjp`` from given initial states: the inputs' and states' gradients too."""
    from rnncore.grad import model_vjp

    model = Model.init(cell, 2, [8, 5], output_size=2, dtype=np.float64)
    x = rng.normal(size=(40, 6, 2))
    x[rng.uniform(size=x.shape[:2]) < 0.1] = np.nan
    grad_y = rng.normal(size=(40, 6, 2))
    pairs = cell == "LSTM"
    h0 = [
        tuple(rng.normal(size=(6, n)) for _ in range(2)) if pairs else rng.normal(size=(6, n))
        for n in (8, 5)
    ]
    expected = model_vjp(model, x, grad_y, h0)
    on_gpu = [tuple(map(cupy.asarray, h)) if pairs else cupy.asarray(h) for h in h0]
    grads = model_vjp(model, cupy.asarray(x), cupy.asarray(grad_y), on_gpu)
    assert isinstance(grads.x, cupy.ndarray)
    assert rel_err(cupy.asnumpy(grads.x), expected.x) < 1e-10
    for mine, theirs in zip(grads.h0, expected.h0, strict=True):
        mine, theirs = (mine, theirs) if pairs else ((mine,), (theirs,))
        for m, t in zip(mine, theirs, strict=True):
            assert rel_err(cupy.asnumpy(m), t) < 1e-10
    for name, value in expected.params.items():
        assert rel_err(cupy.asnumpy(grads.params[name]), value) < 1e-10


@pytest.mark.parametrize("chunk", [None, 1, 13])
def test_linear_scan_gradients_on_gpu_equal_cpu(rng, chunk):
    from rnncore.grad import linear_scan_vjp

    a, b = rng.uniform(0, 1, (100, 7)), rng.normal(size=(100, 7))
    h0, grad_h = rng.normal(size=7), rng.normal(size=(100, 7))
    expected = linear_scan_vjp(a, b, grad_h, h0)
    on_gpu = linear_scan_vjp(*map(cupy.asarray, (a, b, grad_h, h0)), chunk=chunk)
    for mine, theirs in zip(on_gpu, expected, strict=True):
        assert isinstance(mine, cupy.ndarray)
        assert rel_err(cupy.asnumpy(mine), theirs) < 1e-12


def test_chunked_gradients_with_cupy_chunks(rng):
    """``value_and_grad_chunked`` over Dask chunks held in CuPy: the in-memory gradients."""
    dask_array = pytest.importorskip("dask.array")
    from rnncore.grad import value_and_grad
    from rnncore.grad.chunked import value_and_grad_chunked

    model = Model.init("MinGRU", 1, [8, 8], output_size=1, dtype=np.float64)
    x = rng.normal(size=(90, 12, 1))
    target = rng.normal(size=(90, 12, 1))
    loss, expected = value_and_grad(model, x, target)
    chunks = dask_array.from_array(x, chunks=(17, 5, 1)).map_blocks(cupy.asarray)
    gpu_loss, grads = value_and_grad_chunked(model, chunks, target)
    assert abs(gpu_loss - loss) <= 1e-12 * loss
    assert params_rel_err(_on_host(grads), expected) < 1e-10

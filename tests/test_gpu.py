"""The CuPy backend: the same API, CuPy in, CuPy out, on the GPU.

Skipped where CuPy or a GPU is missing; ``scripts/gpu_check.sh`` runs it on a GPU machine.
"""

import numpy as np
import pytest
from reference import rel_err, scan

from rnncore import CELLS, Model, linear_scan, scan_summary

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


def test_chunked_run_with_cupy_chunks(rng):
    dask_array = pytest.importorskip("dask.array")
    xr = pytest.importorskip("xarray")
    from rnncore import run

    model = Model.init("MinGRU", 1, [8], output_size=1)
    values = rng.normal(size=(6, 200, 1)).astype(np.float32)
    expected = run(model, xr.DataArray(values, dims=("series", "time", "feature")))
    data = dask_array.from_array(values, chunks=(3, 50, 1)).map_blocks(cupy.asarray)
    result = run(model, xr.DataArray(data, dims=("series", "time", "feature"))).compute()
    assert isinstance(result.output.data, cupy.ndarray)
    assert rel_err(cupy.asnumpy(result.output.data), expected.output.values) < 1e-5

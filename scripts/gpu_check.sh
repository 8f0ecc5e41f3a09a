#!/usr/bin/env bash
# The GPU check: on a GPU machine with Python, CuPy, PyTorch and JAX but no network,
# install the project's other dependencies from a local wheel folder, run the GPU tests
# (exactness against the CPU float64 reference, chunk invariance, no synchronisation in
# the hot path, the cell kernels, gradients, CuPy-backed Dask chunks on a mixed cluster,
# Zarr output) and the GPU benchmark, which prints a table. Under 5 minutes.
# Usage: scripts/gpu_check.sh WHEEL_DIR [--quick]   (WHEEL_DIR from scripts/gpu_wheels.sh)
set -euo pipefail
wheels=${1:?usage: scripts/gpu_check.sh WHEEL_DIR [--quick]}
shift
cd "$(dirname "$0")/.."
# The machine's python3 (itself a virtual environment holding CuPy, torch and JAX)
# runs everything; the wheels go to a folder of their own on PYTHONPATH.
site=${GPU_CHECK_SITE:-/tmp/rnnflow-gpu-site}
python3 -m pip install --quiet --no-index --no-deps --no-cache-dir --upgrade --target "$site" \
    "$wheels"/*.whl
export PYTHONPATH=$PWD:$site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 -c 'import cupy; print("cupy", cupy.__version__, "CUDA", cupy.cuda.runtime.runtimeGetVersion())'
python3 -m pytest -q -p no:cacheprovider tests/rnncore/test_gpu.py
python3 -m benchmarks.gpu "$@"

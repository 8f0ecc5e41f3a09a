#!/usr/bin/env bash
# The GPU check: on a GPU machine with Python, CuPy, PyTorch and JAX but no network,
# install the project's other dependencies from a local wheel folder, run the GPU tests
# (exactness against the CPU float64 reference, chunk invariance, no synchronisation in
# the hot path, CuPy-backed Dask chunks) and the GPU benchmark. Under 5 minutes.
# Usage: scripts/gpu_check.sh WHEEL_DIR [--quick]   (WHEEL_DIR from scripts/gpu_wheels.sh)
set -euo pipefail
wheels=${1:?usage: scripts/gpu_check.sh WHEEL_DIR [--quick]}
shift
cd "$(dirname "$0")/.."
env=${GPU_CHECK_ENV:-/tmp/rnnflow-gpu-env}
python3 -m venv --system-site-packages "$env"   # keeps the machine's CuPy, torch, JAX
"$env/bin/pip" install --quiet --no-index --find-links "$wheels" \
    "dask[array,distributed]" zarr "h5netcdf[h5py]" safetensors pytest hypothesis
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
"$env/bin/python" -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_scan.py \
    tests/test_cells_linear.py tests/test_chunked.py
"$env/bin/python" -m benchmarks.gpu "$@"

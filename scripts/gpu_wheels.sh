#!/usr/bin/env bash
# Download the wheels scripts/gpu_check.sh installs on a GPU machine without network:
# the packages rnncore and its GPU tests import that the machine's image lacks (it has
# numpy, pandas, xarray, numba, h5py, CuPy, torch, JAX, pytest, hypothesis, ...), each
# without its dependencies and at the version this checkout's environment tests with.
# Usage: scripts/gpu_wheels.sh [DIR]   (default: gpu-wheels/, ignored by git)
set -euo pipefail
dir=${1:-gpu-wheels}
python=${PYTHON:-.venv/bin/python}
mkdir -p "$dir"
packages=$("$python" - <<'PY'
from importlib.metadata import version

names = ["dask", "distributed", "zarr", "numcodecs", "google-crc32c", "donfig", "h5netcdf",
         "zict", "tornado", "tblib", "locket", "partd"]
print(" ".join(f"{n}=={version(n)}" for n in names))
PY
)
# shellcheck disable=SC2086
"$python" -m pip download --quiet --no-deps --dest "$dir" --only-binary=:all: \
    --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 $packages
echo "wheels in $dir: $(ls "$dir" | wc -l) files, $(du -sh "$dir" | cut -f1)"

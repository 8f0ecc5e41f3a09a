#!/usr/bin/env bash
# Download the wheels scripts/gpu_check.sh installs on a GPU machine without network:
# the project's pure-Python dependencies (and the few compiled ones) for CPython 3.12.
# Usage: scripts/gpu_wheels.sh [DIR]   (default: gpu-wheels/, ignored by git)
set -euo pipefail
dir=${1:-gpu-wheels}
mkdir -p "$dir"
python3 -m pip download --quiet --dest "$dir" --only-binary=:all: \
    --python-version 3.12 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_28_x86_64 --implementation cp \
    "dask[array,distributed]>=2024.12" "zarr>=3" "h5netcdf[h5py]>=1.3" "safetensors>=0.4" \
    pytest hypothesis
echo "wheels in $dir: $(ls "$dir" | wc -l) files, $(du -sh "$dir" | cut -f1)"

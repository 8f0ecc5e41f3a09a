"""The flows' default paths and settings, as plain values: no Prefect, no Dask.

The flows' signatures use these, and the ``rnnflow`` command line evaluates the
signatures' defaults with them without importing the flows
(:mod:`rnnflow.flows.options`).
"""

from __future__ import annotations

__all__ = ["ADDRESS_ENV", "DEFAULT_FORECASTER", "OUTPUT_ROOT", "SAMPLE_DATA", "default_output"]

#: The sample dataset (``rnnflow generate-data`` writes it), relative to the working directory.
SAMPLE_DATA = "data/sample.zarr"
#: Where the flows write by default, relative to the working directory.
OUTPUT_ROOT = "output"
#: The forecaster the weekly fit saves and the nightly forecast loads.
DEFAULT_FORECASTER = f"{OUTPUT_ROOT}/forecaster.safetensors"
#: Environment variable holding the address of an existing Dask scheduler to run on.
ADDRESS_ENV = "RNNFLOW_DASK_ADDRESS"


def default_output(flow: str) -> str:
    """The default output directory of ``flow``."""
    return f"{OUTPUT_ROOT}/{flow}"

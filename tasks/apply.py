"""The task that runs a saved :class:`rnncore.Model` over a dataset and writes the result."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

import rnncore
from rnncore.io import open_dataset, write_zarr

from .data import ChunkPlan
from .runtime import cluster_compute

__all__ = ["run_model"]


@task(cache_policy=NO_CACHE)
def run_model(data: str, model: str, plan: ChunkPlan, path: str, variable: str, method: str) -> str:
    """Run the model saved at ``model`` over every series of ``data`` (chunked as
    ``plan`` says, time chunks stitched by :func:`rnncore.run`) and write the per-step
    ``output`` and final ``state`` to the Zarr store ``path``, atomically, replacing an
    earlier one. The run and the write are one Dask graph, computed on the cluster.

    Returns
    -------
    str
        ``path``.

    Raises
    ------
    rnncore.ModelFileError
        If ``model`` is missing or not a model file.
    ValueError
        If the model does not fit the data (its ``input_size`` is not the number of
        features of ``variable``).
    """
    loaded = rnncore.Model.load(model)
    with cluster_compute():
        ds = open_dataset(data, chunks=plan.chunks)
        result = rnncore.run(loaded, ds, variable=variable, method=method)
        result.attrs.update(source=data, model_file=model)
        return str(write_zarr(result, path, overwrite=True))

"""The task that runs a saved :class:`rnncore.Model` over a dataset and writes the result."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

import rnncore
from rnncore.incremental import run_incremental
from rnncore.io import open_dataset

from .data import ChunkPlan
from .runtime import cluster_compute

__all__ = ["run_model"]


@task(cache_policy=NO_CACHE)
def run_model(
    data: str,
    model: str,
    plan: ChunkPlan,
    path: str,
    variable: str,
    method: str,
    incremental: bool = True,
) -> dict[str, Any]:
    """Run the model saved at ``model`` over every series of ``data`` (chunked as
    ``plan`` says, time chunks stitched by :func:`rnncore.run`) and write the per-step
    ``output`` and final ``state`` to the Zarr store ``path``, and the state store
    beside it (:func:`rnncore.incremental.run_incremental`). With ``incremental`` and a
    state store there, only the steps after each series' stored timestamp are run and
    ``path`` is updated; else everything is run and ``path`` replaced, atomically.
    The runs and the writes are Dask graphs, computed on the cluster.

    Returns
    -------
    dict
        ``result`` (``path``), ``state`` (the state store) and the run's figures
        (:meth:`rnncore.incremental.IncrementalRun.summary`: mode, steps read, series
        resumed, cold, recomputed and removed).

    Raises
    ------
    rnncore.ModelFileError
        If ``model`` is missing or not a model file.
    ValueError
        If the model does not fit the data (its ``input_size`` is not the number of
        features of ``variable``), or the state store does not fit the model or the
        data (:class:`rnncore.InputError`, naming what differs).
    """
    loaded = rnncore.Model.load(model)
    with cluster_compute():
        ds = open_dataset(data, chunks=plan.chunks)
        done = run_incremental(
            loaded,
            ds,
            path,
            variable=variable,
            full=not incremental,
            method=method,
            attrs={"source": data, "model_file": model},
        )
    return {"result": str(done.output), "state": str(done.state), **done.summary()}

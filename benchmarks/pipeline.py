"""Pipeline benchmarks: rnncore.run over Zarr data on a LocalCluster (rows 4 to 6).

Each figure is a ratio measured side by side in the same run:

4. end-to-end throughput of ``open_dataset -> rnncore.run -> write_zarr`` on a
   LocalCluster, divided by the kernel-only throughput of the same model on one of
   the same chunks already in memory (the overhead ratio, reported as
   kernel / end-to-end so that 1.0 is no overhead); and 2 workers divided by 1;
5. one long series chunked in time: 2 workers divided by 1 (the time-slicing speedup);
6. the cluster's peak resident memory during row 4 beside the dataset's size.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import dask.array as da
import numba
import numpy as np
import xarray as xr
from distributed import Client, LocalCluster
from distributed.diagnostics import MemorySampler

from rnncore import Model, run
from rnncore.io import open_dataset, write_zarr
from rnncore.synthetic import write_synthetic

GB = 1e9


# One thread per worker: scaling is measured in workers, not threads. (rnncore's Dask
# tasks run their numba kernels on one thread by themselves.)
_ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def _cluster(workers: int) -> LocalCluster:
    return LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        env=_ONE_THREAD,
    )


def _end_to_end(model: Model, source: Path, out: Path, workers: int) -> tuple[float, float]:
    """Seconds to open, run and write, and the cluster's peak memory (bytes)."""
    with _cluster(workers) as cluster, Client(cluster) as client:
        client.run(lambda: None)  # workers up before the clock starts
        os.sync()  # earlier writes (the dataset, a previous output) are not flushed in the run
        sampler = MemorySampler()
        start = time.perf_counter()
        with sampler.sample("run", client=client, measure="process", interval=0.2):
            result = run(model, open_dataset(source), variable="y")
            write_zarr(result[["output"]], out, overwrite=True)
        elapsed = time.perf_counter() - start
        peak = float(sampler.to_pandas()["run"].max())
    return elapsed, peak


def pipeline_rows(n_series: int, n_steps: int, hidden: int = 64) -> list[dict]:
    """Rows 4 and 6: overhead ratio, scaling from 1 to 2 workers, peak memory.

    The model is row 2's MinGRU layer with readout (H=64). The overhead is mostly
    Zarr decoding and encoding, a fixed cost per byte, so a lighter model shows a
    larger ratio: pass ``hidden`` to see it.
    """
    model = Model.init("MinGRU", 1, [hidden], output_size=1, seed=0)
    workdir = Path(tempfile.mkdtemp(prefix="rnnflow-bench-"))
    try:
        source = write_synthetic(
            workdir / "data.zarr", n_series, n_steps, series_chunk=2000, time_chunk=4380
        )
        data = open_dataset(source)
        size = data.y.nbytes
        block = data.y.isel(
            series=slice(0, data.y.chunks[0][0]), time=slice(0, data.y.chunks[1][0])
        )
        x = block.values.T[..., None]  # time-major view of the stored layout, as tasks see it
        threads = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            model(x)  # compile
            start = time.perf_counter()
            model(x)
            kernel_rate = x.size / (time.perf_counter() - start)
        finally:
            numba.set_num_threads(threads)
        times, peaks = {}, {}
        for workers in (1, 2):
            times[workers], peaks[workers] = _end_to_end(
                model, source, workdir / "out.zarr", workers
            )
        steps = n_series * n_steps
        shape = f"{n_series} x {n_steps} float32 ({size / GB:.2f} GB), MinGRU H={hidden}"
        two_rate = steps / times[2]
        return [
            {
                "row": "4 pipeline overhead (kernel-only / end-to-end per worker)",
                "shapes": shape,
                "ours": f"{two_rate / 2 / 1e6:.2f} M steps/s/worker",
                "peer": f"{kernel_rate / 1e6:.2f} M steps/s kernel-only",
                "ratio": kernel_rate / (two_rate / 2),
                "target": "<= 1.3",
            },
            {
                "row": "4 pipeline scaling (2 workers / 1)",
                "shapes": shape,
                "ours": f"{times[2]:.1f} s",
                "peer": f"{times[1]:.1f} s",
                "ratio": times[1] / times[2],
                "target": ">= 1.7",
            },
            {
                "row": "6 peak cluster RSS in GB (2 workers), beside the dataset",
                "shapes": shape,
                "ours": f"{peaks[2] / GB:.2f} GB",
                "peer": f"dataset {size / GB:.2f} GB",
                "ratio": peaks[2] / GB,
                "target": "<= 2",
            },
        ]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def time_slicing_row(n_steps: int, chunk: int, hidden: int = 8) -> list[dict]:
    """Row 5: one long series chunked in time, time-sliced on 2 workers against 1.

    Both runs stitch (``method="parallel"``); beside them, carrying the state on one
    worker (what ``"auto"`` picks there), which does half the work.
    """
    model = Model.init("MinGRU", 1, [hidden], output_size=1, seed=0)
    values = da.random.default_rng(0).standard_normal((1, n_steps), chunks=(1, chunk))
    series = xr.DataArray(values.astype(np.float32), dims=("series", "time"))
    times = {}
    for workers, method in ((1, "parallel"), (2, "parallel"), (1, "sequential")):
        with _cluster(workers) as cluster, Client(cluster) as client:
            client.run(lambda: None)
            total = run(model, series, method=method).output.sum()
            total.compute()  # warm-up: compile on every worker
            start = time.perf_counter()
            total.compute()
            times[workers, method] = time.perf_counter() - start
    shapes = f"1 x {n_steps:.0e} steps, {math.ceil(n_steps / chunk)} chunks, MinGRU H={hidden}"
    return [
        {
            "row": "5 time slicing, one series (2 workers / 1)",
            "shapes": shapes,
            "ours": f"{times[2, 'parallel']:.1f} s",
            "peer": f"{times[1, 'parallel']:.1f} s",
            "ratio": times[1, "parallel"] / times[2, "parallel"],
            "target": ">= 1.7",
        },
        {
            "row": "5 time slicing on 2 workers / carrying on 1",
            "shapes": shapes,
            "ours": f"{times[2, 'parallel']:.1f} s",
            "peer": f"{times[1, 'sequential']:.1f} s",
            "ratio": times[1, "sequential"] / times[2, "parallel"],
            "target": "-",
        },
    ]

"""rnncore.run on a real distributed LocalCluster with worker processes."""

import dask
import numpy as np
import pytest
import xarray as xr
from distributed import Client, LocalCluster, Nanny, Scheduler, SpecCluster, get_task_stream

from rnncore import Model, run
from rnncore.chunked import scheduler_slots

pytestmark = pytest.mark.slow  # LocalClusters of worker processes


@pytest.fixture(scope="module")
def client():
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@pytest.mark.parametrize(
    ("cell", "method"),
    [
        ("MinGRU", "auto"),
        ("MinLSTM", "parallel"),
        ("QRNN", "sequential"),
        ("LSTM", "auto"),
        ("GRU", "parallel"),
    ],
)
def test_run_on_local_cluster_equals_in_memory(client, cell, method):
    rng = np.random.default_rng(5)
    values = rng.normal(size=(30, 101, 1)).astype(np.float32)
    values[rng.uniform(size=values.shape) < 0.1] = np.nan
    data = xr.DataArray(values, dims=("series", "time", "feature"))
    model = Model.init(cell, 1, [8, 4], output_size=1, seed=2)
    expected = run(model, data)
    result = run(model, data.chunk({"series": 7, "time": 13}), method=method, tol=1e-7)
    computed = result.compute()
    assert len(client.scheduler_info()["workers"]) == 2
    xr.testing.assert_allclose(computed.output, expected.output, rtol=1e-5, atol=1e-5)
    xr.testing.assert_allclose(computed.state, expected.state, rtol=1e-5, atol=1e-5)


def test_scheduler_slots_count_the_cluster_threads(client):
    assert scheduler_slots() == 2


def test_resource_annotated_tasks_run_only_on_workers_that_have_them():
    """A mixed cluster: only the worker declaring GPU=1 runs the model's tasks."""
    rng = np.random.default_rng(6)
    data = xr.DataArray(rng.normal(size=(12, 60)), dims=("series", "time"))
    model = Model.init("MinGRU", 1, [4], output_size=1, seed=3, dtype=np.float64)
    expected = run(model, data)
    workers = {
        "cpu": {"cls": Nanny, "options": {"nthreads": 1}},
        "gpu": {"cls": Nanny, "options": {"nthreads": 1, "resources": {"GPU": 1}}},
    }
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": ":0"}}  # any free port
    with (
        SpecCluster(workers=workers, scheduler=scheduler) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(2)
        result = run(model, data.chunk({"series": 4, "time": 15}), resources={"GPU": 1})
        # low-level fusion would drop the annotations (dask/dask#7036)
        with (
            get_task_stream(client) as stream,
            dask.config.set({"optimization.fuse.active": False}),
        ):
            computed = result.compute()
        gpu_worker = next(
            address
            for address, info in client.scheduler_info()["workers"].items()
            if info["resources"].get("GPU")
        )
    ran_on = {t["worker"] for t in stream.data if "rnncore-run" in str(t["key"])}
    assert ran_on == {gpu_worker}
    xr.testing.assert_allclose(computed.output, expected.output, rtol=1e-12)

"""Fixtures of the rnncore tests: one in-process Dask cluster per module that asks for it."""

import pytest
from distributed import Client, LocalCluster


@pytest.fixture(scope="module")
def client():
    """A ``distributed.Client`` of a ``LocalCluster``: 2 workers of one thread, in process."""
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client

"""Session fixtures of the Prefect layer's tests: one Prefect test API, one two-worker
``LocalCluster``, one small dataset and one model file for the whole session.

(The Prefect environment itself, a temporary ``PREFECT_HOME`` without analytics, is set
by the root ``tests/conftest.py`` before anything imports Prefect.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pipeline.support import N_SERIES, N_STEPS, SERIES_CHUNK, TIME_CHUNK


@pytest.fixture(scope="session")
def prefect_api() -> str:
    """A temporary Prefect API (``prefect_test_harness``) for the session; its URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=None):
        yield PREFECT_API_URL.value()


@pytest.fixture(scope="session")
def dask_address() -> str:
    """The scheduler address of a two-process ``LocalCluster`` shared by the session."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="session")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic Zarr store: 40 hourly series over four weeks."""
    from rnncore.synthetic import write_synthetic

    path = tmp_path_factory.mktemp("data") / "small.zarr"
    return write_synthetic(
        path, N_SERIES, N_STEPS, series_chunk=SERIES_CHUNK, time_chunk=TIME_CHUNK, seed=7
    )


@pytest.fixture(scope="session")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved two-layer MinGRU model reading one feature."""
    from rnncore import Model

    path = tmp_path_factory.mktemp("model") / "mingru.safetensors"
    return Model.init("MinGRU", 1, [8, 4], output_size=1, seed=3).save(path)

"""Fixtures for the tests of the Prefect layer (tasks, flows, deployments, CLI, notebook).

Import this module before anything that imports Prefect (``from conftest_prefect
import ...`` at the top of a test module): it gives the tests a temporary
``PREFECT_HOME``, turns analytics off and allows a slow first start of the API.
Test modules name it in ``pytest_plugins`` to share its session fixtures: one
Prefect test API, one two-worker ``LocalCluster`` and one small dataset for the
whole session. (PYTEST_DONT_REWRITE: it is imported before pytest loads it as a plugin.)
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
from pathlib import Path

_HOME = tempfile.mkdtemp(prefix="rnnflow-prefect-home-")
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
os.environ["PREFECT_HOME"] = _HOME
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.pop("RNNFLOW_DASK_ADDRESS", None)

import pytest  # noqa: E402

#: The small dataset's shape and storage chunks: four series blocks, two time chunks.
N_SERIES, N_STEPS, SERIES_CHUNK, TIME_CHUNK = 40, 24 * 28, 10, 336


def free_port() -> int:
    """A TCP port free on localhost now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**updates: str) -> dict[str, str]:
    """This process's environment without ``PREFECT_API_URL``, plus ``updates``."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return {**env, **updates}


def run_flow(flow, address: str, **parameters):
    """Run ``flow`` with ``parameters`` on the Dask cluster at ``address``; its result."""
    from flows.cluster import dask_runner

    return flow.with_options(task_runner=dask_runner(address))(**parameters)


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

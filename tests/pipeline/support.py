"""What the tests of the Prefect layer share: the small dataset's shape, ports, environments."""

from __future__ import annotations

import os
import socket

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
    from rnnflow.flows.cluster import dask_runner

    return flow.with_options(task_runner=dask_runner(address))(**parameters)

"""The flows' Dask cluster: which one (:func:`dask_runner`) and what a run records of it
(:func:`cluster_session`).

By default each flow run starts an embedded :class:`distributed.LocalCluster` sized
to the machine (Dask's default: one single-threaded worker process per core on a
small machine, fewer processes with more threads on larger ones) and closes it at
the end. Given a scheduler address, as an argument or in the
environment variable ``RNNFLOW_DASK_ADDRESS``, it runs on that cluster instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distributed import performance_report
from prefect import get_run_logger
from prefect.artifacts import create_link_artifact
from prefect.context import FlowRunContext
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect_dask import DaskTaskRunner

from .defaults import ADDRESS_ENV

__all__ = ["ADDRESS_ENV", "PERFORMANCE_REPORT", "ClusterSession", "cluster_session", "dask_runner"]

#: File name of the Dask performance report saved in a run's output directory.
PERFORMANCE_REPORT = "dask-report.html"


def dask_runner(address: str | None = None) -> DaskTaskRunner:
    """The task runner of rnnflow's flows.

    Parameters
    ----------
    address
        Address of a running Dask scheduler (``tcp://host:8786``). ``None`` reads
        ``RNNFLOW_DASK_ADDRESS``; if that is unset or empty, each flow run starts an
        embedded ``LocalCluster`` sized to the machine.

    Returns
    -------
    prefect_dask.DaskTaskRunner
    """
    address = address or os.environ.get(ADDRESS_ENV) or None
    return DaskTaskRunner(address=address) if address else DaskTaskRunner()


@dataclass(frozen=True)
class ClusterSession:
    """What :func:`cluster_session` knows of the run's cluster.

    Attributes
    ----------
    dashboard
        The Dask dashboard's URL (``None`` if the cluster has none).
    performance_report
        Where the Dask performance report is written when the session ends.
    start_s
        Seconds taken to start (or connect to) the cluster.
    workers
        Number of workers when the session began.
    """

    dashboard: str | None
    performance_report: Path
    start_s: float
    workers: int


@contextlib.contextmanager
def cluster_session(directory: str | Path) -> Iterator[ClusterSession]:
    """Start the flow run's cluster, log its dashboard, and record a performance report.

    To be entered in the body of a flow whose task runner is a
    :class:`~prefect_dask.DaskTaskRunner`. On entry the cluster is started (or
    connected to) and its dashboard link logged; everything computed inside goes
    into the Dask performance report ``directory/dask-report.html``, written on
    exit and linked from the artifact ``<flow name>-dask-report``.

    With Prefect's embedded API (``PREFECT_API_URL`` unset), the tasks submitted
    inside are told this run's API address, so that the Dask workers report to
    it rather than each starting an API of its own.

    Raises
    ------
    TypeError
        If the flow's task runner is not a ``DaskTaskRunner``.
    """
    context = FlowRunContext.get()
    runner = context.task_runner if context else None
    if not isinstance(runner, DaskTaskRunner):
        raise TypeError(
            f"cluster_session needs a flow run with a DaskTaskRunner; got {type(runner).__name__}"
        )
    logger = get_run_logger()
    report = Path(directory) / PERFORMANCE_REPORT
    report.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    client = runner.client
    session = ClusterSession(
        dashboard=client.dashboard_link,
        performance_report=report,
        start_s=time.perf_counter() - start,
        workers=len(client.scheduler_info(n_workers=-1)["workers"]),
    )
    logger.info(
        "Dask cluster %s: %d workers, ready in %.1f s; dashboard: %s",
        client.scheduler.address,
        session.workers,
        session.start_s,
        session.dashboard or "none",
    )
    api = PREFECT_API_URL.value() or str(context.client.api_url)
    with (
        temporary_settings(updates={PREFECT_API_URL: api}),
        client.as_current(),
        _performance_report(report, logger),
    ):
        yield session
    create_link_artifact(
        report.resolve().as_uri(),
        link_text="Dask performance report",
        key=f"{context.flow.name}-dask-report",
        description="The Dask performance report of this run (an HTML file beside its outputs)",
    )


@contextlib.contextmanager
def _performance_report(path: Path, logger: Any) -> Iterator[None]:
    """Dask's performance report of what runs inside, written on exit to a hidden
    temporary and renamed onto ``path``. A report that cannot be written (a full disk)
    is logged, not raised: it neither fails the run nor hides the run's own error."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    report = performance_report(filename=str(tmp))
    report.__enter__()
    try:
        yield
    finally:
        try:
            report.__exit__(*sys.exc_info())
            os.replace(tmp, path)
        except OSError as error:
            logger.warning("Dask performance report not written to %s: %s", path, error)
            tmp.unlink(missing_ok=True)

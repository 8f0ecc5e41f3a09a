"""The flows' Dask cluster: which one (:func:`dask_runner`) and what a run records of it
(:func:`cluster_session`).

By default each flow run starts an embedded :class:`distributed.LocalCluster` sized
to the machine (Dask's default: one single-threaded worker process per core on a
small machine, fewer processes with more threads on larger ones) and closes it at
the end. Given a scheduler address, as an argument or in the
environment variable ``RNNFLOW_DASK_ADDRESS``, it runs on that cluster instead.

The embedded cluster listens on 127.0.0.1 only, its dashboard too (Dask's default
dashboard address, ``:8787``, is every interface). A ``tls://`` scheduler is connected to
with Dask's own TLS settings (``distributed.comm.tls.*``, e.g. the environment variables
``DASK_DISTRIBUTED__COMM__TLS__CA_FILE``, ``..._TLS__CLIENT__CERT`` and
``..._TLS__CLIENT__KEY``), which the client reads; rnnflow adds nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
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

from rnncore.storage import Location, join, locate, write_file

from .defaults import ADDRESS_ENV

__all__ = ["ADDRESS_ENV", "PERFORMANCE_REPORT", "ClusterSession", "cluster_session", "dask_runner"]

#: File name of the Dask performance report saved in a run's output directory.
PERFORMANCE_REPORT = "dask-report.html"
#: Arguments of the embedded ``LocalCluster``: scheduler, workers and dashboard on loopback.
LOCAL_CLUSTER = {"host": "127.0.0.1", "dashboard_address": "127.0.0.1:8787"}


def dask_runner(address: str | None = None) -> DaskTaskRunner:
    """The task runner of rnnflow's flows.

    Parameters
    ----------
    address
        Address of a running Dask scheduler (``tcp://host:8786``). ``None`` reads
        ``RNNFLOW_DASK_ADDRESS``; if that is unset or empty, each flow run starts an
        embedded ``LocalCluster`` sized to the machine, listening on 127.0.0.1 only
        (:data:`LOCAL_CLUSTER`).

    Returns
    -------
    prefect_dask.DaskTaskRunner
    """
    address = address or os.environ.get(ADDRESS_ENV) or None
    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_kwargs=dict(LOCAL_CLUSTER))


@dataclass(frozen=True)
class ClusterSession:
    """What :func:`cluster_session` knows of the run's cluster.

    Attributes
    ----------
    dashboard
        The Dask dashboard's URL (``None`` if the cluster has none).
    performance_report
        Where the Dask performance report is written when the session ends: a
        :class:`~pathlib.Path` for a local output directory (a plain path or a
        ``file://`` URL), else the URL.
    start_s
        Seconds taken to start (or connect to) the cluster.
    workers
        Number of workers when the session began.
    """

    dashboard: str | None
    performance_report: Path | str
    start_s: float
    workers: int


@contextlib.contextmanager
def cluster_session(directory: str | Path) -> Iterator[ClusterSession]:
    """Start the flow run's cluster, log its dashboard, and record a performance report.

    To be entered in the body of a flow whose task runner is a
    :class:`~prefect_dask.DaskTaskRunner`. On entry the cluster is started (or
    connected to) and its dashboard link logged; everything computed inside goes
    into the Dask performance report ``directory/dask-report.html``, written on
    exit and linked from the artifact ``<flow name>-dask-report``. ``directory`` is
    a local path or an fsspec URL: Dask writes the report to a local temporary file,
    installed there whole (:func:`rnncore.storage.write_file`); one that cannot be
    written is logged as a warning.

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
    where = locate(join(directory, PERFORMANCE_REPORT))
    start = time.perf_counter()
    client = runner.client
    session = ClusterSession(
        dashboard=client.dashboard_link,
        performance_report=where.returned(),
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
        _performance_report(where, logger),
    ):
        yield session
    create_link_artifact(
        where.local.resolve().as_uri() if where.local is not None else where.url,
        link_text="Dask performance report",
        key=f"{context.flow.name}-dask-report",
        description="The Dask performance report of this run (an HTML file beside its outputs)",
    )


@contextlib.contextmanager
def _performance_report(where: Location, logger: Any) -> Iterator[None]:
    """Dask's performance report of what runs inside: Dask writes it to a local scratch
    file on exit, which is then installed on ``where`` whole (:func:`write_file`), failed
    run or not. A report that cannot be written (a full disk) is logged, not raised: it
    neither fails the run nor hides the run's own error."""
    with tempfile.TemporaryDirectory(prefix="rnnflow-") as scratch:
        written = Path(scratch) / PERFORMANCE_REPORT
        report = performance_report(filename=str(written))
        report.__enter__()
        try:
            yield
        finally:
            try:
                report.__exit__(*sys.exc_info())
                write_file(where, lambda tmp: shutil.copyfile(written, tmp))
            except OSError as error:
                logger.warning("Dask performance report not written to %s: %s", where, error)

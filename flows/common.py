"""Defaults and helpers shared by the flows."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, TypeVar

import psutil
from prefect.futures import PrefectFuture, as_completed
from tqdm import tqdm

from rnnflow.tasks.data import ChunkPlan, DatasetInfo, inspect_dataset, plan_chunks, prepare_input

from .cluster import ClusterSession
from .defaults import DEFAULT_FORECASTER, OUTPUT_ROOT, SAMPLE_DATA, default_output

__all__ = [
    "DEFAULT_FORECASTER",
    "OUTPUT_ROOT",
    "SAMPLE_DATA",
    "default_output",
    "gather",
    "open_input",
    "run_figures",
]

R = TypeVar("R")


def gather(futures: Sequence[PrefectFuture[R]], desc: str) -> list[R]:
    """The results of ``futures``, in order, failing at the first failure.

    A progress bar counts the finished futures when stderr is a terminal.
    """
    for future in tqdm(as_completed(list(futures)), total=len(futures), desc=desc, disable=None):
        future.result()  # raises now if this one failed
    return [future.result() for future in futures]


def open_input(
    data: str, output: str, variable: str, series_per_task: int | None, freq: str | None = None
) -> tuple[str, DatasetInfo, ChunkPlan]:
    """Find the flow's input (converting a long-format table into ``output``, on the grid
    of ``freq`` if given), describe it and plan its chunks. Returns the path to read,
    its description and the plan."""
    source = prepare_input(data, output, freq)
    info = inspect_dataset(source, variable)
    return source, info, plan_chunks(info, series_per_task)


def run_figures(
    session: ClusterSession, started: float, n_series: int, n_steps: int
) -> dict[str, Any]:
    """The figures every run reports: its size, wall time, throughput and fixed overhead.

    Parameters
    ----------
    session
        The run's cluster session.
    started
        ``time.perf_counter()`` when the flow body began.
    n_series, n_steps
        The size of the dataset processed.
    """
    elapsed = time.perf_counter() - started
    return {
        "series": n_series,
        "steps": n_steps,
        "series-steps": n_series * n_steps,
        "wall time (s)": round(elapsed, 2),
        "throughput (series-steps/s)": round(n_series * n_steps / elapsed),
        "workers": session.workers,
        "cluster start (s)": round(session.start_s, 2),
        "process start to flow start (s)": round(_process_age(started), 2),
    }


def _process_age(at: float) -> float:
    """Seconds from this process's start to the ``time.perf_counter()`` instant ``at``:
    imports and the Prefect API's start-up, when the process was started for the run."""
    then = time.time() - (time.perf_counter() - at)
    return then - psutil.Process().create_time()

"""What rnnflow's tasks share: the retry policy of I/O tasks, and where Dask work runs.

I/O tasks retry, but only on errors a retry can mend: a missing path, a corrupt
file or a mismatched model fails at once, with its own message.

A task that computes a Dask graph (fitting over the whole dataset, running a
model, writing a store) does so inside :func:`cluster_compute`. On a Dask worker,
where :class:`prefect_dask.DaskTaskRunner` runs tasks, the graph goes to the same
cluster through :func:`distributed.worker_client`, which also lets the task's
thread leave the worker's pool while it waits: a task waiting on its graph never
holds the thread its graph needs. Elsewhere the graph runs on Dask's default
scheduler.

Small files (reports, scores, plots) are written with :func:`rnncore.storage.write_file`:
local paths or fsspec URLs, never half-written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from distributed import get_worker, worker_client
from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

__all__ = ["PERMANENT_ERRORS", "cluster_compute", "io_task", "is_transient"]

#: Errors that retrying cannot mend: bad paths, unreadable or mismatched inputs.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    FileNotFoundError,
    FileExistsError,
    ImportError,  # a URL whose protocol needs a package not installed (s3fs, ...)
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
    ValueError,  # includes rnncore.ModelFileError
    KeyError,
    TypeError,
)

#: Retries of an I/O task after a transient error, and the delay before each.
IO_RETRIES = 2
IO_RETRY_DELAY_S = 2.0

F = TypeVar("F", bound=Callable[..., Any])


def is_transient(task: Task[..., Any], task_run: TaskRun, state: State) -> bool:
    """Retry condition of I/O tasks: retry unless the error is among :data:`PERMANENT_ERRORS`."""
    return not isinstance(state.result(raise_on_failure=False), PERMANENT_ERRORS)


def io_task(**options: Any) -> Callable[[F], Task[..., Any]]:
    """``@task`` for I/O: retries on transient errors and no caching (what it reads may change).

    Keywords override these defaults and are passed on to :func:`prefect.task`.
    """
    defaults = {
        "retries": IO_RETRIES,
        "retry_delay_seconds": IO_RETRY_DELAY_S,
        "retry_condition_fn": is_transient,
        "cache_policy": NO_CACHE,
    }
    return task(**{**defaults, **options})


@contextlib.contextmanager
def cluster_compute() -> Iterator[None]:
    """Run the Dask computations inside on this task's cluster (see the module docstring)."""
    try:
        get_worker()
    except ValueError:  # not on a Dask worker
        yield
        return
    with worker_client():
        yield

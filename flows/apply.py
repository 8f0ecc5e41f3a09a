"""Run any saved :class:`rnncore.Model` over a dataset: per-step outputs and final states.

Outputs, in the ``output`` directory: ``apply.zarr`` (the :func:`rnncore.run` result:
``output`` ``(series, time, channel)`` and ``state`` ``(series, layer, state_unit)``,
with the input's coordinates and the run's attributes), ``apply.state.zarr`` (the
state store the next run continues from), ``report.json`` and ``dask-report.html``.

Runs are incremental by default (:func:`rnncore.incremental.run_incremental`): with a
state store from an earlier run of the same model on data of the same frequency, only
the steps after each series' stored timestamp are run and ``apply.zarr`` is updated;
new series start cold, series with late corrections are recomputed. ``--full`` runs
everything and starts a fresh state store. The report says which, how many
series-steps were read, and which series were resumed, cold, recomputed or removed.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from prefect import flow

from rnncore.locking import output_lock
from rnncore.storage import join
from rnnflow.tasks.apply import run_model
from rnnflow.tasks.report import report

from .cluster import cluster_session, dask_runner
from .common import gather, open_input, run_figures
from .defaults import SAMPLE_DATA, default_output

__all__ = ["APPLY_STORE", "apply"]

#: The model's outputs and final states, in the output directory.
APPLY_STORE = "apply.zarr"


@flow(name="apply", task_runner=dask_runner())
def apply(
    model: str,
    data: str = SAMPLE_DATA,
    output: str = default_output("apply"),
    variable: str = "y",
    method: Literal["auto", "parallel", "sequential", "prefix_scan", "multiple_shooting"] = "auto",
    series_per_task: int | None = None,
    incremental: bool = True,
) -> dict[str, Any]:
    """Run the model saved at ``model`` over every series of ``data``.

    Parameters
    ----------
    model
        A model saved with ``rnncore.Model.save`` (safetensors).
    data
        Zarr store, NetCDF file, or CSV/Parquet long-format table (``unique_id, ds, y``).
    output
        Directory for the result (``apply.zarr``) and the reports: a local path or an
        fsspec URL (``s3://bucket/runs/apply``, ``file://``, ...).
    variable
        The data variable to run over; its dims beyond ``series`` and ``time``, if
        any, are the model's input features.
    method
        How time chunks are joined: ``auto``, ``parallel`` or an algorithm by name
        (see ``rnncore.run``).
    series_per_task
        Series per block of work (one task each; Dask chunks are no larger), in whole
        storage chunks; ``None``: about 8 blocks.
    incremental
        Continue from the state store of the previous run (``--incremental``), reading
        only the new steps; ``--full`` runs over the whole history and starts a fresh one.

    Returns
    -------
    dict
        ``outputs`` (what was written, where), ``figures`` and ``dashboard``.
    """
    started = time.perf_counter()
    with output_lock(output, "apply"), cluster_session(output) as session:
        source, info, plan = open_input(data, output, variable, series_per_task)
        store = str(join(output, APPLY_STORE))
        (done,) = gather(
            [run_model.submit(source, model, plan, store, variable, method, incremental)],
            "apply",
        )
        figures = run_figures(session, started, info.n_series, info.n_steps)
        figures |= {k: v for k, v in done.items() if k not in ("result", "state")}
        outputs = {
            "result": done["result"],
            "state store": done["state"],
            "performance report": str(session.performance_report),
        }
        outputs["report"] = report(output, "apply", figures, outputs)
    return {"outputs": outputs, "figures": figures, "dashboard": session.dashboard}

"""The weekly refit: fit and save the forecaster, backtest it, publish the metrics.

A refitted forecaster has a new fingerprint: the next nightly forecast finds its state
store (:mod:`rnnflow.flows.forecast`) made by another forecaster, reads every series in
full once, and starts a fresh store.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from prefect import flow

from rnncore.locking import output_lock
from rnncore.storage import join
from rnnflow.tasks.data import ChunkPlan
from rnnflow.tasks.forecast import backtest_forecaster, fit_forecaster, metrics_path, save_metrics
from rnnflow.tasks.report import report

from .cluster import cluster_session, dask_runner
from .common import gather, open_input, run_figures
from .defaults import DEFAULT_FORECASTER, SAMPLE_DATA, default_output

__all__ = ["BACKTEST_STORE", "fit", "refit"]

#: The per-series backtest scores, in the fit's output directory.
BACKTEST_STORE = "backtest.zarr"


def refit(
    data: str,
    plan: ChunkPlan,
    forecaster: str,
    output: str,
    horizon: int,
    levels: tuple[float, ...],
    variable: str,
    backtest_windows: int,
    predict: bool = False,
    freq: str | None = None,
    season: list[int] | None = None,
    exog: list[str] | None = None,
    encoder: str = "reservoir",
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Fit and save a forecaster and, at the same time, backtest one like it.

    To be called inside a flow: the fit and the backtest are submitted as two
    tasks. The per-series scores go to ``output/backtest.zarr``, the overall ones
    beside the forecaster (:func:`rnnflow.tasks.forecast.metrics_path`). ``freq``,
    ``season``, ``exog`` and ``encoder`` are the forecaster's
    (:func:`rnnflow.tasks.forecast.new_forecaster`).

    Returns
    -------
    backtested
        The backtest's ``scores`` and markdown ``table``; ``None`` when
        ``backtest_windows`` is 0.
    forecasts
        With ``predict``, the forecasts of every series made in the fitting pass
        (see :func:`rnnflow.tasks.forecast.fit_forecaster`); else ``None``.
    """
    settings = {"freq": freq, "season": season, "exog": exog, "encoder": encoder}
    futures = [
        fit_forecaster.submit(
            data, plan, forecaster, horizon, levels, variable, predict, **settings
        )
    ]
    if backtest_windows:
        store = str(join(output, BACKTEST_STORE))
        futures.append(
            backtest_forecaster.submit(
                data, plan, store, horizon, levels, backtest_windows, variable, **settings
            )
        )
    forecasts, *backtested = gather(futures, "fit")
    if backtested:
        save_metrics(forecaster, backtested[0])
    return (backtested[0] if backtested else None), forecasts


@flow(name="fit", task_runner=dask_runner())
def fit(
    data: str = SAMPLE_DATA,
    forecaster: str = DEFAULT_FORECASTER,
    output: str = default_output("fit"),
    horizon: int = 24,
    levels: tuple[float, ...] = (0.8, 0.95),
    variable: str = "y",
    backtest_windows: int = 4,
    series_per_task: int | None = None,
    freq: str | None = None,
    season: list[int] | None = None,
    exog: list[str] | None = None,
    encoder: Literal["reservoir", "learned"] = "reservoir",
) -> dict[str, Any]:
    """Fit the forecaster on every series, save it, backtest it and publish the scores.

    Parameters
    ----------
    data
        Zarr store, NetCDF file, or CSV/Parquet long-format table (``unique_id, ds, y``
        and any exogenous columns).
    forecaster
        Where to save the fitted forecaster (safetensors); its backtest scores go
        beside it (``.metrics.json``), where the forecast flow finds them. A local
        path or an fsspec URL, as ``output``.
    output
        Directory for the per-series backtest scores (``backtest.zarr``), the run
        report (``report.json``) and the Dask performance report: a local path or an
        fsspec URL (``s3://bucket/runs/fit``, ``file://``, ...).
    horizon
        Steps ahead to forecast.
    levels
        Coverage of the prediction intervals, each in (0, 1).
    variable
        The data variable to forecast.
    backtest_windows
        Windows of ``horizon`` steps, at the end of the data, to backtest over (0: none).
    series_per_task
        Series per block of work (one task each; Dask chunks are no larger), in whole
        storage chunks; ``None``: about 8 blocks.
    freq
        Pandas frequency of the data (``h``, ``30min``, ``D``, ``W-SUN``, ``MS``,
        ``QS-DEC``, ...), saved with the forecaster; ``None`` infers it. A long table
        is placed on its grid, missing steps as NaN: give it for a table whose
        timestamps have gaps.
    season
        Steps per season, one or more (``12``; ``48 336``); ``None`` for the
        frequency's (24 and 168 hourly, 7 daily, 52 weekly, 12 monthly, ...).
    exog
        Exogenous variables of the data (columns of a long table) whose values at
        each forecast origin are features; ``None`` for none.
    encoder
        ``reservoir``: fixed random units (the default, the better by the accuracy
        benchmark); ``learned``: gated units trained on the forecast loss
        (:mod:`rnncore.forecast.learned`), slower to fit, and with no incremental
        forecasts.

    Returns
    -------
    dict
        ``outputs`` (what was written, where), ``figures`` and ``dashboard``.
    """
    started = time.perf_counter()
    with output_lock(output, "fit"), cluster_session(output) as session:
        source, info, plan = open_input(data, output, variable, series_per_task, freq)
        backtested, _ = refit(
            source,
            plan,
            forecaster,
            output,
            horizon,
            levels,
            variable,
            backtest_windows,
            freq=freq,
            season=season,
            exog=exog,
            encoder=encoder,
        )
        outputs = {"forecaster": forecaster, "performance report": str(session.performance_report)}
        if backtested is not None:
            outputs |= {
                "backtest": str(join(output, BACKTEST_STORE)),
                "metrics": str(metrics_path(forecaster)),
            }
        figures = run_figures(session, started, info.n_series, info.n_steps)
        figures |= {"freq": info.freq or freq, **(backtested["scores"] if backtested else {})}
        outputs["report"] = report(
            output, "fit", figures, outputs, notes=backtested["table"] if backtested else ""
        )
    return {"outputs": outputs, "figures": figures, "dashboard": session.dashboard}

"""The nightly job: forecast every series with the saved forecaster (fitting one if none).

Outputs, in the ``output`` directory:

``forecast.zarr``
    The forecasts, a Zarr (format 3) store that ``xarray.open_zarr`` opens:
    ``mean`` ``(series, step)``, ``lower`` and ``upper`` ``(series, step, level)``,
    ``all_missing`` ``(series)`` (series with no data, whose forecasts are NaN),
    ``method`` ``(series)`` (how each series was forecast: ``model``,
    ``seasonal_naive`` or ``naive`` for series too short for the model, ``none``)
    and ``last_observed`` ``(series)``; coordinates ``series``, ``step`` (1 to
    ``horizon``), ``level`` and ``time`` ``(series, step)``, the forecast
    timestamps, each series' steps after its own last observation; attributes
    ``source`` (the data), ``forecaster`` (its file), ``flow_run``, ``created``,
    and those of :meth:`rnncore.forecast.Forecaster.predict`: ``variable``,
    ``freq``, ``origin``, ``ended_early`` (the series last observed before the
    data's end), ``model_fingerprint``, ``rnnflow_version``, ``training_start``
    and ``training_end``. Written atomically: a failed run leaves the previous
    store, or none.
``forecast.csv`` (or ``.parquet``, ...)
    Only when the data are a CSV or Parquet long-format table: the forecasts in
    the same format (the input's suffix), StatsForecast's columns ``unique_id, ds,
    RNNFlow, RNNFlow-lo-80, RNNFlow-hi-80, RNNFlow-lo-95, RNNFlow-hi-95`` (one pair
    per level; :func:`rnnflow.tasks.forecast.write_forecast_table`). Written atomically.
``forecast.png``
    History and forecasts of a few series.
``state.zarr``
    The state store of an incremental run (:mod:`rnncore.statestore`): what the next
    night's run continues from, so that it reads only the steps that arrived since
    and a trailing window of each series
    (:meth:`rnncore.forecast.Forecaster.predict` with ``state``). A store made by
    another forecaster (the weekly refit saved a new one), or one not completely
    written, is not used: that night reads every series in full and writes a fresh
    store. A ``--full`` run neither reads nor writes it.
``report.json``
    The run's figures and outputs (also published as Prefect artifacts). The
    figures include ``freq`` and ``ended early``, the number of series last
    observed before the data's end, with the first :data:`ENDED_EARLY_LISTED` of
    them listed in ``ended early (series)``; ``state store`` (continued from, a
    fresh one and why, or not used), the ``series resumed``, ``series cold`` (new,
    read in full), ``series recomputed`` (their data changed before the store's
    timestamp, read in full) and ``series removed``, and ``steps read`` (series x
    steps read, trailing windows included) and ``steps new``.
``dask-report.html``
    The Dask performance report.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Literal

from prefect import flow
from prefect.runtime import flow_run

from rnncore.locking import output_lock
from rnncore.longformat import long_suffix
from rnncore.storage import join, locate
from rnnflow.tasks.forecast import (
    ended_early,
    forecast_block,
    forecast_incremental,
    load_forecaster,
    write_forecast,
    write_forecast_table,
)
from rnnflow.tasks.report import plot_forecasts, report

from .cluster import cluster_session, dask_runner
from .common import gather, open_input, run_figures
from .defaults import DEFAULT_FORECASTER, SAMPLE_DATA, default_output
from .fit import refit

__all__ = [
    "ENDED_EARLY_LISTED",
    "FORECAST_PLOT",
    "FORECAST_STORE",
    "FORECAST_TABLE",
    "STATE_STORE",
    "forecast",
]

#: The forecasts and their plot, in the output directory.
FORECAST_STORE, FORECAST_PLOT = "forecast.zarr", "forecast.png"
#: The state store of incremental runs, in the output directory.
STATE_STORE = "state.zarr"
#: The name of the long-format forecasts, given the input table's suffix.
FORECAST_TABLE = "forecast"
#: The series ended early that the run report lists by name, at most.
ENDED_EARLY_LISTED = 20


@flow(name="forecast", task_runner=dask_runner())
def forecast(
    data: str = SAMPLE_DATA,
    output: str = default_output("forecast"),
    forecaster: str = DEFAULT_FORECASTER,
    horizon: int = 24,
    levels: tuple[float, ...] = (0.8, 0.95),
    variable: str = "y",
    backtest_windows: int = 1,
    series_per_task: int | None = None,
    plot_series: int = 4,
    freq: str | None = None,
    season: list[int] | None = None,
    exog: list[str] | None = None,
    encoder: Literal["reservoir", "learned"] = "reservoir",
    incremental: bool = True,
) -> dict[str, Any]:
    """Forecast every series of ``data`` and write the forecasts and a run report.

    Parameters
    ----------
    data
        Zarr store, NetCDF file, or CSV/Parquet long-format table (``unique_id, ds, y``
        and any exogenous columns); a table's forecasts are also written as a table.
    output
        Directory for the forecasts and reports (see :mod:`rnnflow.flows.forecast`): a
        local path or an fsspec URL (``s3://bucket/runs/forecast``, ``file://``, ...).
    forecaster
        A forecaster saved by the fit flow (a local path or an fsspec URL). If there is
        no file there, one is fitted, backtested and saved there first, as the fit
        flow does.
    horizon
        Steps ahead to forecast.
    levels
        Coverage of the prediction intervals, each in (0, 1); used when fitting.
    variable
        The data variable to forecast.
    backtest_windows
        Windows to backtest over when a forecaster is fitted (0: none).
    series_per_task
        Series per block of work (one task each; Dask chunks are no larger), in whole
        storage chunks; ``None``: about 8 blocks.
    plot_series
        Series to plot (0: no plot).
    freq
        Pandas frequency of the data (``h``, ``30min``, ``D``, ``W-SUN``, ``MS``,
        ``QS-DEC``, ...); ``None`` infers it. A long table is placed on its grid,
        missing steps as NaN: give it for a table whose timestamps have gaps.
    season
        Steps per season, one or more (``12``; ``48 336``), used when fitting; ``None``
        for the frequency's (24 and 168 hourly, 7 daily, 52 weekly, 12 monthly, ...).
    exog
        Exogenous variables of the data (columns of a long table) whose values at
        each forecast origin are features, used when fitting; ``None`` for none.
    encoder
        The encoder, used when fitting: ``reservoir`` (fixed random units, the
        default) or ``learned`` (gated units trained on the forecast loss; slower to
        fit, and its forecasts read every series in full, as ``--full``).
    incremental
        Continue from the state store in ``output`` (``state.zarr``), reading only the
        steps after it and a trailing window of each series, with the forecasts of a
        full run, in one task whose Dask work spreads over the cluster; ``False``
        (``--full``): read every series in full, a task per block of series, and
        leave the store as it is.

    Returns
    -------
    dict
        ``outputs`` (what was written, where), ``figures`` and ``dashboard``.
    """
    started = time.perf_counter()
    with output_lock(output, "forecast"), cluster_session(output) as session:
        source, info, plan = open_input(data, output, variable, series_per_task, freq)
        increment = {"state store": "not used (--full)", "steps read": info.n_series * info.n_steps}
        if locate(forecaster).exists() and incremental:
            backtested = load_forecaster(forecaster)
            state = str(join(output, STATE_STORE))
            done = forecast_incremental.submit(source, forecaster, plan, horizon, variable, state)
            (result,) = gather([done], "forecast")
            blocks, increment = [result["forecast"]], increment | result["figures"]
        elif locate(forecaster).exists():
            backtested = load_forecaster(forecaster)
            futures = [
                forecast_block.submit(source, forecaster, plan, block, horizon, variable)
                for block in plan.blocks
            ]
            blocks = gather(futures, "forecast")
        else:
            increment["state store"] = "not used (the forecaster was fitted in this run)"
            backtested, forecasts = refit(
                source,
                plan,
                forecaster,
                output,
                horizon,
                levels,
                variable,
                backtest_windows,
                predict=True,
                freq=freq,
                season=season,
                exog=exog,
                encoder=encoder,
            )
            blocks = [forecasts]
        attrs = {
            "source": data,
            "forecaster": forecaster,
            "flow_run": flow_run.get_id(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        store = write_forecast(blocks, str(join(output, FORECAST_STORE)), attrs)
        outputs = {"forecast": store}
        suffix = long_suffix(data)
        if suffix is not None:
            table = str(join(output, f"{FORECAST_TABLE}{suffix}"))
            outputs["forecast table"] = write_forecast_table(store, table)
        outputs["performance report"] = str(session.performance_report)
        plot = None
        if plot_series:
            plot = plot_forecasts(
                source, store, str(join(output, FORECAST_PLOT)), variable, plot_series
            )
            outputs["plot"] = plot
        figures = run_figures(session, started, info.n_series, info.n_steps)
        late = ended_early(blocks)
        figures |= {
            "horizon": horizon,
            "freq": blocks[0]["attrs"]["freq"],
            "ended early": len(late),
            "ended early (series)": late[:ENDED_EARLY_LISTED],
            **increment,
            **(backtested["scores"] if backtested else {}),
        }
        outputs["report"] = report(
            output,
            "forecast",
            figures,
            outputs,
            plot=plot,
            notes=backtested["table"] if backtested else "",
        )
    return {"outputs": outputs, "figures": figures, "dashboard": session.dashboard}

"""Reporting: the forecast plot, the run report file and the run's Prefect artifacts."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run

from rnncore.io import open_dataset
from rnncore.storage import join, read_bytes, write_file

from .runtime import io_task

__all__ = ["REPORT_NAME", "forecast_figure", "plot_forecasts", "report"]

#: The run report written in every flow's output directory.
REPORT_NAME = "report.json"


def forecast_figure(history: xr.DataArray, forecast: xr.Dataset) -> Figure:
    """One panel per series: the recent history, the forecast mean and its intervals.

    Parameters
    ----------
    history
        ``(series, time)`` values before the forecasts.
    forecast
        ``mean`` ``(series, step)`` and ``lower``/``upper`` ``(series, step, level)``
        for the same series, with the forecast timestamps ``time``: ``(series, step)``,
        each series' own (:meth:`rnncore.forecast.Forecaster.predict`), or ``(step,)``
        shared by all.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If ``history`` holds no series.
    """
    n = history.sizes["series"]
    if n == 0:
        raise ValueError("no series to plot (every series of the data is missing?)")
    figure = Figure(figsize=(9, 1.9 * n + 0.4), layout="constrained")
    axes = np.atleast_1d(figure.subplots(n, 1, squeeze=False)[:, 0])
    levels = sorted(forecast["level"].values, reverse=True)
    for ax, series in zip(axes, history["series"].values, strict=True):
        past, ahead = history.sel(series=series), forecast.sel(series=series)
        ax.plot(past["time"].values, past.values, color="0.3", lw=1, label="history")
        for k, level in enumerate(levels):
            ax.fill_between(
                ahead["time"].values,
                ahead["lower"].sel(level=level).values,
                ahead["upper"].sel(level=level).values,
                color="tab:blue",
                alpha=0.15 + 0.15 * k,
                lw=0,
                label=f"{level:.0%} interval",
            )
        ax.plot(ahead["time"].values, ahead["mean"].values, color="tab:blue", lw=1.5, label="mean")
        ax.set_title(str(series), loc="left", fontsize=9)
        locator = AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        ax.tick_params(labelsize=8)
    axes[0].legend(fontsize=8, ncols=len(levels) + 2, loc="upper left")
    return figure


@io_task()
def plot_forecasts(
    data: str, forecast: str, path: str, variable: str, n_series: int = 4, n_history: int = 168
) -> str:
    """Plot the first ``n_series`` series that have forecasts, with the last ``n_history``
    steps of the data, to the PNG file ``path`` (a local path or an fsspec URL); returns
    the path written (:func:`rnncore.storage.write_file`'s, as a string)."""
    predicted = open_dataset(forecast)
    series = predicted["series"].values[~predicted["all_missing"].values][:n_series]
    history = open_dataset(data)[variable].sel(series=series).isel(time=slice(-n_history, None))
    figure = forecast_figure(history.load(), predicted.sel(series=series).load())
    return str(write_file(path, lambda tmp: figure.savefig(tmp, format="png", dpi=80)))


@io_task()
def report(
    directory: str,
    name: str,
    figures: Mapping[str, Any],
    outputs: Mapping[str, str],
    plot: str | None = None,
    notes: str = "",
) -> str:
    """Write the run report ``report.json`` in ``directory`` (a local path or an fsspec
    URL) and publish the run's artifacts.

    Artifacts (keys prefixed with ``name``): ``<name>-figures``, a table of
    ``figures``; ``<name>-report``, markdown listing ``outputs``, showing the PNG
    ``plot`` (embedded) and ending with ``notes``.

    Returns
    -------
    str
        The path of the report file (its URL for a remote ``directory``).
    """
    content = {
        "flow": name,
        "flow_run": flow_run.get_id(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "figures": dict(figures),
        "outputs": dict(outputs),
    }
    text = json.dumps(content, indent=2) + "\n"
    path = write_file(join(directory, REPORT_NAME), lambda tmp: Path(tmp).write_text(text))
    create_table_artifact(
        [{"figure": key, "value": value} for key, value in figures.items()],
        key=f"{name}-figures",
        description=f"rnnflow {name}: the run's figures",
    )
    lines = [f"# rnnflow {name}", "", "| output | path |", "| --- | --- |"]
    lines += [f"| {what} | `{where}` |" for what, where in outputs.items()]
    if plot is not None:
        image = base64.b64encode(read_bytes(plot)).decode()
        lines += ["", f"![forecasts](data:image/png;base64,{image})"]
    create_markdown_artifact(
        "\n".join([*lines, "", notes]).rstrip() + "\n",
        key=f"{name}-report",
        description=f"rnnflow {name}: outputs and plot",
    )
    return str(path)

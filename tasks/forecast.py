"""Tasks over :mod:`rnncore.forecast`: fit and save, check, forecast a block, write, backtest.

Forecasts cross task boundaries as ``Dataset.to_dict(data="array")`` dictionaries:
a block's forecasts are a few arrays of ``series x horizon`` values. The history
they come from is opened lazily inside each task and computed on the cluster.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import xarray as xr
from prefect import task
from prefect.cache_policies import NO_CACHE

from rnncore.errors import InputError, one_line
from rnncore.forecast import Forecaster, backtest, backtest_table
from rnncore.forecast.forecaster import INCREMENT_ATTRS
from rnncore.forecast.frame import forecast_frame
from rnncore.io import open_dataset, write_zarr
from rnncore.longformat import long_suffix, write_table
from rnncore.statestore import read_state_store
from rnncore.storage import locate, with_suffix, write_file

from .data import ChunkPlan
from .runtime import cluster_compute, io_task

__all__ = [
    "SCORES",
    "backtest_forecaster",
    "ended_early",
    "fit_forecaster",
    "forecast_block",
    "forecast_incremental",
    "join_forecasts",
    "load_forecaster",
    "metrics_path",
    "new_forecaster",
    "save_metrics",
    "write_forecast",
    "write_forecast_table",
]

#: The overall backtest figures (attributes of a backtest result) a run reports, besides
#: the coverage of each interval level (``coverage_80``, ...).
SCORES = ("mase", "smape", "naive_mase", "naive_smape")


def new_forecaster(
    plan: ChunkPlan,
    horizon: int,
    levels: Sequence[float],
    freq: str | None = None,
    season: Sequence[int] | None = None,
    exog: Sequence[str] | None = None,
    encoder: str = "reservoir",
) -> Forecaster:
    """An unfitted forecaster that works in blocks of the plan's chunks.

    Parameters
    ----------
    plan
        The run's chunk plan.
    horizon, levels
        Steps ahead and interval levels.
    freq
        The data's pandas frequency; ``None`` infers it.
    season
        Steps per season, one or more; ``None`` (or empty) for the frequency's.
    exog
        Exogenous variables of the data; ``None`` for none.
    encoder
        The forecaster's encoder (:data:`rnncore.forecast.forecaster.ENCODERS`).
    """
    return Forecaster(
        horizon,
        levels=tuple(levels),
        season=list(season) if season else None,
        freq=freq,
        exog=tuple(exog or ()),
        encoder=encoder,
        chunk_rows=plan.values_per_chunk,
    )


def metrics_path(forecaster: str | Path) -> Path | str:
    """Where the backtest scores of the forecaster saved at ``forecaster`` are kept
    (a Path, or a URL for a URL)."""
    return with_suffix(forecaster, ".metrics.json")


@task(cache_policy=NO_CACHE)
def fit_forecaster(
    data: str,
    plan: ChunkPlan,
    path: str,
    horizon: int,
    levels: Sequence[float],
    variable: str,
    predict: bool = False,
    freq: str | None = None,
    season: Sequence[int] | None = None,
    exog: Sequence[str] | None = None,
    encoder: str = "reservoir",
) -> dict[str, Any] | None:
    """Fit a :class:`~rnncore.forecast.Forecaster` (:func:`new_forecaster`) on every series
    of ``data`` and save it to ``path``; the fit runs as Dask graphs on the cluster.

    With ``predict``, also forecast every series from its last observation, in the
    fitting pass (:meth:`~rnncore.forecast.Forecaster.fit_predict`), and return the
    forecasts as ``xarray.Dataset.to_dict(data="array")``; else return ``None``.
    """
    forecaster = new_forecaster(plan, horizon, levels, freq, season, exog, encoder)
    with cluster_compute():
        ds = open_dataset(data, chunks=plan.chunks)
        if predict:
            forecasts = forecaster.fit_predict(ds, variable=variable).to_dict(data="array")
        else:
            forecaster.fit(ds, variable=variable)
            forecasts = None
    forecaster.save(path)
    return forecasts


@io_task()
def save_metrics(forecaster: str, backtested: dict[str, Any]) -> str:
    """Save ``backtested`` (:func:`backtest_forecaster`'s result) beside the forecaster
    saved at ``forecaster``, at :func:`metrics_path`; returns that path."""
    text = json.dumps(backtested, indent=2) + "\n"
    return str(write_file(metrics_path(forecaster), lambda tmp: Path(tmp).write_text(text)))


@io_task()
def load_forecaster(path: str) -> dict[str, Any] | None:
    """Check that the forecaster saved at ``path`` loads; return its backtest results
    saved beside it by :func:`save_metrics`, or ``None`` if there are none.

    Raises
    ------
    rnncore.ModelFileError
        If the file is missing, unreadable or not a forecaster.
    """
    Forecaster.load(path)
    scores = locate(metrics_path(path))
    if not scores.is_file():
        return None
    with scores.open("rb") as file:
        return json.load(file)


@task(cache_policy=NO_CACHE)
def forecast_block(
    data: str,
    forecaster: str,
    plan: ChunkPlan,
    block: tuple[int, int],
    horizon: int,
    variable: str,
) -> dict[str, Any]:
    """Forecast series ``block[0]:block[1]`` of ``data`` with the saved ``forecaster``.

    Returns
    -------
    dict
        The forecasts of the block, as ``xarray.Dataset.to_dict(data="array")``.
    """
    model = Forecaster.load(forecaster)
    with cluster_compute():
        history = open_dataset(data, chunks=plan.chunks).isel(series=slice(*block))
        return model.predict(history, horizon, variable=variable).compute().to_dict(data="array")


@task(cache_policy=NO_CACHE)
def forecast_incremental(
    data: str,
    forecaster: str,
    plan: ChunkPlan,
    horizon: int,
    variable: str,
    state: str,
) -> dict[str, Any]:
    """Forecast every series of ``data`` with the saved ``forecaster``, continuing from
    the state store at ``state`` and writing the next one there
    (:meth:`~rnncore.forecast.Forecaster.predict` with ``state`` and ``state_out``).

    A missing, incomplete or foreign store, or one made by another forecaster (the
    weekly refit saved a new one), is not used: every series is read in full and a
    fresh store written. A forecaster with no incremental pass (its
    :attr:`~rnncore.forecast.Forecaster.incremental_` is False) reads every series in
    full and writes no store. The work runs as Dask graphs on the cluster; only the
    new steps and trailing windows of the series resumed are read.

    Returns
    -------
    dict
        ``forecast``: the forecasts as ``xarray.Dataset.to_dict(data="array")``;
        ``figures``: ``state store`` (what was continued from) and the increment's
        counts (series resumed, cold, recomputed, removed; steps read and new) when
        a store was written.
    """
    model = Forecaster.load(forecaster)
    store, state_out = None, state
    if not model.incremental_:
        note = "not used: the forecaster's learned encoder has no incremental pass"
        state_out = None
    else:
        try:
            store = read_state_store(state)
            note = f"continued from {state}"
        except InputError as err:
            note = f"not usable ({one_line(err)}): a fresh store"
        if store is not None and store.fingerprint != model.fingerprint():
            store, note = None, "made by another forecaster (refitted): a fresh store"
    with cluster_compute():
        ds = open_dataset(data, chunks=plan.chunks)
        forecast = model.predict(ds, horizon, variable=variable, state=store, state_out=state_out)
    figures = {"state store": note}  # the run's, kept out of the forecasts' attributes
    figures |= {
        key: forecast.attrs.pop(attr)
        for attr, key in INCREMENT_ATTRS.items()
        if attr in forecast.attrs
    }
    return {"forecast": forecast.compute().to_dict(data="array"), "figures": figures}


def ended_early(blocks: Sequence[dict[str, Any]]) -> list[str]:
    """The series last observed before the data's end, over all the blocks' forecasts
    (each block's ``ended_early`` attribute), in the blocks' order."""
    return [label for block in blocks for label in block["attrs"].get("ended_early", [])]


def join_forecasts(blocks: Sequence[dict[str, Any]]) -> xr.Dataset:
    """The blocks' forecasts (``Dataset.to_dict`` dictionaries) as one Dataset.

    Variables and coordinates along ``series`` (the forecast timestamps ``time``
    ``(series, step)`` among them) are joined along it; the attributes are the first
    block's, but ``ended_early`` lists the series of every block (:func:`ended_early`).
    """
    forecast = xr.concat(
        [xr.Dataset.from_dict(block) for block in blocks],
        dim="series",
        data_vars="minimal",
        coords="minimal",
        compat="override",
        join="exact",
        combine_attrs="override",
    )
    forecast.attrs["ended_early"] = ended_early(blocks)
    return forecast


@io_task()
def write_forecast(blocks: Sequence[dict[str, Any]], path: str, attrs: dict[str, Any]) -> str:
    """Join the blocks' forecasts (:func:`join_forecasts`) and write them, with ``attrs``
    added, to the Zarr store ``path`` (atomically, replacing an earlier one). Returns
    ``path``."""
    forecast = join_forecasts(blocks)
    forecast.attrs.update(attrs)
    return str(write_zarr(forecast, path, overwrite=True))


@io_task()
def write_forecast_table(forecast: str, path: str) -> str:
    """Write the forecasts of the Zarr store ``forecast`` as a long table at ``path``,
    CSV (``.csv``, also compressed: ``.csv.gz``, ...) or Parquet (``.parquet``, ``.pq``)
    by its suffix, atomically; returns ``path``.

    The table is StatsForecast's shape (:func:`rnncore.forecast.frame.forecast_frame`):
    ``unique_id, ds, RNNFlow`` (the mean), then ``RNNFlow-lo-<p>`` and
    ``RNNFlow-hi-<p>`` for each level ``p`` in percent; a row per series and forecast
    timestamp, series without observations left out.

    Raises
    ------
    ValueError
        If ``path`` has no CSV or Parquet suffix.
    """
    if long_suffix(path) is None:  # before reading the store
        raise ValueError(f"{path}: a forecast table must be .csv (or .csv.gz, ...) or .parquet")
    frame = forecast_frame(open_dataset(forecast).load())
    return str(write_table(frame, path))


@task(cache_policy=NO_CACHE)
def backtest_forecaster(
    data: str,
    plan: ChunkPlan,
    path: str,
    horizon: int,
    levels: Sequence[float],
    n_windows: int,
    variable: str,
    freq: str | None = None,
    season: Sequence[int] | None = None,
    exog: Sequence[str] | None = None,
    encoder: str = "reservoir",
) -> dict[str, Any]:
    """Backtest forecasters made by :func:`new_forecaster`, as :func:`fit_forecaster` makes
    them, over the last ``n_windows`` windows of ``horizon`` steps; write the per-series
    scores to the Zarr store ``path``.

    Returns
    -------
    dict
        ``scores``: the overall figures named in :data:`SCORES` and the coverage of
        each level; ``table``: them as a markdown table
        (:func:`rnncore.forecast.backtest_table`).
    """
    make = functools.partial(new_forecaster, plan, horizon, levels, freq, season, exog, encoder)
    with cluster_compute():
        ds = open_dataset(data, chunks=plan.chunks)
        result = backtest(ds, make, horizon, n_windows, variable=variable).compute()
        write_zarr(result, path, overwrite=True)
    return {
        "scores": {
            name: float(value)
            for name, value in result.attrs.items()
            if name in SCORES or name.startswith("coverage_")
        },
        "table": backtest_table(result),
    }

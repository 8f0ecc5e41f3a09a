"""The tasks' own logic, called as plain functions (``task.fn``): no Prefect API needed."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from prefect.states import Failed

from rnncore.forecast import Forecaster
from rnncore.io import open_dataset, write_zarr
from rnncore.longformat import long_suffix, write_long
from rnncore.synthetic import generate
from rnnflow.tasks.data import (
    ChunkPlan,
    DatasetInfo,
    inspect_dataset,
    plan_chunks,
    prepare_input,
)
from rnnflow.tasks.forecast import (
    forecast_incremental,
    join_forecasts,
    new_forecaster,
    write_forecast_table,
)
from rnnflow.tasks.report import forecast_figure
from rnnflow.tasks.runtime import cluster_compute, io_task, is_transient
from tests.pipeline.support import N_SERIES, N_STEPS, SERIES_CHUNK


def info(n_series=2000, storage=500, series_chunk=500, time_chunk=2160):
    return DatasetInfo(
        "x.zarr", "y", n_series, 8760, "2025", "2026", storage, series_chunk, time_chunk
    )


@pytest.mark.parametrize(
    ("n_series", "storage", "grown", "per_task", "series", "block", "n_blocks"),
    [
        (2000, 500, 500, None, 500, 500, 4),  # about 8 blocks wanted, whole storage chunks
        (2000, 100, 1000, None, 300, 300, 7),  # grown chunks are cut to fit a block
        (2000, 100, 100, 150, 100, 200, 10),
        (40, 10, 40, None, 10, 10, 4),
        (40, 10, 40, 1000, 40, 40, 1),  # never more than the whole axis
    ],
)
def test_plan_chunks_aligns_with_storage(
    n_series, storage, grown, per_task, series, block, n_blocks
):
    plan = plan_chunks.fn(info(n_series, storage, grown), per_task)
    assert (plan.series, plan.time, plan.block) == (series, 2160, block)
    assert len(plan.blocks) == n_blocks
    assert plan.blocks[0][0] == 0 and plan.blocks[-1][1] == n_series
    assert all(b == a for (_, b), (a, _) in zip(plan.blocks[:-1], plan.blocks[1:], strict=True))
    assert plan.chunks == {"series": series, "time": 2160}
    assert plan.values_per_chunk == series * 2160


def test_plan_chunks_refuses_a_non_positive_size():
    with pytest.raises(ValueError, match="series_per_task"):
        plan_chunks.fn(info(), 0)


def test_inspect_dataset_describes_storage_and_chunks(small_data):
    described = inspect_dataset.fn(str(small_data), "y")
    assert (described.n_series, described.n_steps) == (N_SERIES, N_STEPS)
    assert described.storage_series == SERIES_CHUNK
    # a few kilobytes: the chunks grow to the whole dataset
    assert (described.series_chunk, described.time_chunk) == (N_SERIES, N_STEPS)
    assert described.start.startswith("2025-01-01")
    assert described.freq == "h"


def test_inspect_dataset_refuses_a_wrong_variable(small_data, tmp_path):
    with pytest.raises(ValueError, match="has no variable 'nope'; it holds \\['y'\\]"):
        inspect_dataset.fn(str(small_data), "nope")
    store = write_zarr(xr.Dataset({"z": ("time", np.zeros(3))}), tmp_path / "z.zarr")
    with pytest.raises(ValueError, match="lacks \\['series'\\]"):
        inspect_dataset.fn(str(store), "z")


def test_inspect_dataset_refuses_a_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no dataset at"):
        inspect_dataset.fn(str(tmp_path / "missing.zarr"), "y")


def test_prepare_input_converts_long_tables_to_zarr(tmp_path):
    ds = generate(5, 48, seed=2, n_all_nan=0)
    table = write_long(ds, tmp_path / "long.parquet")
    store = prepare_input.fn(str(table), str(tmp_path / "run"))
    assert store == str(tmp_path / "run" / "input.zarr")
    back = open_dataset(store)
    np.testing.assert_array_equal(back["series"].values, ds["series"].values)
    np.testing.assert_allclose(back["y"].values, ds["y"].values)
    assert prepare_input.fn("data.zarr", str(tmp_path)) == "data.zarr"  # used as it is


def test_prepare_input_refuses_an_irregular_table_unless_given_freq(tmp_path):
    days = pd.date_range("2024-01-01", periods=30, freq="D").delete([9, 10])
    table = tmp_path / "gaps.csv"
    pd.DataFrame({"unique_id": "a", "ds": days, "y": np.arange(28.0)}).to_csv(table, index=False)
    with pytest.raises(ValueError, match=r"not equally spaced.*--freq on the command line"):
        prepare_input.fn(str(table), str(tmp_path / "run"))
    back = open_dataset(prepare_input.fn(str(table), str(tmp_path / "run"), "D"))
    assert back.attrs["freq"] == "D" and back.sizes["time"] == 30
    assert np.isnan(back["y"].values[0, 9:11]).all()


@pytest.mark.parametrize(
    ("path", "suffix"),
    [
        ("in/Monthly.CSV", ".csv"),
        ("data.csv.gz", ".csv.gz"),
        ("a.b.parquet", ".parquet"),
        ("t.pq", ".pq"),
        ("data.zarr", None),
        ("data.nc", None),
        ("data.gz", None),
    ],
)
def test_long_suffix(path, suffix):
    assert long_suffix(path) == suffix


def test_new_forecaster_takes_freq_season_and_exog():
    plan = ChunkPlan(n_series=10, series=10, time=100, block=10)
    made = new_forecaster(plan, 12, [0.9], "MS", [12], ["temperature", "workday"])
    settings = made.settings()
    assert (settings["freq"], settings["season"], settings["exog"]) == (
        "MS",
        [12],
        ["temperature", "workday"],
    )
    assert settings["levels"] == [0.9] and settings["chunk_rows"] == 1000
    assert new_forecaster(plan, 12, [0.9]).settings()["season"] is None


def forecast_block_dict(ids, start, ended):
    """A block of forecasts as ``Forecaster.predict`` gives them, as a task returns it."""
    step = np.arange(1, 4)
    starts = pd.DatetimeIndex(start).values[:, None]
    mean = np.arange(len(ids) * 3.0).reshape(len(ids), 3)
    times = np.array([pd.date_range(s, periods=4, freq="MS")[1:] for s in starts[:, 0]])
    return xr.Dataset(
        {
            "mean": (("series", "step"), mean),
            "lower": (("series", "step", "level"), np.stack([mean - 1, mean - 2], -1)),
            "upper": (("series", "step", "level"), np.stack([mean + 1, mean + 2], -1)),
            "all_missing": ("series", np.zeros(len(ids), bool)),
            "method": ("series", np.array(["model"] * len(ids))),
            "last_observed": ("series", starts[:, 0]),
        },
        coords={
            "series": ids,
            "step": step,
            "level": [0.8, 0.95],
            "time": (("series", "step"), times),
        },
        attrs={"freq": "MS", "ended_early": ended},
    ).to_dict(data="array")


def test_join_forecasts_keeps_each_series_times_and_every_ended_early():
    first = forecast_block_dict(["a", "b"], ["2024-05-01", "2024-03-01"], ["b"])
    second = forecast_block_dict(["c", "d"], ["2024-05-01", "2024-04-01"], ["d"])
    joined = join_forecasts([first, second])
    assert joined["time"].dims == ("series", "step")
    assert joined["series"].values.tolist() == ["a", "b", "c", "d"]
    assert str(joined["time"].values[1, 0])[:10] == "2024-04-01"
    assert str(joined["time"].values[3, 0])[:10] == "2024-05-01"
    assert joined.attrs["ended_early"] == ["b", "d"] and joined.attrs["freq"] == "MS"
    assert joined["method"].dims == ("series",)


@pytest.mark.parametrize("name", ["forecast.csv", "forecast.csv.gz", "forecast.parquet"])
def test_write_forecast_table_writes_statsforecast_columns(name, tmp_path):
    blocks = [forecast_block_dict(["a", "b"], ["2024-05-01", "2024-03-01"], ["b"])]
    store = write_zarr(join_forecasts(blocks), tmp_path / "forecast.zarr")
    path = write_forecast_table.fn(str(store), str(tmp_path / name))
    assert path == str(tmp_path / name)
    table = pd.read_parquet(path) if name.endswith("parquet") else pd.read_csv(path)
    assert table.columns.tolist() == [
        "unique_id",
        "ds",
        "RNNFlow",
        "RNNFlow-lo-80",
        "RNNFlow-hi-80",
        "RNNFlow-lo-95",
        "RNNFlow-hi-95",
    ]
    assert table["unique_id"].tolist() == ["a"] * 3 + ["b"] * 3
    assert pd.to_datetime(table["ds"]).dt.strftime("%Y-%m-%d").tolist()[2:4] == [
        "2024-08-01",
        "2024-04-01",
    ]
    assert {p.name for p in tmp_path.iterdir()} == {"forecast.zarr", name}  # no temporaries
    with pytest.raises(ValueError, match=r"must be \.csv"):
        write_forecast_table.fn(str(store), str(tmp_path / "forecast.json"))


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (FileNotFoundError("gone"), False),
        (ValueError("corrupt"), False),
        (ConnectionResetError("network"), True),
        (TimeoutError("slow disk"), True),
    ],
)
def test_io_tasks_retry_only_transient_errors(error, transient):
    assert is_transient(None, None, Failed(data=error)) is transient


def test_io_task_retries_a_transient_error_then_succeeds(prefect_api):
    from prefect import flow

    calls = []

    @io_task(retry_delay_seconds=0)
    def flaky() -> int:
        calls.append(1)
        if len(calls) < 2:
            raise ConnectionResetError("try again")
        return len(calls)

    @flow
    def run_flaky() -> int:
        return flaky()

    assert run_flaky() == 2


def test_cluster_compute_outside_a_worker_uses_the_default_scheduler():
    import dask.array as da

    with cluster_compute():
        assert int(da.ones(10, chunks=3).sum().compute()) == 10


def test_forecast_figure_has_a_panel_per_series():
    history = generate(3, 72, seed=1)["y"]
    step = np.arange(1, 7)
    mean = np.ones((3, 6))
    forecast = xr.Dataset(
        {
            "mean": (("series", "step"), mean),
            "lower": (("series", "step", "level"), np.stack([mean - 1, mean - 2], axis=-1)),
            "upper": (("series", "step", "level"), np.stack([mean + 1, mean + 2], axis=-1)),
        },
        coords={
            "series": history["series"].values,
            "step": step,
            "level": [0.8, 0.95],
            "time": ("step", history["time"].values[-1] + step * np.timedelta64(1, "h")),
        },
    )
    figure = forecast_figure(history, forecast)
    assert [ax.get_title(loc="left") for ax in figure.axes] == history["series"].values.tolist()
    # each series' own forecast timestamps, as Forecaster.predict gives them
    own = np.broadcast_to(forecast["time"].values, (3, 6))
    figure = forecast_figure(history, forecast.assign_coords(time=(("series", "step"), own)))
    assert len(figure.axes) == 3


def test_chunk_plan_blocks_cover_the_series_once():
    plan = ChunkPlan(n_series=7, series=3, time=5, block=3)
    assert plan.blocks == [(0, 3), (3, 6), (6, 7)]


def test_forecast_incremental_starts_afresh_after_a_refit(small_data, tmp_path):
    """A store made by another forecaster (the weekly refit) is not used: every series is
    read in full and a fresh store written, which the next night continues from."""
    plan = plan_chunks.fn(inspect_dataset.fn(str(small_data), "y"), None)
    state = str(tmp_path / "state.zarr")
    ds = open_dataset(small_data)
    paths = []
    for seed in (0, 1):  # last week's forecaster, and this week's refit
        paths.append(str(tmp_path / f"forecaster{seed}.safetensors"))
        Forecaster(12, n_folds=2, seed=seed, n_levels=3 + seed).fit(ds).save(paths[-1])
    nights = [forecast_incremental.fn(str(small_data), path, plan, 12, "y", state)
              for path in (paths[0], paths[1], paths[1])]  # fmt: skip
    notes = [night["figures"]["state store"] for night in nights]
    assert notes[0].startswith("not usable (no state store at")
    assert notes[1] == "made by another forecaster (refitted): a fresh store"
    assert notes[2] == f"continued from {state}"
    assert [night["figures"]["series cold"] for night in nights] == [N_SERIES, N_SERIES, 0]
    assert nights[2]["figures"]["series resumed"] == N_SERIES
    assert nights[2]["figures"]["steps new"] == 0
    assert "steps_read" not in nights[2]["forecast"]["attrs"]  # figures of the run, not data

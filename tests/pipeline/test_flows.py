"""End-to-end tests of the flows, through a real Prefect API and real Dask clusters."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from distributed import Client

import rnncore
from rnncore.forecast import Forecaster
from rnncore.io import open_dataset
from rnncore.locking import LOCK_NAME
from rnnflow.flows.apply import apply
from rnnflow.flows.fit import fit
from rnnflow.flows.forecast import forecast
from tests.pipeline.support import N_SERIES, N_STEPS, clean_env, free_port, run_flow

pytestmark = pytest.mark.slow  # runs the flows end to end

HORIZON = 24


@pytest.fixture(scope="module")
def first_run(prefect_api, dask_address, small_data, tmp_path_factory):
    """The forecast flow with no saved forecaster: it fits, backtests and saves one."""
    root = tmp_path_factory.mktemp("forecast")
    result = run_flow(
        forecast,
        dask_address,
        data=str(small_data),
        output=str(root / "first"),
        forecaster=str(root / "forecaster.safetensors"),
        horizon=HORIZON,
    )
    return root, result


@pytest.fixture(scope="module")
def rerun(first_run, dask_address, small_data):
    """The forecast flow again, loading the forecaster the first run saved."""
    root, _ = first_run
    return run_flow(
        forecast,
        dask_address,
        data=str(small_data),
        output=str(root / "rerun"),
        forecaster=str(root / "forecaster.safetensors"),
        horizon=HORIZON,
    )


def open_forecast(result):
    """The forecasts of a run, with the plain xarray reader."""
    return xr.open_zarr(result["outputs"]["forecast"], consolidated=False)


def test_forecast_flow_writes_documented_outputs(first_run, small_data):
    root, result = first_run
    outputs = result["outputs"]
    for what in ("forecast", "plot", "report", "performance report"):
        assert Path(outputs[what]).exists(), what
    fc = open_forecast(result)
    assert dict(fc.sizes) == {"series": N_SERIES, "step": HORIZON, "level": 2}
    assert set(fc.data_vars) == {"mean", "lower", "upper", "all_missing", "method", "last_observed"}
    assert fc["mean"].dims == ("series", "step")
    assert fc["lower"].dims == fc["upper"].dims == ("series", "step", "level")
    assert fc["time"].dims == ("series", "step")
    assert (fc["method"].values == "model").all() and fc.attrs["ended_early"] == []
    data = open_dataset(small_data)
    np.testing.assert_array_equal(fc["series"].values, data["series"].values)
    np.testing.assert_array_equal(fc["step"].values, np.arange(1, HORIZON + 1))
    np.testing.assert_allclose(fc["level"].values, [0.8, 0.95])
    assert (fc["time"].values[:, 0] == data["time"].values[-1] + np.timedelta64(1, "h")).all()
    attrs = ("source", "forecaster", "flow_run", "created", "model_fingerprint", "origin", "freq")
    for attr in attrs:
        assert attr in fc.attrs, attr
    assert fc.attrs["source"] == str(small_data)
    mean, lower, upper = (fc[v].values for v in ("mean", "lower", "upper"))
    assert np.isfinite(mean).all() and not fc["all_missing"].values.any()
    assert (lower[..., 1] <= lower[..., 0]).all() and (lower[..., 0] <= mean).all()
    assert (mean <= upper[..., 0]).all() and (upper[..., 0] <= upper[..., 1]).all()

    report = json.loads(Path(outputs["report"]).read_text())
    assert report["flow"] == "forecast" and report["outputs"]["forecast"] == outputs["forecast"]
    figures = report["figures"]
    assert figures["series"] == N_SERIES and figures["steps"] == N_STEPS
    assert figures["freq"] == fc.attrs["freq"] == "h" and figures["ended early"] == 0
    assert "forecast table" not in outputs  # a Zarr input: no long table
    assert figures["throughput (series-steps/s)"] > 0 and figures["workers"] == 2
    assert 0 < figures["mase"] < figures["naive_mase"]  # the backtest beat seasonal naive
    assert (root / "first" / "backtest.zarr").is_dir()
    assert (root / "forecaster.metrics.json").is_file()
    assert "Dask Performance Report" in Path(outputs["performance report"]).read_text()
    assert Path(outputs["plot"]).read_bytes()[:4] == b"\x89PNG"


def test_forecast_flow_publishes_artifacts(first_run):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    keys = ["forecast-figures", "forecast-report", "forecast-dask-report", "fit-figures"]
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys))
        )
    # this run's artifacts: other tests' runs publish under the same keys
    run_id = open_forecast(first_run[1]).attrs["flow_run"]
    mine = [a for a in artifacts if str(a.flow_run_id) == run_id]
    by_key = {a.key: a for a in mine}
    assert {"forecast-figures", "forecast-report", "forecast-dask-report"} <= set(by_key)
    assert by_key["forecast-figures"].type == "table"
    assert "data:image/png;base64," in by_key["forecast-report"].data
    assert "| MASE" in by_key["forecast-report"].data  # the backtest table
    assert "](file://" in by_key["forecast-dask-report"].data


def test_rerun_gives_the_same_forecasts(first_run, rerun):
    _, first = first_run
    again = open_forecast(rerun)
    before = open_forecast(first)
    assert again.attrs["model_fingerprint"] == before.attrs["model_fingerprint"]
    xr.testing.assert_allclose(again.drop_attrs(), before.drop_attrs(), rtol=1e-5, atol=1e-4)
    assert json.loads(Path(rerun["outputs"]["report"]).read_text())["figures"]["mase"] > 0


def test_external_cluster_gives_the_same_result(
    first_run, rerun, prefect_api, small_data, tmp_path
):
    root, _ = first_run
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = clean_env(PREFECT_API_URL=prefect_api)
    dask = str(Path(sys.executable).with_name("dask"))
    scheduler = [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port)]
    worker = [dask, "worker", address, "--nthreads", "1", "--no-dashboard"]
    processes = [subprocess.Popen([*scheduler, "--dashboard-address", ":0"], env=env)]
    try:
        processes += [subprocess.Popen(worker, env=env) for _ in range(2)]
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=90)
        result = run_flow(
            forecast,
            address,
            data=str(small_data),
            output=str(tmp_path / "external"),
            forecaster=str(root / "forecaster.safetensors"),
            horizon=HORIZON,
        )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)
    assert result["figures"]["workers"] == 2
    xr.testing.assert_equal(open_forecast(result).drop_attrs(), open_forecast(rerun).drop_attrs())


def corrupt_metadata(store: Path) -> None:
    (store / "zarr.json").write_text("{ not json")


def corrupt_chunk(store: Path) -> None:
    chunk = next(p for p in sorted((store / "y" / "c").rglob("*")) if p.is_file())
    chunk.write_bytes(b"\x00garbage" * 4)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing path", (FileNotFoundError, "no dataset at")),
        ("corrupt metadata", (ValueError, "cannot be read")),
        ("corrupt chunk", (Exception, None)),
        ("model as forecaster", (rnncore.ModelFileError, "not an rnnflow forecaster")),
    ],
)
def test_a_failing_step_fails_the_forecast_flow_cleanly(
    case, expected, prefect_api, dask_address, small_data, model_file, tmp_path
):
    data, forecaster = tmp_path / "data.zarr", tmp_path / "forecaster.safetensors"
    if case != "missing path":
        shutil.copytree(small_data, data)
    if case == "corrupt metadata":
        corrupt_metadata(data)
    elif case == "corrupt chunk":
        corrupt_chunk(data)
    elif case == "model as forecaster":
        shutil.copy(model_file, forecaster)
    output = tmp_path / "out"
    error, message = expected
    with pytest.raises(error, match=message) as caught:
        run_flow(
            forecast,
            dask_address,
            data=str(data),
            output=str(output),
            forecaster=str(forecaster),
            backtest_windows=0,
        )
    assert str(caught.value).strip()
    left = {p.name for p in output.iterdir()} if output.exists() else set()
    # no forecasts, report or half-written store; the hidden lock file stays (rnncore.locking)
    assert left <= {"dask-report.html", LOCK_NAME}, left
    assert case == "model as forecaster" or not forecaster.exists()


def test_apply_flow_writes_outputs_and_final_states(
    prefect_api, dask_address, small_data, model_file, tmp_path
):
    result = run_flow(
        apply, dask_address, model=str(model_file), data=str(small_data), output=str(tmp_path)
    )
    out = xr.open_zarr(result["outputs"]["result"], consolidated=False)
    assert dict(out["output"].sizes) == {"series": N_SERIES, "time": N_STEPS, "channel": 1}
    assert out["state"].dims == ("series", "layer", "state_unit")
    model = rnncore.Model.load(model_file)
    expected = rnncore.run(model, open_dataset(small_data).load(), variable="y")
    # float32, chunked on the cluster vs whole in memory (rnncore: within 1e-5, norm-wise)
    xr.testing.assert_allclose(out["output"], expected["output"], rtol=1e-4, atol=1e-4)
    xr.testing.assert_allclose(out["state"], expected["state"], rtol=1e-4, atol=1e-4)
    assert json.loads(Path(result["outputs"]["report"]).read_text())["flow"] == "apply"


def test_apply_flow_refuses_a_mismatched_model(prefect_api, dask_address, small_data, tmp_path):
    model = rnncore.Model.init("QRNN", 2, [4]).save(tmp_path / "two-features.safetensors")
    with pytest.raises(ValueError, match="input_size=2"):
        run_flow(
            apply, dask_address, model=str(model), data=str(small_data), output=str(tmp_path / "o")
        )
    assert not (tmp_path / "o" / "apply.zarr").exists()


def test_fit_flow_saves_a_forecaster_the_forecast_flow_loads(
    prefect_api, dask_address, small_data, tmp_path
):
    forecaster = tmp_path / "forecaster.safetensors"
    result = run_flow(
        fit,
        dask_address,
        data=str(small_data),
        forecaster=str(forecaster),
        output=str(tmp_path / "fit"),
        backtest_windows=0,
    )
    assert Forecaster.load(forecaster).horizon == 24
    assert result["outputs"]["forecaster"] == str(forecaster)
    assert "mase" not in result["figures"]  # no backtest asked for
    assert result["figures"]["freq"] == "h"
    assert json.loads(Path(result["outputs"]["report"]).read_text())["flow"] == "fit"


# Long tables the forecast flow reads, by frequency: first timestamp, steps, season,
# horizon, the table's suffix, and the season given to the flow (None: the frequency's).
LONG_TABLES = {
    "MS": ("2015-01-01", 96, 12, 12, ".csv", None),
    "QS-DEC": ("2000-03-01", 48, 4, 8, ".csv", None),
    "QS-JAN": ("2000-01-01", 48, 4, 8, ".csv", None),
    "W-SUN": ("2019-01-06", 220, 52, 8, ".parquet", None),
    "D": ("2024-01-01", 150, 7, 14, ".csv", [7]),
    "30min": ("2024-01-01", 3 * 336, 48, 48, ".csv", None),
}
# Whether timestamps lie on each frequency's grid.
ON_GRID = {
    "MS": lambda t: t.is_month_start & (t == t.normalize()),
    "QS-DEC": lambda t: t.is_month_start & (t.month % 3 == 0) & (t == t.normalize()),
    "QS-JAN": lambda t: t.is_month_start & (t.month % 3 == 1) & (t == t.normalize()),
    "W-SUN": lambda t: (t.dayofweek == 6) & (t == t.normalize()),
    "D": lambda t: t == t.normalize(),
    "30min": lambda t: (t.minute % 30 == 0) & (t.second == 0),
}
TABLE_COLUMNS = ["unique_id", "ds", "RNNFlow"] + [
    f"RNNFlow-{side}-{level}" for level in (80, 95) for side in ("lo", "hi")
]


def long_table(freq, start, n_steps, season, n_series=4, short=3, seed=0):
    """Seasonal series in long format; the last one ends ``short`` steps early."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(start, periods=n_steps, freq=freq)
    frames = []
    for i in range(n_series):
        n = n_steps - short if i == n_series - 1 else n_steps
        phase = 2 * np.pi * np.arange(n) / season
        y = 10 + 2 * i + 3 * np.sin(phase) + rng.normal(0, 0.3, n)
        frames.append(pd.DataFrame({"unique_id": f"id{i}", "ds": times[:n], "y": y}))
    return pd.concat(frames, ignore_index=True)


def check_long_forecasts(result, frame, freq, horizon, suffix):
    """The forecasts of a long table: on the grid, after each series' own end, written
    back as a table of StatsForecast's columns, bounds in order; returns the Zarr store."""
    fc = open_forecast(result)
    ids = sorted(frame["unique_id"].unique())
    assert fc["series"].values.tolist() == ids and fc["time"].dims == ("series", "step")
    for k, series in enumerate(ids):
        last = frame.loc[frame["unique_id"] == series, "ds"].max()
        expected = pd.date_range(last, periods=horizon + 1, freq=freq)[1:]
        np.testing.assert_array_equal(fc["time"].values[k], expected.values)
        assert fc["last_observed"].values[k] == np.datetime64(last)
    assert ON_GRID[freq](pd.DatetimeIndex(fc["time"].values.ravel())).all()
    assert fc.attrs["freq"] == freq and (fc["method"].values == "model").all()
    assert fc.attrs["ended_early"] == [ids[-1]]

    path = Path(result["outputs"]["forecast table"])
    assert (
        path.name == f"forecast{suffix}"
        and path.parent == Path(result["outputs"]["forecast"]).parent
    )
    table = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path, parse_dates=["ds"])
    assert table.columns.tolist() == TABLE_COLUMNS and len(table) == len(ids) * horizon
    np.testing.assert_array_equal(table["ds"].values, fc["time"].values.ravel())
    np.testing.assert_allclose(table["RNNFlow"].values, fc["mean"].values.ravel())
    bounds = table[["RNNFlow-lo-95", "RNNFlow-lo-80", "RNNFlow", "RNNFlow-hi-80", "RNNFlow-hi-95"]]
    assert (np.diff(bounds.to_numpy(), axis=1) >= 0).all()

    figures = json.loads(Path(result["outputs"]["report"]).read_text())["figures"]
    assert figures["freq"] == freq and figures["ended early"] == 1
    assert figures["ended early (series)"] == [ids[-1]]
    return fc


@pytest.mark.slow
@pytest.mark.parametrize("freq", list(LONG_TABLES))
def test_forecast_flow_on_long_tables(freq, prefect_api, dask_address, tmp_path):
    """Calendar frequencies, inferred from the table; a series ending early is forecast
    from its own end; the forecasts are written back beside the store, as a table."""
    start, n_steps, season, horizon, suffix, given = LONG_TABLES[freq]
    frame = long_table(freq, start, n_steps, season)
    data = tmp_path / f"data{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(data, index=False)
    else:
        frame.to_csv(data, index=False)
    forecaster = tmp_path / "forecaster.safetensors"
    result = run_flow(
        forecast,
        dask_address,
        data=str(data),
        output=str(tmp_path / "out"),
        forecaster=str(forecaster),
        horizon=horizon,
        backtest_windows=1 if freq == "MS" else 0,
        plot_series=1,
        season=given,
    )
    check_long_forecasts(result, frame, freq, horizon, suffix)
    fitted = Forecaster.load(forecaster)
    assert fitted.freq_ == freq and fitted.season_ == season
    if freq == "MS":
        assert result["figures"]["mase"] > 0  # the backtest ran at month starts too

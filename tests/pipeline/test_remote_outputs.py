"""The flows with their outputs at fsspec URLs: ``memory://`` and ``file://``.

fsspec's memory file system lives in one process, so the ``memory://`` runs use an
in-process Dask cluster (worker threads, no worker processes); the ``file://`` run
uses the session's two-process cluster, as a local path would.
"""

import json
from pathlib import Path

import dask
import fsspec
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from rnncore.forecast import Forecaster
from rnncore.io import open_dataset
from rnncore.storage import locate, read_bytes
from rnnflow.flows.apply import apply
from rnnflow.flows.cli import main
from rnnflow.flows.fit import fit
from rnnflow.flows.forecast import forecast
from tests.pipeline.support import N_SERIES, N_STEPS, run_flow

pytestmark = pytest.mark.slow  # runs the flows end to end

HORIZON = 24


def in_process(flow):
    """``flow`` on an in-process Dask cluster, whose workers see ``memory://``.

    Dask's global setting ``scheduler``, which ``Client.as_current`` sets and resets
    from several threads of the one process, is restored after the run: it may be
    left at ``dask.distributed``, with no client, failing later computations.
    """
    from prefect_dask import DaskTaskRunner

    cluster = {"processes": False, "n_workers": 1, "threads_per_worker": 4}
    runner = DaskTaskRunner(cluster_kwargs={**cluster, "dashboard_address": ":0"})

    def run(**parameters):
        with dask.config.set(scheduler=dask.config.get("scheduler", None)):
            return flow.with_options(task_runner=runner)(**parameters)

    return run


@pytest.fixture
def empty_cwd(tmp_path, monkeypatch):
    """An empty working directory, to check that nothing is written locally."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def written(cwd: Path) -> list[str]:
    return sorted(str(p.relative_to(cwd)) for p in cwd.rglob("*"))


def test_forecast_flow_writes_its_outputs_at_a_memory_url(
    prefect_api, small_data, memory_root, empty_cwd, capsys
):
    output, forecaster = f"{memory_root}/forecast", f"{memory_root}/forecaster.safetensors"
    result = in_process(forecast)(
        data=str(small_data), output=output, forecaster=forecaster, horizon=HORIZON
    )
    outputs = result["outputs"]
    assert outputs == {
        "forecast": f"{output}/forecast.zarr",
        "performance report": f"{output}/dask-report.html",
        "plot": f"{output}/forecast.png",
        "report": f"{output}/report.json",
    }
    fc = open_dataset(outputs["forecast"])
    assert dict(fc.sizes) == {"series": N_SERIES, "step": HORIZON, "level": 2}
    assert np.isfinite(fc["mean"].values).all() and fc.attrs["forecaster"] == forecaster
    report = json.loads(read_bytes(outputs["report"]))
    assert report["flow"] == "forecast"
    assert report["outputs"] == {k: v for k, v in outputs.items() if k != "report"}
    assert report["figures"]["series"] == N_SERIES and report["figures"]["mase"] > 0
    assert read_bytes(outputs["plot"])[:4] == b"\x89PNG"
    assert b"Dask Performance Report" in read_bytes(outputs["performance report"])
    assert locate(f"{output}/backtest.zarr").is_dir()
    assert json.loads(read_bytes(f"{memory_root}/forecaster.metrics.json"))["scores"]["mase"] > 0
    assert Forecaster.load(forecaster).horizon == HORIZON

    # again, loading the forecaster saved at the URL; the report command reads the URL
    again = in_process(forecast)(
        data=str(small_data), output=f"{memory_root}/rerun", forecaster=forecaster, horizon=HORIZON
    )
    xr.testing.assert_allclose(
        open_dataset(again["outputs"]["forecast"]).drop_attrs(), fc.drop_attrs()
    )
    capsys.readouterr()
    assert main(["report", f"{memory_root}/rerun"]) == 0
    assert f"{memory_root}/rerun/forecast.zarr" in capsys.readouterr().out
    assert main(["report", f"{memory_root}/nowhere"]) == 1
    assert f"no run report at {memory_root}/nowhere/report.json" in capsys.readouterr().err
    assert written(empty_cwd) == []


def test_forecast_flow_writes_a_long_table_at_a_memory_url(prefect_api, memory_root, empty_cwd):
    times = pd.date_range("2015-01-01", periods=96, freq="MS")
    rng = np.random.default_rng(0)
    frame = pd.concat(
        pd.DataFrame(
            {
                "unique_id": f"id{i}",
                "ds": times,
                "y": 10 + i + 3 * np.sin(2 * np.pi * np.arange(96) / 12) + rng.normal(0, 0.3, 96),
            }
        )
        for i in range(3)
    )
    data = f"{memory_root}/sales.csv"
    with fsspec.open(data, "w") as file:
        frame.to_csv(file, index=False)
    output = f"{memory_root}/out"
    result = in_process(forecast)(
        data=data,
        output=output,
        forecaster=f"{memory_root}/forecaster.safetensors",
        horizon=12,
        backtest_windows=0,
        plot_series=1,
    )
    outputs = result["outputs"]
    assert outputs["forecast table"] == f"{output}/forecast.csv"
    assert locate(f"{output}/input.zarr").is_dir()  # the table converted, in the output
    table = pd.read_csv(outputs["forecast table"], parse_dates=["ds"])
    assert len(table) == 3 * 12 and table["ds"].min() == pd.Timestamp("2023-01-01")
    fc = open_dataset(outputs["forecast"])
    np.testing.assert_allclose(table["RNNFlow"].values, fc["mean"].values.ravel())
    assert written(empty_cwd) == []


def test_apply_flow_writes_at_a_memory_url_and_fails_cleanly_there(
    prefect_api, small_data, model_file, memory_root, empty_cwd, tmp_path
):
    import rnncore

    result = in_process(apply)(
        model=str(model_file), data=str(small_data), output=f"{memory_root}/a"
    )
    assert result["outputs"]["result"] == f"{memory_root}/a/apply.zarr"
    out = open_dataset(result["outputs"]["result"])
    assert dict(out["output"].sizes) == {"series": N_SERIES, "time": N_STEPS, "channel": 1}
    assert json.loads(read_bytes(f"{memory_root}/a/report.json"))["flow"] == "apply"

    model = rnncore.Model.init("QRNN", 2, [4]).save(tmp_path / "two-features.safetensors")
    with pytest.raises(ValueError, match="input_size=2"):
        in_process(apply)(model=str(model), data=str(small_data), output=f"{memory_root}/b")
    left = locate(f"{memory_root}/b")
    names = {Path(p).name for p in left.fs.ls(left.path, detail=False)}
    assert names == {"dask-report.html"}  # the performance report, installed all the same
    assert written(empty_cwd) == []


def test_fit_flow_writes_at_file_urls_as_at_local_paths(
    prefect_api, dask_address, small_data, tmp_path
):
    forecaster = tmp_path / "forecaster.safetensors"
    output = tmp_path / "fit"
    result = run_flow(
        fit,
        dask_address,
        data=str(small_data),
        forecaster=forecaster.as_uri(),
        output=output.as_uri(),
        backtest_windows=1,
    )
    outputs = result["outputs"]
    assert Forecaster.load(forecaster).horizon == 24
    assert outputs["forecaster"] == forecaster.as_uri()
    # each output names its local file, as a path or as the file:// URL
    expected = {
        "metrics": tmp_path / "forecaster.metrics.json",
        "backtest": output / "backtest.zarr",
        "report": output / "report.json",
        "performance report": output / "dask-report.html",
    }
    for what, path in expected.items():
        assert locate(outputs[what]).local == path and path.exists(), what
    assert json.loads((output / "report.json").read_text())["figures"]["mase"] > 0
    assert "Dask Performance Report" in (output / "dask-report.html").read_text()
    assert xr.open_zarr(output / "backtest.zarr", consolidated=False).sizes["series"] == N_SERIES

"""The nightly forecast continues from its state store: night after night, through the CLI."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from rnncore.forecast import Forecaster
from rnncore.io import write_zarr
from rnncore.synthetic import generate
from rnnflow.flows.cli import main
from tests.pipeline.support import clean_env

pytestmark = pytest.mark.slow  # flow runs, two of them in subprocesses

RNNFLOW = str(Path(sys.executable).with_name("rnnflow"))
N_SERIES, DAY, HISTORY = 12, 24, 24 * 7 * 6
#: The trailing window a resumed series reads: the forecaster's scaling window, 28 days.
WINDOW = 28 * DAY


def figures(output: Path) -> dict:
    return json.loads((output / "report.json").read_text())["figures"]


def test_nightly_forecast_reads_only_the_new_steps(prefect_api, dask_address, tmp_path):
    """Night 0 fits the forecaster; nights 1 and 2 run the console script on the embedded
    defaults (its own Prefect API and LocalCluster), a day appended before each: night 1
    starts the state store, night 2 continues from it, reading a day and the trailing
    window of each series, and its forecasts equal a ``--full`` run's."""
    days = generate(N_SERIES, HISTORY + 2 * DAY, seed=11, n_all_nan=1, early_end_fraction=0.2)
    data, output, full = tmp_path / "data.zarr", tmp_path / "out", tmp_path / "full"
    argv = ["forecast", "--data", str(data), "--horizon", "12", "--plot-series", "0"]
    argv += ["--forecaster", str(tmp_path / "forecaster.safetensors")]

    def night(k):
        write_zarr(days.isel(time=slice(0, HISTORY + k * DAY)), data, overwrite=True)

    night(0)
    fit = [*argv, "--output", str(output), "--backtest-windows", "0"]
    assert main([*fit, "--scheduler", dask_address]) == 0
    assert figures(output)["state store"].startswith("not used")
    for k in (1, 2):
        night(k)
        done = subprocess.run(
            [RNNFLOW, *argv, "--output", str(output)],
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert "steps read" in done.stdout
    tonight = figures(output)
    assert tonight["state store"] == f"continued from {output / 'state.zarr'}"
    assert tonight["series resumed"] == N_SERIES
    assert tonight["series cold"] == tonight["series recomputed"] == tonight["series removed"] == 0
    assert tonight["steps new"] == N_SERIES * DAY
    assert tonight["steps read"] == N_SERIES * (WINDOW + DAY) < N_SERIES * (HISTORY + 2 * DAY)

    assert main([*argv, "--output", str(full), "--full", "--scheduler", dask_address]) == 0
    assert figures(full)["state store"] == "not used (--full)"
    assert not (full / "state.zarr").exists()
    incremental = xr.open_zarr(output / "forecast.zarr", consolidated=False).load()
    recomputed = xr.open_zarr(full / "forecast.zarr", consolidated=False).load()
    for name in ("mean", "lower", "upper"):
        np.testing.assert_allclose(incremental[name], recomputed[name], rtol=1e-12, atol=0)
    for name in ("method", "last_observed", "time", "series"):
        np.testing.assert_array_equal(incremental[name].values, recomputed[name].values)
    assert incremental.attrs["origin"] == recomputed.attrs["origin"]


def test_a_learned_encoder_forecasts_every_night_in_full(prefect_api, dask_address, tmp_path):
    """``--encoder learned`` fits gated units, which have no incremental pass: the nightly
    forecast (incremental by default) reads every series in full, writes no state store,
    says so in its report, and forecasts as ``--full`` does."""
    days = generate(N_SERIES, HISTORY + DAY, seed=5)
    data, output, full = tmp_path / "data.zarr", tmp_path / "out", tmp_path / "full"
    forecaster = tmp_path / "forecaster.safetensors"
    argv = ["forecast", "--data", str(data), "--horizon", "12", "--plot-series", "0"]
    argv += ["--forecaster", str(forecaster), "--scheduler", dask_address]
    write_zarr(days.isel(time=slice(0, HISTORY)), data, overwrite=True)
    fit = [*argv, "--output", str(output), "--backtest-windows", "0", "--encoder", "learned"]
    assert main(fit) == 0
    assert Forecaster.load(forecaster).encoder == "learned"
    assert not Forecaster.load(forecaster).incremental_

    write_zarr(days, data, overwrite=True)
    assert main([*argv, "--output", str(output)]) == 0
    tonight = figures(output)
    assert tonight["state store"].startswith("not used: the forecaster's learned encoder")
    assert tonight["steps read"] == N_SERIES * (HISTORY + DAY)
    assert not (output / "state.zarr").exists()
    assert main([*argv, "--output", str(full), "--full"]) == 0
    nightly = xr.open_zarr(output / "forecast.zarr", consolidated=False).load()
    recomputed = xr.open_zarr(full / "forecast.zarr", consolidated=False).load()
    xr.testing.assert_identical(nightly.drop_attrs(), recomputed.drop_attrs())

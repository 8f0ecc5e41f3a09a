"""The apply flow, night after night: incremental by default, ``--full`` on demand."""

import json
from pathlib import Path

import numpy as np
import pytest

import rnncore
from rnncore.io import open_dataset, write_zarr
from rnnflow.flows.apply import apply
from rnnflow.flows.cli import main
from tests.pipeline.support import N_SERIES, N_STEPS, run_flow

pytestmark = pytest.mark.slow  # runs the flow end to end

DAY = 24


def nights_data(small_data, root):
    """The small dataset as three nights see it: two days short, one day short, and
    whole without its first series."""
    ds = open_dataset(small_data)
    return [
        write_zarr(ds.isel(time=slice(0, N_STEPS - 2 * DAY)), root / "night1.zarr"),
        write_zarr(ds.isel(time=slice(0, N_STEPS - DAY)), root / "night2.zarr"),
        write_zarr(ds.isel(series=slice(1, None)), root / "night3.zarr"),
    ]


def test_apply_runs_incrementally_night_after_night(
    prefect_api, dask_address, small_data, model_file, tmp_path, capsys
):
    first, second, third = nights_data(small_data, tmp_path)
    output = tmp_path / "apply"
    options = {"model": str(model_file), "output": str(output)}
    figures = run_flow(apply, dask_address, data=str(first), **options)["figures"]
    assert figures["mode"] == "full" and figures["steps read"] == N_SERIES * (N_STEPS - 2 * DAY)
    assert "no state store" in figures["why"]

    result = run_flow(apply, dask_address, data=str(second), **options)
    figures = result["figures"]
    assert figures["mode"] == "incremental" and figures["outputs updated in place"]
    assert figures["series resumed"] == N_SERIES and figures["series cold"] == []
    # one new day per series, and the steps after a series' last value before it
    assert N_SERIES * DAY <= figures["steps read"] < N_SERIES * 2 * DAY
    report = json.loads(Path(result["outputs"]["report"]).read_text())
    assert report["figures"]["steps read"] == figures["steps read"]

    model = rnncore.Model.load(model_file)
    data = open_dataset(second).load()
    expected = rnncore.run(model, data, variable="y")
    got = open_dataset(result["outputs"]["result"])
    np.testing.assert_allclose(got.output.values, expected.output.values, rtol=0, atol=1e-4)
    np.testing.assert_allclose(got.state.values, expected.state.values, rtol=0, atol=1e-4)

    argv = ["apply", "--model", str(model_file), "--data", str(third), "--output", str(output)]
    assert main([*argv, "--scheduler", dask_address]) == 0
    printed = capsys.readouterr().out
    assert "series removed" in printed and "s00000" in printed
    report = json.loads((output / "report.json").read_text())["figures"]
    assert report["mode"] == "incremental" and report["series removed"] == ["s00000"]
    assert not report["outputs updated in place"]

    assert main([*argv, "--scheduler", dask_address, "--full"]) == 0
    report = json.loads((output / "report.json").read_text())["figures"]
    assert report["mode"] == "full" and report["why"] == "asked for"
    assert report["steps read"] == (N_SERIES - 1) * N_STEPS

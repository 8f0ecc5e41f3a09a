"""The ``rnnflow`` command line."""

import json
import subprocess
import sys
from pathlib import Path

import conftest_prefect  # first: it sets up Prefect's environment for the tests
import pytest
import xarray as xr
from conftest_prefect import N_SERIES, clean_env

from flows.cli import main

pytest_plugins = [conftest_prefect.__name__]

RNNFLOW = str(Path(sys.executable).with_name("rnnflow"))


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for command in ("generate-data", "fit", "forecast", "apply", "serve", "report"):
        assert f"  {command} " in text


def test_flow_options_come_from_the_flow_signature_and_docstring(capsys):
    with pytest.raises(SystemExit):
        main(["forecast", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--horizon HORIZON Steps ahead to forecast. (default: 24)" in text
    assert "--levels LEVELS [LEVELS ...]" in text
    assert "--series-per-task" in text and "--scheduler ADDRESS" in text


def test_apply_requires_a_model(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["apply"])
    assert exited.value.code == 2
    assert "--model" in capsys.readouterr().err


def test_report_prints_a_run_report(tmp_path, capsys):
    report = {
        "flow": "forecast",
        "flow_run": "abc",
        "created": "2025-01-01T00:00:00+00:00",
        "figures": {"series": 3, "mase": 0.81234},
        "outputs": {"forecast": "out/forecast.zarr"},
    }
    (tmp_path / "report.json").write_text(json.dumps(report))
    assert main(["report", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "out/forecast.zarr" in text and "0.8123" in text


def test_a_failure_is_one_line_and_a_non_zero_status(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("rnnflow report: error: FileNotFoundError: no run report at")


def test_a_failing_flow_is_one_line_and_a_non_zero_status(
    prefect_api, dask_address, small_data, tmp_path, capsys
):
    argv = ["apply", "--model", str(tmp_path / "missing.safetensors"), "--data", str(small_data)]
    status = main([*argv, "--output", str(tmp_path / "out"), "--scheduler", dask_address])
    assert status == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("rnnflow apply: error: ModelFileError: model file ")
    assert last.endswith("does not exist")


def test_generate_data_writes_a_store(tmp_path):
    store = tmp_path / "tiny.zarr"
    assert main(["generate-data", "-o", str(store), "-n", "3", "-t", "48"]) == 0
    assert xr.open_zarr(store, consolidated=False)["y"].shape == (3, 48)


@pytest.mark.slow
def test_console_script_runs_a_flow_on_the_embedded_defaults(small_data, model_file, tmp_path):
    """No Prefect API and no cluster given: the embedded API and a LocalCluster start."""
    output = tmp_path / "apply"
    argv = ["apply", "--model", str(model_file), "--data", str(small_data)]
    done = subprocess.run(
        [RNNFLOW, *argv, "--output", str(output)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Starting temporary server" in done.stderr  # Prefect's embedded API
    assert "Creating a new Dask cluster" in done.stderr  # the embedded LocalCluster
    assert f"series{' ' * 28}{N_SERIES}" in done.stdout
    for name in ("apply.zarr", "report.json", "dask-report.html"):
        assert str(output / name) in done.stdout

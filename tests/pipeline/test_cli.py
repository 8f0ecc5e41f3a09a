"""The ``rnnflow`` command line."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from rnncore.forecast import Forecaster
from rnnflow.flows.cli import FLOWS, flow_parser, main
from rnnflow.flows.options import REQUIRED, plain, read_function
from tests.pipeline.support import N_SERIES, clean_env

pytestmark = pytest.mark.slow  # subprocesses running flows on the embedded Prefect API

RNNFLOW = str(Path(sys.executable).with_name("rnnflow"))


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for command in ("generate-data", "fit", "forecast", "apply", "serve", "report"):
        assert f"  {command} " in text


def test_version_is_the_installed_distributions(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"rnnflow {version('rnnflow')}"


def test_flow_options_come_from_the_flow_signature_and_docstring(capsys):
    with pytest.raises(SystemExit):
        main(["forecast", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--horizon HORIZON Steps ahead to forecast. (default: 24)" in text
    assert "--levels LEVELS [LEVELS ...]" in text
    assert "--series-per-task" in text and "--scheduler ADDRESS" in text
    assert "(see rnnflow.flows.forecast)" in text  # no Sphinx markup
    assert ":mod:" not in text and "``" not in text


@pytest.mark.parametrize("command", sorted(FLOWS))
def test_the_source_read_options_are_the_flows_parameters(command):
    """What the command line reads from the source (no import) is what Prefect sees."""
    import importlib
    import inspect

    from prefect.utilities.callables import parameter_schema

    from rnnflow.flows import defaults

    flow = getattr(importlib.import_module(FLOWS[command][0]), command)
    parameters, _ = read_function(FLOWS[command][0], command, vars(defaults))
    signature = inspect.signature(flow.fn).parameters
    assert [p.name for p in parameters] == list(signature)
    assert [p.default for p in parameters] == [p.default for p in signature.values()]
    schema = parameter_schema(flow).model_dump()
    options = vars(flow_parser(command).parse_args(["--model", "m"] * (command == "apply")))
    assert options.pop("scheduler") is None
    assert set(options) == set(schema["properties"])
    for name, value in options.items():
        if name not in schema.get("required", []):
            declared = schema["properties"][name]["default"]
            assert value == (list(declared) if isinstance(declared, tuple) else declared)
    assert all(p.default is not REQUIRED for p in parameters if p.name != "model")


def test_help_text_is_plain():
    assert plain("see :mod:`rnnflow.flows.forecast` and ``horizon``") == (
        "see rnnflow.flows.forecast and horizon"
    )
    assert plain(":func:`~rnncore.run`, `x`, :py:class:`A`") == "rnncore.run, x, A"


@pytest.mark.parametrize("command", [*sorted(FLOWS), "serve", "generate-data", "report"])
def test_command_help_imports_no_prefect(command):
    """``rnnflow COMMAND --help`` answers without importing Prefect (what made it slow)."""
    code = (
        "import sys\n"
        "from rnnflow.flows.cli import main\n"
        f"try:\n    main([{command!r}, '--help'])\nexcept SystemExit as stop:\n"
        "    assert stop.code == 0, stop.code\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'prefect', 'distributed'})\n"
        "print('imported:', heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "usage: rnnflow" in done.stdout
    assert done.stdout.strip().endswith("imported: []")


@pytest.mark.parametrize("command", ["forecast", "fit"])
def test_freq_season_exog_and_encoder_options_parse(command):
    parser = flow_parser(command)
    defaults = vars(parser.parse_args([]))
    assert defaults["freq"] is None and defaults["season"] is None and defaults["exog"] is None
    argv = ["--freq", "MS", "--season", "12", "--exog", "temperature", "workday"]
    options = vars(parser.parse_args(argv))
    assert options["freq"] == "MS" and options["season"] == [12]
    assert options["exog"] == ["temperature", "workday"]
    assert vars(parser.parse_args(["--season", "48", "336"]))["season"] == [48, 336]
    with pytest.raises(SystemExit):
        parser.parse_args(["--season", "weekly"])
    assert defaults["encoder"] == "reservoir"
    assert vars(parser.parse_args(["--encoder", "learned"]))["encoder"] == "learned"
    with pytest.raises(SystemExit):
        parser.parse_args(["--encoder", "lstm"])


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


def shop_sales(path: Path) -> Path:
    """Daily sales of three shops with exogenous columns, two days missing in each: the
    timestamps are not regular without ``--freq D``."""
    rng = np.random.default_rng(1)
    days = pd.date_range("2024-01-01", periods=150, freq="D")
    frames = []
    for i in range(3):
        workday = (days.dayofweek < 5).astype(int)
        temperature = 15 + 10 * np.sin(2 * np.pi * np.arange(150) / 365) + rng.normal(0, 1, 150)
        y = 10 + i + 2 * workday + 0.1 * temperature + rng.normal(0, 0.3, 150)
        columns = {"ds": days, "y": y, "temperature": temperature, "workday": workday}
        frame = pd.DataFrame({"unique_id": f"shop{i}", **columns})
        frames.append(frame.drop(index=[20, 60 + i]))
    pd.concat(frames).to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_forecast_an_irregular_table_with_freq_and_exog(
    prefect_api, dask_address, tmp_path, capsys
):
    data = shop_sales(tmp_path / "sales.csv")
    output, forecaster = tmp_path / "out", tmp_path / "forecaster.safetensors"
    argv = ["forecast", "--data", str(data), "--output", str(output), "--horizon", "14"]
    argv += ["--forecaster", str(forecaster), "--backtest-windows", "0"]
    argv += ["--scheduler", dask_address]
    assert main(argv) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"rnnflow forecast: error: InputError: {data}: the timestamps are not")
    assert "--freq" in last and not forecaster.exists()

    assert main([*argv, "--freq", "D", "--season", "7", "--exog", "temperature", "workday"]) == 0
    out = capsys.readouterr().out
    assert f"forecast table{' ' * 20}{output / 'forecast.csv'}" in out
    assert f"freq{' ' * 30}D" in out and f"ended early{' ' * 23}0" in out
    fitted = Forecaster.load(forecaster)
    assert fitted.exog == ("temperature", "workday") and fitted.season_ == 7
    table = pd.read_csv(output / "forecast.csv", parse_dates=["ds"])
    assert table["ds"].min() == pd.Timestamp("2024-05-30") and len(table) == 3 * 14
    assert (table["RNNFlow-lo-95"] <= table["RNNFlow"]).all()
    assert (table["RNNFlow"] <= table["RNNFlow-hi-95"]).all()


@pytest.mark.slow
def test_generated_month_starts_forecast(prefect_api, dask_address, tmp_path, capsys):
    store, output = tmp_path / "monthly.zarr", tmp_path / "out"
    generate = ["generate-data", "-o", str(store), "-n", "12", "-t", "96", "--freq", "MS"]
    assert main([*generate, "--series-chunk", "6"]) == 0
    argv = ["forecast", "--data", str(store), "--output", str(output), "--horizon", "12"]
    argv += ["--forecaster", str(tmp_path / "forecaster.safetensors"), "--plot-series", "2"]
    assert main([*argv, "--backtest-windows", "0", "--scheduler", dask_address]) == 0
    assert f"freq{' ' * 30}MS" in capsys.readouterr().out
    forecast = xr.open_zarr(output / "forecast.zarr", consolidated=False)
    times = pd.DatetimeIndex(forecast["time"].values.ravel())
    assert times.is_month_start.all() and (times == times.normalize()).all()
    assert forecast.attrs["freq"] == "MS" and not (output / "forecast.csv").exists()


def test_options_fall_back_to_the_imported_signature():
    """A default the namespace cannot evaluate: the module is imported and read instead."""
    from rnnflow.flows import defaults

    read, _ = read_function("rnnflow.flows.forecast", "forecast", vars(defaults))
    imported, _ = read_function("rnnflow.flows.forecast", "forecast", {})  # no SAMPLE_DATA
    assert imported == read


def test_incremental_and_full_flags_parse():
    parser = flow_parser("apply")
    assert vars(parser.parse_args(["--model", "m"]))["incremental"] is True
    assert vars(parser.parse_args(["--model", "m", "--full"]))["incremental"] is False
    assert vars(parser.parse_args(["--model", "m", "--incremental"]))["incremental"] is True
    with pytest.raises(SystemExit):
        parser.parse_args(["--model", "m", "--incremental", "--full"])
    assert "--full" in parser.format_help()

"""The deployments of prefect.yaml (package data): they load, and a served one really runs
its flow."""

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prefect.client.schemas.schedules import CronSchedule

from rnnflow.deployments.definitions import PREFECT_YAML, load_definitions, runner_deployments
from rnnflow.flows.cluster import ADDRESS_ENV
from tests.pipeline.support import clean_env, free_port

pytestmark = pytest.mark.slow  # serves deployments and runs their flows


def test_the_declarations_are_package_data():
    assert PREFECT_YAML.name == "prefect.yaml" and PREFECT_YAML.is_file()
    assert "rnnflow.deployments.scheduled:nightly_forecast" in PREFECT_YAML.read_text()


def test_definitions_load_and_fit_their_flows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative path parameters: relative to the working directory
    definitions = {d.name: d for d in load_definitions()}
    assert set(definitions) == {"nightly-forecast", "weekly-refit"}
    assert definitions["nightly-forecast"].flow().name == "forecast"
    assert definitions["weekly-refit"].flow().name == "fit"
    for definition in definitions.values():
        assert definition.parameters["data"] == str(tmp_path.resolve() / "data" / "sample.zarr")
        assert Path(definition.parameters["forecaster"]).is_absolute()
    deployments = {d.name: d for d in runner_deployments(list(definitions.values()))}
    nightly = deployments["nightly-forecast"].schedules[0].schedule
    weekly = deployments["weekly-refit"].schedules[0].schedule
    assert isinstance(nightly, CronSchedule) and nightly.cron == "0 2 * * *"
    assert isinstance(weekly, CronSchedule) and weekly.cron == "0 1 * * 0"
    # the declared flow objects, carrying the declared flow-level retries and time limit
    assert deployments["nightly-forecast"].entrypoint == (
        "rnnflow.deployments.scheduled.nightly_forecast"
    )
    for definition in definitions.values():
        options = definition.flow_options
        assert options["retries"] >= 1 and options["timeout_seconds"] > 0
        flow = definition.flow()
        assert flow.retries == options["retries"]
        assert flow.timeout_seconds == options["timeout_seconds"]


def test_overrides_and_intervals_replace_what_is_declared(tmp_path):
    definitions = load_definitions()
    [nightly, _] = runner_deployments(
        definitions, interval=30, overrides={"nightly-forecast": {"horizon": 12}}
    )
    assert nightly.parameters["horizon"] == 12
    assert nightly.schedules[0].schedule.interval.total_seconds() == 30
    [nightly, weekly] = runner_deployments(
        definitions,
        overrides={
            "nightly-forecast": {"freq": "30min", "season": [48, 336]},
            "weekly-refit": {"exog": ["temperature"]},
        },
    )
    assert (nightly.parameters["freq"], nightly.parameters["season"]) == ("30min", [48, 336])
    assert weekly.parameters["exog"] == ["temperature"]
    with pytest.raises(Exception, match="season"):
        runner_deployments(definitions, overrides={"weekly-refit": {"season": "weekly"}})
    with pytest.raises(ValueError, match="no deployments named"):
        runner_deployments(definitions, overrides={"hourly": {}})
    [nightly, _] = load_definitions(base=tmp_path)
    assert nightly.parameters["output"] == str(tmp_path.resolve() / "output" / "forecast")
    with pytest.raises(Exception, match="horizon"):
        runner_deployments(definitions, overrides={"nightly-forecast": {"horizon": "soon"}})


def completed_runs(api: str) -> list[dict]:
    body = json.dumps({"flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}}).encode()
    request = urllib.request.Request(
        f"{api}/flow_runs/filter", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


@pytest.mark.slow
def test_a_served_deployment_runs_its_flow(dask_address, small_data, tmp_path):
    """``python -m rnnflow.deployments.serve`` with a short interval: its local Prefect server
    schedules a run, the run writes the forecasts, and the process stops cleanly."""
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    output, forecaster = tmp_path / "out", tmp_path / "forecaster.safetensors"
    overrides = {
        "data": small_data,
        "output": output,
        "forecaster": forecaster,
        "backtest_windows": 0,
    }
    argv = [sys.executable, "-m", "rnnflow.deployments.serve", "--only", "nightly-forecast"]
    argv += ["--interval", "10", "--port", str(port)]
    for name, value in overrides.items():
        argv += ["--set", f"nightly-forecast.{name}={value}"]
    env = clean_env(
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_UI_ENABLED="false",
        PREFECT_RUNNER_POLL_FREQUENCY="2",
        **{ADDRESS_ENV: dask_address},
    )
    log = tmp_path / "serve.log"
    with log.open("w") as sink:
        serve = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=sink, stderr=subprocess.STDOUT)
        try:
            deadline, runs = time.monotonic() + 240, []
            while not runs and time.monotonic() < deadline and serve.poll() is None:
                time.sleep(2)
                if (output / "report.json").exists():
                    runs = completed_runs(api)
            assert runs, log.read_text()[-3000:]
            serve.send_signal(signal.SIGTERM)
            assert serve.wait(timeout=60) == 0, log.read_text()[-3000:]
        finally:
            if serve.poll() is None:
                serve.kill()
                serve.wait()
    assert runs[0]["parameters"]["output"] == str(output)
    assert runs[0]["empirical_policy"]["retries"] == 2  # the deployment's flow options
    assert (output / "forecast.zarr").is_dir() and forecaster.is_file()
    with pytest.raises(OSError):  # the local server is gone too
        urllib.request.urlopen(f"{api}/health", timeout=2)


def test_url_parameters_are_kept_as_they_are(tmp_path):
    from rnnflow.deployments.serve import _overrides

    declared = tmp_path / "prefect.yaml"
    declared.write_text(
        "deployments:\n"
        "  - name: remote\n"
        "    entrypoint: rnnflow.flows.forecast:forecast\n"
        "    parameters: {data: s3://bucket/data.zarr, output: memory://runs/out, model: m}\n"
    )
    [remote] = load_definitions(declared, base=tmp_path)
    assert remote.parameters["data"] == "s3://bucket/data.zarr"
    assert remote.parameters["output"] == "memory://runs/out"
    assert remote.parameters["model"] == str(tmp_path.resolve() / "m")
    items = ["remote.output=gs://b/out", "remote.forecaster=f.safetensors"]
    overrides = _overrides(None, items)["remote"]
    assert overrides["output"] == "gs://b/out"
    assert overrides["forecaster"] == str(Path("f.safetensors").resolve())

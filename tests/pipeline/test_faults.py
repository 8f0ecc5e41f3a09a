"""Faults injected for real (killed processes, a full disk, a dead address, two runs on one
directory, a transient failure): the flows finish or refuse clearly, and nothing is lost.

No mocks: real Dask clusters and processes, real signals, real file-size limits, the
session's real Prefect API. Outputs are compared byte for byte with a clean run's; the
only differences allowed are the fields that say which run wrote them and when
(:data:`RUN_ATTRS` in stores, :data:`RUN_FIGURES` and the like in reports).
"""

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from distributed import Client, LocalCluster

from rnncore.io import open_dataset
from rnncore.locking import LOCK_NAME, OutputLocked, output_lock
from rnnflow.deployments.scheduled import nightly_forecast, weekly_refit
from rnnflow.flows.apply import apply
from rnnflow.flows.fit import fit
from rnnflow.flows.forecast import forecast
from tests.pipeline.support import clean_env, free_port, run_flow

pytestmark = pytest.mark.slow  # runs flows, clusters and processes

HORIZON = 12
#: Store attributes that name the run that wrote it and when (``rnnflow_complete``: the
#: time the store was complete, :mod:`rnncore.io`).
RUN_ATTRS = {"flow_run", "created", "rnnflow_complete"}
#: The tasks that forecast (in blocks; incrementally, the flow's default).
FORECAST_TASKS = ("forecast_block", "forecast_incremental")
#: Report figures that are measurements of the run (time, throughput), not results, and
#: what it read: a rerun continues from the state store the first run wrote.
RUN_FIGURES = {
    "wall time (s)",
    "throughput (series-steps/s)",
    "cluster start (s)",
    "process start to flow start (s)",
    "state store",
    "series resumed",
    "series cold",
    "series recomputed",
    "series removed",
    "steps read",
    "steps new",
}


# -- comparing outputs --------------------------------------------------------------


def store_bytes(store: Path, ignore: set[str] = RUN_ATTRS) -> dict[str, Any]:
    """Every file of a Zarr store by relative path, its bytes; the root document parsed,
    its attributes ``ignore`` left out."""
    files = {}
    for path in sorted(p for p in store.rglob("*") if p.is_file()):
        name = str(path.relative_to(store))
        content = path.read_bytes()
        if name == "zarr.json":
            document = json.loads(content)
            for attr in ignore:
                document.get("attributes", {}).pop(attr, None)
            content = document  # compared as parsed JSON: a difference is named
        files[name] = content
    return files


def report_content(directory: Path) -> dict:
    """The run report, without what differs from run to run (run id, time, timings)."""
    content = json.loads((directory / "report.json").read_text())
    del content["flow_run"], content["created"]
    content["figures"] = {k: v for k, v in content["figures"].items() if k not in RUN_FIGURES}
    return content


def forecast_outputs(directory: Path, ignore: set[str] = RUN_ATTRS) -> dict:
    """What a forecast run wrote in ``directory``, to compare runs with."""
    return {
        "forecast.zarr": store_bytes(directory / "forecast.zarr", ignore),
        "forecast.png": (directory / "forecast.png").read_bytes(),
    }


def differences(a, b, where: str = "") -> list[str]:
    """Where the nested dictionaries ``a`` and ``b`` differ (keys, leaves)."""
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        a, b = dict(enumerate(a)), dict(enumerate(b))
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{where}/{key}" for key in sorted(set(a) ^ set(b), key=str)]
        for key in sorted(set(a) & set(b), key=str):
            out += differences(a[key], b[key], f"{where}/{key}")
        return out
    return [] if a == b else [where]


def error_line(stderr: bytes) -> str:
    """The one error line of an ``rnnflow`` command (Prefect may log after it, at exit)."""
    lines = [line for line in stderr.decode().splitlines() if line.startswith("rnnflow ")]
    assert len(lines) == 1, stderr.decode()[-3000:]
    return lines[0]


def debris(directory: Path) -> list[str]:
    """The hidden temporaries and set-aside versions in ``directory``."""
    return sorted(p.name for p in directory.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


# -- runs ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted(prefect_api, dask_address, small_data, tmp_path_factory):
    """A forecaster fitted and backtested by the fit flow."""
    root = tmp_path_factory.mktemp("faults")
    forecaster = root / "forecaster.safetensors"
    run_flow(
        fit,
        dask_address,
        data=str(small_data),
        forecaster=str(forecaster),
        output=str(root / "fit"),
        horizon=HORIZON,
        backtest_windows=1,
    )
    return root, forecaster


@pytest.fixture(scope="module")
def clean(fitted, dask_address, small_data):
    """A clean forecast run with the fitted forecaster; its output directory."""
    root, forecaster = fitted
    output = root / "clean"
    run_flow(forecast, dask_address, **forecast_parameters(small_data, forecaster, output))
    return output


def forecast_parameters(data, forecaster, output) -> dict:
    return {
        "data": str(data),
        "forecaster": str(forecaster),
        "output": str(output),
        "horizon": HORIZON,
    }


def cli_forecast(data, forecaster, output, address) -> list[str]:
    """The command line of a forecast run on the cluster at ``address``."""
    options = forecast_parameters(data, forecaster, output)
    argv = [sys.executable, "-m", "rnnflow.flows.cli", "forecast", "--scheduler", address]
    for name, value in options.items():
        argv += [f"--{name}", str(value)]
    return argv


# -- idempotence --------------------------------------------------------------------


def test_rerunning_each_flow_gives_the_same_bytes(
    fitted, clean, dask_address, small_data, model_file
):
    """forecast, fit and apply, each run twice on the same inputs and output directory:
    the same bytes, but for the run id and time (store attributes, report) and the
    report's timings; apply a third time, incrementally, the same outputs."""
    root, forecaster = fitted
    before = forecast_outputs(clean), report_content(clean)
    run_flow(forecast, dask_address, **forecast_parameters(small_data, forecaster, clean))
    assert differences((forecast_outputs(clean), report_content(clean)), before) == []

    fitting = {
        "data": str(small_data),
        "forecaster": str(forecaster),
        "output": str(root / "fit"),
        "horizon": HORIZON,
        "backtest_windows": 1,
    }
    metrics = forecaster.with_suffix(".metrics.json")

    def fit_outputs():
        return (
            forecaster.read_bytes(),
            metrics.read_bytes(),
            store_bytes(root / "fit" / "backtest.zarr"),
            report_content(root / "fit"),
        )

    before = fit_outputs()
    run_flow(fit, dask_address, **fitting)
    assert differences(fit_outputs(), before) == []

    applied = root / "apply"
    applying = {"model": str(model_file), "data": str(small_data), "output": str(applied)}
    run_flow(apply, dask_address, **applying, incremental=False)
    before = store_bytes(applied / "apply.zarr"), report_content(applied)
    run_flow(apply, dask_address, **applying, incremental=False)
    assert differences((store_bytes(applied / "apply.zarr"), report_content(applied)), before) == []
    # continuing from the state store with no new data changes no byte of the outputs
    run_flow(apply, dask_address, **applying)
    assert differences(store_bytes(applied / "apply.zarr"), before[0]) == []


# -- a Dask worker killed -----------------------------------------------------------


def test_a_killed_worker_is_recomputed_bit_for_bit(
    clean, fitted, prefect_api, small_data, tmp_path
):
    """SIGKILL to a worker process while it runs a forecast task: Dask reruns its work
    elsewhere (the nanny restarts the worker) and the forecasts equal a clean run's."""
    _, forecaster = fitted
    output = tmp_path / "killed-worker"
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        pids = client.run(os.getpid)
        result: dict = {}

        def run():
            try:
                result["value"] = run_flow(
                    forecast,
                    cluster.scheduler_address,
                    **forecast_parameters(small_data, forecaster, output),
                )
            except BaseException as error:  # reported below
                result["error"] = error

        flow = threading.Thread(target=run)
        flow.start()
        killed, deadline = None, time.monotonic() + 120
        while killed is None and flow.is_alive() and time.monotonic() < deadline:
            for worker, keys in client.processing().items():
                if any(name in str(key) for key in keys for name in FORECAST_TASKS):
                    os.kill(pids[worker], signal.SIGKILL)
                    killed = worker
                    break
            time.sleep(0.01)
        flow.join(timeout=300)
        assert killed is not None, "no forecast task was seen running: nothing was killed"
        assert "error" not in result, result.get("error")
        assert pids[killed] not in client.run(os.getpid).values()  # it really died
    assert differences(forecast_outputs(output), forecast_outputs(clean)) == []


# -- the flow process killed while writing ------------------------------------------


def test_a_flow_killed_while_writing_leaves_the_previous_outputs(
    clean, fitted, prefect_api, dask_address, small_data, tmp_path
):
    """SIGKILL to the flow process once its forecast store is being written: the previous
    store is still there, complete and readable; only hidden debris is left; the next
    run removes the debris and succeeds."""
    _, forecaster = fitted
    output = tmp_path / "out"
    shutil.copytree(clean, output)
    previous = forecast_outputs(clean)
    env = clean_env(PREFECT_API_URL=prefect_api)
    argv = cli_forecast(small_data, forecaster, output, dask_address)
    left = []
    for _ in range(4):  # the write takes a fraction of a second: try again if it was missed
        process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while process.poll() is None:
            if any(name.startswith(".forecast.zarr.tmp-") for name in os.listdir(output)):
                process.send_signal(signal.SIGKILL)
                break
        stderr = process.communicate(timeout=300)[1].decode()
        assert process.returncode in (0, -signal.SIGKILL), stderr[-3000:]
        left = debris(output)
        if process.returncode == -signal.SIGKILL and left:
            break
    assert left, "the flow was never killed while writing its forecasts"
    assert all(name.startswith(".") for name in left)  # nothing complete-looking
    assert forecast_outputs(output) == previous  # the previous store, whole
    assert set(open_dataset(output / "forecast.zarr").data_vars) >= {"mean", "lower", "upper"}

    run_flow(forecast, dask_address, **forecast_parameters(small_data, forecaster, output))
    assert debris(output) == []
    assert differences(forecast_outputs(output), previous) == []


# -- two runs on one output directory -----------------------------------------------


def test_a_second_run_on_the_same_output_is_refused_at_once(
    clean, fitted, prefect_api, small_data, tmp_path
):
    """Run A holds the output directory (its tasks wait for a busy one-thread cluster);
    run B on the same directory fails at once, naming A; A then finishes, outputs whole."""
    _, forecaster = fitted
    output, release = tmp_path / "out", tmp_path / "release"
    env = clean_env(PREFECT_API_URL=prefect_api)
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        busy = client.submit(wait_for_file, str(release), pure=False)  # the one thread, taken
        address = cluster.scheduler_address
        argv = cli_forecast(small_data, forecaster, output, address)
        first = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            lock = output / LOCK_NAME
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and first.poll() is None:
                if lock.exists() and str(first.pid) in lock.read_text():
                    break
                time.sleep(0.1)
            assert str(first.pid) in lock.read_text(), first.communicate()[1].decode()[-3000:]

            started = time.monotonic()
            second = subprocess.run(argv, env=env, capture_output=True, timeout=120)
            took = time.monotonic() - started
            message = error_line(second.stderr)
            assert second.returncode == 1
            assert message.startswith("rnnflow forecast: error: OutputLocked:"), message
            assert f"{output} is in use by another run" in message
            assert f"pid {first.pid}" in message
            assert first.poll() is None  # A was not disturbed ...
            assert took < 60  # ... and B did not wait for it (its start-up included)
        finally:
            release.touch()
            busy.result(timeout=60)
            stderr = first.communicate(timeout=300)[1].decode()
    assert first.returncode == 0, stderr[-3000:]
    assert differences(forecast_outputs(output), forecast_outputs(clean)) == []
    assert debris(output) == []


def wait_for_file(path: str) -> None:
    """Run on a Dask worker: hold its thread until ``path`` exists."""
    while not os.path.exists(path):
        time.sleep(0.05)


def test_the_lock_is_released_by_a_killed_holder(tmp_path):
    """flock: a holder killed with SIGKILL leaves no stale lock; a live one is named."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from rnncore.locking import output_lock\n"
            "with output_lock(sys.argv[1], 'holder'):\n"
            "    print('held', flush=True); time.sleep(600)\n",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout.readline() == b"held\n"
        with pytest.raises(OutputLocked, match=f"holder, pid {holder.pid} on "):
            with output_lock(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()
    with output_lock(tmp_path, "next") as lock:
        assert json.loads(lock.read_text())["what"] == "next"


# -- a full disk --------------------------------------------------------------------


def test_a_full_disk_fails_clearly_and_keeps_the_previous_outputs(
    clean, fitted, prefect_api, dask_address, small_data, tmp_path
):
    """The forecast run with a 4 KiB file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored, so a
    write past it fails with EFBIG as on a full disk): one clear line, exit status 1,
    the previous outputs byte for byte, no debris."""
    _, forecaster = fitted
    output = tmp_path / "out"
    shutil.copytree(clean, output)
    previous = forecast_outputs(clean), report_content(clean)
    dask_report = (output / "dask-report.html").read_bytes()

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    run = subprocess.run(
        cli_forecast(small_data, forecaster, output, dask_address),
        env=clean_env(PREFECT_API_URL=prefect_api),
        capture_output=True,
        preexec_fn=limit,
        timeout=300,
    )
    message = error_line(run.stderr)
    assert run.returncode == 1, message
    assert message.startswith("rnnflow forecast: error: OSError: [Errno 27]"), message
    assert "file size limit" in message and str(output) in message, run.stderr.decode()[-6000:]
    assert differences((forecast_outputs(output), report_content(output)), previous) == []
    assert (output / "dask-report.html").read_bytes() == dask_report  # not written: kept
    assert debris(output) == []


# -- an unreachable scheduler -------------------------------------------------------


def test_an_unreachable_scheduler_fails_within_the_connect_timeout(
    prefect_api, small_data, fitted, tmp_path
):
    """``--scheduler`` at a closed port: exit status 1 within a bounded time, one line
    naming the address and the timeout (Dask's ``distributed.comm.timeouts.connect``)."""
    _, forecaster = fitted
    address = f"tcp://127.0.0.1:{free_port()}"
    env = clean_env(PREFECT_API_URL=prefect_api, DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="5s")
    started = time.monotonic()
    run = subprocess.run(
        cli_forecast(small_data, forecaster, tmp_path / "out", address),
        env=env,
        capture_output=True,
        timeout=120,
    )
    took = time.monotonic() - started
    message = error_line(run.stderr)
    assert run.returncode == 1, message
    assert message.startswith("rnnflow forecast: error: "), message
    assert address in message and "5 s" in message, message
    assert took < 60, took


# -- deployments: a transient failure retried ---------------------------------------


def test_the_deployments_retry_a_transient_failure(
    clean, fitted, prefect_api, dask_address, small_data, tmp_path
):
    """The nightly deployment's flow with its declared retries: the data is missing on
    the first attempt (a dangling link), back while the run awaits its retry; the retry
    succeeds in the same flow run and writes what a clean run writes."""
    for deployed in (nightly_forecast, weekly_refit):
        assert deployed.retries >= 1 and deployed.timeout_seconds > 0
    _, forecaster = fitted
    data, output = tmp_path / "data.zarr", tmp_path / "out"
    data.symlink_to(tmp_path / "not-yet.zarr")
    seen: list[dict] = []

    def repair():
        deadline = time.monotonic() + 300
        while not seen and time.monotonic() < deadline:
            seen.extend(runs_in_state(prefect_api, ["AwaitingRetry", "Retrying"], str(output)))
            time.sleep(0.1)
        data.unlink()
        data.symlink_to(small_data)

    repairer = threading.Thread(target=repair)
    repairer.start()
    try:
        flow = nightly_forecast.with_options(retry_delay_seconds=3)
        result = run_flow(flow, dask_address, **forecast_parameters(data, forecaster, output))
    finally:
        repairer.join()
    assert seen, "the first attempt did not fail and await its retry"
    assert result["outputs"]["forecast"] == str(output / "forecast.zarr")
    run_id = open_dataset(output / "forecast.zarr").attrs["flow_run"]
    assert run_id == seen[0]["id"]  # the same flow run, retried
    assert seen[0]["run_count"] >= 1
    ignore = RUN_ATTRS | {"source"}  # the data's path: the link
    assert differences(forecast_outputs(output, ignore), forecast_outputs(clean, ignore)) == []


def runs_in_state(api: str, states: list[str], output: str) -> list[dict]:
    """The flow runs in one of ``states`` whose ``output`` parameter is ``output``."""
    body = json.dumps({"flow_runs": {"state": {"name": {"any_": states}}}}).encode()
    request = urllib.request.Request(
        f"{api}/flow_runs/filter", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return [run for run in json.load(response) if run["parameters"].get("output") == output]

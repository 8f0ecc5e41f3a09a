"""What rnnflow exposes on the network: the services it starts by default listen on this
machine only, and it runs on a remote Dask scheduler over TLS with Dask's own settings.

Nothing is mocked: the services are started as rnnflow starts them, in a subprocess,
and the listening sockets of that process and all its children are read from the
operating system (``psutil``).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.pipeline.support import N_SERIES, clean_env, free_port

RNNFLOW = str(Path(sys.executable).with_name("rnnflow"))
DASK = [sys.executable, "-m", "dask"]
LOOPBACK = {"127.0.0.1", "::1"}

# A flow run as rnnflow's flows make one (their task runner, their cluster session), with
# no Prefect API and no scheduler given: Prefect's embedded API and the embedded
# LocalCluster start. It prints what it started, then holds them until a line on stdin.
HOLDING_FLOW = """
import json, sys
from prefect import flow
from prefect.settings import PREFECT_API_URL
from rnnflow.flows.cluster import cluster_session, dask_runner

@flow(task_runner=dask_runner())
def hold(directory):
    with cluster_session(directory) as session:
        started = {"dashboard": session.dashboard, "api": PREFECT_API_URL.value()}
        print("STARTED " + json.dumps(started), flush=True)
        sys.stdin.readline()

if __name__ == "__main__":  # the worker processes are spawned: they import this file
    hold(sys.argv[1])
"""


def listening(pid: int) -> set[tuple[str, int]]:
    """The (address, port) pairs that process ``pid`` and its descendants listen on."""
    root = psutil.Process(pid)
    found = set()
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            for connection in process.net_connections(kind="inet"):
                if connection.status == psutil.CONN_LISTEN:
                    found.add((connection.laddr.ip, connection.laddr.port))
    return found


def read_line(process: subprocess.Popen[str], prefix: str, timeout: float, log: Path) -> str:
    """The first line of ``process``'s stdout starting with ``prefix``, without it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 1)
        if ready:
            line = process.stdout.readline()
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
            if not line and process.poll() is not None:
                break
    raise AssertionError(f"no {prefix!r} line within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def port_of(url: str) -> int:
    from urllib.parse import urlsplit

    return urlsplit(url).port


@pytest.mark.slow
def test_a_default_flow_run_listens_on_loopback_only(tmp_path):
    """Prefect's embedded API, the embedded LocalCluster's scheduler, nannies and workers,
    and its dashboard: every socket the flow-run process tree listens on is 127.0.0.1."""
    script = tmp_path / "hold.py"
    script.write_text(HOLDING_FLOW)
    log = tmp_path / "run.log"
    env = clean_env(PREFECT_HOME=str(tmp_path / "prefect-home"))
    with log.open("w") as sink:
        run = subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / "out")],
            env=env,
            cwd=tmp_path,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=sink,
            text=True,
        )
        try:
            started = json.loads(read_line(run, "STARTED ", 240, log))
            sockets = listening(run.pid)
            run.stdin.write("\n")
            run.stdin.flush()
            assert run.wait(timeout=120) == 0, log.read_text()[-3000:]
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
    ports = {port for _, port in sockets}
    assert port_of(started["dashboard"]) in ports  # the Dask dashboard
    assert port_of(started["api"]) in ports  # Prefect's embedded API
    assert len(sockets) >= 4  # and the scheduler, nannies and workers
    assert {address for address, _ in sockets} <= LOOPBACK, sockets


@pytest.mark.slow
def test_serve_starts_its_prefect_server_on_loopback_only(tmp_path):
    """``rnnflow serve`` without ``PREFECT_API_URL``: the Prefect server it starts, and
    anything else of its process tree, listens on 127.0.0.1 only."""
    port = free_port()
    argv = [RNNFLOW, "serve", "--only", "nightly-forecast", "--interval", "86400"]
    env = clean_env(PREFECT_HOME=str(tmp_path / "prefect-home"))
    log = tmp_path / "serve.log"
    with log.open("w") as sink:
        serve = subprocess.Popen(
            [*argv, "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=sink,
            text=True,
        )
        try:
            api = read_line(serve, "Prefect API: ", 240, log)
            time.sleep(2)  # let the runner settle beside its server
            sockets = listening(serve.pid)
            serve.send_signal(signal.SIGTERM)
            assert serve.wait(timeout=60) == 0, log.read_text()[-3000:]
        finally:
            if serve.poll() is None:
                serve.kill()
                serve.wait()
    assert api == f"http://127.0.0.1:{port}/api"
    assert port in {p for _, p in sockets}
    assert {address for address, _ in sockets} <= LOOPBACK, sockets


def make_certificates(directory: Path) -> dict[str, Path]:
    """A certificate authority and one certificate it signed (for 127.0.0.1 and localhost),
    as PEM files: ``ca``, ``cert``, ``key``."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(subject, issuer, public_key, signing_key, ca: bool):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(signing_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    key = ec.generate_private_key(ec.SECP256R1())
    ca = build("rnnflow test CA", "rnnflow test CA", ca_key.public_key(), ca_key, ca=True)
    cert = build("rnnflow test cluster", "rnnflow test CA", key.public_key(), ca_key, ca=False)
    paths = {name: directory / f"{name}.pem" for name in ("ca", "cert", "key")}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@pytest.fixture(scope="module")
def tls_cluster(prefect_api, tmp_path_factory):
    """A ``dask scheduler`` listening on ``tls://`` only, and one worker, both with a
    certificate of a CA made here; its address and the PEM files."""
    from distributed import Client, Security

    files = make_certificates(tmp_path_factory.mktemp("tls"))
    port = free_port()
    address = f"tls://127.0.0.1:{port}"
    tls = ["--tls-ca-file", str(files["ca"]), "--tls-cert", str(files["cert"])]
    tls += ["--tls-key", str(files["key"])]
    env = clean_env(PREFECT_API_URL=prefect_api)
    scheduler = [*DASK, "scheduler", "--host", "tls://127.0.0.1", "--port", str(port)]
    worker = [*DASK, "worker", address, "--nthreads", "1", "--no-dashboard"]
    processes = [subprocess.Popen([*scheduler, "--no-dashboard", *tls], env=env)]
    try:
        processes.append(subprocess.Popen([*worker, *tls], env=env))
        security = Security(
            tls_ca_file=str(files["ca"]),
            tls_client_cert=str(files["cert"]),
            tls_client_key=str(files["key"]),
            require_encryption=True,
        )
        with Client(address, security=security, timeout=60) as client:
            client.wait_for_workers(1, timeout=90)
        yield address, files
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)


@pytest.mark.slow
def test_a_flow_runs_on_a_tls_scheduler_with_dasks_own_settings(
    tls_cluster, prefect_api, small_data, model_file, tmp_path
):
    """``rnnflow apply --scheduler tls://...``, its certificates given only as Dask's
    configuration (``DASK_DISTRIBUTED__COMM__TLS__*``): the flow runs on the TLS cluster."""
    address, files = tls_cluster
    dask_tls = {
        "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True",
        "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(files["ca"]),
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": str(files["cert"]),
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": str(files["key"]),
    }
    output = tmp_path / "apply"
    argv = ["apply", "--model", str(model_file), "--data", str(small_data)]
    done = subprocess.run(
        [RNNFLOW, *argv, "--output", str(output), "--scheduler", address],
        env=clean_env(PREFECT_API_URL=prefect_api, **dask_tls),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Dask cluster {address}" in done.stderr  # the run's cluster, logged
    assert f"series{' ' * 28}{N_SERIES}" in done.stdout
    assert (output / "apply.zarr").is_dir()


@pytest.mark.slow
@pytest.mark.parametrize(
    "stranger", ["server unknown to the client", "client unknown to the server"]
)
def test_the_tls_scheduler_and_its_clients_refuse_strangers(tls_cluster, stranger):
    """The TLS scheduler of these tests is really TLS-only and mutually authenticated: a
    client that does not trust the cluster's CA refuses the scheduler, and the scheduler
    refuses a client whose certificate that CA did not sign."""
    from distributed import Client, Security

    address, files = tls_cluster
    other = Security.temporary()  # a self-signed certificate of its own, in memory
    if stranger == "server unknown to the client":
        security, refused = other, pytest.raises(OSError, match="certificate does not match")
    else:
        security = Security(
            tls_ca_file=str(files["ca"]),
            tls_client_cert=other.tls_client_cert,
            tls_client_key=other.tls_client_key,
            require_encryption=True,
        )
        # the scheduler's TLS alert "unknown ca", or (TLS 1.3: the client may be done with
        # its side of the handshake first) the connection closed under it
        refused = pytest.raises(OSError, match=r"SSLError: .*unknown ca|SSLEOFError")
    with refused:
        Client(address, security=security, timeout=5).close()

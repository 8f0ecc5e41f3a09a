"""Serve rnnflow's scheduled deployments: ``rnnflow serve`` (or ``python -m`` this module).

The deployments of ``prefect.yaml`` (:data:`rnnflow.deployments.definitions.PREFECT_YAML`)
are served from this process (:func:`prefect.serve`), path parameters relative to the
working directory.
Schedules need a Prefect server, whose scheduler creates the runs: with
``PREFECT_API_URL`` set, that server is used; without, a local one is started
(``prefect server start``, its data in ``PREFECT_HOME``) and stopped on exit. The
process stops cleanly on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .definitions import PATH_PARAMETERS, PREFECT_YAML, load_definitions, runner_deployments

__all__ = ["local_server", "main"]


def main(argv: Sequence[str] | None = None, prog: str = "rnnflow serve") -> int:
    """Serve the deployments until interrupted; returns the exit status.

    Prefect is imported once the arguments are parsed (``--help`` answers without it).
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serve rnnflow's scheduled deployments (declared in its prefect.yaml); "
        "relative paths among their parameters are relative to the working directory.",
    )
    parser.add_argument(
        "--file",
        type=Path,
        default=PREFECT_YAML,
        help="deployments file (default: rnnflow's own, %(default)s)",
    )
    parser.add_argument(
        "--only", action="append", metavar="NAME", help="serve only this deployment (repeatable)"
    )
    parser.add_argument(
        "--interval",
        type=float,
        metavar="SECONDS",
        help="run every SECONDS instead of on the declared schedules (to try things out)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="DEPLOYMENT.PARAMETER=VALUE",
        help="override a parameter (VALUE read as JSON if it parses, else as a string; "
        "relative paths are relative to the working directory)",
    )
    parser.add_argument(
        "--limit", type=int, default=1, help="most flow runs at once (default: %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=4200,
        help="port of the local Prefect server started when PREFECT_API_URL is unset "
        "(default: %(default)s)",
    )
    args = parser.parse_args(argv)
    from prefect import serve

    definitions = load_definitions(args.file)
    if args.only:
        unknown = sorted(set(args.only) - {d.name for d in definitions})
        if unknown:
            parser.error(f"no deployments named {unknown} in {args.file}")
        definitions = [d for d in definitions if d.name in args.only]
    deployments = runner_deployments(
        definitions, interval=args.interval, overrides=_overrides(parser, args.set)
    )
    signal.signal(signal.SIGTERM, _interrupt)
    with local_server(args.port) as api:
        print(f"Prefect API: {api}", flush=True)
        serve(*deployments, limit=args.limit)
    return 0


@contextlib.contextmanager
def local_server(port: int) -> Iterator[str]:
    """The Prefect API to use: ``PREFECT_API_URL`` if set, else a local server started on
    ``port`` for the duration (and ``PREFECT_API_URL`` set for this process and its children).

    Raises
    ------
    RuntimeError
        If the local server does not answer within
        ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` or exits.
    """
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    configured = PREFECT_API_URL.value()
    if configured:
        yield configured
        return
    api = f"http://127.0.0.1:{port}/api"
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
    server = subprocess.Popen([*command, "--port", str(port)])
    try:
        _wait_healthy(server, api, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value())
        os.environ["PREFECT_API_URL"] = api  # for the flow-run processes
        with temporary_settings(updates={PREFECT_API_URL: api}):
            yield api
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_healthy(server: subprocess.Popen[bytes], api: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the local Prefect server exited with status {server.returncode}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{api}/health", timeout=2):
                return
        time.sleep(0.5)
    raise RuntimeError(f"the local Prefect server did not answer at {api} within {timeout:.0f} s")


def _overrides(parser: argparse.ArgumentParser, items: list[str]) -> dict[str, dict[str, Any]]:
    overrides: dict[str, dict[str, Any]] = {}
    for item in items:
        target, sep, text = item.partition("=")
        deployment, dot, name = target.partition(".")
        if not (sep and dot and deployment and name):
            parser.error(f"--set takes DEPLOYMENT.PARAMETER=VALUE; got {item!r}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        if name in PATH_PARAMETERS and isinstance(value, str) and not _is_url(value):
            value = str(Path(value).resolve())
        overrides.setdefault(deployment, {})[name] = value
    return overrides


def _is_url(value: str) -> bool:
    from rnncore.storage import is_url  # not at import: --help reads this module

    return is_url(value)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # stop like Ctrl-C: serve returns and the server is stopped


if __name__ == "__main__":
    sys.exit(main())

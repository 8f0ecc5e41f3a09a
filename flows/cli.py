"""``rnnflow``: generate data, run the flows, serve the deployments, read run reports.

Each flow command's options are the flow's parameters (names, types, defaults and
the descriptions of its docstring), so the command line and the flow never differ.
Flows and Prefect are imported only by the command that needs them. A failure ends
with one line on stderr, ``rnnflow <command>: error: <reason>``, and exit status 1.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import logging
import runpy
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

#: The script behind ``rnnflow generate-data``.
GENERATE_SCRIPT = Path(__file__).resolve().parents[1] / "data" / "generate.py"

# The flow commands, named as their flows: the flow's module and a line of help.
FLOWS = {
    "fit": ("flows.fit", "the weekly refit: fit and save the forecaster, backtest it"),
    "forecast": ("flows.forecast", "the nightly job: forecast every series, write a report"),
    "apply": ("flows.apply", "run a saved rnncore.Model over a dataset"),
}
OTHERS = {
    "generate-data": "write the synthetic sample dataset (data/generate.py)",
    "serve": "serve the scheduled deployments of prefect.yaml (deployments.serve)",
    "report": "print the run report of a flow's output directory",
}
# Every command and its line of help.
COMMANDS = {**{name: text for name, (_, text) in FLOWS.items()}, **OTHERS}
_JSON_TYPES = {"string": str, "integer": int, "number": float}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rnnflow`` command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="rnnflow",
        description="rnnflow's batch pipeline; 'rnnflow COMMAND --help' shows a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join(f"  {name:<15}{text}" for name, text in COMMANDS.items()),
    )
    parser.add_argument("--version", action="version", version=f"rnnflow {_version()}")
    parser.add_argument("command", choices=list(COMMANDS), metavar="COMMAND")
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    commands: dict[str, Callable[[str, list[str]], int]] = {
        **dict.fromkeys(FLOWS, _run_flow),
        "generate-data": _generate_data,
        "serve": _serve,
        "report": _report,
    }
    try:
        return commands[args.command](args.command, args.args)
    except KeyboardInterrupt:
        print(f"rnnflow {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        print(f"rnnflow {args.command}: error: {reason}", file=sys.stderr)
        return 1


# -- commands -----------------------------------------------------------------------


def _version() -> str:
    """The installed distribution's version (no import of rnncore, so ``--version`` is quick)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rnnflow")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _run_flow(command: str, argv: list[str]) -> int:
    from flows.cluster import ADDRESS_ENV, dask_runner

    module, text = FLOWS[command]
    flow = getattr(importlib.import_module(module), command)
    parser = argparse.ArgumentParser(prog=f"rnnflow {command}", description=text)
    _add_parameters(parser, flow)
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help=f"address of a running Dask scheduler to run on (default: ${ADDRESS_ENV}; "
        "unset: an embedded LocalCluster sized to this machine)",
    )
    options = vars(parser.parse_args(argv))
    runner = dask_runner(options.pop("scheduler"))
    logging.getLogger("distributed").setLevel(logging.WARNING)
    started = time.perf_counter()
    result = flow.with_options(task_runner=runner)(**options)
    print(f"rnnflow {command}: done in {time.perf_counter() - started:.1f} s")
    _print_run(result["outputs"], result["figures"])
    print(f"  {'dashboard (while it ran)':<34}{result['dashboard'] or 'none'}")
    return 0


def _generate_data(command: str, argv: list[str]) -> int:
    if not GENERATE_SCRIPT.is_file():
        raise FileNotFoundError(
            f"{GENERATE_SCRIPT} is missing; generate-data runs it from the project checkout"
        )
    from tqdm.dask import TqdmCallback

    generate = runpy.run_path(str(GENERATE_SCRIPT))["main"]
    program, sys.argv[0] = sys.argv[0], f"rnnflow {command}"  # the script's usage line
    try:
        with TqdmCallback(desc=command, disable=None):
            generate(argv)
    finally:
        sys.argv[0] = program
    return 0


def _serve(command: str, argv: list[str]) -> int:
    from deployments.serve import main as serve

    return serve(argv, prog=f"rnnflow {command}")


def _report(command: str, argv: list[str]) -> int:
    from flows.common import default_output
    from tasks.report import REPORT_NAME

    parser = argparse.ArgumentParser(prog=f"rnnflow {command}", description=COMMANDS[command])
    parser.add_argument(
        "directory",
        nargs="?",
        default=default_output("forecast"),
        help="a flow's output directory (default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print the report file as it is")
    args = parser.parse_args(argv)
    path = Path(args.directory) / REPORT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no run report at {path}; run a flow with --output there first")
    content = json.loads(path.read_text())
    if args.json:
        print(json.dumps(content, indent=2))
        return 0
    print(f"rnnflow {content['flow']}: flow run {content['flow_run']}, {content['created']}")
    _print_run(content["outputs"], content["figures"])
    return 0


# -- helpers ------------------------------------------------------------------------


def _print_run(outputs: Mapping[str, str], figures: Mapping[str, Any]) -> None:
    for name, value in [*outputs.items(), *figures.items()]:
        if isinstance(value, float):
            value = f"{value:.4g}"
        elif isinstance(value, list):
            value = ", ".join(map(str, value)) or "none"
        print(f"  {name:<34}{value}")


def _add_parameters(parser: argparse.ArgumentParser, flow: Any) -> None:
    """An option per parameter of ``flow``, from its JSON schema and numpydoc docstring."""
    from prefect.utilities.callables import parameter_schema

    schema = parameter_schema(flow).model_dump()
    described = _parameter_docs(inspect.getdoc(flow.fn) or "")
    for name, spec in schema["properties"].items():
        types = spec.get("anyOf", [spec])
        kind = next(t for t in types if t.get("type") != "null")
        option: dict[str, Any] = {"help": described.get(name, "")}
        if kind.get("type") == "boolean":
            option["action"] = argparse.BooleanOptionalAction
        elif kind.get("type") == "array":
            option |= {"nargs": "+", "type": _JSON_TYPES[kind["items"]["type"]]}
        else:
            option["type"] = _JSON_TYPES[kind["type"]]
            option["choices"] = kind.get("enum")
        if name in schema.get("required", []):
            option["required"] = True
        else:
            option["default"] = spec["default"]
            option["help"] += " (default: %(default)s)"
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, **option)


def _parameter_docs(doc: str) -> dict[str, str]:
    """The descriptions of a numpydoc ``Parameters`` section, by parameter name."""
    lines = doc.splitlines()
    if "Parameters" not in lines:
        return {}
    described: dict[str, list[str]] = {}
    names: list[str] = []
    start = lines.index("Parameters") + 2
    for line, following in zip(lines[start:], [*lines[start + 1 :], ""], strict=True):
        if following.startswith("---"):
            break  # the next section's title
        if line and not line.startswith(" "):
            names = [n.strip() for n in line.split(":")[0].split(",")]
            for name in names:
                described[name] = []
        elif line.strip():
            for name in names:
                described[name].append(line.strip())
    return {name: " ".join(text).replace("``", "") for name, text in described.items()}


if __name__ == "__main__":
    sys.exit(main())

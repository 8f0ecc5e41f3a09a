"""``rnnflow``: generate data, run the flows, serve the deployments, read run reports.

Each flow command's options are the flow's parameters (names, types, defaults and
the descriptions of its docstring), so the command line and the flow never differ.
They are read from the flow's source (:mod:`rnnflow.flows.options`), so
``rnnflow COMMAND --help`` answers without importing Prefect; the flows and Prefect
are imported only once a command runs. A failure ends with one line on stderr,
``rnnflow <command>: error: <reason>``, and exit status 1.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from . import defaults
from .options import add_options, read_function

__all__ = ["main"]

# The flow commands, named as their flows: the flow's module and a line of help.
FLOWS = {
    "fit": ("rnnflow.flows.fit", "the weekly refit: fit and save the forecaster, backtest it"),
    "forecast": (
        "rnnflow.flows.forecast",
        "the nightly job: forecast every series, write a report",
    ),
    "apply": ("rnnflow.flows.apply", "run a saved rnncore.Model over a dataset"),
}
# Boolean flow parameters whose negative flag is a word of its own: --incremental/--full.
NEGATIONS = {"incremental": "full"}
OTHERS = {
    "generate-data": "write the synthetic sample dataset (data/sample.zarr by default)",
    "serve": "serve the scheduled deployments of rnnflow's prefect.yaml",
    "report": "print the run report of a flow's output directory",
}
# Every command and its line of help.
COMMANDS = {**{name: text for name, (_, text) in FLOWS.items()}, **OTHERS}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rnnflow`` command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="rnnflow",
        description="rnnflow's batch pipeline; 'rnnflow COMMAND --help' shows a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join(f"  {name:<15}{text}" for name, text in COMMANDS.items()),
    )
    parser.add_argument("--version", action=_Version, help="show the version and exit")
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


class _Version(argparse.Action):
    """``--version``: rnncore's version, imported only when asked for (``rnncore``
    registers its xarray accessor on import, which ``--help`` need not wait for)."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        from rnncore.version import __version__

        print(f"rnnflow {__version__}")
        parser.exit()


# -- commands -----------------------------------------------------------------------


def flow_parser(command: str) -> argparse.ArgumentParser:
    """The options of a flow command: the flow's parameters, read from its source, and
    ``--scheduler``. Imports neither the flow nor Prefect."""
    module, text = FLOWS[command]
    parser = argparse.ArgumentParser(prog=f"rnnflow {command}", description=text)
    parameters, _ = read_function(module, command, vars(defaults))
    add_options(parser, parameters, NEGATIONS)
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help=f"address of a running Dask scheduler to run on (default: ${defaults.ADDRESS_ENV}; "
        "unset: an embedded LocalCluster sized to this machine)",
    )
    return parser


def _run_flow(command: str, argv: list[str]) -> int:
    options = vars(flow_parser(command).parse_args(argv))
    from .cluster import dask_runner

    flow = getattr(importlib.import_module(FLOWS[command][0]), command)
    runner = dask_runner(options.pop("scheduler"))
    logging.getLogger("distributed").setLevel(logging.WARNING)
    started = time.perf_counter()
    result = flow.with_options(task_runner=runner)(**options)
    print(f"rnnflow {command}: done in {time.perf_counter() - started:.1f} s")
    _print_run(result["outputs"], result["figures"])
    print(f"  {'dashboard (while it ran)':<34}{result['dashboard'] or 'none'}")
    return 0


def _generate_data(command: str, argv: list[str]) -> int:
    from .generate_data import main as generate

    generate(argv, prog=f"rnnflow {command}")
    return 0


def _serve(command: str, argv: list[str]) -> int:
    from rnnflow.deployments.serve import main as serve

    return serve(argv, prog=f"rnnflow {command}")


def _report(command: str, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"rnnflow {command}", description=COMMANDS[command])
    parser.add_argument(
        "directory",
        nargs="?",
        default=defaults.default_output("forecast"),
        help="a flow's output directory, a local path or an fsspec URL (default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print the report file as it is")
    args = parser.parse_args(argv)
    from rnncore.storage import join, locate, read_bytes
    from rnnflow.tasks.report import REPORT_NAME

    path = join(args.directory, REPORT_NAME)
    if not locate(path).is_file():
        raise FileNotFoundError(f"no run report at {path}; run a flow with --output there first")
    content = json.loads(read_bytes(path))
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


if __name__ == "__main__":
    sys.exit(main())

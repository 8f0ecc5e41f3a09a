"""Run the benchmark rows and print them as a markdown table (and optionally JSON).

Every row measures ours and a peer side by side in the same process: each is called
once to warm up (compiling the kernels), then both are timed in alternation and the
median of the repeats kept, so that load from other processes falls on both alike.
The ratio is ours / peer in throughput; the row passes when it meets its target. The
load average is printed and recorded: on a machine busy with other work, torch's
per-step thread barriers slow it far more than the kernels, and the ratios mislead.

Rows are functions registered with :func:`row`, taking ``quick`` (smaller shapes for a
fast check) and returning a list of :class:`Row`; add later rows the same way::

    python -m benchmarks.run [--quick] [--json PATH] [--rows NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict

import numba
import numpy as np

from rnncore import Model, linear_scan

from . import pipeline

try:
    import torch
except ImportError:  # torch is an optional peer
    torch = None

#: Threads for numba and torch alike.
THREADS = 2


class Row(TypedDict):
    """One line of the table: what was measured, both figures, their ratio and the target."""

    row: str
    shapes: str
    ours: str
    peer: str
    ratio: float | None
    target: str


RowFunction = Callable[[bool], list[Row]]
REGISTRY: dict[str, RowFunction] = {}


def row(name: str) -> Callable[[RowFunction], RowFunction]:
    """Register a row function under ``name`` (rows run in registration order)."""

    def register(fn: RowFunction) -> RowFunction:
        REGISTRY[name] = fn
        return fn

    return register


def side_by_side(*fns: Callable[[], object], repeats: int) -> tuple[float, ...]:
    """Median seconds of each of ``fns``, warmed up and then timed in alternation."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, samples in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
    return tuple(statistics.median(samples) for samples in times)


def meets(ratio: float | None, target: str) -> bool | None:
    """Whether ``ratio`` meets a target written ``">= x"`` or ``"<= x"`` (None if unknown)."""
    if ratio is None:
        return None
    op, _, value = target.partition(" ")
    try:
        bound = float(value)
    except ValueError:
        return None
    return {">=": ratio >= bound, "<=": ratio <= bound}.get(op)


# -- rows 1 to 3: the CPU kernels -------------------------------------------------------


@row("scan")
def scan_row(quick: bool) -> list[Row]:
    """Row 1: ``linear_scan`` float32 against the memory floor ``multiply(a, b, out=h)``.

    Timed twice: into a buffer used again (``out=h``, as the floor writes) and into a
    fresh result, whose first touch of each page costs a fault.
    """
    steps, width = (1024, 4096) if quick else (4096, 16384)
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, (steps, width)).astype(np.float32)
    b = rng.normal(size=(steps, width)).astype(np.float32)
    h = np.empty_like(b)
    into, fresh, floor = side_by_side(
        lambda: linear_scan(a, b, out=h),
        lambda: linear_scan(a, b),
        lambda: np.multiply(a, b, out=h),
        repeats=5 if quick else 9,
    )
    size = steps * width
    peer = f"{size / floor / 1e9:.2f} G el/s multiply(out=h)"
    return [
        {
            "row": f"1 linear_scan{label} / memory floor",
            "shapes": f"T={steps} x N={width} float32",
            "ours": f"{size / ours / 1e9:.2f} G el/s",
            "peer": peer,
            "ratio": floor / ours,
            "target": ">= 0.8",
        }
        for label, ours in (("(out=h)", into), (" (fresh result)", fresh))
    ]


def _cell_rows(
    quick: bool, label: str, cells: tuple[str, ...], peers: dict[str, str], target: str
) -> list[Row]:
    """Models with readout (F=1, H=64) against ``torch.nn`` layers of the same shapes."""
    features, hidden, batch, steps = (1, 64, 64, 256) if quick else (1, 64, 256, 2048)
    shapes = f"F={features} H={hidden} B={batch} T={steps} float32"
    if torch is None:
        return [
            {"row": f"{label} {c}", "shapes": shapes, "ours": "-", "peer": "torch absent",
             "ratio": None, "target": target}
            for c in cells
        ]  # fmt: skip
    torch.set_num_threads(THREADS)
    x = np.random.default_rng(0).normal(size=(steps, batch, features)).astype(np.float32)
    x_torch = torch.from_numpy(x)
    rows: list[Row] = []
    for cell in cells:
        model = Model.init(cell, input_size=features, hidden_sizes=[hidden], output_size=1)
        layer = getattr(torch.nn, peers[cell])(features, hidden)

        def peer(layer: torch.nn.Module = layer) -> None:
            with torch.no_grad():
                layer(x_torch)

        ours, theirs = side_by_side(lambda model=model: model(x), peer, repeats=3 if quick else 5)
        rows.append(
            {
                "row": f"{label} {cell} / torch.nn.{peers[cell]}",
                "shapes": shapes,
                "ours": f"{batch * steps / ours / 1e6:.2f} M series-steps/s",
                "peer": f"{batch * steps / theirs / 1e6:.2f} M series-steps/s",
                "ratio": theirs / ours,
                "target": target,
            }
        )
    return rows


@row("linear-cells")
def linear_cell_rows(quick: bool) -> list[Row]:
    """Row 2: the linear-state cells, with readout, against ``torch.nn.GRU``."""
    cells = ("MinGRU", "QRNN", "MinLSTM")
    return _cell_rows(quick, "2", cells, dict.fromkeys(cells, "GRU"), ">= 20")


@row("nonlinear-cells")
def nonlinear_cell_rows(quick: bool) -> list[Row]:
    """Row 3: GRU and LSTM, with readout, against ``torch.nn.GRU`` and ``torch.nn.LSTM``."""
    return _cell_rows(quick, "3", ("GRU", "LSTM"), {"GRU": "GRU", "LSTM": "LSTM"}, ">= 1.0")


# -- rows 4 to 6: the pipeline on a LocalCluster ---------------------------------------


@row("pipeline")
def pipeline_rows(quick: bool) -> list[Row]:
    """Rows 4 and 6: Zarr -> rnncore.run -> Zarr, overhead, scaling and peak memory."""
    return pipeline.pipeline_rows(*((400, 8760) if quick else (20_000, 26_280)))


@row("time-slicing")
def time_slicing_rows(quick: bool) -> list[Row]:
    """Row 5: one long series chunked in time, 2 workers against 1."""
    return pipeline.time_slicing_row(*((2 * 10**6, 2 * 10**5) if quick else (10**8, 10**6)))


# -- output -----------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    """The rows as a markdown table."""
    lines = [
        "| row | shapes | ours | peer | ratio | target | met |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        met = {True: "yes", False: "no", None: "-"}[meets(r["ratio"], r["target"])]
        cells = (r["row"], r["shapes"], r["ours"], r["peer"], ratio, r["target"], met)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[Row]:
    """Run the selected rows, print the table, write JSON if asked; return the rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, a fast check")
    parser.add_argument("--json", type=Path, help="write the rows and context here")
    parser.add_argument("--rows", nargs="+", choices=sorted(REGISTRY), help="rows to run")
    args = parser.parse_args(argv)
    numba.set_num_threads(min(THREADS, numba.config.NUMBA_NUM_THREADS))
    rows = [r for name in args.rows or REGISTRY for r in REGISTRY[name](args.quick)]
    load = os.getloadavg()
    print(table(rows))
    print(
        f"\nload average {load[0]:.1f} on {os.cpu_count()} CPUs (above one per CPU, ratios mislead)"
    )
    if args.json:
        context = {
            "quick": args.quick,
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "load_average": load,
            "numba_threads": numba.get_num_threads(),
            "torch": None if torch is None else torch.__version__,
        }
        results = [{**r, "met": meets(r["ratio"], r["target"])} for r in rows]
        args.json.write_text(json.dumps({"context": context, "rows": results}, indent=2))
    return rows


if __name__ == "__main__":
    main()

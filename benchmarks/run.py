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
from rnncore.grad import value_and_grad

from . import incremental, incremental_forecast, pipeline

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


# -- rows 7 and 8: training steps (forward, MSE, backward) -----------------------------


def _torch_model(model: Model, peer: str) -> torch.nn.Module:
    """A torch model holding ``model``'s parameters, keyed as its state dict keys them.

    ``peer`` is ``"GRU"`` or ``"LSTM"`` (``torch.nn`` layers, whose parameter names
    rnncore's nonlinear cells share) or ``"minGRU"`` (:class:`_TorchMinGRU`).
    """
    cell = model.layers[0]
    layer = (
        _TorchMinGRU(cell.input_size, cell.hidden_size)
        if peer == "minGRU"
        else getattr(torch.nn, peer)(cell.input_size, cell.hidden_size)
    )
    net = torch.nn.ModuleDict(
        {"layers": torch.nn.ModuleList([layer]), "readout": torch.nn.Linear(cell.hidden_size, 1)}
    )
    if peer == "minGRU" or type(cell).__name__ == peer:
        net.load_state_dict(
            {k: torch.from_numpy(np.array(v)) for k, v in model.state_dict().items()}
        )
    return net


class _TorchMinGRU(torch.nn.Module if torch is not None else object):
    """rnncore's MinGRU in torch: ``h_t = (1 - z_t) h_{t-1} + z_t h~_t`` from ``h_0 = 0``.

    Computed as the minGRU paper's parallel scan in log space (``cumsum`` of the log
    decays, ``logcumsumexp`` of the log inputs), with one change: rnncore's candidate
    ``h~`` is not passed through ``g`` and may be negative, so its positive and
    negative parts are scanned separately and subtracted (each part floored at
    ``1e-30``; the floors add the same term to both scans and cancel).
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(2 * hidden_size, input_size))
        self.bias = torch.nn.Parameter(torch.empty(2 * hidden_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        uz, uh = torch.nn.functional.linear(x, self.weight, self.bias).chunk(2, dim=-1)
        log_z = torch.nn.functional.logsigmoid(uz)
        a_star = torch.cumsum(torch.nn.functional.logsigmoid(-uz), dim=0)
        parts = (log_z + torch.log(torch.clamp_min(s * uh, 1e-30)) - a_star for s in (1, -1))
        pos, neg = (torch.exp(a_star + torch.logcumsumexp(v, dim=0)) for v in parts)
        return pos - neg


def _torch_step(net: torch.nn.Module, x: torch.Tensor, target: torch.Tensor) -> float:
    """One torch training step: forward, MSE of the readout, backward into ``.grad``."""
    net.zero_grad()
    out = net["layers"][0](x)
    y = net["readout"](out[0] if isinstance(out, tuple) else out)
    loss = torch.nn.functional.mse_loss(y, target)
    loss.backward()
    return float(loss.detach())


def _training_rows(
    quick: bool, label: str, cell: str, peers: dict[str, tuple[str, str]]
) -> list[Row]:
    """One training step of a model with readout (F=1, H=64) against torch peers.

    ``peers`` maps each peer's name in the table to its kind (for :func:`_torch_model`)
    and its target.
    """
    features, hidden, batch, steps = (1, 64, 64, 256) if quick else (1, 64, 256, 2048)
    shapes = f"F={features} H={hidden} B={batch} T={steps} float32, MSE, all gradients"
    if torch is None:
        return [
            {"row": f"{label} {cell} training / {p}", "shapes": shapes, "ours": "-",
             "peer": "torch absent", "ratio": None, "target": t}
            for p, (_, t) in peers.items()
        ]  # fmt: skip
    torch.set_num_threads(THREADS)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(steps, batch, features)).astype(np.float32)
    target = rng.normal(size=(steps, batch, 1)).astype(np.float32)
    x_torch, target_torch = torch.from_numpy(x), torch.from_numpy(target)
    model = Model.init(cell, input_size=features, hidden_sizes=[hidden], output_size=1)
    nets = [_torch_model(model, kind) for kind, _ in peers.values()]
    ours, *theirs = side_by_side(
        lambda: value_and_grad(model, x, target),
        *(lambda net=net: _torch_step(net, x_torch, target_torch) for net in nets),
        repeats=2 if quick else 3,
    )
    rate = "{:.3g} M series-steps/s"
    return [
        {
            "row": f"{label} {cell} training / {peer}",
            "shapes": shapes,
            "ours": rate.format(batch * steps / ours / 1e6),
            "peer": rate.format(batch * steps / peer_time / 1e6),
            "ratio": peer_time / ours,
            "target": peer_target,
        }
        for (peer, (_, peer_target)), peer_time in zip(peers.items(), theirs, strict=True)
    ]


@row("mingru-training")
def mingru_training_rows(quick: bool) -> list[Row]:
    """Row 7: a MinGRU training step against a torch minGRU and ``torch.nn.GRU`` (autograd)."""
    peers = {
        "torch minGRU (log-space scan)": ("minGRU", ">= 10"),
        "torch.nn.GRU": ("GRU", ">= 20"),
    }
    return _training_rows(quick, "7", "MinGRU", peers)


@row("nonlinear-training")
def nonlinear_training_rows(quick: bool) -> list[Row]:
    """Row 8: GRU and LSTM training steps against ``torch.nn.GRU`` and ``torch.nn.LSTM``."""
    return [
        r
        for cell in ("GRU", "LSTM")
        for r in _training_rows(quick, "8", cell, {f"torch.nn.{cell}": (cell, ">= 1.0")})
    ]


# -- row 9: incremental runs from a state store ------------------------------------------


@row("incremental")
def incremental_rows(quick: bool) -> list[Row]:
    """Row 9: one night's incremental run against the full recompute, 1y and 4y hourly."""
    return incremental.incremental_rows(quick)


# -- row 10: the incremental forecast ---------------------------------------------------


@row("incremental-forecast")
def incremental_forecast_rows(quick: bool) -> list[Row]:
    """Row 10: one night's incremental forecast against the full recompute, and its growth."""
    n_series, repeats = (50, 3) if quick else (2000, 3)  # the sample data: 2000 series
    return incremental_forecast.incremental_forecast_rows(n_series, repeats)


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

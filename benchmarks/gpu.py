"""GPU benchmark: rnncore on CuPy beside its peers, measured side by side in one run.

Run on a GPU machine (``scripts/gpu_check.sh`` does): ``python -m benchmarks.gpu [--quick]``.
Every row is a ratio against a peer measured in the same process, in alternation
(:func:`benchmarks.run.side_by_side`), each call ending with a device synchronise:
the device-copy bandwidth floor and ``jax.lax.associative_scan`` for the scan, cuDNN
through ``torch.nn.GRU``/``LSTM`` for the cells. Peers that are not installed are
reported as absent. Prints the same markdown table as :mod:`benchmarks.run`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import cupy

from rnncore import Model, linear_scan

from .run import Row, meets, side_by_side, table

REPEATS = 7


def synced(fn: Callable[[], object]) -> Callable[[], None]:
    """``fn`` followed by a synchronise of the whole device (every stream, every library)."""

    def call() -> None:
        fn()
        cupy.cuda.runtime.deviceSynchronize()

    return call


def scan_rows(steps: int, width: int) -> list[Row]:
    """``linear_scan`` float32 against the device-copy floor and JAX's associative scan."""
    rng = cupy.random.default_rng(0)
    a = rng.uniform(0.5, 1.0, (steps, width), dtype=cupy.float32)
    b = rng.standard_normal((steps, width), dtype=cupy.float32)
    h, out = cupy.empty_like(b), cupy.empty_like(b)
    ours, copy = side_by_side(
        synced(lambda: linear_scan(a, b, out=h)),
        synced(lambda: cupy.copyto(out, b)),
        repeats=REPEATS,
    )
    size, shapes = steps * width, f"T={steps} x N={width} float32"
    # a copy moves 8 bytes an element, a scan 12 (reads a and b, writes h)
    floor = copy * 12 / 8
    rows: list[Row] = [
        {
            "row": "linear_scan / device-copy floor",
            "shapes": shapes,
            "ours": f"{size / ours / 1e9:.1f} G el/s",
            "peer": f"{size / floor / 1e9:.1f} G el/s",
            "ratio": floor / ours,
            "target": ">= 0.8",
        }
    ]
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        peer, ratio = "jax absent", None
    else:
        ja, jb = jnp.asarray(cupy.asnumpy(a)), jnp.asarray(cupy.asnumpy(b))

        def combine(x: tuple, y: tuple) -> tuple:
            return y[0] * x[0], y[0] * x[1] + y[1]

        scan = jax.jit(lambda p, q: jax.lax.associative_scan(combine, (p, q))[1])
        ours, theirs = side_by_side(
            synced(lambda: linear_scan(a, b, out=h)),
            synced(lambda: scan(ja, jb).block_until_ready()),
            repeats=REPEATS,
        )
        peer, ratio = f"{size / theirs / 1e9:.1f} G el/s", theirs / ours
    rows.append(
        {
            "row": "linear_scan / jax.lax.associative_scan",
            "shapes": shapes,
            "ours": f"{size / ours / 1e9:.1f} G el/s",
            "peer": peer,
            "ratio": ratio,
            "target": "-",
        }
    )
    return rows


def cell_rows(batch: int, steps: int, hidden: int) -> list[Row]:
    """Models with readout against cuDNN layers of the same shapes (F=1)."""
    shapes = f"F=1 H={hidden} B={batch} T={steps} float32"
    cells = {"MinGRU": ("GRU", ">= 20"), "QRNN": ("GRU", "-"), "GRU": ("GRU", ">= 1.0"),
             "LSTM": ("LSTM", ">= 1.0")}  # fmt: skip
    try:
        import torch
    except ImportError:
        return [
            {"row": f"{c} / cuDNN {p}", "shapes": shapes, "ours": "-", "peer": "torch absent",
             "ratio": None, "target": t}
            for c, (p, t) in cells.items()
        ]  # fmt: skip
    x = cupy.random.default_rng(0).standard_normal((steps, batch, 1), dtype=cupy.float32)
    x_torch = torch.as_tensor(x, device="cuda")
    rows: list[Row] = []
    for cell, (peer_name, target) in cells.items():
        model = Model.init(cell, 1, [hidden], output_size=1)
        peer = getattr(torch.nn, peer_name)(1, hidden).cuda()

        def theirs(peer: torch.nn.Module = peer) -> None:
            with torch.no_grad():
                peer(x_torch)

        ours, peer_time = side_by_side(
            synced(lambda model=model: model(x)), synced(theirs), repeats=REPEATS
        )
        rows.append(
            {
                "row": f"{cell} / cuDNN {peer_name}",
                "shapes": shapes,
                "ours": f"{batch * steps / ours / 1e6:.0f} M series-steps/s",
                "peer": f"{batch * steps / peer_time / 1e6:.0f} M series-steps/s",
                "ratio": peer_time / ours,
                "target": target,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    """Run the rows, print the table, write JSON if asked; return the rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller shapes, a fast check")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    scale = 8 if args.quick else 1
    rows = scan_rows(4096, 65536 // scale) + scan_rows(2**20 // scale, 512)
    rows += cell_rows(1024, 4096 // scale, 64)
    device = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    print(f"device: {device}\n\n{table(rows)}")
    if args.json:
        results = [{**r, "met": meets(r["ratio"], r["target"])} for r in rows]
        args.json.write_text(json.dumps({"device": device, "rows": results}, indent=2))
    return rows


if __name__ == "__main__":
    main()

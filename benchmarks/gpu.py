"""GPU benchmark: rnncore on CuPy beside its peers, measured side by side in one run.

Run on a GPU machine (``scripts/gpu_check.sh`` does): ``python -m benchmarks.gpu [--quick]``.
Every row is a ratio against a peer measured in the same process: the device-copy
bandwidth floor and ``jax.lax.associative_scan`` for the scan, cuDNN through
``torch.nn.GRU``/``LSTM`` for the cells. Times are medians of CUDA-event timings after
a warm-up. Peers that are not installed are skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable

import cupy

from rnncore import Model, linear_scan


def gpu_time(fn: Callable[[], object], repeats: int = 5) -> float:
    """Median seconds of ``fn`` on the current stream, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, stop) / 1e3)
    return statistics.median(times)


def scan_rows(shapes: list[tuple[int, int]]) -> list[dict]:
    rows = []
    for steps, width in shapes:
        rng = cupy.random.default_rng(0)
        a = rng.uniform(0.5, 1.0, (steps, width), dtype=cupy.float32)
        b = rng.standard_normal((steps, width), dtype=cupy.float32)
        out = cupy.empty_like(b)
        elements = steps * width
        ours = elements / gpu_time(lambda: linear_scan(a, b))  # noqa: B023
        copy_rate = 2 * a.nbytes / gpu_time(lambda: cupy.copyto(out, b))  # noqa: B023
        floor = copy_rate / 12  # a scan reads a and b and writes h: 12 bytes an element
        row = {
            "row": f"linear_scan {steps}x{width}",
            "ours (G el/s)": ours / 1e9,
            "floor (G el/s)": floor / 1e9,
            "vs floor": ours / floor,
            "target": "0.8",
        }
        try:
            import jax
            import jax.numpy as jnp

            ja, jb = jnp.asarray(cupy.asnumpy(a)), jnp.asarray(cupy.asnumpy(b))

            def combine(x, y):
                return y[0] * x[0], y[0] * x[1] + y[1]

            fn = jax.jit(lambda p, q: jax.lax.associative_scan(combine, (p, q))[1])
            fn(ja, jb).block_until_ready()
            jax_time = gpu_time(lambda: fn(ja, jb).block_until_ready())  # noqa: B023
            row["vs jax.associative_scan"] = ours / (elements / jax_time)
        except ImportError:
            row["vs jax.associative_scan"] = "jax not installed"
        rows.append(row)
    return rows


def cell_rows(batch: int, steps: int, hidden: int) -> list[dict]:
    try:
        import torch
    except ImportError:
        return [{"row": "cells", "note": "torch not installed: cuDNN rows skipped"}]
    rows = []
    x = cupy.random.default_rng(0).standard_normal((steps, batch, 1), dtype=cupy.float32)
    xt = torch.as_tensor(x, device="cuda")
    series_steps = batch * steps
    for ours_name, peer_name in (
        ("MinGRU", "GRU"),
        ("QRNN", "GRU"),
        ("GRU", "GRU"),
        ("LSTM", "LSTM"),
    ):
        model = Model.init(ours_name, 1, [hidden], output_size=1)
        peer = getattr(torch.nn, peer_name)(1, hidden).cuda()
        with torch.no_grad():
            peer_time = gpu_time(lambda: peer(xt))  # noqa: B023
        ours_time = gpu_time(lambda: model(x))  # noqa: B023
        target = "20" if ours_name in ("MinGRU",) else "1.0"
        rows.append(
            {
                "row": f"{ours_name} F=1 H={hidden} B={batch} T={steps}",
                "ours (M series-steps/s)": series_steps / ours_time / 1e6,
                f"cuDNN {peer_name} (M/s)": series_steps / peer_time / 1e6,
                "ratio": peer_time / ours_time,
                "target": target,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller shapes")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    scale = 8 if args.quick else 1
    rows = scan_rows([(4096, 65536 // scale), (2**20 // scale, 512)])
    rows += cell_rows(1024, 4096 // scale, 64)
    print(f"device: {cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()}")
    for row in rows:
        print(
            " | ".join(
                f"{k}: {v:.3g}" if isinstance(v, float) else f"{k}: {v}" for k, v in row.items()
            )
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2, default=str)


if __name__ == "__main__":
    main()

"""A short end-to-end example of rnncore on generated data.

Generates a batch of noisy seasonal series, runs a two-layer MinGRU model over them
unchunked and with time split into uneven chunks, checks both against the
sequential float64 reference, and prints the figures.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rnncore
from rnncore import Model, linear_scan


def generate(n_series: int, n_steps: int, seed: int) -> np.ndarray:
    """Daily-seasonal hourly series with trend and noise, ``(time, series, 1)``."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_steps)[:, None]
    level = rng.uniform(5, 50, n_series)
    trend = rng.normal(0, 1e-3, n_series)
    season = rng.uniform(0.5, 3, n_series) * np.sin(
        2 * np.pi * t / 24 + rng.uniform(0, 6, n_series)
    )
    noise = rng.normal(0, 0.5, (n_steps, n_series))
    return (level + trend * t + season + noise)[..., None].astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=256, help="number of series")
    parser.add_argument("--steps", type=int, default=2048, help="time steps per series")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    x = generate(args.series, args.steps, args.seed)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    model = Model.init("MinGRU", input_size=1, hidden_sizes=[64, 64], output_size=1, seed=1)
    print(f"rnncore {rnncore.__version__}: {model}")
    print(f"data: {args.series} series x {args.steps} steps, float32")

    start = time.perf_counter()
    y, _ = model(x)
    elapsed = time.perf_counter() - start
    rate = args.series * args.steps / elapsed / 1e6
    print(f"model(x): {elapsed:.3f} s, {rate:.2f} M series-steps/s")

    cell = model.layers[0]
    a, b = cell.transition(x)
    sizes = [1, 2, 3, 5, 7, 11, 13]
    sizes.append(args.steps - sum(sizes))
    chunked = linear_scan(a, b, chunk=sizes)
    whole = linear_scan(a.astype(np.float64), b.astype(np.float64), chunk=args.steps)
    err = np.linalg.norm(chunked - whole) / np.linalg.norm(whole)
    print(
        f"first layer, time chunks {sizes[:-1]}+[{sizes[-1]}] vs one float64 chunk: "
        f"relative error {err:.2e} (float32)"
    )
    print(f"output: shape {y.shape}, mean {float(y.mean()):+.4f}, std {float(y.std()):.4f}")


if __name__ == "__main__":
    main()

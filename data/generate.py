"""Write rnnflow's synthetic sample data to a Zarr store.

Run ``python data/generate.py --help`` for the options; with none it writes
``data/sample.zarr``: 2000 hourly series over a year (8760 steps).
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rnncore.synthetic import generate, write_synthetic

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "sample.zarr"

# The defaults of generate and write_synthetic, so that they are stated once.
_DEFAULTS = {
    name: p.default
    for func in (generate, write_synthetic)
    for name, p in inspect.signature(func).parameters.items()
    if p.default is not inspect.Parameter.empty
}


def main(argv: Sequence[str] | None = None) -> Path:
    """Parse ``argv`` (the command line if ``None``), write the store, report it.

    Returns
    -------
    pathlib.Path
        The store written.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    options = vars(args).copy()
    output, overwrite = options.pop("output"), options.pop("overwrite")
    n_series, n_steps = options.pop("n_series"), options.pop("n_steps")
    try:
        path = write_synthetic(output, n_series, n_steps, overwrite=overwrite, **options)
    except FileExistsError:
        parser.error(f"{output} already exists; pass --overwrite to replace it")
    except ValueError as err:
        parser.error(str(err))
    stored = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    values = n_series * n_steps * (1 + args.n_features) * np.dtype(args.dtype).itemsize
    print(
        f"wrote {path}: {n_series} series x {n_steps} steps at freq {args.freq!r}, "
        f"{args.n_features} covariate(s); {stored / 2**20:.1f} MiB on disk, "
        f"{values / 2**20:.1f} MiB uncompressed ({args.dtype})"
    )
    return path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=(
            "Write synthetic multi-series data (rnncore.synthetic) to a Zarr store: "
            "levels, trends, daily and weekly seasonality, AR(1) noise, gaps, late "
            "starts and early ends, constant series. The same seed gives the same data."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("-o", "--output", type=Path, default=DEFAULT_OUTPUT, help="Zarr store to write")
    add("--overwrite", action="store_true", help="replace an existing store (once complete)")
    add("-n", "--n-series", type=int, default=2000, help="number of series")
    add("-t", "--n-steps", type=int, default=8760, help="number of time steps")
    add("--freq", default=_DEFAULTS["freq"], help="pandas frequency of the time axis")
    add("--start", default=_DEFAULTS["start"], help="first timestamp")
    add("--seed", type=int, default=_DEFAULTS["seed"], help="random seed")
    add("--n-features", type=int, default=_DEFAULTS["n_features"], help="number of covariates")
    for name, what in (
        ("gap_fraction", "expected fraction of a series' span lost to gaps"),
        ("late_start_fraction", "probability that a series starts late"),
        ("early_end_fraction", "probability that a series ends early"),
    ):
        add(f"--{name.replace('_', '-')}", type=float, default=_DEFAULTS[name], help=what)
    add("--n-constant", type=int, default=_DEFAULTS["n_constant"], help="number of constant series")
    add("--n-all-nan", type=int, default=_DEFAULTS["n_all_nan"], help="number of all-NaN series")
    add(
        "--dtype",
        choices=["float32", "float64"],
        default=np.dtype(_DEFAULTS["dtype"]).name,
        help="stored dtype",
    )
    for name in ("series_chunk", "time_chunk"):
        add(
            f"--{name.replace('_', '-')}",
            type=int,
            default=_DEFAULTS[name],
            help=f"storage chunk along {name.split('_')[0]}",
        )
    return parser


if __name__ == "__main__":
    main()

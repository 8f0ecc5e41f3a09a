"""``rnnflow generate-data``: write rnnflow's synthetic sample data to a Zarr store.

With no options it writes ``data/sample.zarr`` (relative to the working directory,
where the flows look by default): 2000 hourly series over a year (8760 steps). The
options' defaults are those of :func:`rnncore.synthetic.generate` and
:func:`rnncore.synthetic.write_synthetic`, read from their signatures without
importing them (:mod:`rnnflow.flows.options`), so ``--help`` answers at once.
``data/generate.py`` in the checkout runs this too.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .defaults import SAMPLE_DATA
from .options import REQUIRED, read_function

__all__ = ["DESCRIPTION", "main"]

DESCRIPTION = (
    "Write synthetic multi-series data (rnncore.synthetic) to a Zarr store: levels, trends, "
    "daily and weekly seasonality, AR(1) noise, gaps, late starts and early ends, constant "
    "series. The same seed gives the same data."
)


def main(
    argv: Sequence[str] | None = None,
    prog: str | None = None,
    default_output: str | Path = SAMPLE_DATA,
) -> Path:
    """Parse ``argv`` (the command line if ``None``), write the store, report it.

    Parameters
    ----------
    argv
        The options.
    prog
        The program's name in the usage line.
    default_output
        The store written without ``--output``.

    Returns
    -------
    pathlib.Path
        The store written.
    """
    parser = _parser(prog, default_output)
    args = parser.parse_args(argv)

    import numpy as np
    from tqdm.dask import TqdmCallback

    from rnncore.synthetic import write_synthetic

    options = vars(args).copy()
    output, overwrite = options.pop("output"), options.pop("overwrite")
    n_series, n_steps = options.pop("n_series"), options.pop("n_steps")
    try:
        with TqdmCallback(desc="generate-data", disable=None):
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


def _defaults() -> dict[str, Any]:
    """The defaults of ``generate`` and ``write_synthetic``, so that they are stated once."""
    import numpy as np

    defaults = {}
    for function in ("generate", "write_synthetic"):
        parameters, _ = read_function("rnncore.synthetic", function, {"np": np})
        defaults |= {p.name: p.default for p in parameters if p.default is not REQUIRED}
    defaults["dtype"] = np.dtype(defaults["dtype"]).name
    return defaults


def _parser(prog: str | None, default_output: str | Path) -> argparse.ArgumentParser:
    defaults = _defaults()
    parser = argparse.ArgumentParser(
        prog=prog,
        description=DESCRIPTION,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("-o", "--output", type=Path, default=Path(default_output), help="Zarr store to write")
    add("--overwrite", action="store_true", help="replace an existing store (once complete)")
    add("-n", "--n-series", type=int, default=2000, help="number of series")
    add("-t", "--n-steps", type=int, default=8760, help="number of time steps")
    add("--freq", default=defaults["freq"], help="pandas frequency of the time axis")
    add("--start", default=defaults["start"], help="first timestamp")
    add("--seed", type=int, default=defaults["seed"], help="random seed")
    add("--n-features", type=int, default=defaults["n_features"], help="number of covariates")
    for name, what in (
        ("gap_fraction", "expected fraction of a series' span lost to gaps"),
        ("late_start_fraction", "probability that a series starts late"),
        ("early_end_fraction", "probability that a series ends early"),
    ):
        add(f"--{name.replace('_', '-')}", type=float, default=defaults[name], help=what)
    add("--n-constant", type=int, default=defaults["n_constant"], help="number of constant series")
    add("--n-all-nan", type=int, default=defaults["n_all_nan"], help="number of all-NaN series")
    add("--dtype", choices=["float32", "float64"], default=defaults["dtype"], help="stored dtype")
    for name in ("series_chunk", "time_chunk"):
        add(
            f"--{name.replace('_', '-')}",
            type=int,
            default=defaults[name],
            help=f"storage chunk along {name.split('_')[0]}",
        )
    return parser


if __name__ == "__main__":
    main()

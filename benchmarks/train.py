"""Train a small model on a real dataset and print the losses per epoch.

One-step-ahead prediction of each series' standardised log values (the mean and
standard deviation of each series taken over its training steps only), validated on
the last ``--validation`` fraction of the time axis (or on held-out series with
``--split-by series``)::

    python -m benchmarks.train [--data monthly] [--epochs 30] [--hidden 16] ...

With ``--cluster N`` the data are chunked (``--chunks SERIES TIME``) and trained over
a ``LocalCluster`` of ``N`` single-threaded worker processes, the gradients computed
by Dask graphs on it; the losses equal the in-memory run's up to rounding.

The files are the long-format tables of ``shared/data/real`` (see its README).
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

import numpy as np
import xarray as xr

from rnncore import CELLS, Model, train
from rnncore.longformat import read_long

#: The shared real datasets.
DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real"


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    y = read_long(args.data_dir / f"{args.data}.csv.gz", freq=args.freq).y
    y = _standardise(np.log(y) if args.log else y, args)
    model = Model.init(
        args.cell, 1, [args.hidden] * args.layers, 1, seed=args.seed, dtype=np.float64
    )
    print(f"{args.data}: {y.sizes['series']} series x {y.sizes['time']} steps; {model}")
    with _cluster(args.cluster) as where:
        series, steps = args.chunks
        data = y if where is None else y.chunk({"series": series, "time": steps})
        print(f"training {'in memory' if where is None else f'on {where}'}")
        start = time.perf_counter()
        result = train(
            model, data, data.shift(time=-1), epochs=args.epochs,
            batch_series=args.batch_series or None, window=args.window or None, lr=args.lr,
            seed=args.seed, validation=args.validation, split_by=args.split_by,
            checkpoint=args.checkpoint, resume=args.resume, progress=args.progress,
        )  # fmt: skip
        seconds = time.perf_counter() - start
    print(result.history.to_dataframe().to_string(float_format="{:.4f}".format))
    first, last = (result.history.isel(epoch=k) for k in (0, -1))
    print(
        f"validation loss {float(first.validation_loss):.4f} -> {float(last.validation_loss):.4f}"
        f", train loss {float(first.train_loss):.4f} -> {float(last.train_loss):.4f}"
        f" in {seconds:.1f} s"
    )
    if args.split_by == "time":
        print(f"repeating the last value: validation loss {_naive(y, args.validation):.4f}")


@contextlib.contextmanager
def _cluster(workers: int):
    """A ``LocalCluster`` of ``workers`` single-threaded processes and its client (or None)."""
    if not workers:
        yield None
        return
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0") as cluster,
        Client(cluster),
    ):
        yield f"a LocalCluster of {workers} worker processes"


def _naive(y: xr.DataArray, validation: float) -> float:
    """The validation loss of predicting each step's value for the next (time split)."""
    held = max(1, round(validation * y.sizes["time"]))
    error = (y.shift(time=-1) - y).isel(time=slice(y.sizes["time"] - held, None))
    return float((error**2).mean())


def _standardise(y: xr.DataArray, args: argparse.Namespace) -> xr.DataArray:
    """Each series less its mean, over its standard deviation, both of its training steps."""
    fit = y
    if args.split_by == "time":
        held = max(1, round(args.validation * y.sizes["time"]))
        fit = y.isel(time=slice(0, y.sizes["time"] - held))
    return (y - fit.mean("time")) / fit.std("time")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="monthly", help="a table of --data-dir, no suffix")
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument("--freq", default=None, help="the time axis' frequency (default: infer)")
    parser.add_argument("--no-log", dest="log", action="store_false", help="model y, not log y")
    parser.add_argument("--cell", default="MinGRU", choices=sorted(CELLS))
    parser.add_argument("--hidden", type=int, default=16, help="units per layer")
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-series", type=int, default=5, help="series per batch (0: all)")
    parser.add_argument("--window", type=int, default=48, help="steps per window (0: whole)")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--validation", type=float, default=0.2)
    parser.add_argument("--split-by", default="time", choices=("series", "time"))
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--progress", action="store_true", help="show a progress bar")
    parser.add_argument(
        "--cluster", type=int, default=0, help="train on a LocalCluster of N workers (0: in memory)"
    )
    parser.add_argument(
        "--chunks", type=int, nargs=2, default=(5, 240), metavar=("SERIES", "TIME"),
        help="the Dask chunks with --cluster",
    )  # fmt: skip
    return parser


if __name__ == "__main__":
    main()

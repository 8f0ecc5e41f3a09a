"""Measure the global forecaster: backtest accuracy, fit and predict time, worker memory.

Two reports, each printed as markdown::

    python scripts/forecast_report.py backtest [--data data/sample.zarr] [--windows 4]
    python scripts/forecast_report.py memory [--series 1000] [--steps 8760 35040]

``backtest`` runs :func:`rnncore.forecast.backtest` on a Zarr store (the sample data
by default; ``data/generate.py`` writes it) and times one fit and one predict on the
whole store. ``memory`` writes synthetic stores of each length to a temporary
directory, then fits and forecasts each on a ``distributed.LocalCluster`` of two
single-threaded worker processes, sampling every worker's resident memory.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import psutil
from distributed import Client, LocalCluster

from rnncore.forecast import Forecaster, backtest, backtest_table
from rnncore.io import open_dataset
from rnncore.synthetic import write_synthetic

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "data" / "sample.zarr"
# Storage chunks of the stores the memory report writes: (series, time).
STORE_CHUNKS = {"series": 500, "time": 2160}


def main(argv: Sequence[str] | None = None) -> None:
    """Parse ``argv`` (the command line if ``None``) and print the report asked for."""
    args = _parser().parse_args(argv)
    if args.report == "backtest":
        report_backtest(args.data, args.horizon, args.windows)
    else:
        report_memory(args.series, args.steps, args.horizon)


def report_backtest(path: Path, horizon: int, n_windows: int) -> None:
    """Backtest on the store at ``path`` and time a fit and a predict on all of it."""
    ds = open_dataset(path)
    print(f"data: {path}: {ds.sizes['series']} series x {ds.sizes['time']} steps")
    start = time.perf_counter()
    result = backtest(ds, lambda: Forecaster(horizon), horizon, n_windows)
    elapsed = time.perf_counter() - start
    print(f"\nbacktest: {n_windows} windows of {horizon} steps, {elapsed:.0f} s\n")
    print(backtest_table(result))
    ratio = result.attrs["mase"] / result.attrs["naive_mase"]
    print(f"\nMASE relative to seasonal naive: {ratio:.3f}")
    forecaster = Forecaster(horizon)
    start = time.perf_counter()
    forecaster.fit(ds)
    fitted = time.perf_counter() - start
    start = time.perf_counter()
    forecaster.predict(ds)
    predicted = time.perf_counter() - start
    print(f"fit: {fitted:.1f} s, predict: {predicted:.1f} s (whole store, in process)")
    print(f"ridge strengths chosen by GCV: {sorted({float(r) for r in forecaster.ridge_})}")


def report_memory(n_series: int, lengths: Sequence[int], horizon: int) -> None:
    """Peak worker memory of fit and predict on a LocalCluster, for each length."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n_steps in lengths:
            path = write_synthetic(
                Path(tmp) / f"data-{n_steps}.zarr",
                n_series,
                n_steps,
                series_chunk=STORE_CHUNKS["series"],
                time_chunk=STORE_CHUNKS["time"],
            )
            rows.append((n_steps, *_measure(path, horizon)))
    chunk_mib = STORE_CHUNKS["series"] * STORE_CHUNKS["time"] * 4 / 2**20
    print(
        f"\n{n_series} series, storage and Dask chunks of {STORE_CHUNKS['series']} series x "
        f"{STORE_CHUNKS['time']} steps ({chunk_mib:.1f} MiB of float32); LocalCluster of 2 "
        "worker processes x 1 thread\n"
    )
    print(
        "| steps | data (MiB) | chunks | fit (s) | predict (s) | idle worker RSS (MiB) "
        "| peak worker RSS (MiB) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n_steps, n_chunks, fit_s, predict_s, idle, peak in rows:
        data_mib = n_series * n_steps * 4 / 2**20
        print(
            f"| {n_steps} | {data_mib:.0f} | {n_chunks} | {fit_s:.1f} | {predict_s:.1f} "
            f"| {idle:.0f} | {peak:.0f} |"
        )


def _measure(path: Path, horizon: int) -> tuple[int, float, float, float, float]:
    """Fit and predict on a fresh cluster; chunks, times, idle and peak worker RSS."""
    ds = open_dataset(path, chunks=STORE_CHUNKS)
    n_chunks = len(ds.y.chunks[0]) * len(ds.y.chunks[1])
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(_warm_up)
        pids = list(client.run(os.getpid).values())
        sampler = _PeakRSS(pids)
        idle = sampler.sample()
        with sampler:
            start = time.perf_counter()
            forecaster = Forecaster(horizon).fit(ds)
            fit_s = time.perf_counter() - start
            start = time.perf_counter()
            forecaster.predict(ds)
            predict_s = time.perf_counter() - start
    return n_chunks, fit_s, predict_s, idle, sampler.peak


def _warm_up() -> None:
    """Import rnncore and load its compiled kernels on a worker before measuring."""

    from rnncore import Model

    Model.init("MinGRU", 2, [2], dtype=np.float64)(np.zeros((3, 2, 2)))


class _PeakRSS:
    """Samples the resident memory of processes every 20 ms while in a ``with`` block."""

    def __init__(self, pids: list[int]) -> None:
        self.processes = [psutil.Process(pid) for pid in pids]
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def sample(self) -> float:
        """The largest resident memory among the processes now, in MiB."""
        return max(p.memory_info().rss for p in self.processes) / 2**20

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.sample())
            time.sleep(0.02)

    def __enter__(self) -> _PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--horizon", type=int, default=24, help="steps forecast")
    commands = parser.add_subparsers(dest="report", required=True)
    accuracy = commands.add_parser("backtest", help="backtest table, fit and predict time")
    accuracy.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Zarr store")
    accuracy.add_argument("--windows", type=int, default=4, help="backtest windows")
    memory = commands.add_parser("memory", help="peak worker memory on a LocalCluster")
    memory.add_argument("--series", type=int, default=1000, help="series per dataset")
    memory.add_argument(
        "--steps", type=int, nargs="+", default=[8760, 35040], help="dataset lengths"
    )
    return parser


if __name__ == "__main__":
    main()

"""Incremental runs: one night's run from the state store against the full recompute (row 9).

The nightly situation: hourly series with a history of ``years`` (1, then 4x as long),
and one new day. For each history, side by side in the same process:

* the incremental night: :func:`rnncore.incremental.run_incremental` from the state store
  of the run over the history (the stores restored before each repeat, untimed), reading
  the new day and updating the output store in place;
* the full recompute: the same call with ``full=True``: the model over the whole history
  and the new day, the output store and the state store written whole.

Both read the data lazily from Zarr and write their outputs; the ratio is full /
incremental in wall time, beside the series-steps each read (the work, a row of its
own: the new day, the steps after silent series' last values, and the state store's
fixed costs are what the incremental night pays). Each is the median of its repeats,
the night timed :data:`NIGHTS` times per full recompute (it is short, and noisier).
Growth with history is the 4x history's time over the 1x history's, for each.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rnncore import Model
from rnncore.incremental import IncrementalRun, run_incremental, state_path
from rnncore.io import open_dataset
from rnncore.synthetic import write_synthetic

DAY, YEAR = 24, 8760
#: The history lengths compared: a year of hourly data, and four.
HISTORIES = (YEAR, 4 * YEAR)
#: Incremental nights timed per full recompute: they are short, and noisier.
NIGHTS = 5


def measure(n_series: int, cell: str, hidden: list[int], repeats: int) -> dict[int, dict[str, Any]]:
    """Per history length: median seconds of the incremental night and of the full
    recompute, and the series-steps each read."""
    model = Model.init(cell, input_size=1, hidden_sizes=hidden, output_size=1)
    results = {}
    with tempfile.TemporaryDirectory(prefix="rnnflow-bench-incremental-") as tmp:
        root = Path(tmp)
        for history in HISTORIES:
            data = write_synthetic(
                root / f"data-{history}.zarr",
                n_series,
                history + DAY,
                series_chunk=max(1, n_series // 4),
                time_chunk=YEAR // 4,
                seed=1,
                gap_fraction=0.02,
            )
            tonight = open_dataset(data)
            yesterday = tonight.isel(time=slice(0, history))
            night = root / f"night-{history}"
            run_incremental(model, yesterday, night / "out.zarr", variable="y")
            saved = root / f"saved-{history}"
            shutil.copytree(night, saved)

            def restore(night: Path = night, saved: Path = saved) -> None:
                shutil.rmtree(night)
                shutil.copytree(saved, night)

            def incremental(night: Path = night, tonight: Any = tonight) -> IncrementalRun:
                return run_incremental(model, tonight, night / "out.zarr", variable="y")

            def full(tonight: Any = tonight, history: int = history) -> IncrementalRun:
                out = root / f"full-{history}" / "out.zarr"
                return run_incremental(model, tonight, out, variable="y", full=True)

            (inc_s, inc_run), (full_s, full_run) = _timed(
                [(restore, incremental, NIGHTS), (lambda: None, full, 1)], repeats
            )
            assert inc_run.incremental and inc_run.in_place, inc_run.summary()
            assert state_path(night / "out.zarr").exists()
            results[history] = {
                "incremental s": inc_s,
                "full s": full_s,
                "incremental steps": inc_run.steps_read,
                "full steps": full_run.steps_read,
            }
    return results


def _timed(
    runs: list[tuple[Callable[[], object], Callable[[], Any], int]], repeats: int
) -> list[tuple[float, Any]]:
    """Median seconds of each ``(setup, fn, times)``'s ``fn`` (setup untimed), warmed up
    and timed in alternating rounds, ``times`` each per round, with ``fn``'s last result."""
    last: list[Any] = [None] * len(runs)
    samples: list[list[float]] = [[] for _ in runs]
    for round_ in range(repeats + 1):
        for k, (setup, fn, times) in enumerate(runs):
            for _ in range(times):
                setup()
                start = time.perf_counter()
                last[k] = fn()
                if round_:  # the first round warms up (compiles the kernels)
                    samples[k].append(time.perf_counter() - start)
    return [(statistics.median(s), result) for s, result in zip(samples, last, strict=True)]


def incremental_rows(quick: bool) -> list[dict[str, Any]]:
    """Row 9: per model, the night against the full recompute on 1 and 4 years of
    hourly history, and how each grows with 4x the history."""
    n_series, repeats = (64, 1) if quick else (1000, 2)
    rows = []
    for cell, hidden in (("MinGRU", [16, 16]), ("GRU", [16])):
        got = measure(n_series, cell, hidden, repeats)
        label = f"{cell}({'-'.join(map(str, hidden))})"
        for history, figures in got.items():
            years = history // YEAR
            rows.append(
                {
                    "row": f"9 incremental night / full recompute, {label}, {years}y",
                    "shapes": f"{n_series} series, {years}y hourly + 1 day, float32",
                    "ours": f"{figures['incremental s']:.3g} s, "
                    f"{figures['incremental steps']} series-steps read",
                    "peer": f"{figures['full s']:.3g} s, {figures['full steps']} series-steps read",
                    "ratio": figures["full s"] / figures["incremental s"],
                    "target": ">= 20",
                }
            )
        short, long = got[HISTORIES[0]], got[HISTORIES[1]]
        rows.append(
            {
                "row": f"9 incremental night / full recompute, series-steps read, {label}, 1y",
                "shapes": f"{n_series} series, 1y hourly + 1 day",
                "ours": f"{short['incremental steps']} series-steps",
                "peer": f"{short['full steps']} series-steps",
                "ratio": short["full steps"] / short["incremental steps"],
                "target": ">= 20",
            }
        )
        full_growth = long["full s"] / short["full s"]
        rows.append(
            {
                "row": f"9 incremental night, 4x history / 1x, {label}",
                "shapes": f"{n_series} series, 4y against 1y hourly",
                "ours": f"incremental x{long['incremental s'] / short['incremental s']:.2f}",
                "peer": f"full recompute x{full_growth:.2f}",
                "ratio": long["incremental s"] / short["incremental s"],
                "target": "<= 1.5",
            }
        )
    return rows

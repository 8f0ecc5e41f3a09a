"""Row 10: one night's incremental forecast against the full recompute, and its growth.

A forecaster continues from the state store of last night's run
(``Forecaster.predict(ds, state=..., state_out=...)``): it reads one new day and a
trailing window of each series. The full recompute reads the whole history. Both read
the same Zarr store lazily (stored in chunks of 90 days, ``rnnflow generate-data``'s),
timed side by side; then again with a history 4x longer,
where the incremental run should take as long as before (flat) and the full one 4x.

    python -m benchmarks.run --rows incremental-forecast [--quick]
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from rnncore.forecast import Forecaster
from rnncore.io import open_dataset
from rnncore.statestore import read_state_store
from rnncore.synthetic import write_synthetic

__all__ = ["incremental_forecast_rows"]

DAY = 24
YEAR = 365 * DAY


def incremental_forecast_rows(n_series: int, repeats: int) -> list[dict]:
    """Rows of the incremental forecast against the full one, after a year of hourly
    history and after four, and the incremental run's growth between the two."""
    from .run import side_by_side  # run.py registers this row: imported when it runs

    with tempfile.TemporaryDirectory(prefix="rnnflow-bench-incremental-") as tmp:
        root = Path(tmp)
        data = {}
        for years in (1, 4):
            path = root / f"y{years}.zarr"
            write_synthetic(path, n_series, years * YEAR, series_chunk=n_series, seed=0)
            data[years] = open_dataset(path, chunks={})
        model = Forecaster(DAY).fit(data[1].isel(time=slice(0, 8 * 7 * DAY)).load())
        timings = {}
        for years, ds in data.items():
            yesterday = root / f"state{years}.zarr"
            model.predict(ds.isel(time=slice(0, -DAY)), state_out=yesterday)
            tonight = functools.partial(
                model.predict, ds, state=read_state_store(yesterday), state_out=root / "next.zarr"
            )
            timings[years] = side_by_side(
                tonight, functools.partial(model.predict, ds), repeats=repeats
            )
    rows = []
    for years, (ours, full) in timings.items():
        rows.append(
            {
                "row": f"10 incremental forecast, 1 day after {years} y / full recompute",
                "shapes": f"S={n_series} T={years * YEAR} hourly, Zarr",
                "ours": f"{ours:.2f} s",
                "peer": f"{full:.2f} s full predict",
                "ratio": full / ours,
                "target": ">= 20",
            }
        )
    rows.append(
        {
            "row": "10 incremental forecast growth, history 4x",
            "shapes": f"S={n_series} T={YEAR} -> {4 * YEAR}",
            "ours": f"{timings[4][0]:.2f} s (4 y)",
            "peer": f"{timings[1][0]:.2f} s (1 y); full {timings[4][1] / timings[1][1]:.1f}x",
            "ratio": timings[1][0] / timings[4][0],
            "target": ">= 0.67",
        }
    )
    return rows

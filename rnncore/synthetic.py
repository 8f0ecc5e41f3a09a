"""Synthetic multi-series data: realistic, forecastable, deterministic by seed, any size.

Every regular series is a product of a level, a trend, daily and weekly seasonal
profiles, the effect of its exogenous covariates and AR(1) noise in log space::

    y_t = level * exp(growth * years_t + beta . x_t + e_t)
                * (1 + a_day * day(t) + a_week * week(t))

``day`` and ``week`` are smooth periodic profiles (three harmonics each, scaled to
peak at 1) of the time of day and of the week, read from the timestamps: hourly data
get cycles of 24 and 168 steps, 15-minute data of 96 and 672. Their amplitudes
(``a_day + a_week < 0.75``) keep every value positive, and the noise is moderate and
short-lived (AR(1) with a coefficient of 0.3 to 0.9 per step), so that averaging
past seasons beats repeating the last one. Some series start late or end early (NaN
outside their span) and have gaps (NaN runs); a few are constant, and optionally
some are entirely NaN.

Determinism: series ``i`` draws from its own random stream, seeded by ``(seed, i)``,
so a series is the same whichever block of series it is generated in. Generating
blockwise (lazily, one Dask task per block, as :func:`write_synthetic` does) gives
exactly the data that generating everything at once does.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from .arrays import FLOAT_DTYPES
from .checks import check_int
from .io import write_zarr
from .version import __version__

__all__ = ["generate", "write_synthetic"]

# Harmonics per seasonal profile, and the phase grid on which profiles are scaled.
_HARMONICS = 3
_PHASE_GRID = np.arange(256) / 256
# Mean length of a gap, in steps.
_MEAN_GAP = 6


@dataclass(frozen=True)
class _Spec:
    """Everything a block of series is generated from."""

    seed: int
    time: pd.DatetimeIndex
    n_features: int
    gap_fraction: float
    late_start_fraction: float
    early_end_fraction: float
    constant: frozenset[int]
    all_nan: frozenset[int]
    dtype: np.dtype


def generate(
    n_series: int,
    n_steps: int,
    *,
    freq: str = "h",
    start: str | pd.Timestamp = "2025-01-01",
    seed: int = 0,
    n_features: int = 0,
    gap_fraction: float = 0.01,
    late_start_fraction: float = 0.2,
    early_end_fraction: float = 0.05,
    n_constant: int = 1,
    n_all_nan: int = 0,
    dtype: Any = np.float32,
    chunks: Mapping[str, int] | None = None,
) -> xr.Dataset:
    """Generate ``n_series`` synthetic series of ``n_steps`` steps.

    Parameters
    ----------
    n_series, n_steps
        Number of series and of time steps (both at least 1).
    freq, start
        The time axis: ``n_steps`` timestamps from ``start`` at pandas frequency
        ``freq`` (``"h"``, ``"15min"``, ``"D"``, ...).
    seed
        Non-negative seed; the same seed gives the same data, however it is chunked.
    n_features
        Number of exogenous covariates ``x``, which the series respond to
        (0: no ``x`` variable).
    gap_fraction
        Expected fraction of a series' observed span lost to gaps: NaN runs of six
        steps on average.
    late_start_fraction, early_end_fraction
        Probability that a series starts late (between 5% and 50% into the time
        axis; NaN before) or ends early (between 75% and 95%; NaN after).
    n_constant, n_all_nan
        Number of series, at positions drawn from ``seed``, that are constant over
        the whole time axis or entirely NaN. They have neither gaps nor a late start
        or early end.
    dtype
        float32 or float64, for ``y`` and ``x``. Values are computed in float64.
    chunks
        ``None`` computes the data now, as NumPy arrays. A mapping with keys
        ``"series"`` and/or ``"time"`` builds Dask arrays with chunks of those sizes
        (a missing key: the whole axis): each block of series is generated, over the
        whole time axis, only when one of its chunks is needed.

    Returns
    -------
    xarray.Dataset
        ``y`` with dims ``("series", "time")``; if ``n_features > 0``, ``x`` with
        dims ``("series", "time", "feature")``. Coordinates ``series`` (ids such as
        ``"s00042"``), ``time`` (a ``DatetimeIndex`` at ``freq``) and ``feature``
        (``"x0"``, ...). The attributes record the generator and its parameters.

    Raises
    ------
    ValueError
        If a size, fraction or count is out of range, or ``freq`` and ``start``
        do not make a time axis.
    TypeError
        If ``dtype`` is not float32 or float64.

    Examples
    --------
    >>> ds = generate(3, 48, seed=1, n_features=2)
    >>> ds.y.dims, ds.y.dtype.name, ds.x.shape
    (('series', 'time'), 'float32', (3, 48, 2))
    >>> ds.series.values.tolist()
    ['s00000', 's00001', 's00002']
    >>> lazy = generate(3, 48, seed=1, n_features=2, chunks={"series": 2})
    >>> lazy.y.chunks
    ((2, 1), (48,))
    >>> ds.identical(lazy.compute())
    True
    """
    fractions = {
        "gap_fraction": gap_fraction,
        "late_start_fraction": late_start_fraction,
        "early_end_fraction": early_end_fraction,
    }
    counts = {"n_series": n_series, "n_steps": n_steps, "seed": seed, "n_features": n_features}
    counts |= {"n_constant": n_constant, "n_all_nan": n_all_nan}
    dtype = _check_arguments(counts, fractions, dtype)
    spec = _spec(counts, fractions, _time_axis(start, n_steps, freq), dtype)
    y, x = _arrays(spec, n_series, _chunk_sizes(chunks, n_series, n_steps), lazy=chunks is not None)
    attrs = {
        "title": "rnnflow synthetic multi-series data",
        "generator": "rnncore.synthetic.generate",
        "generator_version": __version__,
        **counts,
        "freq": freq,
        "start": str(spec.time[0]),
        **fractions,
        "dtype": dtype.name,
    }
    return _dataset(spec, y, x, attrs)


def write_synthetic(
    path: str | os.PathLike[str],
    n_series: int,
    n_steps: int,
    *,
    series_chunk: int = 500,
    time_chunk: int = 2160,
    seed: int = 0,
    overwrite: bool = False,
    **options: Any,
) -> Path:
    """Generate a synthetic dataset straight into a Zarr store, one block at a time.

    Each block of ``series_chunk`` series is generated over the whole time axis by
    its own Dask task and written as chunks of ``(series_chunk, time_chunk)``; at
    most a few blocks are in memory at once, so the store may be far larger than
    memory. The write is atomic, as :func:`rnncore.io.write_zarr` describes.

    Parameters
    ----------
    path
        The Zarr store to create.
    n_series, n_steps, seed
        As for :func:`generate`; the data do not depend on the chunk sizes.
    series_chunk, time_chunk
        The storage chunk shape (clipped to the data's shape). A block holds
        ``series_chunk * n_steps`` values in float64 while it is generated.
    overwrite
        Replace an existing store at ``path`` (only once the new one is complete).
    **options
        Any other keyword argument of :func:`generate` (``freq``, ``n_features``, ...).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is false.

    Examples
    --------
    >>> import tempfile
    >>> from rnncore.io import open_dataset
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = write_synthetic(f"{tmp}/demo.zarr", 10, 96, series_chunk=4, time_chunk=48)
    ...     open_dataset(path).y.shape
    (10, 96)
    """
    ds = generate(
        n_series, n_steps, seed=seed, chunks={"series": series_chunk, "time": time_chunk}, **options
    )
    return write_zarr(ds, path, overwrite=overwrite)


# -- internals ----------------------------------------------------------------------


def _check_arguments(
    counts: Mapping[str, Any], fractions: Mapping[str, float], dtype: Any
) -> np.dtype:
    """Refuse counts, fractions or a dtype :func:`generate` cannot use; the dtype."""
    for name, value in counts.items():
        check_int(name, value, 1 if name in ("n_series", "n_steps") else 0)
    if counts["n_constant"] + counts["n_all_nan"] > counts["n_series"]:
        raise ValueError(
            f"n_constant={counts['n_constant']} and n_all_nan={counts['n_all_nan']} add up "
            f"to more than n_series={counts['n_series']}"
        )
    for name, value in fractions.items():
        if not 0 <= value <= 1:
            raise ValueError(f"{name} must be between 0 and 1; got {value!r}")
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64; got {dtype}")
    return dtype


def _spec(
    counts: Mapping[str, int], fractions: Mapping[str, float], time: pd.DatetimeIndex, dtype
) -> _Spec:
    """What every block is generated from, with the constant and all-NaN series drawn."""
    n_constant, n_all_nan = counts["n_constant"], counts["n_all_nan"]
    special = np.random.default_rng(np.random.SeedSequence(counts["seed"], spawn_key=(1,))).choice(
        counts["n_series"], n_constant + n_all_nan, replace=False
    )
    return _Spec(
        seed=counts["seed"],
        time=time,
        n_features=counts["n_features"],
        constant=frozenset(special[:n_constant].tolist()),
        all_nan=frozenset(special[n_constant:].tolist()),
        dtype=dtype,
        **fractions,
    )


def _arrays(spec: _Spec, n_series: int, chunk: tuple[int, int], *, lazy: bool) -> tuple:
    """``y`` and ``x``: computed now, or as Dask arrays of ``chunk = (series, time)``."""
    if not lazy:
        return _block(spec, 0, n_series)
    series_chunk, time_chunk = chunk
    y, x = _lazy_blocks(spec, n_series, series_chunk)
    return y.rechunk((series_chunk, time_chunk)), x.rechunk((series_chunk, time_chunk, -1))


def _dataset(spec: _Spec, y: Any, x: Any, attrs: dict[str, Any]) -> xr.Dataset:
    """The labelled dataset: ``y``, ``x`` if there are features, ids and the time axis."""
    n_series = y.shape[0]
    width = max(5, len(str(n_series - 1)))
    coords = {
        "series": np.char.add("s", np.char.zfill(np.arange(n_series).astype(str), width)),
        "time": spec.time,
    }
    data_vars = {"y": (("series", "time"), y, {"long_name": "synthetic target series"})}
    if spec.n_features:
        coords["feature"] = np.array([f"x{f}" for f in range(spec.n_features)])
        data_vars["x"] = (
            ("series", "time", "feature"),
            x,
            {"long_name": "exogenous covariates"},
        )
    return xr.Dataset(data_vars, coords, attrs)


def _chunk_sizes(chunks: Mapping[str, int] | None, n_series: int, n_steps: int) -> tuple[int, int]:
    """The ``(series, time)`` chunk sizes that ``chunks`` asks for, clipped to the data."""
    if chunks is None:
        return n_series, n_steps
    unknown = sorted(set(chunks) - {"series", "time"})
    if unknown:
        raise ValueError(
            f"chunks has unknown dimensions {unknown}; expected 'series' and/or 'time'"
        )
    for dim, size in chunks.items():
        check_int(f"chunks[{dim!r}]", size, 1)
    return min(chunks.get("series", n_series), n_series), min(chunks.get("time", n_steps), n_steps)


def _time_axis(start: str | pd.Timestamp, n_steps: int, freq: str) -> pd.DatetimeIndex:
    try:
        return pd.date_range(start=start, periods=n_steps, freq=freq, name="time")
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"cannot build a time axis of {n_steps} steps from start={start!r} at "
            f"freq={freq!r} (expected a timestamp and a pandas frequency such as 'h'): {err}"
        ) from None


def _lazy_blocks(spec: _Spec, n_series: int, series_chunk: int) -> tuple[da.Array, da.Array]:
    """``y`` and ``x`` as Dask arrays, one task per block of ``series_chunk`` series."""
    n_steps, n_features = len(spec.time), spec.n_features
    ys, xs = [], []
    for start in range(0, n_series, series_chunk):
        stop = min(start + series_chunk, n_series)
        block = dask.delayed(_block, pure=True, nout=2)(spec, start, stop)
        ys.append(da.from_delayed(block[0], (stop - start, n_steps), dtype=spec.dtype))
        xs.append(da.from_delayed(block[1], (stop - start, n_steps, n_features), dtype=spec.dtype))
    return da.concatenate(ys), da.concatenate(xs)


def _block(spec: _Spec, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Series ``start:stop``: ``y`` of shape ``(n, T)`` and ``x`` of shape ``(n, T, F)``."""
    draws = [
        _draw(np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(0, i))), spec)
        for i in range(start, stop)
    ]
    p = {key: np.stack([d[key] for d in draws]) for key in draws[0]}
    day = ((spec.time - spec.time.normalize()) / pd.Timedelta(days=1)).to_numpy()
    week = (spec.time.day_of_week.to_numpy() + day) / 7
    years = ((spec.time - spec.time[0]) / pd.Timedelta(days=365.25)).to_numpy()

    # AR(1) processes for the noise (row 0) and the covariates (rows 1:), stationary
    # from the first step.
    decay, scale, z = p["decay"], p["scale"], p["z"]
    innovations = (scale * np.sqrt(1 - decay**2))[:, :, None] * z[:, :, 1:]
    ar = _ar1(decay, innovations, scale * z[:, :, 0])
    x = ar[:, 1:] + p["x_amp"][:, :, None] * np.cos(2 * np.pi * (day - p["x_shift"][:, :, None]))
    log_y = np.log(p["level"])[:, None] + p["growth"][:, None] * years + ar[:, 0]
    for f in range(spec.n_features):
        log_y = log_y + p["beta"][:, f, None] * x[:, f]
    season = (
        1
        + p["amp_day"][:, None] * _profile(p["day"], day)
        + p["amp_week"][:, None] * _profile(p["week"], week)
    )
    y = np.exp(log_y) * season
    y[~p["observed"]] = np.nan

    index = np.arange(start, stop)
    constant = np.isin(index, list(spec.constant))
    y[constant] = p["level"][constant, None]
    y[np.isin(index, list(spec.all_nan))] = np.nan
    return y.astype(spec.dtype), np.moveaxis(x, 1, 2).astype(spec.dtype)


def _draw(rng: np.random.Generator, spec: _Spec) -> dict[str, np.ndarray]:
    """One series' parameters, innovations and observed steps, from its own stream."""
    n_steps, n_features = len(spec.time), spec.n_features
    harmonics = np.arange(1, _HARMONICS + 1)
    late = rng.random() < spec.late_start_fraction
    early = rng.random() < spec.early_end_fraction
    first = int(rng.uniform(0.05, 0.5) * n_steps) if late else 0
    end = math.ceil(rng.uniform(0.75, 0.95) * n_steps) if early else n_steps
    observed = np.zeros(n_steps, bool)
    observed[first:end] = True
    n_gaps = rng.poisson(spec.gap_fraction * (end - first) / _MEAN_GAP)
    for gap_start, length in zip(
        rng.integers(first, end, n_gaps), rng.geometric(1 / _MEAN_GAP, n_gaps), strict=True
    ):
        observed[gap_start : gap_start + length] = False
    return {
        "level": np.exp(rng.normal(np.log(50), 1.0)),
        "growth": rng.uniform(-0.2, 0.3),
        "amp_day": rng.uniform(0.1, 0.45),
        "amp_week": rng.uniform(0.05, 0.3),
        "day": rng.normal(size=(2, _HARMONICS)) / harmonics,
        "week": rng.normal(size=(2, _HARMONICS)) / harmonics,
        "decay": np.concatenate([[rng.uniform(0.3, 0.9)], rng.uniform(0.95, 0.995, n_features)]),
        "scale": np.concatenate([[rng.uniform(0.03, 0.12)], np.ones(n_features)]),
        "beta": rng.normal(0, 0.05, n_features),
        "x_amp": rng.uniform(0, 1, n_features),
        "x_shift": rng.uniform(0, 1, n_features),
        "z": rng.standard_normal((1 + n_features, n_steps + 1)),
        "observed": observed,
    }


def _ar1(decay: np.ndarray, innovations: np.ndarray, first: np.ndarray) -> np.ndarray:
    """``e_t = decay * e_{t-1} + innovations_t`` along the last axis, from ``e_{-1} = first``.

    Plain NumPy, one step at a time, rather than :func:`rnncore.linear_scan`: the
    data must be bit for bit the same for every block of series and every kernel
    backend rnncore computes with.
    """
    out = np.empty_like(innovations)
    state = first
    for t in range(innovations.shape[-1]):
        state = decay * state + innovations[..., t]
        out[..., t] = state
    return out


def _profile(coef: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Periodic profiles ``(n, T)`` of ``phase`` from harmonic coefficients ``(n, 2, K)``,
    scaled so that each peaks at 1 in absolute value over a cycle."""

    def harmonics(t: np.ndarray) -> np.ndarray:
        out = 0
        for k in range(_HARMONICS):
            angle = 2 * np.pi * (k + 1) * t
            out = out + coef[:, 0, k, None] * np.cos(angle) + coef[:, 1, k, None] * np.sin(angle)
        return out

    return harmonics(phase) / np.abs(harmonics(_PHASE_GRID)).max(axis=1, keepdims=True)

"""Forecast accuracy by rolling-origin cross-validation on real data, printed as one table.

Every model is cross-validated on every dataset with ``n_windows`` origins ``step_size = h``
steps apart, the last window ending at each series' last observation, and scored from its
cross-validation frame (``unique_id, ds, cutoff, y, <alias>, <alias>-lo-80, ...``, the shape
StatsForecast returns):

* MASE: each forecast's absolute errors divided by the in-sample seasonal-naive MAE of its
  series on the data up to its cutoff (a scale per series and cutoff), averaged over the
  steps, then over the series-cutoffs. Series-cutoffs whose scale is zero or undefined (a
  constant history) are left out and counted;
* sMAPE in percent, ``200 |y - f| / (|y| + |f|)``, with ``0 / 0`` taken as 0;
* coverage of the 80% and 95% intervals: percent of actuals within ``lo..hi`` (inclusive);
* wall seconds of each model's whole cross-validation, and AutoETS's seconds divided by
  the model's (how many times faster than AutoETS it is).

The datasets are ``monthly``, ``quarterly``, ``daily_elec`` and ``halfhourly_taylor`` from
``--data-dir`` (see its README), and ``sample``, rnnflow's synthetic hourly data generated in
memory (interior gaps filled by linear interpolation so that every model sees the same
regular series). Only ``unique_id, ds, y`` are given to the models: the comparison is
univariate. Series with different frequencies (the quarterly file mixes two quarterly
anchors) are cross-validated in groups of one frequency each, the frames concatenated and
the times summed.

A model is a callable ``(df, h, n_windows, step_size, freq, season, level) -> cv frame``
registered in :data:`MODELS` under the alias its frame uses (see :class:`CrossValidator`):
StatsForecast's SeasonalNaive, AutoETS and AutoTheta, rnnflow's default forecaster
(``RNNFlow``) and the one with the learned encoder (``RNNFlowLearned``).
Each run starts with a warm-up on a tiny frame, excluded from the timing (StatsForecast and
rnnflow compile numba code on first use). With ``--budget`` > 0 each run happens in a forked
process that is stopped when it exceeds the budget: its row then says ``skipped``.

Run ``python benchmarks/accuracy.py [--models ...] [--datasets ...] [--json PATH]``; the
StatsForecast peers need the ``bench`` extra (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol, TypedDict

import numpy as np
import pandas as pd

ID, DS, Y, CUTOFF = "unique_id", "ds", "y", "cutoff"
#: Interval levels every model is asked for, in percent.
LEVELS: tuple[int, ...] = (80, 95)
#: The peer whose time the speed ratios divide.
REFERENCE = "AutoETS"
#: The model the targets are checked for.
OURS = "RNNFlow"
#: The forecaster with the learned encoder (``Forecaster(encoder="learned")``).
LEARNED = "RNNFlowLearned"
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = ROOT.parent / "shared" / "data" / "real"


# -- datasets -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of the benchmark and how it is cross-validated.

    Parameters
    ----------
    name
        The dataset's name in the table and in ``--datasets``.
    h
        Forecast horizon; also the step between origins.
    n_windows
        Number of cross-validation windows (origins) per series.
    season
        Season length given to the models and used by MASE's seasonal-naive scale.
    file
        File name under the data directory; ``None`` for the synthetic sample.
    """

    name: str
    h: int
    n_windows: int
    season: int
    file: str | None


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("monthly", h=12, n_windows=3, season=12, file="monthly.csv.gz"),
        DatasetSpec("quarterly", h=8, n_windows=2, season=4, file="quarterly.csv.gz"),
        DatasetSpec("daily_elec", h=14, n_windows=4, season=7, file="daily_elec.csv.gz"),
        DatasetSpec(
            "halfhourly_taylor", h=48, n_windows=7, season=48, file="halfhourly_taylor.csv.gz"
        ),
        DatasetSpec("sample", h=24, n_windows=3, season=24, file=None),
    )
}


def read_dataset(path: Path) -> pd.DataFrame:
    """Read a long-format gzip CSV, keeping only ``unique_id, ds, y`` (float64), sorted."""
    frame = pd.read_csv(path, parse_dates=[DS])
    return _tidy(frame)


def sample_frame(n_series: int, n_steps: int, seed: int = 0) -> pd.DataFrame:
    """rnnflow's synthetic hourly sample as a long frame ``unique_id, ds, y``.

    Parameters
    ----------
    n_series, n_steps
        Size of the sample (:func:`rnncore.synthetic.generate`).
    seed
        Seed of the generator.

    Returns
    -------
    pandas.DataFrame
        One row per observed value (the generator's gaps, late starts and early ends
        are absent rows; :func:`fill_gaps` fills the interior ones).
    """
    from rnncore.longformat import to_long
    from rnncore.synthetic import generate

    return _tidy(to_long(generate(n_series, n_steps, seed=seed), [Y]))


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame[[ID, DS, Y]].astype({ID: str, Y: "float64"})
    return frame.sort_values([ID, DS], ignore_index=True)


def series_freq(stamps: pd.Series) -> str:
    """The pandas frequency of one series' timestamps.

    pandas' inferred frequency (:func:`rnncore.timeaxis.pandas_freq`) where the series is
    regular; otherwise (a series with gaps) the smallest step, if every step is a multiple
    of it.

    Raises
    ------
    ValueError
        If no frequency fits.
    """
    from rnncore.timeaxis import pandas_freq

    index = pd.DatetimeIndex(stamps).sort_values()
    freq = pandas_freq(index) if len(index) >= 3 else None
    if freq is not None:
        return freq
    steps = np.diff(index.as_unit("ns").asi8)  # pandas 3 may parse to ms or us
    smallest = int(steps.min()) if len(steps) else 0
    if smallest <= 0 or np.any(steps % smallest):
        raise ValueError(f"no regular frequency fits the timestamps {index[:3].tolist()}...")
    return pd.tseries.frequencies.to_offset(pd.Timedelta(smallest)).freqstr


def series_freqs(df: pd.DataFrame) -> pd.Series:
    """The frequency of each series (:func:`series_freq`), indexed by ``unique_id``."""
    return df.groupby(ID, sort=True)[DS].agg(series_freq)


def fill_gaps(df: pd.DataFrame, freqs: pd.Series) -> tuple[pd.DataFrame, int]:
    """Put each series on its regular grid, filling interior gaps by linear interpolation.

    Parameters
    ----------
    df
        Long frame ``unique_id, ds, y``, sorted by ``unique_id, ds``.
    freqs
        Frequency of each series, indexed by ``unique_id`` (:func:`series_freqs`).

    Returns
    -------
    tuple of pandas.DataFrame and int
        The regular frame (first to last timestamp of each series) and the number of
        values filled.
    """
    parts, filled = [], 0
    for uid, group in df.groupby(ID, sort=True):
        grid = pd.date_range(group[DS].iloc[0], group[DS].iloc[-1], freq=freqs[uid])
        if len(grid) == len(group):
            parts.append(group)
            continue
        values = group.set_index(DS)[Y].reindex(grid).interpolate("linear")
        filled += len(grid) - len(group)
        parts.append(pd.DataFrame({ID: uid, DS: grid, Y: values.to_numpy()}))
    return pd.concat(parts, ignore_index=True), filled


def freq_groups(df: pd.DataFrame, freqs: pd.Series) -> list[tuple[str, pd.DataFrame]]:
    """Split ``df`` into groups of series sharing one frequency, as ``(freq, frame)``."""
    return [
        (str(freq), df[df[ID].isin(ids.index)].reset_index(drop=True))
        for freq, ids in freqs.groupby(freqs, sort=True)
    ]


def check_lengths(df: pd.DataFrame, spec: DatasetSpec) -> None:
    """Refuse series too short for ``n_windows`` windows and a season of training.

    Raises
    ------
    ValueError
        Naming how many series are too short and the shortest.
    """
    need = spec.h * spec.n_windows + spec.season + 1
    sizes = df.groupby(ID).size()
    short = sizes[sizes < need]
    if len(short):
        raise ValueError(
            f"{spec.name}: {len(short)} series have fewer than {need} values "
            f"(h x n_windows + season + 1), e.g. {short.index[0]!r} with {short.iloc[0]}"
        )


# -- metrics --------------------------------------------------------------------------------


def insample_scale(train: pd.DataFrame, pairs: pd.DataFrame, season: int) -> pd.Series:
    """In-sample seasonal-naive MAE of each series on its data up to each cutoff.

    Parameters
    ----------
    train
        Long frame ``unique_id, ds, y`` of regular series (a season is ``season`` rows).
    pairs
        Frame with columns ``unique_id, cutoff``.
    season
        Season length.

    Returns
    -------
    pandas.Series
        Aligned with ``pairs``: the mean of ``|y_t - y_{t-season}|`` over the ``t`` with
        ``ds <= cutoff``; NaN where there is no such ``t``.
    """
    train = train.sort_values([ID, DS])
    errors = (train[Y] - train.groupby(ID)[Y].shift(season)).abs()
    running = pd.DataFrame(
        {
            ID: train[ID].to_numpy(),
            CUTOFF: train[DS].to_numpy(),
            "_sum": errors.fillna(0.0).groupby(train[ID]).cumsum().to_numpy(),
            "_n": errors.notna().groupby(train[ID]).cumsum().to_numpy(),
        }
    ).sort_values(CUTOFF)
    keyed = pairs[[ID, CUTOFF]].reset_index(drop=True).assign(_row=lambda f: f.index)
    merged = pd.merge_asof(keyed.sort_values(CUTOFF), running, on=CUTOFF, by=ID)
    merged = merged.sort_values("_row")
    scale = merged["_sum"] / merged["_n"].where(merged["_n"] > 0)
    return pd.Series(scale.to_numpy(), index=pairs.index, name="scale")


def mase(cv: pd.DataFrame, train: pd.DataFrame, model: str, season: int) -> tuple[float, int]:
    """Mean absolute scaled error, the scale taken per series and cutoff.

    Parameters
    ----------
    cv
        Cross-validation frame with ``unique_id, cutoff, y`` and the column ``model``.
    train
        The data the windows were cut from (:func:`insample_scale`).
    model
        Column of the forecasts.
    season
        Season length of the seasonal-naive scale.

    Returns
    -------
    tuple of float and int
        The MASE over the series-cutoffs with a finite scaled error, and the number of
        series-cutoffs left out (zero or undefined scale, or a missing forecast).
    """
    keys = [cv[ID], cv[CUTOFF]]
    absolute = (cv[Y] - cv[model]).abs()
    errors = absolute.groupby(keys).mean()
    errors[absolute.isna().groupby(keys).any()] = np.nan  # a missing forecast is no result
    pairs = errors.index.to_frame(index=False)
    with np.errstate(divide="ignore", invalid="ignore"):  # zero scales: left out below
        scaled = errors.to_numpy() / insample_scale(train, pairs, season).to_numpy()
    finite = np.isfinite(scaled)
    value = float(scaled[finite].mean()) if finite.any() else math.nan
    return value, int((~finite).sum())


def smape(cv: pd.DataFrame, model: str) -> float:
    """Symmetric MAPE in percent over all rows, ``200 |y - f| / (|y| + |f|)``, ``0/0 = 0``."""
    actual, forecast = cv[Y].to_numpy(float), cv[model].to_numpy(float)
    num = np.abs(actual - forecast)
    den = np.abs(actual) + np.abs(forecast)
    ratio = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    ratio[np.isnan(num)] = np.nan
    return float(200.0 * ratio.mean())


def coverage(cv: pd.DataFrame, model: str, level: int) -> float:
    """Percent of actuals within ``<model>-lo-<level> .. <model>-hi-<level>``, inclusive.

    A missing bound counts as a miss; NaN when the model gave no bounds at all.
    """
    lo, hi = cv[f"{model}-lo-{level}"], cv[f"{model}-hi-{level}"]
    if lo.isna().all() and hi.isna().all():
        return math.nan
    return float(100.0 * ((cv[Y] >= lo) & (cv[Y] <= hi)).mean())


def check_cv_frame(cv: pd.DataFrame, model: str, levels: Iterable[int] = LEVELS) -> None:
    """Refuse a cross-validation frame without the columns the metrics read.

    Raises
    ------
    ValueError
        Naming the missing columns.
    """
    bounds = [f"{model}-{side}-{lv}" for lv in levels for side in ("lo", "hi")]
    missing = [c for c in (ID, DS, CUTOFF, Y, model, *bounds) if c not in cv.columns]
    if missing:
        raise ValueError(f"the cross-validation frame of {model} lacks columns {missing}")


# -- models ---------------------------------------------------------------------------------


class CrossValidator(Protocol):
    """A model: rolling-origin cross-validation of a long frame, StatsForecast's shape.

    Called with keywords as ``model(df, h=, n_windows=, step_size=, freq=, season=,
    level=)`` on a frame ``unique_id, ds, y`` of regular series of one ``freq``; returns
    ``unique_id, ds, cutoff, y, <alias>, <alias>-lo-<l>, <alias>-hi-<l>`` for each ``l`` in
    ``level``, where ``<alias>`` is the model's key in :data:`MODELS`. Raises
    :class:`NotAvailable` when the model cannot run here.
    """

    def __call__(
        self,
        df: pd.DataFrame,
        h: int,
        n_windows: int,
        step_size: int,
        freq: str,
        season: int,
        level: Sequence[int],
    ) -> pd.DataFrame: ...


class NotAvailable(RuntimeError):
    """The model cannot run here (a package or an API missing); its row says why."""


def statsforecast_model(name: str) -> CrossValidator:
    """A :class:`CrossValidator` of ``statsforecast.models.<name>(season_length=season)``."""

    def cross_validate(
        df: pd.DataFrame,
        h: int,
        n_windows: int,
        step_size: int,
        freq: str,
        season: int,
        level: Sequence[int],
    ) -> pd.DataFrame:
        try:
            from statsforecast import StatsForecast, models
        except ImportError as exc:
            raise NotAvailable(
                "statsforecast is not installed (pip install -e '.[bench]')"
            ) from exc
        forecaster = StatsForecast(
            [getattr(models, name)(season_length=season)], freq=freq, n_jobs=1
        )
        return forecaster.cross_validation(
            df=df, h=h, n_windows=n_windows, step_size=step_size, level=list(level)
        )

    cross_validate.__name__ = f"statsforecast_{name}"
    return cross_validate


def rnnflow_model(
    df: pd.DataFrame,
    h: int,
    n_windows: int,
    step_size: int,
    freq: str,
    season: int,
    level: Sequence[int],
    *,
    encoder: str | None = None,
    alias: str = OURS,
) -> pd.DataFrame:
    """rnnflow's :class:`~rnncore.forecast.Forecaster` through its DataFrame API.

    It takes its seasons from the frequency, several where the data have them (48
    and 336 for half-hourly data), as a user running it would; ``season`` is the
    single season the peers are given and the MASE scale. ``encoder`` is the
    forecaster's (``None``: its default), and ``alias`` names its columns.
    """
    try:
        from rnncore.forecast import Forecaster
    except Exception as exc:  # the package may be mid-change: say so, measure nothing
        reason = f"rnncore.forecast does not import ({type(exc).__name__}: {exc})"
        raise NotAvailable(reason[:200]) from exc
    if not hasattr(Forecaster, "cross_validation"):
        raise NotAvailable("rnncore.forecast.Forecaster has no cross_validation method yet")
    options = {} if encoder is None else {"encoder": encoder}
    forecaster = Forecaster(horizon=h, freq=freq, **options)
    cv = forecaster.cross_validation(
        df, h=h, n_windows=n_windows, step_size=step_size, level=list(level)
    )
    if alias == OURS:
        return cv
    return cv.rename(columns=lambda c: alias + c[len(OURS) :] if c.startswith(OURS) else c)


#: The models, by the alias their cross-validation frames use; run in this order.
MODELS: dict[str, CrossValidator] = {
    "SeasonalNaive": statsforecast_model("SeasonalNaive"),
    "AutoETS": statsforecast_model("AutoETS"),
    "AutoTheta": statsforecast_model("AutoTheta"),
    OURS: rnnflow_model,
    LEARNED: functools.partial(rnnflow_model, encoder="learned", alias=LEARNED),
}


# -- running --------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one model's cross-validation of one dataset gave.

    ``status`` is ``"ok"`` (with ``cv`` and ``seconds``), ``"skipped"``, ``"not available"``
    or ``"error"`` (with ``reason``).
    """

    status: str
    cv: pd.DataFrame | None = None
    seconds: float | None = None
    reason: str = ""


def warmup_frame() -> pd.DataFrame:
    """Two small hourly series (two weeks) for the untimed warm-up of each model."""
    steps = 24 * 14
    t = np.arange(steps)
    noise = np.random.default_rng(0).normal(0.0, 0.1, (2, steps))
    values = 10.0 + np.sin(2 * np.pi * t / 24) + noise
    stamps = pd.date_range("2025-01-01", periods=steps, freq="h")
    return pd.DataFrame(
        {ID: np.repeat(["w0", "w1"], steps), DS: np.tile(stamps, 2), Y: values.ravel()}
    )


def cross_validate(
    model: CrossValidator, groups: Sequence[tuple[str, pd.DataFrame]], spec: DatasetSpec
) -> tuple[pd.DataFrame, float]:
    """Warm ``model`` up (untimed), then cross-validate each frequency group, timed.

    Returns
    -------
    tuple of pandas.DataFrame and float
        The groups' frames concatenated, and the summed wall seconds of their runs.
    """
    model(warmup_frame(), h=24, n_windows=1, step_size=24, freq="h", season=24, level=LEVELS)
    frames, seconds = [], 0.0
    for freq, frame in groups:
        start = time.perf_counter()
        cv = model(
            frame,
            h=spec.h,
            n_windows=spec.n_windows,
            step_size=spec.h,
            freq=freq,
            season=spec.season,
            level=LEVELS,
        )
        seconds += time.perf_counter() - start
        frames.append(cv)
    return pd.concat(frames, ignore_index=True), seconds


def _attempt(work: Callable[[], tuple[pd.DataFrame, float]]) -> Outcome:
    try:
        cv, seconds = work()
    except NotAvailable as exc:
        return Outcome("not available", reason=str(exc))
    except Exception as exc:
        return Outcome("error", reason=f"{type(exc).__name__}: {exc}")
    return Outcome("ok", cv=cv, seconds=seconds)


def _child(work: Callable[[], tuple[pd.DataFrame, float]], writer: Any) -> None:
    try:
        writer.send(_attempt(work))
    finally:
        writer.close()


def run_isolated(work: Callable[[], tuple[pd.DataFrame, float]], budget: float) -> Outcome:
    """Run ``work`` in a forked process, stopping it after ``budget`` seconds.

    The fork inherits everything loaded here; the process is killed (by its own id) when
    it runs over, and the outcome is then ``skipped``.
    """
    context = multiprocessing.get_context("fork")
    reader, writer = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(work, writer), daemon=True)
    process.start()
    writer.close()
    try:
        if not reader.poll(budget):
            process.kill()
            return Outcome("skipped", reason=f"exceeded the {budget:g} s budget")
        return reader.recv()
    except EOFError:
        return Outcome("error", reason=f"the worker process died (exit code {process.exitcode})")
    finally:
        reader.close()
        process.join()


def run_model(
    model: CrossValidator,
    groups: Sequence[tuple[str, pd.DataFrame]],
    spec: DatasetSpec,
    budget: float,
) -> Outcome:
    """Cross-validate one model on one dataset, in a forked process when ``budget`` > 0."""

    def work() -> tuple[pd.DataFrame, float]:
        return cross_validate(model, groups, spec)

    if budget > 0 and "fork" in multiprocessing.get_all_start_methods():
        return run_isolated(work, budget)
    return _attempt(work)


class Row(TypedDict):
    """One line of the table (and of ``--json``); metrics are None unless ``status == "ok"``."""

    dataset: str
    model: str
    status: str
    reason: str
    mase: float | None
    smape: float | None
    cov80: float | None
    cov95: float | None
    seconds: float | None
    ets_ratio: float | None
    mase_left_out: int | None
    n_series: int
    n_forecasts: int | None


def score(spec: DatasetSpec, model: str, outcome: Outcome, train: pd.DataFrame) -> Row:
    """The table row of one outcome, its metrics computed from its cross-validation frame."""
    row = Row(
        dataset=spec.name,
        model=model,
        status=outcome.status,
        reason=outcome.reason,
        mase=None,
        smape=None,
        cov80=None,
        cov95=None,
        seconds=outcome.seconds,
        ets_ratio=None,
        mase_left_out=None,
        n_series=int(train[ID].nunique()),
        n_forecasts=None,
    )
    if outcome.cv is None:
        return row
    cv = outcome.cv
    try:
        check_cv_frame(cv, model)
    except ValueError as exc:
        row.update(status="error", reason=str(exc))
        return row
    row["mase"], row["mase_left_out"] = mase(cv, train, model, spec.season)
    row.update(
        smape=smape(cv, model),
        cov80=coverage(cv, model, 80),
        cov95=coverage(cv, model, 95),
        n_forecasts=len(cv),
    )
    return row


def add_speed_ratios(rows: list[Row], reference: str = REFERENCE) -> None:
    """Set each row's ``ets_ratio``: the reference model's seconds over its own, per dataset."""
    times = {r["dataset"]: r["seconds"] for r in rows if r["model"] == reference}
    for r in rows:
        ref = times.get(r["dataset"])
        if ref and r["seconds"] and r["status"] == "ok":
            r["ets_ratio"] = ref / r["seconds"]


def run_dataset(
    spec: DatasetSpec,
    df: pd.DataFrame,
    models: Mapping[str, CrossValidator],
    budget: float,
    log: Callable[[str], None] = lambda _: None,
) -> tuple[list[Row], int]:
    """Regularise ``df``, cross-validate every model on it and score each.

    Returns
    -------
    tuple of list of Row and int
        One row per model (speed ratios not yet set), and the number of values filled.
    """
    freqs = series_freqs(df)
    df, filled = fill_gaps(df, freqs)
    check_lengths(df, spec)
    groups = freq_groups(df, freqs)
    rows = []
    for name, model in models.items():
        outcome = run_model(model, groups, spec, budget)
        rows.append(score(spec, name, outcome, df))
        took = f"{outcome.seconds:.2f} s" if outcome.seconds is not None else outcome.reason
        log(f"{spec.name} {name}: {outcome.status}, {took}")
    return rows, filled


# -- report ---------------------------------------------------------------------------------

COLUMNS = ("dataset", "model", "MASE", "sMAPE", "cov80", "cov95", "seconds", "ETS-time/model-time")


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _ratio(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def format_row(row: Row) -> list[str]:
    """The table cells of one row; a row without metrics says its status and reason."""
    if row["status"] != "ok":
        note = f"{row['status']}: {row['reason']}" if row["reason"] else row["status"]
        return [row["dataset"], row["model"], note, "-", "-", "-", "-", "-"]
    return [
        row["dataset"],
        row["model"],
        _number(row["mase"], 3),
        _number(row["smape"], 2),
        _number(row["cov80"], 1),
        _number(row["cov95"], 1),
        _number(row["seconds"], 2),
        _ratio(row["ets_ratio"]),
    ]


def format_table(rows: Sequence[Row]) -> str:
    """The rows as one markdown table with :data:`COLUMNS`."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(format_row(r)) + " |" for r in rows]
    return "\n".join(lines)


def _find(rows: Sequence[Row], dataset: str, model: str) -> Row | None:
    found = [r for r in rows if r["dataset"] == dataset and r["model"] == model]
    return found[0] if found and found[0]["status"] == "ok" else None


def _check(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def _at_most(ours: Row, peer: Row | None, peer_name: str) -> str:
    if peer is None or ours["mase"] is None or peer["mase"] is None:
        return f"MASE <= {peer_name}: n/a ({peer_name} has no result)"
    ok = ours["mase"] <= peer["mase"]
    return f"MASE {ours['mase']:.3f} <= {peer_name} {peer['mase']:.3f}: {_check(ok)}"


def target_lines(
    rows: Sequence[Row],
    model: str = OURS,
    ets_datasets: Iterable[str] = ("monthly", "quarterly"),
    tolerance: float = 5.0,
    speedup: float = 20.0,
) -> list[str]:
    """The target checks of ``model`` on every dataset where it has a result.

    MASE at most SeasonalNaive's (every dataset) and AutoETS's (``ets_datasets``); each
    interval's coverage within ``tolerance`` points of nominal; at least ``speedup`` times
    faster than AutoETS. Empty when the model has no result anywhere.
    """
    lines = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        ours = _find(rows, dataset, model)
        if ours is None:
            continue
        checks = [_at_most(ours, _find(rows, dataset, "SeasonalNaive"), "SeasonalNaive")]
        if dataset in ets_datasets:
            checks.append(_at_most(ours, _find(rows, dataset, REFERENCE), REFERENCE))
        for level in LEVELS:
            got = ours[f"cov{level}"]  # type: ignore[literal-required]
            ok = None if got is None or math.isnan(got) else abs(got - level) <= tolerance
            checks.append(
                f"cov{level} {_number(got, 1)} within {tolerance:g} of {level}: {_check(ok)}"
            )
        ratio = ours["ets_ratio"]
        if ratio is None:
            checks.append(f">= {speedup:g}x faster than {REFERENCE}: n/a (no {REFERENCE} time)")
        else:
            ok = ratio >= speedup
            checks.append(
                f"{_ratio(ratio)}x faster than {REFERENCE} (>= {speedup:g}x): {_check(ok)}"
            )
        lines += [f"- {dataset}: {check}" for check in checks]
    return lines


def _versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for package in ("statsforecast", "utilsforecast", "pandas", "numpy", "numba"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


# -- command line ---------------------------------------------------------------------------


def _names(known: Mapping[str, Any], what: str) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in names if n not in known]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {unknown}; choose from {', '.join(known)}"
            )
        return names

    return parse


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the module docstring's layout and show every option's default."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see ``--help``)."""
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=_HelpFormatter,
        epilog="datasets (h, n_windows, season):\n"
        + "\n".join(f"  {s.name} ({s.h}, {s.n_windows}, {s.season})" for s in DATASETS.values())
        + "\nmodels: "
        + ", ".join(MODELS),
    )
    parser.add_argument(
        "--models",
        type=_names(MODELS, "models"),
        default=",".join(MODELS),
        help="comma-separated models to run",
    )
    parser.add_argument(
        "--datasets",
        type=_names(DATASETS, "datasets"),
        default=",".join(DATASETS),
        help="comma-separated datasets to run",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="directory of the real datasets (../shared/data/real from the repo root)",
    )
    parser.add_argument(
        "--sample-series", type=int, default=50, help="series in the synthetic sample"
    )
    parser.add_argument(
        "--sample-steps", type=int, default=24 * 7 * 8, help="hourly steps in the synthetic sample"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=600.0,
        help="seconds one model may take on one dataset (warm-up included) before its row is "
        "skipped; each run then happens in a forked process. 0: no limit, run in this process",
    )
    parser.add_argument(
        "--json", type=Path, help="also write the rows and context to this JSON file"
    )
    return parser.parse_args(argv)


def load(spec: DatasetSpec, args: argparse.Namespace) -> pd.DataFrame:
    """The long frame of one dataset, from ``--data-dir`` or generated (the sample)."""
    if spec.file is None:
        return sample_frame(args.sample_series, args.sample_steps, seed=0)
    return read_dataset(args.data_dir / spec.file)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table and the targets, optionally write JSON."""
    args = parse_args(argv)
    models = {name: MODELS[name] for name in args.models}
    start = time.perf_counter()
    rows: list[Row] = []
    notes = []
    for name in args.datasets:
        spec = DATASETS[name]
        try:
            got, filled = run_dataset(spec, load(spec, args), models, args.budget, log=_log)
        except (OSError, ValueError) as exc:  # a missing file, or series too short
            print(f"error: {exc}", file=sys.stderr)
            return 2
        rows += got
        if filled:
            notes.append(f"{name}: {filled} missing values filled by linear interpolation")
    add_speed_ratios(rows)
    total = time.perf_counter() - start
    notes += [
        f"{r['dataset']} {r['model']}: MASE leaves out {r['mase_left_out']} series-cutoffs "
        "with a zero or undefined scale"
        for r in rows
        if r["mase_left_out"]
    ]
    print(
        "Rolling-origin cross-validation (step_size = h); seconds: wall time of each model's "
        "whole cross-validation, after an untimed warm-up fit on a tiny frame (numba "
        "compilation excluded); models run one after another in this process"
        + (f" (each forked, budget {args.budget:g} s)." if args.budget > 0 else ".")
    )
    print()
    print(format_table(rows))
    print()
    for note in notes:
        print(f"note: {note}")
    targets = target_lines(rows)
    if targets:
        print(f"\nTargets for {OURS}:")
        print("\n".join(targets))
    elif OURS in models:
        print(f"\nTargets for {OURS}: no results (see its rows).")
    print(f"\nTotal runtime: {total:.1f} s")
    if args.json:
        context = {
            "argv": list(sys.argv[1:] if argv is None else argv),
            "python": platform.python_version(),
            "versions": _versions(),
            "cpus": os.cpu_count(),
            "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "budget_s": args.budget,
            "levels": list(LEVELS),
            "total_seconds": total,
            "notes": notes,
        }
        report = {"context": context, "rows": [_jsonable(r) for r in rows]}
        args.json.write_text(json.dumps(report, indent=2, allow_nan=False))
    return 0


def _jsonable(row: Row) -> dict[str, Any]:
    """The row with NaN as None (strict JSON)."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())

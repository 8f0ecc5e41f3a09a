"""The forecaster on real data nobody here generated, and its DataFrame API.

The shared datasets (``../shared/data/real``, see its README) are public series from
the fpp2/fpp3 R packages: monthly, quarterly with two anchors, daily with exogenous
columns, half-hourly, and an irregular 5-minute axis.
"""

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnncore.forecast import Forecaster
from rnncore.forecast.frame import ALIAS
from rnncore.longformat import from_long

REAL = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "real"

# file, horizon, options
DATASETS = [
    ("monthly", 12, {}),
    ("quarterly", 8, {}),
    ("daily_elec", 14, {"exog": ["temperature", "workday"]}),
    ("halfhourly_taylor", 48, {}),
    ("fiveminute_calls", 12, {"freq": "5min", "n_lags": 288}),
]


def real(name: str) -> pd.DataFrame:
    path = REAL / f"{name}.csv.gz"
    if not path.is_file():
        pytest.skip(f"the shared real data are not at {REAL}")
    return pd.read_csv(path, parse_dates=["ds"])


def bounds_hold_the_mean(frame: pd.DataFrame, levels=(80, 95)) -> None:
    mean = frame[ALIAS]
    assert np.isfinite(mean).all()
    for inner, outer in itertools.pairwise(levels):
        assert (frame[f"{ALIAS}-lo-{outer}"] <= frame[f"{ALIAS}-lo-{inner}"]).all()
        assert (frame[f"{ALIAS}-hi-{inner}"] <= frame[f"{ALIAS}-hi-{outer}"]).all()
    for level in levels:
        assert (frame[f"{ALIAS}-lo-{level}"] <= mean).all()
        assert (mean <= frame[f"{ALIAS}-hi-{level}"]).all()


@pytest.mark.parametrize(("name", "h", "options"), DATASETS)
def test_every_shared_dataset_is_forecast_on_its_grid_with_ordered_bounds(name, h, options):
    df = real(name)
    forecast = Forecaster(h, **options).forecast(df)
    bounds_hold_the_mean(forecast)
    ends = df.groupby("unique_id")["ds"].max()
    assert sorted(forecast["unique_id"].unique()) == sorted(ends.index)
    for uid, rows in forecast.groupby("unique_id"):
        assert len(rows) == h
        # each series from its own last observation, on its own calendar grid
        freq = options.get("freq") or pd.infer_freq(df.loc[df.unique_id == uid, "ds"])
        expected = pd.date_range(ends[uid], periods=h + 1, freq=freq)[1:]
        np.testing.assert_array_equal(rows["ds"].to_numpy(), expected.to_numpy())


def test_the_irregular_axis_is_refused_naming_the_fix():
    df = real("fiveminute_calls")
    with pytest.raises(ValueError, match=r"freq=.*regular grid"):
        Forecaster(12).forecast(df)


def test_a_small_quarterly_panel_still_gets_intervals():
    """20 series of 48 quarters: too few scores per step for the 95% bounds alone."""
    df = real("quarterly")
    prison = df[df.unique_id != "qgas"]
    small = prison[prison.unique_id.isin(sorted(prison.unique_id.unique())[:20])]
    forecaster = Forecaster(8).fit(small)
    assert forecaster.freq_ == "QS-DEC" and forecaster.seasons_ == [4]
    forecast = forecaster.predict(small)
    assert forecast["ds"].dt.month.isin([3, 6, 9, 12]).all()
    bounds_hold_the_mean(forecast)


def test_short_series_fall_back_to_seasonal_naive_then_naive_flagged():
    df = real("monthly")
    ds = from_long(df)
    y = ds["y"].values.copy()
    ends = y.shape[1] - np.argmax(np.isfinite(y[:, ::-1]), axis=1)  # past each series' last
    short, shortest = 0, 1
    others = np.arange(2, y.shape[0])
    y[short, : ends[short] - 14] = np.nan  # 14 months: a season back, not half a window
    y[shortest, : ends[shortest] - 5] = np.nan  # 5 months: not even a season back
    y[shortest, ends[shortest] - 5 : ends[shortest]] = np.arange(5.0)
    ds = ds.copy(data={"y": y})
    forecast = Forecaster(12).fit_predict(ds)
    method = forecast["method"].values
    assert method[short] == "seasonal_naive" and method[shortest] == "naive"
    assert (method[others] == "model").all()
    last_season = y[short, ends[short] - 12 : ends[short]]
    np.testing.assert_allclose(forecast["mean"].values[short], last_season)
    np.testing.assert_allclose(forecast["mean"].values[shortest], 4.0)


def test_cross_validation_frame_is_what_utilsforecast_evaluates():
    evaluation = pytest.importorskip("utilsforecast.evaluation")
    losses = pytest.importorskip("utilsforecast.losses")
    df = real("monthly")[["unique_id", "ds", "y"]]
    cv = Forecaster(12).cross_validation(df, h=12, n_windows=2, step_size=12, level=[80, 95])
    assert list(cv.columns[:5]) == ["unique_id", "ds", "cutoff", "y", ALIAS]
    assert len(cv) == 10 * 2 * 12
    assert (cv.groupby(["unique_id", "cutoff"]).size() == 12).all()
    assert (cv["ds"] > cv["cutoff"]).all()
    bounds_hold_the_mean(cv)
    scores = evaluation.evaluate(
        cv.drop(columns="cutoff"), metrics=[losses.mae, losses.coverage], level=[80, 95]
    )
    assert set(scores["metric"]) >= {"mae", "coverage_level80", "coverage_level95"}
    assert np.isfinite(scores[ALIAS]).all()


def test_levels_in_percent_are_checked():
    df = real("monthly")
    for level in ([0], [100], [120], []):
        with pytest.raises(ValueError, match=r"percentages in \(0, 100\)"):
            Forecaster(12).forecast(df, level=level)

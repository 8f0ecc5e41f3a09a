"""Rolling-origin backtests, the seasonal-naive baseline and the accuracy metrics."""

import numpy as np
import pytest

from rnncore.forecast import Forecaster, backtest, backtest_table
from rnncore.forecast.backtest import seasonal_naive
from rnncore.forecast.metrics import coverage, mase, smape
from rnncore.synthetic import generate


@pytest.fixture(scope="module")
def result():
    ds = generate(60, 24 * 7 * 8, seed=11)
    return backtest(ds, lambda: Forecaster(24), horizon=24, n_windows=4)


@pytest.mark.slow  # fits a forecaster per test window
def test_backtest_beats_seasonal_naive_with_calibrated_intervals(result):
    attrs = result.attrs
    assert attrs["mase"] <= 0.9 * attrs["naive_mase"]
    assert attrs["smape"] < attrs["naive_smape"]
    assert abs(attrs["coverage_80"] - 0.80) <= 0.05
    assert abs(attrs["coverage_95"] - 0.95) <= 0.05


def test_backtest_layout(result):
    assert set(result.data_vars) == {
        "mase",
        "smape",
        "naive_mase",
        "naive_smape",
        "coverage",
        "n_points",
    }
    assert dict(result.coverage.sizes) == {"series": 60, "level": 2}
    assert result.attrs["origins"][0] == "2025-02-22T00:00:00"
    assert result.attrs["n_windows"] == 4 and result.attrs["season"] == 24
    assert result.n_points.max() == 4 * 24
    overall = np.nanmean(result.mase.values)
    assert result.attrs["mase"] == pytest.approx(overall)
    table = backtest_table(result)
    assert table.splitlines()[0] == "| model | MASE | sMAPE (%) | coverage 80% | coverage 95% |"
    assert f"| forecaster | {result.attrs['mase']:.3f} |" in table


def test_backtest_checks_its_arguments():
    ds = generate(4, 24 * 7, seed=0)
    with pytest.raises(ValueError, match="leave"):
        backtest(ds, lambda: Forecaster(24), horizon=24, n_windows=7)
    with pytest.raises(ValueError, match="horizon >= 48"):
        backtest(ds, lambda: Forecaster(24), horizon=48, n_windows=1)
    with pytest.raises(ValueError, match="not among"):
        backtest(ds, lambda: Forecaster(12), horizon=12, n_windows=1, levels=[0.5])


def test_seasonal_naive_repeats_the_last_observed_season():
    history = np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [1.0, 2.0, 3.0, 4.0, np.nan, 6.0]])
    forecast = seasonal_naive(history, season=3, horizon=4)
    assert forecast[0].tolist() == [4.0, 5.0, 6.0, 4.0]
    assert forecast[1].tolist() == [4.0, 2.0, 6.0, 4.0]  # phase 2 falls back a season
    assert np.isnan(seasonal_naive(np.full((1, 6), np.nan), 3, 2)).all()


def test_metrics():
    actual = np.array([[1.0, 2.0, np.nan, 4.0], [0.0, 0.0, 0.0, 0.0]])
    forecast = np.array([[2.0, 2.0, 9.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(mase(actual, forecast, np.array([2.0, 0.0])), [0.5, np.nan])
    np.testing.assert_allclose(smape(actual, forecast), [(200 / 3 + 0 + 200 * 2 / 6) / 3, 0.0])
    inside = coverage(actual, forecast - 1.5, forecast + 1.5)
    np.testing.assert_allclose(inside, [2 / 3, 1.0])

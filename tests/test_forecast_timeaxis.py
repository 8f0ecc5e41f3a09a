"""The time axis: step, season, phase, calendar features and forecast timestamps."""

import numpy as np
import pandas as pd
import pytest

from rnncore.forecast.timeaxis import (
    calendar_features,
    calendar_names,
    default_season,
    forecast_times,
    infer_step,
    phase,
)

HOUR = np.timedelta64(1, "h")
YEAR = ("sin1", "cos1", "sin2", "cos2")


def hourly(start="2025-03-10 05:00", periods=100):
    return pd.date_range(start, periods=periods, freq="h").values


def test_step_and_season_from_the_time_coordinate():
    assert infer_step(hourly()) == HOUR
    assert default_season(HOUR) == 24
    assert default_season(np.timedelta64(15, "m")) == 96
    assert default_season(np.timedelta64(1, "D")) == 7
    assert default_season(np.timedelta64(7, "D")) == 52
    assert default_season(np.timedelta64(5, "h")) == 1  # does not divide a day
    with pytest.raises(ValueError, match="equally spaced"):
        infer_step(np.delete(hourly(), 7))
    with pytest.raises(TypeError, match="datetime64"):
        infer_step(np.arange(10))
    with pytest.raises(ValueError, match="at least 2"):
        infer_step(hourly(periods=1))


def test_phase_is_the_hour_of_day_whatever_the_start():
    times = hourly()
    assert (phase(times, HOUR, 24) == pd.DatetimeIndex(times).hour).all()
    daily = pd.date_range("2025-01-01", periods=14, freq="D").values
    weekday = pd.DatetimeIndex(daily).day_of_week
    assert len(set(zip(phase(daily, np.timedelta64(1, "D"), 7), weekday, strict=True))) == 7


def test_hourly_calendar_has_time_of_day_week_and_year():
    times = hourly()
    names = calendar_names(HOUR)
    features = calendar_features(times, HOUR)
    assert features.shape == (100, len(names)) == (100, 12)
    index = pd.DatetimeIndex(times)
    hour_angle = 2 * np.pi * index.hour / 24
    np.testing.assert_allclose(features[:, names.index("day_sin1")], np.sin(hour_angle), atol=1e-12)
    np.testing.assert_allclose(
        features[:, names.index("day_cos2")], np.cos(2 * hour_angle), atol=1e-12
    )
    # steps since 1970-01-01, a Thursday: Monday is day 4 of the week
    week_angle = 2 * np.pi * (index.day_of_week + index.hour / 24 + 4) / 7
    np.testing.assert_allclose(features[:, names.index("week_sin1")], np.sin(week_angle), atol=1e-9)
    assert np.abs(features).max() <= 1


def test_coarser_steps_drop_the_shorter_cycles():
    assert calendar_names(np.timedelta64(1, "D"))[0] == "week_sin1"
    assert calendar_names(np.timedelta64(7, "D")) == [f"year_{t}" for t in YEAR]
    assert calendar_features(hourly(periods=3), np.timedelta64(400, "D")).shape == (3, 0)


def test_forecast_times_follow_the_last_timestamp():
    times = forecast_times(np.datetime64("2025-12-31T23:00"), HOUR, 3)
    assert [str(t) for t in times.astype("datetime64[h]")] == [
        "2026-01-01T00",
        "2026-01-01T01",
        "2026-01-01T02",
    ]

"""The time axis: step or calendar frequency, seasons, phases, calendar features and
forecast timestamps."""

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnncore.timeaxis import (
    calendar_features,
    calendar_names,
    check_freq,
    check_regular,
    default_seasons,
    future_times,
    infer_freq,
    step_index,
)

HOUR = np.timedelta64(1, "h")
YEAR = ("sin1", "cos1", "sin2", "cos2")


def hourly(start="2025-03-10 05:00", periods=100):
    return pd.date_range(start, periods=periods, freq="h").values


def test_hourly_calendar_has_time_of_day_week_and_year():
    times = hourly()
    names = calendar_names("h")
    features = calendar_features(times, "h")
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
    assert calendar_names("D")[0] == "week_sin1"
    assert calendar_names("W-SUN") == [f"year_{t}" for t in YEAR]
    years = pd.date_range("1990", periods=3, freq="YS").values
    assert calendar_features(years, "YS").shape == (3, 0)


YEAR_NAMES = [f"year_{t}" for t in YEAR]

# generated with, start, inferred canonical frequency, default seasons, calendar cycles
CALENDAR = [
    ("MS", "1939-03-01", "MS", (12,), ["year"]),
    ("ME", "2001-01-31", "ME", (12,), ["year"]),
    ("QS-DEC", "2005-03-01", "QS-DEC", (4,), ["year"]),
    ("QS-JAN", "1956-01-01", "QS-JAN", (4,), ["year"]),
    ("QS-OCT", "1956-01-01", "QS-JAN", (4,), ["year"]),  # the same quarters
    ("QE", "2010-03-31", "QE-DEC", (4,), ["year"]),
    ("W-SUN", "2025-01-05", "W-SUN", (52,), ["year"]),
    ("D", "2014-01-01", "D", (7,), ["week", "year"]),
    ("B", "2025-01-06", "B", (5,), ["week", "year"]),
    ("30min", "2000-06-05", "30min", (48, 336), ["day", "week", "year"]),
    ("YS", "1990-01-01", "YS-JAN", (), []),
]


def cycles_of(names):
    return sorted({n.split("_")[0] for n in names}, key=["day", "week", "year"].index)


@pytest.mark.parametrize(("freq", "start", "canonical", "seasons", "cycles"), CALENDAR)
def test_calendar_frequencies_are_inferred_with_their_seasons_and_cycles(
    freq, start, canonical, seasons, cycles
):
    times = pd.date_range(start, periods=40, freq=freq).values
    assert infer_freq(times) == canonical == check_freq(freq)
    assert check_regular(times, canonical) == canonical
    assert default_seasons(canonical) == seasons
    names = calendar_names(canonical)
    assert cycles_of(names) == cycles and len(names) == 4 * len(cycles)
    features = calendar_features(times, canonical)
    assert features.shape == (40, len(names)) and np.abs(features).max(initial=0) <= 1
    index = step_index(times, canonical)
    np.testing.assert_array_equal(np.diff(index), 1)
    for season in seasons:
        phases = step_index(times, canonical) % season
        assert phases.min() >= 0 and phases.max() < season


def test_canonical_frequencies_and_bad_aliases():
    assert check_freq("h") == "h" and check_freq("W") == "W-SUN"
    assert check_freq("QS-APR") == check_freq("QS-JUL") == check_freq("QS") == "QS-JAN"
    assert check_freq("QS-MAR") == "QS-DEC" and check_freq("QE-MAR") == "QE-DEC"
    assert check_freq(pd.offsets.MonthBegin(2)) == "2MS"
    for bad in ("monthly", "", "0h"):
        with pytest.raises(ValueError, match="'h', '30min', 'D', 'B', 'W-SUN', 'MS'"):
            check_freq(bad)


def test_month_starts_of_unequal_length_are_monthly():
    times = pd.to_datetime(["1939-03-01", "1939-04-01", "1939-05-01", "1939-06-01"]).values
    assert infer_freq(times) == "MS"
    assert infer_freq(times[:2]) == "31D"  # two timestamps: just the step between them


def test_irregular_business_hours_are_refused_naming_the_break_and_the_fix():
    days = pd.date_range("2003-03-03", periods=3, freq="B")
    times = np.concatenate(
        [
            pd.date_range(d + pd.Timedelta("7h"), d + pd.Timedelta("21h"), freq="5min").values
            for d in days
        ]
    )
    with pytest.raises(ValueError) as caught:
        infer_freq(times)
    message = str(caught.value)
    assert "from 2003-03-03 21:00:00 to 2003-03-04 07:00:00" in message
    assert "the step is 10 hours; before it steps were 5 minutes" in message
    assert "pass freq=... (--freq on the command line)" in message.lower()
    assert "missing steps as NaN" in message
    assert not re.search(r"\d{8}", message)  # durations in words, not nanoseconds


@pytest.mark.parametrize(
    ("stamps", "message"),
    [
        (["2025-01-01"], "at least 2 timestamps.*Pass freq"),
        (["2025-01-01", "2025-01-01", "2025-01-02"], "is repeated"),
        (["2025-01-02", "2025-01-01", "2025-01-03"], "followed by the earlier 2025-01-01"),
        (["2025-01-01", "NaT", "2025-01-03"], "missing timestamp"),
    ],
)
def test_infer_freq_refuses_what_is_not_an_axis(stamps, message):
    with pytest.raises(ValueError, match=message):
        infer_freq(pd.to_datetime(stamps).values)


def test_check_regular_names_the_first_timestamp_off_the_grid():
    with pytest.raises(ValueError, match="2025-01-02 00:00:00 is not on the 'MS' grid"):
        check_regular(pd.to_datetime(["2025-01-02", "2025-02-02"]).values, "MS")
    times = pd.to_datetime(["2025-01-01", "2025-02-01", "2025-04-01"]).values
    with pytest.raises(ValueError, match=r"2025-04-01 .* where 2025-03-01 00:00:00 was expected"):
        check_regular(times, "MS")


def test_step_index_counts_from_1970_whatever_the_frequency():
    def at(stamp, freq):
        return int(step_index(np.array([stamp], "datetime64[ns]"), freq)[0])

    assert at("1970-01-01T05:00", "h") == 5 and at("1969-12-31T23:00", "h") == -1
    assert at("2025-01-01", "MS") == 660 and at("2025-01-31", "ME") == 660
    assert at("1970-03-01", "QS-DEC") == 0 and at("1970-04-01", "QS-JAN") == 1
    assert at("1970-01-04", "W-SUN") == 0 and at("1970-01-11", "W-SUN") == 1
    assert at("1970-01-02", "B") == 1 and at("1970-01-05", "B") == 2  # over the weekend
    assert at("1970-02-01", "SMS") == 2 and at("1969-12-15", "SMS") == -1


FREQS = [
    "h",
    "15min",
    "D",
    "B",
    "W-SUN",
    "W-WED",
    "MS",
    "ME",
    "2MS",
    "QS-DEC",
    "QS-JAN",
    "QE",
    "YS",
    "BMS",
    "SMS",
    "bh",
]


@settings(max_examples=60, deadline=None)
@given(
    freq=st.sampled_from(FREQS),
    days=st.integers(-30_000, 30_000),
    later=st.integers(1, 30),
)
def test_step_index_is_the_same_for_the_same_instant_and_consecutive(freq, days, later):
    start = pd.Timestamp("1970-01-01") + pd.Timedelta(days=days)
    first = pd.date_range(start, periods=40, freq=freq).values
    second = pd.date_range(pd.Timestamp(first[later]), periods=20, freq=freq).values
    index = step_index(first, freq)
    np.testing.assert_array_equal(np.diff(index), 1)
    np.testing.assert_array_equal(step_index(second, freq)[: 40 - later], index[later:][:20])
    np.testing.assert_array_equal(
        future_times(first[-1], freq, 3), pd.date_range(first[-1], periods=4, freq=freq)[1:].values
    )


@pytest.mark.parametrize(
    ("freq", "seasons"),
    [
        ("30min", (48, 336)),
        ("h", (24, 168)),
        ("15min", (96, 672)),
        ("5min", (288, 2016)),
        ("2h", (12, 84)),
        ("7h", ()),
        ("D", (7,)),
        ("B", (5,)),
        ("W-SUN", (52,)),
        ("MS", (12,)),
        ("ME", (12,)),
        ("BMS", (12,)),
        ("2MS", (6,)),
        ("QS-DEC", (4,)),
        ("QE", (4,)),
        ("YS", ()),
        ("YE", ()),
    ],
)
def test_default_seasons(freq, seasons):
    assert default_seasons(freq) == seasons


def test_calendar_features_of_calendar_frequencies():
    months = pd.date_range("2000-01-01", periods=36, freq="MS").values
    features = calendar_features(months, "MS")
    assert calendar_names("MS") == YEAR_NAMES
    np.testing.assert_allclose(features[0], features[12], atol=1e-12)  # every January alike
    np.testing.assert_allclose(features[0], [0, 1, 0, 1], atol=1e-12)
    quarters = pd.date_range("2005-03-01", periods=8, freq="QS-DEC").values
    assert len(np.unique(calendar_features(quarters, "QS-DEC").round(9), axis=0)) == 4
    years = pd.date_range("1990", periods=5, freq="YS").values
    assert calendar_features(years, "YS").shape == (5, 0)


def test_future_times_per_series():
    last = np.array(["2024-12-01", "NaT", "2025-02-01", "2024-12-01"], "datetime64[ns]")
    out = future_times(last, "MS", 3)
    assert out.shape == (4, 3) and out.dtype == np.dtype("datetime64[ns]")
    assert [str(t)[:10] for t in out[0]] == ["2025-01-01", "2025-02-01", "2025-03-01"]
    assert np.isnat(out[1]).all()
    assert [str(t)[:10] for t in out[2]] == ["2025-03-01", "2025-04-01", "2025-05-01"]
    np.testing.assert_array_equal(out[3], out[0])
    friday = future_times(np.datetime64("2025-01-03"), "B", 2)
    assert [str(t)[:10] for t in friday] == ["2025-01-06", "2025-01-07"]
    quarters = future_times(np.array(["2016-12-01", "2010-04-01"], "datetime64[ns]"), "QS-DEC", 1)
    assert [str(t)[:10] for t in quarters[:, 0]] == ["2017-03-01", "2010-06-01"]
    # hours on different lattices (:00 and :30) each follow their own
    halves = future_times(np.array(["2025-01-01T00:00", "2025-01-01T00:30"], "M8[ns]"), "h", 1)
    assert [str(t)[11:16] for t in halves[:, 0]] == ["01:00", "01:30"]
    assert future_times(last, "MS", 0).shape == (4, 0)

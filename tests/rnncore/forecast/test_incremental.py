"""Incremental forecasts: nights continued from a state store equal a full recompute."""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rnncore.errors import InputError
from rnncore.forecast import Forecaster
from rnncore.forecast.forecaster import INCREMENT_ATTRS
from rnncore.statestore import read_state_store
from rnncore.synthetic import generate

HORIZON = 12
DAY = 24
N_SERIES = 14
# Scaling over a week: the trailing window a resumed series reads (192 steps, with the
# 192-step lag window) is a fraction of the history.
SETTINGS = {"horizon": HORIZON, "n_folds": 2, "scale_window": 7 * DAY, "ridge": 1e-3}
FIT_STEPS = 24 * 7 * 5
NIGHTS = 3


@pytest.fixture(scope="module", params=["float64", "float32"])
def data(request):
    """Hourly series with gaps, late starts, early ends, a constant and an all-NaN
    series, two more series that appear later and an exogenous covariate; the
    tolerance of the comparison to a full recompute."""
    ds = generate(
        N_SERIES + 2,
        FIT_STEPS + DAY * (NIGHTS + 1),
        seed=5,
        n_features=1,
        n_constant=1,
        n_all_nan=1,
        early_end_fraction=0.3,
        dtype=request.param,
    )
    return ds, 1e-12 if request.param == "float64" else 1e-5


@pytest.fixture(scope="module")
def forecaster(data):
    ds, _ = data
    return Forecaster(**SETTINGS).fit(ds.isel(series=slice(0, N_SERIES), time=slice(0, FIT_STEPS)))


@pytest.fixture(scope="module")
def with_exog(data):
    ds, _ = data
    train = ds.isel(series=slice(0, N_SERIES), time=slice(0, FIT_STEPS))
    return Forecaster(**SETTINGS, exog=["x"]).fit(train)


def assert_same(incremental, full, rtol):
    """The forecasts agree: values within ``rtol``, everything else exactly."""
    for name in ("mean", "lower", "upper"):
        np.testing.assert_allclose(incremental[name], full[name], rtol=rtol, atol=0)
    for name in ("method", "last_observed", "all_missing", "time", "series"):
        np.testing.assert_array_equal(incremental[name].values, full[name].values)
    assert incremental.attrs["ended_early"] == full.attrs["ended_early"]
    assert incremental.attrs["origin"] == full.attrs["origin"]


def nights(ds, model, path, rtol, *, series=slice(0, N_SERIES), edit=None):
    """Predict the fitting data in full (writing the store), then ``NIGHTS`` nights of a
    day each incrementally; every forecast is compared with a full recompute. Returns
    the last incremental forecast."""
    first = ds.isel(series=series, time=slice(0, FIT_STEPS))
    forecast = model.predict(first, state_out=path)
    assert_same(forecast, model.predict(first), rtol)
    assert forecast.attrs["series_cold"] == first.sizes["series"]
    for night in range(1, NIGHTS + 1):
        tonight = ds.isel(series=series, time=slice(0, FIT_STEPS + DAY * night))
        if edit is not None:
            tonight = edit(tonight, night)
        forecast = model.predict(tonight, state=path, state_out=path)
        assert_same(forecast, model.predict(tonight), rtol)
    return forecast


def test_nights_equal_a_full_recompute(data, forecaster, tmp_path):
    ds, rtol = data
    path = tmp_path / "state.zarr"
    last = nights(ds, forecaster, path, rtol)
    window = max(7 * DAY, forecaster.training_window_["n_lags"])
    assert last.attrs["series_resumed"] == N_SERIES
    assert last.attrs["steps_new"] == N_SERIES * DAY
    assert last.attrs["steps_read"] == N_SERIES * (window + DAY)
    assert last.attrs["series_cold"] == last.attrs["series_recomputed"] == 0
    # The store after the nights is the one a full pass over the same data writes.
    tonight = ds.isel(series=slice(0, N_SERIES), time=slice(0, FIT_STEPS + DAY * NIGHTS))
    forecaster.predict(tonight, state_out=tmp_path / "full.zarr")
    resumed, full = read_state_store(path), read_state_store(tmp_path / "full.zarr")
    np.testing.assert_array_equal(resumed.stands_at, full.stands_at)
    np.testing.assert_array_equal(resumed.checksums, full.checksums)
    for name, value in full.arrays.items():
        np.testing.assert_allclose(resumed.arrays[name], value, rtol=1e-12, atol=1e-12)


def test_exogenous_variables(data, with_exog, tmp_path):
    ds, rtol = data
    nights(ds, with_exog, tmp_path / "state.zarr", rtol)


def test_new_and_removed_series(data, forecaster, tmp_path):
    ds, rtol = data
    path = tmp_path / "state.zarr"
    forecaster.predict(ds.isel(series=slice(0, N_SERIES), time=slice(0, FIT_STEPS)), state_out=path)
    # Tonight: the first two series are gone, two new ones arrive (their whole history).
    tonight = ds.isel(series=slice(2, N_SERIES + 2), time=slice(0, FIT_STEPS + DAY))
    forecast = forecaster.predict(tonight, state=path, state_out=path)
    assert_same(forecast, forecaster.predict(tonight), rtol)
    assert forecast.attrs["series_removed"] == 2
    assert forecast.attrs["series_cold"] == 2
    assert forecast.attrs["series_resumed"] == N_SERIES - 2
    assert list(read_state_store(path).series) == list(tonight.series.values)


def test_gaps_and_series_that_stop(data, forecaster, tmp_path):
    """A series that stops for good, one missing for a whole night (its origin stays
    where it was) and observed again the next, and one whose evenings are missing."""
    ds, rtol = data

    def gaps(tonight, night):
        y = tonight.y.copy()
        y[3, FIT_STEPS:] = np.nan  # stops at the fitting data's end
        y[4, FIT_STEPS : FIT_STEPS + DAY] = np.nan  # the first night missing
        for day in range(night):
            evening = FIT_STEPS + DAY * day + DAY // 2
            y[5, evening : evening + DAY // 2] = np.nan
        return tonight.assign(y=y)

    last = nights(ds, forecaster, tmp_path / "state.zarr", rtol, edit=gaps)
    assert last.attrs["series_recomputed"] == 0
    ended = last.attrs["ended_early"]
    assert {str(ds.series.values[3]), str(ds.series.values[5])} <= set(ended)


def test_weeks_of_new_steps_in_panels_and_blocks(data, tmp_path):
    """A store two weeks old: the new steps run in several panels of several blocks,
    the series in several blocks; the forecast of a full recompute."""
    ds, rtol = data
    train = ds.isel(series=slice(0, N_SERIES), time=slice(0, FIT_STEPS))
    model = Forecaster(**SETTINGS, chunk_rows=500, panel_rows=N_SERIES * 200).fit(train)
    path = tmp_path / "state.zarr"
    stale = FIT_STEPS - 14 * DAY
    model.predict(ds.isel(series=slice(0, N_SERIES), time=slice(0, stale)), state_out=path)
    tonight = ds.isel(series=slice(0, N_SERIES), time=slice(0, FIT_STEPS + DAY))
    forecast = model.predict(tonight, state=path)
    assert_same(forecast, model.predict(tonight), rtol)
    assert forecast.attrs["series_resumed"] == N_SERIES
    assert forecast.attrs["steps_new"] == N_SERIES * 15 * DAY


def test_late_correction_is_recomputed(data, forecaster, tmp_path):
    ds, rtol = data
    path = tmp_path / "state.zarr"
    history = ds.isel(series=slice(0, N_SERIES), time=slice(0, FIT_STEPS))
    forecaster.predict(history, state_out=path)
    tonight = ds.isel(series=slice(0, N_SERIES), time=slice(0, FIT_STEPS + DAY)).copy(deep=True)
    tonight.y[7, FIT_STEPS - 30] = tonight.y[7, FIT_STEPS - 30] + 5.0  # yesterday's value
    forecast = forecaster.predict(tonight, state=path)
    assert_same(forecast, forecaster.predict(tonight), rtol)
    assert forecast.attrs["series_recomputed"] == 1
    assert forecast.attrs["series_resumed"] == N_SERIES - 1
    assert forecast.attrs["steps_read"] > N_SERIES * DAY + FIT_STEPS


def test_no_new_steps(data, forecaster, tmp_path):
    ds, rtol = data
    path = tmp_path / "state.zarr"
    history = ds.isel(series=slice(0, N_SERIES), time=slice(0, FIT_STEPS))
    forecaster.predict(history, state_out=path)
    again = forecaster.predict(history, state=path)
    assert_same(again, forecaster.predict(history), rtol)
    assert again.attrs["steps_new"] == 0
    assert set(INCREMENT_ATTRS) <= set(again.attrs)


def test_refuses_a_store_of_another_forecaster(data, forecaster, with_exog, tmp_path):
    ds, _ = data
    path = tmp_path / "state.zarr"
    history = ds.isel(series=slice(0, N_SERIES), time=slice(0, FIT_STEPS))
    with_exog.predict(history, state_out=path)
    with pytest.raises(InputError, match="fingerprint"):
        forecaster.predict(history, state=path)
    with pytest.raises(InputError, match="state store"):
        forecaster.predict(history, state=tmp_path / "missing.zarr")


def test_gated_units_have_no_incremental_pass(data, tmp_path):
    ds, _ = data
    history = ds.isel(series=slice(0, N_SERIES), time=slice(0, FIT_STEPS))
    gated = Forecaster(**SETTINGS, n_gated=2).fit(history)
    with pytest.raises(InputError, match="n_gated=2"):
        gated.predict(history, state_out=tmp_path / "state.zarr")


@settings(max_examples=12)
@given(
    known=st.integers(1, FIT_STEPS + DAY),
    new=st.integers(0, 2 * DAY + 1),
    first=st.integers(0, N_SERIES - 2),
)
@example(known=1, new=0, first=0)
@example(known=1, new=1, first=0)
@example(known=FIT_STEPS, new=1, first=0)
@example(known=200, new=7, first=3)  # the trailing window reaches the start
def test_any_split_equals_a_full_recompute(data, forecaster, tmp_path_factory, known, new, first):
    """A store after any number of steps (one, fewer than the trailing window, many),
    continued by any number of new steps (none, one, a prime number, days): the
    forecast of a full recompute."""
    ds, rtol = data
    path = tmp_path_factory.mktemp("split") / "state.zarr"
    series = slice(first, N_SERIES)
    forecaster.predict(ds.isel(series=series, time=slice(0, known)), state_out=path)
    tonight = ds.isel(series=series, time=slice(0, known + new))
    forecast = forecaster.predict(tonight, state=path)
    assert_same(forecast, forecaster.predict(tonight), rtol)
    assert forecast.attrs["steps_new"] == (N_SERIES - first) * new


def test_a_history_that_starts_elsewhere_is_recomputed(data, forecaster, tmp_path):
    """Tonight's data dropped their first day: the stored sums over the whole history do
    not continue, so every series is read in full (as a full recompute reads them)."""
    ds, rtol = data
    path = tmp_path / "state.zarr"
    forecaster.predict(ds.isel(series=slice(0, N_SERIES), time=slice(0, FIT_STEPS)), state_out=path)
    tonight = ds.isel(series=slice(0, N_SERIES), time=slice(DAY, FIT_STEPS + DAY))
    forecast = forecaster.predict(tonight, state=path, state_out=path)
    assert_same(forecast, forecaster.predict(tonight), rtol)
    assert forecast.attrs["series_recomputed"] == N_SERIES
    assert forecast.attrs["series_resumed"] == 0
    tomorrow = ds.isel(series=slice(0, N_SERIES), time=slice(DAY, FIT_STEPS + 2 * DAY))
    forecast = forecaster.predict(tomorrow, state=path)  # the fresh store continues
    assert_same(forecast, forecaster.predict(tomorrow), rtol)
    assert forecast.attrs["series_resumed"] == N_SERIES

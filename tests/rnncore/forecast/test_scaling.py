"""Per-series robust scaling: statistics, the round trip, degenerate series."""

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from rnncore.forecast.scaling import apply_scaling, series_stats, undo_scaling


def values(rng):
    y = rng.lognormal(3.0, 0.5, size=(6, 50))
    y[0, 10:20] = np.nan  # a gap
    y[1, :30] = np.nan  # a late start
    y[2] = 4.0  # constant
    y[3] = np.nan  # never observed
    y[4, :30] = 7.0  # mostly one value: the MAD is 0
    return y


def test_stats_are_the_median_and_scaled_mad(rng):
    y = values(rng)
    stats = series_stats(xr.DataArray(y, dims=("series", "time")), season=5)
    for s in (0, 1, 5):
        row = y[s][np.isfinite(y[s])]
        median = np.median(row)
        assert stats.location.values[s] == pytest.approx(median, rel=1e-12)
        mad = np.median(np.abs(row - median)) * 1.482602218505602
        assert stats.scale.values[s] == pytest.approx(mad, rel=1e-12)
        pairs = np.abs(y[s, 5:] - y[s, :-5])
        assert stats.seasonal_mae.values[s] == pytest.approx(np.nanmean(pairs), rel=1e-12)
        assert stats.last_observed.values[s] == 49
    assert stats.n_observed.values.tolist() == [40, 20, 50, 0, 50, 50]


def test_degenerate_series(rng):
    y = values(rng)
    stats = series_stats(xr.DataArray(y, dims=("series", "time")), season=5)
    assert stats.scale.values[2] == 0 and stats.location.values[2] == 4.0  # constant
    assert np.isnan(stats.location.values[3]) and np.isnan(stats.scale.values[3])
    assert stats.last_observed.values[3] == -1
    mean_ad = np.mean(np.abs(y[4] - 7.0)) * 1.2533141373155001
    assert stats.scale.values[4] == pytest.approx(mean_ad)  # MAD 0, not constant


def test_stats_do_not_depend_on_the_chunking(rng):
    y = xr.DataArray(values(rng), dims=("series", "time"))
    whole = series_stats(y, season=3)
    for panels in (None, ((0, 4), (4, 31), (31, 50))):
        chunked = series_stats(
            y.chunk({"series": 2, "time": 7}), season=3, panels=panels, block_bytes=800
        )
        xr.testing.assert_allclose(whole, chunked, rtol=1e-13)  # sums in another order
        assert whole.last_observed.equals(chunked.last_observed)


def test_robust_statistics_come_from_the_trailing_window(rng):
    y = values(rng)
    y[5, 40:] = np.nan  # ended early: only 2 values in the last 12 steps
    stats = series_stats(xr.DataArray(y, dims=("series", "time")), season=5, window=12)
    tail = y[0, -12:]
    assert stats.location.values[0] == pytest.approx(np.median(tail))
    mad = np.median(np.abs(tail - np.median(tail))) * 1.482602218505602
    assert stats.scale.values[0] == pytest.approx(mad)
    early = y[5][np.isfinite(y[5])]
    assert stats.location.values[5] == pytest.approx(early.mean())  # fewer than 5 in window
    assert stats.scale.values[5] == pytest.approx(early.std())
    assert stats.last_observed.values[5] == 39
    assert stats.scale.values[2] == 0  # constant, robust or not


def test_scaling_round_trip(rng):
    y = values(rng)
    stats = series_stats(xr.DataArray(y, dims=("series", "time")), season=5)
    loc, scale = stats.location.values, stats.scale.values
    z = apply_scaling(y, loc, scale)
    back = undo_scaling(z, loc, scale)
    observed = np.isfinite(y)
    np.testing.assert_allclose(back[observed], y[observed], rtol=1e-12)
    assert (z[2] == 0).all()  # the constant series
    np.testing.assert_array_equal(np.isnan(z), ~observed)
    # trailing axes (steps, levels) broadcast; a constant series maps back to its constant
    restored = undo_scaling(np.ones((6, 3, 2)), loc, scale)
    assert (restored[2] == 4.0).all() and np.isnan(restored[3]).all()


@pytest.mark.parametrize("n_steps", [1, 12, 13, 23, 24, 25])
def test_shorter_than_a_season_has_no_seasonal_pairs(n_steps):
    """Fewer steps than the season (more than half of it too): no seasonal pair, no error."""
    y = xr.DataArray(np.arange(2.0 * n_steps).reshape(2, n_steps), dims=("series", "time"))
    stats = series_stats(y, season=24)
    assert np.isnan(stats.seasonal_mae.values).all() == (n_steps <= 24)
    assert stats.n_observed.values.tolist() == [n_steps, n_steps]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # inf - inf, in both
@settings(max_examples=60, deadline=None)
@given(
    n_steps=st.sampled_from([1, 2, 3, 7, 24, 599, 600, 601, 673]),
    seed=st.integers(0, 2**32 - 1),
    missing=st.floats(0.0, 0.95),
    rounded=st.booleans(),
    infinite=st.sampled_from([0.0, 0.1, 0.6]),
    block_bytes=st.sampled_from([8, 2**20]),
    lazy=st.booleans(),
)
def test_robust_statistics_are_numpys_nanmedian_exactly(
    n_steps, seed, missing, rounded, infinite, block_bytes, lazy
):
    """The median and MAD are NumPy's ``nanmedian`` to the last bit (ties, gaps, both of
    its algorithms: under and over 600 steps; infinite values, and medians), in blocks
    or not, in memory or lazily."""
    rng = np.random.default_rng(seed)
    y = rng.lognormal(0.0, 2.0, (5, n_steps))
    y = np.round(y) if rounded else y  # ties, and many a MAD of 0
    y[rng.random(y.shape) < infinite] = np.inf
    y[1, rng.random(n_steps) < infinite] = -np.inf
    y[rng.random(y.shape) < missing] = np.nan
    y[0] = np.nan
    data = xr.DataArray(y, dims=("series", "time"))
    data = data.chunk({"series": 2}) if lazy else data
    stats = series_stats(data, season=1, min_count=1, block_bytes=block_bytes)
    seen = np.isfinite(y).any(axis=1)  # the robust statistics count finite values
    location = np.nanmedian(y[seen], axis=1)
    deviation = np.abs(y[seen] - location[:, None])
    mad = np.nanmedian(deviation, axis=1) * 1.482602218505602
    scale = np.where(mad > 0, mad, np.nanmean(deviation, axis=1) * 1.2533141373155001)
    robust = np.isfinite(location)  # an infinite median: the mean and standard deviation
    np.testing.assert_array_equal(stats.location.values[seen][robust], location[robust])
    np.testing.assert_array_equal(stats.scale.values[seen][robust], scale[robust])
    assert np.isnan(stats.location.values[~seen]).all()

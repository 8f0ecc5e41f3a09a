"""Split-conformal intervals: ranks, coverage on synthetic residuals, errors."""

import numpy as np
import pytest

from rnncore.forecast.conformal import check_levels, conformal_quantiles, intervals, min_scores


def test_bounds_are_the_conformal_order_statistics():
    scores = np.random.default_rng(1).permutation(np.arange(-49.0, 50.0))[:, None]  # -49..49
    bounds = conformal_quantiles(scores, [0.8, 0.9])
    # n = 99: alpha/2 = 0.1 -> floor(100 * 0.1) = 10th; ceil(100 * 0.9) = 90th smallest
    assert bounds[0, 0].tolist() == [-40.0, 40.0]
    assert bounds[0, 1].tolist() == [-45.0, 45.0]


def test_every_interval_holds_its_forecast():
    scores = np.arange(1.0, 100.0)[:, None]  # all positive: the forecast was biased low
    bounds = conformal_quantiles(scores, [0.8])
    assert bounds[0, 0].tolist() == [0.0, 90.0]


@pytest.mark.parametrize("level", [0.8, 0.95])
def test_intervals_cover_fresh_errors_at_their_level(rng, level):
    # heavy-tailed, skewed, heteroscedastic errors: scale known per series
    n_series, steps = 4000, 3
    norm = rng.uniform(0.2, 5.0, n_series)
    shape = (2, n_series, steps)
    errors = (rng.standard_t(4, shape) + 0.5 * rng.exponential(1, shape)) * norm[None, :, None]
    calibration, fresh = errors
    bounds = conformal_quantiles(calibration / norm[:, None], [level])
    lower, upper = intervals(np.zeros((n_series, steps)), norm, bounds)
    covered = (lower[..., 0] <= fresh) & (fresh <= upper[..., 0])
    assert abs(covered.mean() - level) < 0.015
    assert (bounds[:, 0, 0] < 0).all() and (bounds[:, 0, 1] > 0).all()


def test_nan_scores_are_left_out_and_small_panels_pool_their_steps():
    rng = np.random.default_rng(2)
    scores = np.full((60, 2), np.nan)
    scores[:50, 0] = rng.normal(0, 1, 50)
    scores[:20, 1] = rng.normal(0, 3, 20)  # too few for 0.95 alone
    bounds = conformal_quantiles(scores, [0.8, 0.95])
    assert bounds.shape == (2, 2, 2) and np.isfinite(bounds).all()
    # step 2 keeps its own 80% bounds; its 95% bounds come from the pool, in its own scale
    column = np.sort(scores[:20, 1])
    assert bounds[1, 0].tolist() == [column[1], column[18]]
    rms = np.sqrt(np.nanmean(scores**2, axis=0))
    pooled = np.sort(np.concatenate([scores[:50, 0] / rms[0], scores[:20, 1] / rms[1]]))
    assert bounds[1, 1].tolist() == [pooled[0] * rms[1], pooled[69] * rms[1]]
    assert min_scores(0.95) == 39 and min_scores(0.8) == 9


def test_too_few_scores_anywhere_give_normal_bounds_from_the_expected_error():
    bounds = conformal_quantiles(np.full((3, 2), np.nan), [0.95], expected=np.array([1.0, 2.0]))
    np.testing.assert_allclose(bounds[:, 0, 1], [1.959964, 3.919928], rtol=1e-6)
    np.testing.assert_allclose(bounds[:, 0, 0], -bounds[:, 0, 1])
    with pytest.raises(ValueError, match="no calibration score and no expected error"):
        conformal_quantiles(np.full((3, 2), np.nan), [0.95])


def test_zero_norm_gives_zero_width():
    lower, upper = intervals(np.array([[3.0]]), np.array([0.0]), np.array([[[-1.0, 2.0]]]))
    assert lower.item() == upper.item() == 3.0


@pytest.mark.parametrize("levels", [[], [0.0], [1.0], [0.95, 0.8], [0.8, 0.8]])
def test_levels_are_checked(levels):
    with pytest.raises(ValueError, match="levels"):
        check_levels(levels)

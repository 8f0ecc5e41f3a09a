"""Split-conformal intervals: ranks, coverage on synthetic residuals, errors."""

import numpy as np
import pytest

from rnncore.forecast.conformal import check_levels, conformal_quantiles, intervals, min_scores


def test_bounds_are_the_conformal_order_statistics():
    scores = np.random.default_rng(1).permutation(np.arange(1.0, 100.0))[:, None]  # 1..99
    bounds = conformal_quantiles(scores, [0.8, 0.9])
    # n = 99: alpha/2 = 0.1 -> floor(100 * 0.1) = 10th; ceil(100 * 0.9) = 90th smallest
    assert bounds[0, 0].tolist() == [10.0, 90.0]
    assert bounds[0, 1].tolist() == [5.0, 95.0]


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


def test_nan_scores_are_left_out_and_too_few_scores_are_refused():
    scores = np.full((60, 2), np.nan)
    scores[:50, 0] = np.arange(50.0)
    scores[:20, 1] = np.arange(20.0)
    assert conformal_quantiles(scores, [0.8]).shape == (2, 1, 2)
    with pytest.raises(ValueError, match="horizon step 2 has 20 calibration score"):
        conformal_quantiles(scores, [0.95])
    assert min_scores(0.95) == 39 and min_scores(0.8) == 9


def test_zero_norm_gives_zero_width():
    lower, upper = intervals(np.array([[3.0]]), np.array([0.0]), np.array([[[-1.0, 2.0]]]))
    assert lower.item() == upper.item() == 3.0


@pytest.mark.parametrize("levels", [[], [0.0], [1.0], [0.95, 0.8], [0.8, 0.8]])
def test_levels_are_checked(levels):
    with pytest.raises(ValueError, match="levels"):
        check_levels(levels)

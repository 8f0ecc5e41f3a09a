"""The distributed ridge readout: moments merged in a tree, one solve, GCV."""

import dask
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnncore.forecast.ridge import GRID, Moments, solve_ridge
from rnncore.trees import tree_reduce


def problem(rng, n=300, p=6, k=3):
    """Features with offsets and unequal scales, targets linear in them plus noise."""
    x = rng.normal(size=(n, p)) * rng.uniform(0.1, 10, p) + rng.uniform(-50, 50, p)
    y = x @ rng.normal(size=(p, k)) + rng.normal(size=k) + rng.normal(size=(n, k))
    return x, y


def lstsq_ridge(x, y, lam):
    """The module's ridge problem solved as one in-memory least-squares problem."""
    n, p = x.shape
    mean, std = x.mean(axis=0), x.std(axis=0)
    xs = (x - mean) / std
    augmented = np.vstack([xs, np.sqrt(n * lam) * np.eye(p)])
    targets = np.vstack([y - y.mean(axis=0), np.zeros((p, y.shape[1]))])
    coef = np.linalg.lstsq(augmented, targets, rcond=None)[0] / std[:, None]
    return coef, y.mean(axis=0) - mean @ coef


def blocks_of(rows, cuts):
    return np.split(rows, sorted(set(cuts)))


@settings(max_examples=25)
@given(
    seed=st.integers(0, 2**32 - 1),
    cuts=st.lists(st.integers(0, 300), max_size=12),
    lam=st.sampled_from([0.0, 1e-6, 1e-3, 0.1]),
)
def test_distributed_moments_give_the_in_memory_least_squares_solution(seed, cuts, lam):
    rng = np.random.default_rng(seed)
    x, y = problem(rng)
    rows = np.hstack([x, y])
    parts = [dask.delayed(Moments.of)(block) for block in blocks_of(rows, cuts)]
    total = tree_reduce(parts, dask.delayed(Moments.merge))
    (moments,) = dask.compute(total, scheduler="sync")
    fit = solve_ridge(moments, x.shape[1], ridge=lam)
    coef, intercept = lstsq_ridge(x, y, lam)
    assert moments.n == rows.shape[0]
    np.testing.assert_allclose(fit.coef, coef, rtol=1e-8, atol=1e-8 * np.abs(coef).max())
    np.testing.assert_allclose(fit.intercept, intercept, rtol=1e-8)
    np.testing.assert_allclose(fit.feature_mean, x.mean(axis=0), rtol=1e-12)


@settings(max_examples=25)
@given(seed=st.integers(0, 2**32 - 1), cuts=st.lists(st.integers(0, 200), max_size=8))
def test_merged_moments_equal_the_direct_ones(seed, cuts):
    rows = np.random.default_rng(seed).normal(3.0, 2.0, size=(200, 4))
    merged = tree_reduce([Moments.of(b) for b in blocks_of(rows, cuts)], Moments.merge)
    direct = Moments.of(rows)
    assert merged.n == direct.n
    np.testing.assert_allclose(merged.mean, direct.mean, rtol=1e-13)
    np.testing.assert_allclose(merged.comoment, direct.comoment, rtol=1e-11, atol=1e-9)


def brute_force_gcv(x, y, lam):
    """GCV from the hat matrix of the module's problem, built explicitly."""
    n = x.shape[0]
    xs = (x - x.mean(axis=0)) / x.std(axis=0)
    hat = np.ones((n, n)) / n + xs @ np.linalg.solve(xs.T @ xs + n * lam * np.eye(x.shape[1]), xs.T)
    residual = y - hat @ y
    return n * (residual**2).sum(axis=0) / (n - np.trace(hat)) ** 2


def test_gcv_matches_the_hat_matrix_and_picks_its_minimum(rng):
    x, y = problem(rng, n=40, p=12, k=2)
    y = y + rng.normal(scale=30.0, size=y.shape)  # noisy: shrinkage pays
    fit = solve_ridge(Moments.of(np.hstack([x, y])), x.shape[1])
    brute = np.stack([brute_force_gcv(x, y, lam) for lam in GRID])
    np.testing.assert_allclose(fit.gcv, brute, rtol=1e-8)
    np.testing.assert_array_equal(fit.ridge, GRID[np.argmin(brute, axis=0)])
    assert (fit.ridge > 0).all()
    coef, _ = lstsq_ridge(x, y[:, :1], fit.ridge[0])
    np.testing.assert_allclose(fit.coef[:, :1], coef, rtol=1e-8, atol=1e-10)


def test_gcv_keeps_the_ridge_small_when_data_are_plentiful(rng):
    x, y = problem(rng, n=5000, p=5, k=1)
    fit = solve_ridge(Moments.of(np.hstack([x, y])), x.shape[1])
    assert fit.ridge[0] < 1e-3


def test_constant_and_duplicate_features_get_the_least_squares_fit(rng):
    x, y = problem(rng, n=100, p=3, k=1)
    wide = np.hstack([x, np.full((100, 1), 7.0), x[:, :1]])
    fit = solve_ridge(Moments.of(np.hstack([wide, y])), wide.shape[1], ridge=0.0)
    coef, intercept = lstsq_ridge(x, y, 0.0)
    assert fit.coef[3, 0] == 0
    np.testing.assert_allclose(fit.predict(wide), x @ coef + intercept, rtol=1e-9)


def test_solve_ridge_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 2 rows"):
        solve_ridge(Moments.of(np.ones((1, 3))), 2)
    with pytest.raises(ValueError, match="non-negative"):
        solve_ridge(Moments.of(np.random.default_rng(0).normal(size=(5, 3))), 2, ridge=-1.0)
    with pytest.raises(ValueError, match="at least one target"):
        solve_ridge(Moments.of(np.ones((5, 3))), 3)
    with pytest.raises(ValueError, match="cannot merge"):
        Moments.of(np.ones((2, 3))).merge(Moments.of(np.ones((2, 2))))

"""The tree combinators equal left folds under associative, non-commutative combines."""

import functools
import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnncore import compose
from rnncore.trees import prefix_scan, reduce_stacked, tree_reduce

words = st.lists(st.text(alphabet="abc", min_size=1, max_size=2), min_size=1, max_size=40)


@given(words)
def test_tree_reduce_is_the_left_fold(items):
    assert tree_reduce(items, str.__add__) == "".join(items)


@given(words)
def test_prefix_scan_is_the_running_fold(items):
    assert prefix_scan(items, str.__add__) == list(itertools.accumulate(items))


@given(st.integers(1, 37), st.integers(0, 2**32 - 1))
def test_reduce_stacked_composes_affine_maps_in_order(n, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(-1, 1, (n, 3)), rng.normal(size=(n, 3))
    expected = functools.reduce(compose, zip(a, b, strict=True))
    got = reduce_stacked((a, b), compose)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-12, atol=1e-12)


def test_empty_inputs_are_refused():
    with pytest.raises(ValueError, match="at least one item"):
        tree_reduce([], str.__add__)
    with pytest.raises(ValueError, match="at least one item"):
        reduce_stacked((np.empty((0, 2)),), compose)
    assert prefix_scan([], str.__add__) == []

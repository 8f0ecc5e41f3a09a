"""The activations against float64, in float32, far into their tails."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from rnncore.activations import g, log_sigmoid, sigmoid

FLOAT32 = st.floats(-80, 80, width=32)


def sigmoid64(x):
    return 1 / (1 + np.exp(-x.astype(np.float64)))


@given(st.lists(FLOAT32, min_size=1, max_size=50))
def test_float32_sigmoid_is_relatively_accurate_in_both_tails(values):
    x = np.array(values, np.float32)
    y = sigmoid(np, x)
    assert y.dtype == np.float32
    # a few units in the last place, relative, even where the result is tiny
    np.testing.assert_allclose(y, sigmoid64(x), rtol=4e-7, atol=0)
    np.testing.assert_allclose(sigmoid(np, -x), sigmoid64(-x), rtol=4e-7, atol=0)


def test_activations_do_not_overflow():
    x = np.array([-1e4, -50.0, 0.0, 50.0, 1e4])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        s, ls, gx = sigmoid(np, x), log_sigmoid(np, x), g(np, x)
    np.testing.assert_array_equal(s[[0, 2, 4]], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(ls, [-1e4, -50.0, -np.log(2), -np.exp(-50.0), 0.0], rtol=1e-12)
    np.testing.assert_allclose(gx, [0.0, sigmoid64(np.array(-50.0)), 0.5, 50.5, 1e4 + 0.5])

import numpy as np
import pytest

from rnncore.arrays import empty_steps, float_dtype, may_hold_any, namespace, to_numpy


def test_numpy_namespace_for_numpy_and_scalars():
    assert namespace(np.ones(2), None, 3.0) is np
    assert isinstance(to_numpy([1, 2]), np.ndarray)


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (np.float32, np.float32),
        (np.float64, np.float64),
        (np.float16, np.float32),
        (np.int8, np.float64),
        (bool, np.float64),
    ],
)
def test_float_dtype(dtype, expected):
    assert float_dtype(dtype, what="x") == expected


def test_float_dtype_refuses_complex():
    with pytest.raises(TypeError, match="x has dtype complex64"):
        float_dtype(np.complex64, what="x")


def test_cupy_namespace_when_available():
    cupy = pytest.importorskip("cupy")
    try:
        a = cupy.ones(3)
    except Exception as err:  # CuPy installed but no usable GPU
        pytest.skip(f"no usable GPU: {err}")
    assert namespace(np.ones(1), a) is cupy
    np.testing.assert_array_equal(to_numpy(a), np.ones(3))


@pytest.mark.parametrize(
    ("stored", "view", "series_major"),
    [
        ((4, 10, 1), (1, 0, 2), True),  # (series, time, feature) storage viewed time-major
        ((10, 4, 1), (0, 1, 2), False),  # already time-major
        ((1, 10, 1), (1, 0, 2), False),  # one series: both layouts coincide
    ],
)
def test_empty_steps_follow_the_input_layout(stored, view, series_major):
    x = np.zeros(stored, np.float32).transpose(view)
    out = empty_steps(x, 3, np.float64)
    assert out.shape == (*x.shape[:2], 3) and out.dtype == np.float64
    assert out.flags.c_contiguous == (not series_major)
    assert out.transpose(1, 0, 2).flags.c_contiguous or not series_major


def test_may_hold_any_is_exact_on_numpy():
    assert may_hold_any(np.array([False, True])) is True
    assert may_hold_any(np.zeros((2, 3), bool)) is False

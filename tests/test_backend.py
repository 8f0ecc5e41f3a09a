import numpy as np
import pytest

from rnncore.backend import float_dtype, namespace, to_numpy


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

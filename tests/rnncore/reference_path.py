"""Checks of rnncore's kernels (numba and CUDA) against its reference path.

The reference path, the vectorised array-namespace code, is itself tested against
the sequential float64 loops of :mod:`reference`.
"""

import numpy as np
from hypothesis import strategies as st

from rnncore import Model, Readout, kernels
from tests.rnncore.reference import rel_err

TOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}
DTYPES = st.sampled_from([np.float32, np.float64])


def reference(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` on the reference (vectorised NumPy) path."""
    with kernels.use("reference"):
        return fn(*args, **kwargs)


def assert_close(actual, expected, dtype):
    """Same shapes, dtype and NaNs; values within the dtype's tolerance (tuples pairwise)."""
    if isinstance(expected, tuple):
        for mine, theirs in zip(actual, expected, strict=True):
            assert_close(mine, theirs, dtype)
        return
    assert actual.shape == expected.shape and actual.dtype == expected.dtype == dtype
    assert rel_err(actual, expected) < TOL[np.dtype(dtype)]


def in_dtype(dtype, *args):
    """``args`` in ``dtype``: arrays cast (in lists, tuples and dicts too), cells,
    readouts and models rebuilt with their parameters cast, ``None`` kept."""
    if len(args) != 1:
        return tuple(in_dtype(dtype, a) for a in args)
    (a,) = args
    if a is None:
        return None
    if isinstance(a, np.ndarray):
        return a.astype(dtype)
    if isinstance(a, list | tuple):
        return type(a)(in_dtype(dtype, v) for v in a)
    if isinstance(a, dict):
        return {k: in_dtype(dtype, v) for k, v in a.items()}
    if isinstance(a, Model):
        return Model(in_dtype(dtype, a.layers), in_dtype(dtype, a.readout))
    if isinstance(a, Readout):
        return Readout(a.weight.astype(dtype), a.bias.astype(dtype))
    return type(a).from_state_dict(in_dtype(dtype, a.state_dict()), **a.options)

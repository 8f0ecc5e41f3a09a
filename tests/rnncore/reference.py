"""Plain sequential float64 references, written from the equations, independent of rnncore.

Every parallel or chunked path in rnncore is tested against these loops.
"""

from __future__ import annotations

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def rel_err(actual, expected) -> float:
    """Norm-wise relative error ``||actual - expected|| / ||expected||`` (NaNs must match)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(actual), nan)
    diff = np.linalg.norm(np.where(nan, 0, actual - expected))
    scale = np.linalg.norm(np.where(nan, 0, expected))
    return float(diff / scale) if scale > 0 else float(diff)


def params_rel_err(mine, expected):
    """:func:`rel_err` of the gradient with respect to all the parameters, one vector.

    Norm-wise over the whole gradient, not per tensor: a float32 tensor whose entries
    nearly cancel (a one-unit layer's bias, say) has a large error relative to itself
    and a tiny one relative to the gradient, which is what a step of training uses.
    """
    assert list(mine) == list(expected)
    return rel_err(
        np.concatenate([np.ravel(mine[name]) for name in expected]),
        np.concatenate([np.ravel(expected[name]) for name in expected]),
    )


def scan(a, b, h0=None):
    """``h_t = a_t * h_{t-1} + b_t`` along axis 0, one step at a time, in float64."""
    a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
    h = np.zeros(b.shape[1:]) if h0 is None else np.asarray(h0, np.float64).copy()
    out = np.empty(b.shape)
    for t in range(b.shape[0]):
        h = a[t] * h + b[t]
        out[t] = h
    return out


def scan_scalar(a, b, h0=0.0):
    """The same for one long series, with Python floats (fast for T = 10**6)."""
    out = np.empty(len(b))
    h = float(h0)
    for t, (at, bt) in enumerate(zip(a.tolist(), b.tolist(), strict=True)):
        h = at * h + bt
        out[t] = h
    return out


def _g(u):
    return np.where(u >= 0, u + 0.5, sigmoid(u))


def linear_cell(kind: str, params: dict, x, h0=None, activation="identity"):
    """Step-by-step float64 reference of the linear-state cells, NaN steps carried over."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    x = np.asarray(x, np.float64)
    steps, batch, _ = x.shape
    hidden = p["bias"].shape[0] // {"MinGRU": 2, "MinLSTM": 3, "QRNN": 3, "DiagonalLinear": 1}[kind]
    c = np.zeros((batch, hidden)) if h0 is None else np.asarray(h0, np.float64).copy()
    y = np.full((steps, batch, hidden), np.nan)
    cand = _g if activation == "g" else (lambda u: u)
    for t in range(steps):
        for s in range(batch):
            if np.isnan(x[t, s]).any():
                continue
            u = p["weight"] @ x[t, s] + p["bias"]
            blocks = [u[k * hidden : (k + 1) * hidden] for k in range(len(u) // hidden)]
            if kind == "MinGRU":
                z = sigmoid(blocks[0])
                c[s] = (1 - z) * c[s] + z * cand(blocks[1])
                y[t, s] = c[s]
            elif kind == "MinLSTM":
                f, i = sigmoid(blocks[0]), sigmoid(blocks[1])
                c[s] = f / (f + i) * c[s] + i / (f + i) * cand(blocks[2])
                y[t, s] = c[s]
            elif kind == "QRNN":
                f = sigmoid(blocks[1])
                c[s] = f * c[s] + (1 - f) * np.tanh(blocks[0])
                y[t, s] = sigmoid(blocks[2]) * c[s]
            else:
                c[s] = p["decay"] * c[s] + blocks[0]
                y[t, s] = c[s]
    return y, c

"""Random cells, states and gappy inputs that the kernel tests share."""

import numpy as np

from rnncore import CELLS


def make_cell(name, dtype, rng, features, hidden):
    """A cell of type ``name`` with parameters scaled at random (some minGRU/minLSTM ``g``)."""
    options = {"activation": "g"} if name in ("MinGRU", "MinLSTM") and rng.random() < 0.3 else {}
    cell = CELLS[name].init(features, hidden, seed=int(rng.integers(2**31)), dtype=np.float64)
    # A nonlinear recurrence scaled far past contraction is chaotic: over a long run two
    # correct float32 implementations then part by far more than rounding (Elman, 150
    # steps, weights x3: 7e-5). Linear cells saturate their gates instead.
    top = 3 if cell.linear_state else 1.5
    params = {k: (v * rng.uniform(0.5, top)).astype(dtype) for k, v in cell.state_dict().items()}
    if name == "DiagonalLinear":
        params["decay"] = cell.params["decay"].astype(dtype)
    return type(cell).from_state_dict(params, **options)


def random_state(cell, rng, batch, dtype):
    """A random state of ``cell`` for ``batch`` series."""
    parts = [rng.normal(size=(batch, cell.hidden_size)).astype(dtype) for _ in cell.state_names]
    return parts[0] if len(parts) == 1 else tuple(parts)


def gappy_inputs(rng, steps, batch, features, dtype):
    """Inputs with NaN features at random, a series starting late and one all NaN."""
    x = rng.normal(scale=2, size=(steps, batch, features)).astype(dtype)
    x[rng.uniform(size=x.shape) < 0.1] = np.nan
    if steps > 3 and batch > 1:
        x[:3, 0] = np.nan  # a late start
        x[:, -1] = np.nan  # an empty series
    return x

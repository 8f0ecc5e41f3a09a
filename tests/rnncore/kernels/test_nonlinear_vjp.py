"""The fused backward pass of the nonlinear cells against the reference path: its tape.

The broad checks (random shapes, widths, torch) are in ``tests/rnncore/test_gradients.py``;
these pin what the tape leaves out and the series blocks of the recurrent product.
"""

import numpy as np
import pytest

from rnncore import Model
from rnncore.grad import cell_vjp
from rnncore.kernels import cells, nonlinear_vjp
from tests.rnncore.reference import rel_err
from tests.rnncore.reference_path import reference

TOL = 1e-12  # float64: the fused pass and the reference path differ by rounding only


def test_lstm_tape_keeps_no_tanh_of_c():
    assert cells.TAPE_BLOCKS["lstm"] == ("h", "c", "i", "f", "g", "o")


@pytest.mark.parametrize("kind", ["Elman", "GRU", "LSTM"])
@pytest.mark.parametrize("batch", [1, 3, 5, 16, 19])  # series blocks of four and the rest
def test_gaps_after_steps_and_series_blocks(rng, kind, batch):
    """Steps missing right after kept ones (LSTM recomputes tanh(c) from the next row)."""
    cell = Model.init(kind, 2, [9], 1, seed=1, dtype=np.float64).layers[0]
    x = rng.normal(size=(12, batch, 2))
    x[1::3, :, 0] = np.nan  # a gap after a kept step, and two kept steps after it
    x[6:9, : max(1, batch // 2), 1] = np.nan  # a run of gaps in some series only
    h0 = tuple(rng.normal(size=(batch, 9)) for _ in cell.state_names)
    h0 = h0 if kind == "LSTM" else h0[0]
    grad_y = rng.normal(size=(12, batch, 9))
    grad_state = tuple(rng.normal(size=(batch, 9)) for _ in cell.state_names)
    grad_state = grad_state if kind == "LSTM" else grad_state[0]
    spec = cell.kernel_spec(np, np.float64)
    assert nonlinear_vjp.supports(spec)
    fused = cell_vjp(cell, x, grad_y, h0, grad_state)
    expected = reference(cell_vjp, cell, x, grad_y, h0, grad_state)
    for name, value in expected.params.items():
        assert rel_err(fused.params[name], value) < TOL, name
    assert rel_err(fused.x, expected.x) < TOL
    for mine, theirs in zip(
        fused.h0 if kind == "LSTM" else (fused.h0,),
        expected.h0 if kind == "LSTM" else (expected.h0,),
        strict=True,
    ):
        assert rel_err(mine, theirs) < TOL

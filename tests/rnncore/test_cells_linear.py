import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnncore import QRNN, DiagonalLinear, MinGRU, MinLSTM, linear_scan
from rnncore.cells import CELLS, LinearStateCell
from tests.rnncore.reference import linear_cell, rel_err

LINEAR = [MinGRU, MinLSTM, QRNN, DiagonalLinear]


def make(cls, dtype=np.float64, seed=0, **options):
    return cls.init(3, 5, seed=seed, dtype=dtype, **options)


def inputs(rng, steps=23, batch=4, dtype=np.float64, gaps=False):
    x = rng.normal(size=(steps, batch, 3)).astype(dtype)
    if gaps:
        x[rng.uniform(size=x.shape) < 0.15] = np.nan
        x[:5, 0] = np.nan  # a late start
        x[-4:, 1] = np.nan  # an early end
    return x


@pytest.mark.parametrize("cls", LINEAR)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_h0", [False, True])
@pytest.mark.parametrize("gaps", [False, True])
def test_cell_matches_sequential_reference(rng, cls, dtype, with_h0, gaps):
    cell = make(cls, np.float64, seed=int(rng.integers(1000)))
    if dtype == np.float32:
        cell = cls.from_state_dict({k: v.astype(np.float32) for k, v in cell.state_dict().items()})
    x = inputs(rng, dtype=dtype, gaps=gaps)
    h0 = rng.normal(size=(4, 5)) if with_h0 else None
    y, h = cell(x, None if h0 is None else h0.astype(dtype))
    ref_params = {k: v.astype(np.float64) for k, v in cell.state_dict().items()}
    y_ref, h_ref = linear_cell(cls.__name__, ref_params, x, h0)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert y.dtype == dtype and h.dtype == dtype
    assert rel_err(y, y_ref) < tol
    assert rel_err(h, h_ref) < tol


@pytest.mark.parametrize("cls", [MinGRU, MinLSTM])
def test_log_space_activation_g(rng, cls):
    cell = make(cls, activation="g")
    x = inputs(rng)
    y, _ = cell(x)
    y_ref, _ = linear_cell(cls.__name__, cell.state_dict(), x, activation="g")
    assert rel_err(y, y_ref) < 1e-12
    assert cell.config()["options"] == {"activation": "g"}
    assert (y > 0).all(), "g keeps candidate states positive, and so the states"


@pytest.mark.parametrize("cls", LINEAR)
@given(sizes=st.lists(st.integers(1, 9), min_size=1, max_size=8), seed=st.integers(0, 999))
def test_transition_then_chunked_scan_equals_the_cell(cls, sizes, seed):
    rng = np.random.default_rng(seed)
    cell = make(cls, seed=seed)
    x = inputs(rng, steps=sum(sizes), gaps=True)
    h0 = rng.normal(size=(4, 5))
    a, b = cell.transition(x)
    y = cell.emit(linear_scan(a, b, h0, chunk=sizes), x)
    y_ref, _ = cell(x, h0)
    assert rel_err(y, y_ref) < 1e-12


@pytest.mark.parametrize("cls", LINEAR)
def test_missing_steps_carry_the_state(rng, cls):
    cell = make(cls)
    x = inputs(rng, steps=10, batch=3)
    x[4:7, 0] = np.nan
    x[:, 2] = np.nan  # an all-NaN series
    h0 = rng.normal(size=(3, 5))
    y, h = cell(x, h0)
    assert np.isnan(y[4:7, 0]).all() and np.isnan(y[:, 2]).all()
    assert np.isfinite(y[:4, 0]).all() and np.isfinite(y[7:, 0]).all()
    np.testing.assert_array_equal(h[2], h0[2])
    a, b = cell.transition(x)
    np.testing.assert_array_equal(a[4:7, 0], 1.0)
    np.testing.assert_array_equal(b[4:7, 0], 0.0)
    assert not np.isnan(x[:4, 0]).any(), "inputs stay untouched"


@pytest.mark.parametrize("cls", LINEAR)
@pytest.mark.parametrize("steps", [0, 1])
def test_zero_and_one_step(rng, cls, steps):
    cell = make(cls)
    h0 = rng.normal(size=(2, 5))
    x = inputs(rng, steps=steps, batch=2)
    y, h = cell(x, h0)
    assert y.shape == (steps, 2, 5)
    a, b = cell.transition(x)
    expected = a[0] * h0 + b[0] if steps else h0
    np.testing.assert_allclose(h, expected, rtol=1e-14)


def test_min_lstm_is_stable_where_both_gates_underflow():
    # sigmoid(-120) and sigmoid(-130) are 0 in float32: f / (f + i) would be 0 / 0.
    params = {"weight": np.array([[-120.0], [-130.0], [1.0]]), "bias": np.zeros(3)}
    cell = MinLSTM.from_state_dict({k: v.astype(np.float32) for k, v in params.items()})
    x = np.array([[[1.0]], [[1.0]], [[5.0]]], np.float32)
    y, _ = cell(x, np.ones((1, 1), np.float32))
    y_ref, _ = linear_cell("MinLSTM", params, x, np.ones((1, 1)))
    assert np.isfinite(y).all()
    assert rel_err(y, y_ref) < 1e-5


def test_diagonal_linear_spreads_timescales():
    cell = DiagonalLinear.init(2, 6, timescales=(2.0, 200.0), dtype=np.float64)
    tau = -1 / np.log(cell.params["decay"])
    np.testing.assert_allclose(tau, np.geomspace(2.0, 200.0, 6))
    assert "timescales" not in cell.config()["options"]


def test_diagonal_linear_rejects_decay_outside_unit_interval():
    params = DiagonalLinear.init(1, 2).state_dict()
    params["decay"] = np.array([0.5, 1.0], np.float32)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        DiagonalLinear.from_state_dict(params)


@pytest.mark.parametrize("cls", LINEAR)
def test_state_dict_round_trip_and_registry(cls):
    cell = make(cls, seed=3)
    again = cls.from_state_dict(cell.state_dict(), **cell.options)
    for k, v in cell.state_dict().items():
        np.testing.assert_array_equal(again.params[k], v)
    assert CELLS[cls.__name__] is cls and issubclass(cls, LinearStateCell)
    assert cls.__name__ in repr(cell)


def test_options_are_checked():
    with pytest.raises(ValueError, match="activation must be"):
        MinGRU.init(1, 2, activation="relu")
    with pytest.raises(TypeError, match="takes no options"):
        QRNN.init(1, 2, activation="g")

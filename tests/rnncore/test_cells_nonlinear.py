import numpy as np
import pytest

from rnncore import GRU, LSTM, Elman, Model
from rnncore.cells import torch_layers
from tests.rnncore.reference import rel_err

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

TORCH = {"Elman": torch.nn.RNN, "GRU": torch.nn.GRU, "LSTM": torch.nn.LSTM}
OURS = {"Elman": Elman, "GRU": GRU, "LSTM": LSTM}


def torch_state_dict(module):
    return {k: v.detach().numpy() for k, v in module.state_dict().items()}


def torch_h0(kind, h0):
    if h0 is None:
        return None
    if kind == "LSTM":
        return tuple(torch.from_numpy(np.ascontiguousarray(s)) for s in h0)
    return torch.from_numpy(h0)


def ours_h0(kind, h0, layer):
    if h0 is None:
        return None
    return tuple(s[layer] for s in h0) if kind == "LSTM" else h0[layer]


@pytest.mark.parametrize("kind", ["Elman", "GRU", "LSTM"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("with_h0", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_torch(rng, kind, num_layers, with_h0, dtype):
    torch.manual_seed(int(rng.integers(1000)))
    module = TORCH[kind](3, 6, num_layers=num_layers).to(getattr(torch, np.dtype(dtype).name))
    x = rng.normal(size=(31, 4, 3)).astype(dtype)
    h0 = None
    if with_h0:
        shape = (num_layers, 4, 6)
        h0 = rng.normal(size=shape).astype(dtype)
        if kind == "LSTM":
            h0 = (h0, rng.normal(size=shape).astype(dtype))
    with torch.no_grad():
        y_torch, state_torch = module(torch.from_numpy(x), torch_h0(kind, h0))
    model = Model.from_torch(torch_state_dict(module), cell=kind)
    h0_ours = None if h0 is None else [ours_h0(kind, h0, k) for k in range(num_layers)]
    y, states = model(x, h0_ours)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert y.dtype == dtype
    assert rel_err(y, y_torch.numpy()) < tol
    final_torch = state_torch if kind == "LSTM" else (state_torch,)
    for k, state in enumerate(states):
        ours = state if kind == "LSTM" else (state,)
        for mine, theirs in zip(ours, final_torch, strict=True):
            assert rel_err(mine, theirs[k].numpy()) < tol


@pytest.mark.parametrize("kind", ["Elman", "GRU", "LSTM"])
def test_single_layer_state_dict_loads_as_is(kind):
    module = TORCH[kind](2, 4)
    cell = OURS[kind].from_state_dict(torch_state_dict(module))
    assert (cell.input_size, cell.hidden_size) == (2, 4)
    assert sorted(cell.state_dict()) == sorted(module.state_dict())


def test_torch_layer_without_bias_loads():
    module = torch.nn.GRU(2, 4, bias=False)
    x = np.random.default_rng(0).normal(size=(9, 3, 2)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(x))[0].numpy()
    y, _ = GRU.from_state_dict(torch_state_dict(module))(x)
    assert rel_err(y, expected) < 1e-5


def test_multi_layer_dict_needs_a_layer_or_model():
    sd = torch_state_dict(torch.nn.LSTM(2, 3, num_layers=3))
    assert torch_layers(sd) == [0, 1, 2]
    with pytest.raises(ValueError, match=r"holds layers \[0, 1, 2\]"):
        LSTM.from_state_dict(sd)
    assert LSTM.from_state_dict(sd, layer=2).input_size == 3


def test_mismatched_state_dicts_are_refused():
    sd = torch_state_dict(torch.nn.GRU(2, 4))
    with pytest.raises(ValueError, match="unexpected keys"):
        GRU.from_state_dict({**sd, "something_else": np.ones(1)})
    with pytest.raises(ValueError, match=r"GRU.weight_hh has shape \(12, 3\)"):
        GRU.from_state_dict({**sd, "weight_hh_l0": np.ones((12, 3), np.float32)})
    with pytest.raises(ValueError, match="missing"):
        GRU.from_state_dict({k: v for k, v in sd.items() if k != "weight_hh_l0"})
    with pytest.raises(ValueError, match=r"LSTM.weight_hh has shape \(12, 4\); expected \(12, 3\)"):
        LSTM.from_state_dict(sd)
    with pytest.raises(ValueError, match="cell must be"):
        Model.from_torch(sd, cell="Transformer")


@pytest.mark.parametrize("cls", [Elman, GRU, LSTM])
def test_missing_steps_carry_the_state(rng, cls):
    cell = cls.init(2, 3, dtype=np.float64)
    x = rng.normal(size=(8, 2, 2))
    gappy = x.copy()
    gappy[3:5, 0] = np.nan
    gappy[:, 1] = np.nan
    y, state = cell(gappy)
    y_skip, state_skip = cell(np.delete(x[:, :1], [3, 4], axis=0))
    np.testing.assert_allclose(y[[0, 1, 2, 5, 6, 7], 0], y_skip[:, 0], rtol=1e-12)
    assert np.isnan(y[3:5, 0]).all() and np.isnan(y[:, 1]).all()
    first = state[0] if cls is LSTM else state
    first_skip = state_skip[0] if cls is LSTM else state_skip
    np.testing.assert_allclose(first[0], first_skip[0], rtol=1e-12)
    np.testing.assert_array_equal(first[1], 0.0)

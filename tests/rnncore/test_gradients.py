import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rnncore
from rnncore import Model, Readout, kernels, linear_scan
from rnncore.grad import (
    adjoint_scan,
    cell_vjp,
    linear_scan_vjp,
    masked_mse,
    model_vjp,
    value_and_grad,
)
from tests.rnncore.reference import params_rel_err, rel_err

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

TOL = {np.float32: 1e-4, np.float64: 1e-10}
LINEAR = ["MinGRU", "MinLSTM", "QRNN", "DiagonalLinear"]
NONLINEAR = {"Elman": torch.nn.RNNCell, "GRU": torch.nn.GRUCell, "LSTM": torch.nn.LSTMCell}
KINDS = [*LINEAR, "MinGRU-g", "MinLSTM-g", *NONLINEAR]


# -- torch references ---------------------------------------------------------------


def torch_linear_layer(kind, activation, p, x, h0):
    """minGRU, minLSTM, QRNN and the diagonal RNN from their equations, step by step."""
    missing = torch.isnan(x).any(2, keepdim=True)
    u = torch.where(missing, 0.0, x) @ p["weight"].T + p["bias"]
    n_blocks = {"MinGRU": 2, "MinLSTM": 3, "QRNN": 3, "DiagonalLinear": 1}[kind]
    blocks = u.chunk(n_blocks, dim=-1)

    def cand(v):
        return torch.where(v >= 0, v + 0.5, torch.sigmoid(v)) if activation == "g" else v

    if kind == "MinGRU":
        z = torch.sigmoid(blocks[0])
        a, b = 1 - z, z * cand(blocks[1])
    elif kind == "MinLSTM":
        f, i = torch.sigmoid(blocks[0]), torch.sigmoid(blocks[1])
        a, b = f / (f + i), i / (f + i) * cand(blocks[2])
    elif kind == "QRNN":
        f = torch.sigmoid(blocks[1])
        a, b = f, (1 - f) * torch.tanh(blocks[0])
    else:
        a, b = p["decay"].expand_as(u), u
    a, b = torch.where(missing, 1.0, a), torch.where(missing, 0.0, b)
    states, c = [], h0
    for t in range(x.shape[0]):
        c = a[t] * c + b[t]
        states.append(c)
    y = torch.stack(states) if states else u[..., : h0.shape[-1]]
    if kind == "QRNN":
        y = torch.sigmoid(blocks[2]) * y
    return torch.where(missing, torch.nan, y), c


def torch_nonlinear_layer(kind, p, x, h0):
    """``torch.nn.RNNCell/GRUCell/LSTMCell`` loaded with the layer's weights, gaps carried."""
    module = NONLINEAR[kind](x.shape[2], h0[0].shape[1]).to(x.dtype)
    params = {name.removesuffix("_l0"): value for name, value in p.items()}
    missing = torch.isnan(x).any(2, keepdim=True)
    x = torch.where(missing, 0.0, x)
    state, outputs = h0, []
    for t in range(x.shape[0]):
        new = torch.func.functional_call(module, params, (x[t], _torch_state(kind, state)))
        new = new if kind == "LSTM" else (new,)
        state = tuple(torch.where(missing[t], old, n) for old, n in zip(state, new, strict=True))
        outputs.append(state[0])
    y = torch.stack(outputs) if outputs else x.new_zeros((0, x.shape[1], h0[0].shape[1]))
    return torch.where(missing, torch.nan, y), state


def _torch_state(kind, state):
    return state if kind == "LSTM" else state[0]


def torch_model(kinds, options, params, readout, x, h0):
    """The model as PyTorch computes it: outputs and each layer's final state (tuples)."""
    finals, y = [], x
    for k, kind in enumerate(kinds):
        layer = {n.split(".", 2)[2]: v for n, v in params.items() if n.startswith(f"layers.{k}.")}
        if kind in NONLINEAR:
            y, state = torch_nonlinear_layer(kind, layer, y, h0[k])
        else:
            y, c = torch_linear_layer(kind, options.get("activation"), layer, y, h0[k][0])
            state = (c,)
        finals.append(state)
    if readout:
        missing = torch.isnan(y).any(2, keepdim=True)
        y = torch.where(missing, 0.0, y) @ params["readout.weight"].T + params["readout.bias"]
        y = torch.where(missing, torch.nan, y)
    return y, finals


def torch_grads(model, x, grad_y, h0, grad_finals, kinds, options):
    """PyTorch autograd of ``sum(y * grad_y) + sum(finals * grad_finals)``, in float64.

    Of float32 arguments too: a float32 sum with cancellation (a bias's gradient) is
    no reference for ours, which may add up in float64.
    """

    def wide(v, grad=False):
        return torch.tensor(v, dtype=torch.float64, requires_grad=grad)

    params = {k: wide(v, True) for k, v in model.state_dict().items()}
    xt = wide(x, True)
    h0t = [tuple(wide(s, True) for s in state) for state in h0]
    y, finals = torch_model(kinds, options, params, model.readout is not None, xt, h0t)
    loss = torch.where(torch.isnan(y), 0.0, y * wide(grad_y)).sum()
    for state, grads in zip(finals, grad_finals, strict=True):
        loss = loss + sum((s * wide(g)).sum() for s, g in zip(state, grads, strict=True))
    leaves = [*params.values(), xt, *(s for state in h0t for s in state)]
    grads = torch.autograd.grad(loss, leaves, allow_unused=True, materialize_grads=True)
    grads = [g.numpy() for g in grads]
    n = len(params)
    return dict(zip(params, grads[:n], strict=True)), grads[n], grads[n + 1 :]


# -- the model's gradients against PyTorch --------------------------------------------


def build(kind, sizes, readout, dtype, seed):
    name, _, activation = kind.partition("-")
    options = {"activation": activation} if activation else {}
    model = Model.init(name, sizes[0], sizes[1:], readout, seed=seed, dtype=dtype, **options)
    return model, [name] * (len(sizes) - 1), options


@st.composite
def cases(draw):
    return {
        "dtype": draw(st.sampled_from([np.float32, np.float64])),
        "steps": draw(st.sampled_from([0, 1, 2, 3, 7, 13])),
        "batch": draw(st.integers(1, 3)),
        "sizes": draw(st.lists(st.integers(1, 4), min_size=2, max_size=3)),
        "readout": draw(st.sampled_from([None, 1, 2])),
        "with_h0": draw(st.booleans()),
        "gaps": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


def draw_inputs(rng, model, case):
    steps, batch, dtype = case["steps"], case["batch"], case["dtype"]
    x = rng.normal(size=(steps, batch, model.input_size)).astype(dtype)
    if case["gaps"]:
        x[rng.random((steps, batch)) < 0.3, rng.integers(model.input_size)] = np.nan
    h0 = [
        tuple(rng.normal(size=(batch, cell.hidden_size)).astype(dtype) for _ in cell.state_names)
        for cell in model.layers
    ]
    grad_y = rng.normal(size=(steps, batch, model.output_size)).astype(dtype)
    grad_finals = [tuple(rng.normal(size=s.shape).astype(dtype) for s in state) for state in h0]
    if not case["with_h0"]:
        h0 = [tuple(np.zeros_like(s) for s in state) for state in h0]
    return x, h0, grad_y, grad_finals


def as_state(parts):
    return parts if len(parts) > 1 else parts[0]


@pytest.mark.parametrize("kind", KINDS)
@given(case=cases())
def test_model_vjp_matches_torch(kind, case):
    model, kinds, options = build(kind, case["sizes"], case["readout"], case["dtype"], case["seed"])
    rng = np.random.default_rng(case["seed"])
    x, h0, grad_y, grad_finals = draw_inputs(rng, model, case)
    ours = model_vjp(
        model,
        x,
        grad_y,
        [as_state(s) for s in h0] if case["with_h0"] else None,
        [as_state(s) for s in grad_finals],
    )
    params, grad_x, grad_h0 = torch_grads(model, x, grad_y, h0, grad_finals, kinds, options)
    tol = TOL[case["dtype"]]
    assert list(ours.params) == list(model.state_dict())
    assert all(grad.dtype == case["dtype"] for grad in ours.params.values())
    assert params_rel_err(ours.params, params) < tol
    assert rel_err(ours.x, grad_x) < tol
    flat_h0 = [np.ravel(s) for state in ours.h0 for s in _parts(state)]
    assert rel_err(np.concatenate(flat_h0), np.concatenate([np.ravel(g) for g in grad_h0])) < tol


def _parts(state):
    return state if isinstance(state, tuple) else (state,)


TORCH_MODULES = {"Elman": torch.nn.RNN, "GRU": torch.nn.GRU, "LSTM": torch.nn.LSTM}


@pytest.mark.parametrize("kind", list(TORCH_MODULES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_value_and_grad_matches_torch_modules(rng, kind, dtype):
    """Two layers loaded from ``torch.nn.RNN/GRU/LSTM``, a readout, h0, NaN targets."""
    torch.manual_seed(int(rng.integers(1000)))
    module = TORCH_MODULES[kind](3, 5, num_layers=2).to(getattr(torch, np.dtype(dtype).name))
    linear = torch.nn.Linear(5, 2).to(module.weight_ih_l0.dtype)
    readout = Readout(linear.weight.detach().numpy(), linear.bias.detach().numpy())
    model = Model.from_torch(
        {k: v.detach().numpy() for k, v in module.state_dict().items()}, kind, readout
    )
    x = rng.normal(size=(11, 4, 3)).astype(dtype)
    h0 = rng.normal(size=(2, 4, 5)).astype(dtype)
    target = rng.normal(size=(11, 4, 2)).astype(dtype)
    target[rng.random(target.shape) < 0.3] = np.nan
    states = (h0, np.cos(h0)) if kind == "LSTM" else (h0,)
    torch_h0 = tuple(torch.from_numpy(s) for s in states)
    y, _ = module(torch.from_numpy(x), torch_h0 if kind == "LSTM" else torch_h0[0])
    counts = ~torch.isnan(torch.from_numpy(target))
    expected = ((linear(y) - torch.from_numpy(target))[counts] ** 2).mean()
    expected.backward()
    loss, grads = value_and_grad(model, x, target, [_layer_state(states, k) for k in range(2)])
    assert abs(loss - expected.item()) < TOL[dtype] * expected.item()
    torch_grads = {f"layers.{k[-1]}.{k[:-1]}0": v.grad for k, v in module.named_parameters()}
    torch_grads |= {f"readout.{k}": v.grad for k, v in linear.named_parameters()}
    assert sorted(grads) == sorted(torch_grads)
    for name, grad in grads.items():
        assert rel_err(grad, torch_grads[name].numpy()) < TOL[dtype], name


def _layer_state(states, k):
    parts = tuple(s[k] for s in states)
    return as_state(parts)


def test_masked_mse_ignores_nan_and_masked_values():
    y = np.array([[1.0, 2.0], [3.0, np.nan]])
    target = np.array([[0.0, np.nan], [1.0, 1.0]])
    loss, grad = masked_mse(y, target, mask=np.array([True, False]))
    assert loss == (1.0**2 + 2.0**2) / 2
    np.testing.assert_array_equal(grad, [[1.0, 0.0], [2.0, 0.0]])
    loss, grad = masked_mse(y, np.full_like(y, np.nan))
    assert loss == 0.0 and not grad.any()


def test_value_and_grad_is_the_vjp_of_the_masked_mse(rng):
    model = Model.init("MinLSTM", 2, [3], 1, seed=1, dtype=np.float64)
    x = rng.normal(size=(9, 2, 2))
    x[5, 1, 0] = np.nan
    target = rng.normal(size=(9, 2, 1))
    mask = np.arange(9)[:, None, None] >= 4
    loss, grads = value_and_grad(model, x, target, mask=mask)
    y, _ = model(x)
    counted = mask & ~np.isnan(y)
    assert counted.sum() == 9
    assert loss == pytest.approx(((y - target)[counted] ** 2).mean(), rel=1e-12)
    expected = model_vjp(model, x, np.where(counted, 2 * (y - target), 0) / 9).params
    for name, grad in grads.items():
        assert rel_err(grad, expected[name]) < 1e-12


def test_the_model_methods_are_the_functions(rng):
    assert rnncore.value_and_grad is value_and_grad and rnncore.model_vjp is model_vjp
    model = Model.init("GRU", 2, [3, 2], 1, seed=4, dtype=np.float64)
    x, target = rng.normal(size=(7, 3, 2)), rng.normal(size=(7, 3, 1))
    h0 = model(rng.normal(size=(2, 3, 2)))[1]
    mask = rng.random((7, 3, 1)) < 0.6
    loss, grads = model.value_and_grad(x, target, h0, mask)
    expected_loss, expected = value_and_grad(model, x, target, h0, mask)
    assert loss == expected_loss and list(grads) == list(expected)
    assert all(np.array_equal(grads[k], expected[k]) for k in expected)
    grad_finals = [rng.normal(size=(3, 3)), None]
    mine = model.vjp(x, target, h0, grad_finals)
    theirs = model_vjp(model, x, target, h0, grad_finals)
    assert all(np.array_equal(mine.params[k], theirs.params[k]) for k in theirs.params)
    assert np.array_equal(mine.x, theirs.x)
    assert all(np.array_equal(a, b) for a, b in zip(mine.h0, theirs.h0, strict=True))


# -- the fused backward pass of the nonlinear cells against the reference path --------

#: float32 as against PyTorch: where a tanh saturates, ``1 - h**2`` from a float32 ``h``
#: near 1 keeps few correct digits, and the two paths round it differently (hypothesis
#: found a one-step Elman whose ``h0`` gradients differ by 4.4e-5, relative).
FUSED_TOL = {np.float32: 1e-4, np.float64: 1e-12}


def assert_same_gradients(fused, reference, dtype):
    assert list(fused.params) == list(reference.params)
    assert all(grad.dtype == dtype for grad in fused.params.values())
    assert params_rel_err(fused.params, reference.params) < FUSED_TOL[dtype]
    assert fused.x.dtype == dtype and rel_err(fused.x, reference.x) < FUSED_TOL[dtype]
    for mine, expected in zip(fused.h0, reference.h0, strict=True):
        for a, b in zip(_parts(mine), _parts(expected), strict=True):
            assert a.dtype == dtype and rel_err(a, b) < FUSED_TOL[dtype]


def both_paths(function, *args):
    """``function(*args)`` on the fused kernels, then on the reference path."""
    fused = function(*args)
    with kernels.use("reference"):
        return fused, function(*args)


@pytest.mark.parametrize("kind", list(NONLINEAR))
@given(case=cases())
def test_fused_nonlinear_backward_equals_the_reference_path(kind, case):
    model, _, _ = build(kind, case["sizes"], case["readout"], case["dtype"], case["seed"])
    rng = np.random.default_rng(case["seed"])
    x, h0, grad_y, grad_finals = draw_inputs(rng, model, case)
    h0 = [as_state(s) for s in h0] if case["with_h0"] else None
    grad_finals = [as_state(s) for s in grad_finals]
    fused, reference = both_paths(model_vjp, model, x, grad_y, h0, grad_finals)
    assert_same_gradients(fused, reference, case["dtype"])


@pytest.mark.parametrize("kind", list(NONLINEAR))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_nonlinear_backward_at_width(rng, kind, dtype):
    """Units in blocks of eight and a remainder, groups of series and an odd last one."""
    model = Model.init(kind, 3, [21, 16], 2, seed=3, dtype=dtype)
    x = rng.normal(size=(17, 37, 3)).astype(dtype)
    x[rng.random((17, 37)) < 0.2, 1] = np.nan
    x[:, 5] = np.nan  # a series with no step at all
    target = rng.normal(size=(17, 37, 2)).astype(dtype)
    (loss, fused), (expected_loss, reference) = both_paths(value_and_grad, model, x, target)
    assert loss == pytest.approx(expected_loss, rel=FUSED_TOL[dtype])
    for name, expected in reference.items():
        assert rel_err(fused[name], expected) < FUSED_TOL[dtype], name


def test_fused_backward_hands_its_tape_to_the_next_forward(rng):
    """Training steps write over one tape's memory; two tapes alive at once stay apart."""
    model = Model.init("LSTM", 2, [8, 8], 1, seed=2, dtype=np.float64)  # tapes of one shape
    x, target = rng.normal(size=(11, 5, 2)), rng.normal(size=(11, 5, 1))
    first = value_and_grad(model, x, target)
    again, reference = both_paths(value_and_grad, model, x, target)
    assert again[0] == first[0]
    for name, expected in reference[1].items():
        np.testing.assert_array_equal(again[1][name], first[1][name])
        assert rel_err(again[1][name], expected) < FUSED_TOL[np.float64], name
    cell = model.layers[0]
    spec = cell.kernel_spec(np, np.float64)
    fused, state = kernels.nonlinear_vjp_kernels(np, spec), cell.prepare_state(np, None, 5, x.dtype)
    tapes = [fused.forward(spec, x, state)[2] for _ in range(2)]
    assert not np.shares_memory(tapes[0].steps, tapes[1].steps)
    fused.backward(tapes[0], x, np.zeros((11, 5, 8)), (np.zeros((5, 8)),) * 2)
    assert np.shares_memory(fused.forward(spec, x, state)[2].steps, tapes[0].steps)


def test_fused_backward_is_taken_only_for_nonlinear_cells_on_numpy():
    for kind, fused in [("GRU", True), ("LSTM", True), ("Elman", True), ("MinGRU", False)]:
        spec = Model.init(kind, 1, [2]).layers[0].kernel_spec(np, np.float32)
        assert (kernels.nonlinear_vjp_kernels(np, spec) is not None) is fused
        with kernels.use("reference"):
            assert kernels.nonlinear_vjp_kernels(np, spec) is None
    assert kernels.nonlinear_vjp_kernels(np, None) is None


# -- one cell -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["MinGRU", "QRNN", "GRU", "LSTM"])
def test_cell_vjp_no_steps_passes_the_state_gradient_through(kind):
    cell = Model.init(kind, 2, [3]).layers[0]
    grad_state = tuple(np.full((4, 3), k + 1.0, np.float32) for k in range(len(cell.state_names)))
    grads = cell_vjp(
        cell, np.empty((0, 4, 2), np.float32), np.empty((0, 4, 3)), None, as_state(grad_state)
    )
    assert sorted(grads.params) == sorted(cell.state_dict())
    assert all(not g.any() for g in grads.params.values())
    assert grads.x.shape == (0, 4, 2)
    for mine, expected in zip(_parts(grads.h0), grad_state, strict=True):
        np.testing.assert_array_equal(mine, expected)


def test_cell_vjp_checks_the_output_cotangent():
    cell = Model.init("GRU", 2, [3]).layers[0]
    with pytest.raises(ValueError, match="grad_y has shape"):
        cell_vjp(cell, np.zeros((5, 1, 2)), np.zeros((5, 1, 2)))


# -- the scan -------------------------------------------------------------------------


def scan_loss(a, b, h0, weights, **kwargs):
    return float((linear_scan(a, b, h0, **kwargs) * weights).sum())


def finite_difference(f, v, eps=1e-6):
    grad = np.zeros_like(v)
    for i in np.ndindex(v.shape):
        step = np.zeros_like(v)
        step[i] = eps
        grad[i] = (f(v + step) - f(v - step)) / (2 * eps)
    return grad


@pytest.mark.parametrize("steps", [1, 2, 7, 13])
def test_scan_vjp_equals_finite_differences(rng, steps):
    a, b = rng.uniform(0.2, 1.1, (steps, 3)), rng.normal(size=(steps, 3))
    h0, weights = rng.normal(size=3), rng.normal(size=(steps, 3))
    grad_a, grad_b, grad_h0 = linear_scan_vjp(a, b, weights, h0)
    fd = [
        finite_difference(lambda v: scan_loss(v, b, h0, weights), a),
        finite_difference(lambda v: scan_loss(a, v, h0, weights), b),
        finite_difference(lambda v: scan_loss(a, b, v, weights), h0),
    ]
    for mine, expected in zip((grad_a, grad_b, grad_h0), fd, strict=True):
        assert rel_err(mine, expected) < 1e-8


@st.composite
def partitions(draw):
    """A time length and a partition of it: length-1, prime, uneven and single chunks."""
    sizes = draw(st.lists(st.sampled_from([1, 2, 3, 5, 7, 11, 13]), min_size=1, max_size=8))
    if draw(st.booleans()):
        sizes = [1] * draw(st.integers(1, 20))
    return sum(sizes), sizes


@settings(max_examples=30)
@given(part=partitions(), seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from(list(TOL)))
def test_scan_vjp_is_the_same_for_any_chunking(part, seed, dtype):
    length, sizes = part
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.5, 1.0, (length, 2)).astype(dtype)
    b, grad_h = (rng.normal(size=(length, 2)).astype(dtype) for _ in range(2))
    h0 = rng.normal(size=2).astype(dtype)
    whole = linear_scan_vjp(a, b, grad_h, h0, chunk=length)
    for chunk in (sizes, 1, sizes[0]):
        chunked = linear_scan_vjp(a, b, grad_h, h0, chunk=chunk)
        for mine, expected in zip(chunked, whole, strict=True):
            assert mine.dtype == dtype
            assert rel_err(mine, expected) < TOL[dtype] / 10


def test_scan_vjp_reduces_broadcast_operands_and_takes_axis(rng):
    a = rng.uniform(0.5, 1.0, (4, 1, 1))  # one decay per series, shared by the 5 units
    b = rng.normal(size=(4, 6, 5))  # (series, time, unit) with time on axis 1
    h0 = rng.normal(size=(1, 5))
    grad_h = rng.normal(size=(4, 6, 5))
    grad_a, grad_b, grad_h0 = linear_scan_vjp(a, b, grad_h, h0, axis=1)
    at, bt, h0t = (torch.tensor(v, requires_grad=True) for v in (a, b, h0))
    h, states = h0t.expand(4, 5), []
    for t in range(6):
        h = at[:, 0] * h + bt[:, t]
        states.append(h)
    (torch.stack(states, 1) * torch.from_numpy(grad_h)).sum().backward()
    assert (grad_a.shape, grad_b.shape, grad_h0.shape) == (a.shape, b.shape, h0.shape)
    for mine, leaf in zip((grad_a, grad_b, grad_h0), (at, bt, h0t), strict=True):
        assert rel_err(mine, leaf.grad.numpy()) < 1e-12


@settings(max_examples=60)
@given(case=cases(), chunk=st.sampled_from([None, 1, 2, 5]), given_h=st.booleans())
def test_scan_vjp_matches_torch(case, chunk, given_h):
    """Fresh decays, inputs, ``h0`` and cotangents; no steps and one step included."""
    dtype, rng = case["dtype"], np.random.default_rng(case["seed"])
    shape = (case["steps"], case["batch"])
    a = rng.uniform(0.2, 1.1, shape).astype(dtype)
    b, grad_h = (rng.normal(size=shape).astype(dtype) for _ in range(2))
    h0 = rng.normal(size=shape[1:]).astype(dtype) if case["with_h0"] else None
    h = linear_scan(a, b, h0, chunk=chunk) if given_h else None
    ours = linear_scan_vjp(a, b, grad_h, h0, h=h, chunk=chunk)
    leaves = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (a, b)]
    start = np.zeros(shape[1:]) if h0 is None else h0
    leaves.append(torch.tensor(start, dtype=torch.float64, requires_grad=True))
    at, bt, state = leaves
    loss = (0 * state).sum()
    for t in range(case["steps"]):
        state = at[t] * state + bt[t]
        loss = loss + (state * torch.tensor(grad_h[t], dtype=torch.float64)).sum()
    expected = torch.autograd.grad(loss, leaves, allow_unused=True, materialize_grads=True)
    for mine, theirs in zip(ours, expected, strict=True):
        assert mine.dtype == dtype
        assert rel_err(mine, theirs.numpy()) < TOL[dtype]


def test_scan_vjp_of_no_steps_and_one_step():
    grad_a, grad_b, grad_h0 = linear_scan_vjp(np.ones((0, 2)), np.ones((0, 2)), np.ones((0, 2)))
    assert grad_a.shape == grad_b.shape == (0, 2)
    np.testing.assert_array_equal(grad_h0, [0.0, 0.0])
    grads = linear_scan_vjp(np.array([[0.5]]), np.array([[2.0]]), np.array([[3.0]]), [4.0])
    np.testing.assert_array_equal(np.concatenate([np.ravel(g) for g in grads]), [12, 3, 1.5])


def test_adjoint_scan_is_the_backward_recurrence(rng):
    a, g = rng.uniform(size=(9, 2)), rng.normal(size=(9, 2))
    lam, expected = adjoint_scan(a, g, chunk=[4, 5]), np.empty_like(g)
    expected[-1] = g[-1]
    for t in reversed(range(8)):
        expected[t] = g[t] + a[t + 1] * expected[t + 1]
    assert rel_err(lam, expected) < 1e-14

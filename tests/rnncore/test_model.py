import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from rnncore import CELLS, Elman, MinGRU, Model, ModelFileError, Readout


@pytest.fixture
def model():
    return Model.init("MinGRU", input_size=2, hidden_sizes=[6, 4], output_size=3, seed=7)


def test_stack_feeds_layers_in_order(rng, model):
    x = rng.normal(size=(12, 5, 2)).astype(np.float32)
    y, states = model(x)
    h1, _ = model.layers[0](x)
    h2, _ = model.layers[1](h1)
    np.testing.assert_allclose(y, h2 @ model.readout.weight.T + model.readout.bias, rtol=1e-6)
    assert y.shape == (12, 5, 3) and [s.shape for s in states] == [(5, 6), (5, 4)]


@pytest.mark.parametrize("name", sorted(CELLS))
def test_save_load_round_trip(tmp_path, rng, name):
    model = Model.init(name, input_size=2, hidden_sizes=[4, 3], output_size=1, seed=1)
    path = model.save(tmp_path / "m.safetensors")
    loaded = Model.load(path)
    x = rng.normal(size=(9, 2, 2)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x)[0], model(x)[0])
    assert loaded.fingerprint() == model.fingerprint()
    assert loaded.config() == model.config()
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file is left behind"


@pytest.mark.parametrize("name", sorted(CELLS))
def test_with_state_dict_takes_what_state_dict_gives(name):
    model = Model.init(name, input_size=2, hidden_sizes=[4, 3], output_size=1, seed=1)
    halved = {k: v / 2 for k, v in model.state_dict().items()}
    other = model.with_state_dict(halved)
    assert other.config() == model.config()
    assert all(np.array_equal(other.state_dict()[k], v) for k, v in halved.items())


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_feasible_brings_parameters_back_to_what_the_cells_accept(name, dtype):
    model = Model.init(name, input_size=2, hidden_sizes=[4, 3], output_size=1, dtype=dtype)
    params = {k: 3 * v for k, v in model.state_dict().items()}  # DiagonalLinear: decays > 1
    for k in (0, 1):
        if name == "DiagonalLinear":
            params[f"layers.{k}.decay"][:2] = [0, -0.5]
    feasible = model.feasible(params)
    assert feasible.keys() == params.keys()
    other = model.with_state_dict(feasible)  # accepted
    for key, value in params.items():
        if not key.endswith("decay"):
            assert np.array_equal(feasible[key], value), key  # others untouched
            continue
        decay = other.state_dict()[key]
        assert decay.dtype == dtype and ((decay > 0) & (decay < 1)).all()
        assert np.array_equal(decay[2:], np.nextafter(dtype(1), dtype(0)) + 0 * decay[2:])
        assert np.array_equal(decay[:2], np.full(2, np.finfo(dtype).tiny, dtype))
    again = model.feasible(feasible)  # a projection: feasible parameters stay
    assert all(np.array_equal(again[k], v) for k, v in feasible.items())


def test_options_survive_save(tmp_path):
    model = Model([MinGRU.init(1, 4, activation="g")])
    loaded = Model.load(model.save(tmp_path / "g.safetensors"))
    assert loaded.layers[0].options == {"activation": "g"} and loaded.readout is None


def test_fingerprint_changes_with_parameters(model):
    other = Model.init("MinGRU", input_size=2, hidden_sizes=[6, 4], output_size=3, seed=8)
    assert model.fingerprint() != other.fingerprint()
    assert model.fingerprint() == Model.init("MinGRU", 2, [6, 4], 3, seed=7).fingerprint()


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        Model.load(tmp_path / "nothing.safetensors")


def test_truncated_file(tmp_path, model):
    path = model.save(tmp_path / "m.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        Model.load(path)


def test_pickle_is_not_a_model_file(tmp_path):
    path = tmp_path / "evil.safetensors"
    path.write_bytes(b"\x80\x04\x95cos\nsystem\n")
    with pytest.raises(ModelFileError, match="not a readable safetensors"):
        Model.load(path)


def test_foreign_safetensors_file(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"w": np.ones(2, np.float32)}, str(path))
    with pytest.raises(ModelFileError, match="not an rnnflow model file"):
        Model.load(path)


def rewrite(path, arrays=None, config=None, version="1"):
    meta = {"format": "rnnflow", "kind": "model", "format_version": version}
    meta["config"] = json.dumps(config)
    save_file(arrays, str(path), metadata=meta)


def test_mismatched_file_contents(tmp_path, model):
    path = tmp_path / "m.safetensors"
    arrays, config = model.state_dict(), model.config()
    config["layers"][0]["hidden_size"] = 9
    rewrite(path, arrays, config)
    with pytest.raises(ModelFileError, match="metadata says"):
        Model.load(path)
    config = model.config()
    config["layers"][1]["type"] = "Transformer"
    rewrite(path, arrays, config)
    with pytest.raises(ModelFileError, match="unknown cell type 'Transformer'"):
        Model.load(path)
    rewrite(path, {**arrays, "layers.5.weight": np.ones(1, np.float32)}, model.config())
    with pytest.raises(ModelFileError, match="belong to no part"):
        Model.load(path)
    del arrays["layers.1.bias"]
    rewrite(path, arrays, model.config())
    with pytest.raises(ModelFileError, match="missing \\['bias'\\]"):
        Model.load(path)
    rewrite(path, model.state_dict(), model.config(), version="99")
    with pytest.raises(ModelFileError, match="format version '99'"):
        Model.load(path)


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        (np.zeros((4, 2)), ValueError, "expected 3: \\(time, batch, feature\\)"),
        (np.zeros((4, 1, 5)), ValueError, "5 features .* expects input_size=2"),
        (np.zeros((4, 1, 2), complex), TypeError, "cannot compute with"),
        (np.array([[["a", "b"]]]), TypeError, "cannot compute with"),
    ],
)
def test_bad_input_gets_clear_errors(model, x, error, match):
    with pytest.raises(error, match=match):
        model(x)


def test_bad_states_and_parameters(model):
    x = np.zeros((3, 2, 2), np.float32)
    with pytest.raises(ValueError, match="h0 has 1 states; the model has 2 layers"):
        model(x, [np.zeros((2, 6))])
    with pytest.raises(ValueError, match=r"initial state h has shape \(3, 6\)"):
        model(x, [np.zeros((3, 6)), np.zeros((2, 4))])
    params = MinGRU.init(2, 3).state_dict()
    params["weight"][0, 0] = np.nan
    with pytest.raises(ValueError, match=r"MinGRU\.weight contains NaN or inf"):
        MinGRU.from_state_dict(params)
    params["weight"] = np.ones(params["weight"].shape, np.int64)
    with pytest.raises(TypeError, match=r"MinGRU\.weight has dtype int64"):
        MinGRU.from_state_dict(params)
    with pytest.raises(ValueError, match="layer 1 expects input_size=5"):
        Model([Elman.init(2, 4), Elman.init(5, 3)])
    with pytest.raises(ValueError, match="readout reads 2 units"):
        Model([Elman.init(2, 4)], Readout(np.ones((1, 2), np.float32)))
    with pytest.raises(TypeError, match="share one dtype"):
        Model([Elman.init(2, 4), Elman.init(4, 3, dtype=np.float64)])


def test_integer_data_is_promoted(model):
    y, _ = model(np.ones((3, 1, 2), dtype=np.int32))
    assert y.dtype == np.float64


def test_float64_data_through_a_float32_model(rng, model):
    x = rng.normal(size=(5, 2, 2))
    y64, _ = model(x)
    y32, _ = model(x.astype(np.float32))
    assert y64.dtype == np.float64
    np.testing.assert_allclose(y64, y32, rtol=1e-5, atol=1e-6)

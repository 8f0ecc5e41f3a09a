"""Training: Adam as PyTorch's, a validation loss that falls, exact resumes, clear refusals."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from rnncore import Adam, InputError, Model, ModelFileError, train
from rnncore.grad import value_and_grad
from rnncore.longformat import from_long
from rnncore.serialization import read_arrays
from rnncore.synthetic import generate
from rnncore.training import AdamState
from tests.rnncore.test_longformat import real


def _sines(n_series=6, n_steps=40):
    t = np.arange(float(n_steps))
    phase = np.arange(n_series)[:, None]
    return xr.DataArray(np.sin(0.3 * t + phase), dims=("series", "time"), name="y")


def _departures(validation=0.2):
    """Monthly departures from Australia, 1976-2017: 5 real series of 498 steps.

    Logged and normalised per series by the mean and deviation of the steps before the
    last ``validation`` fraction (those a time split holds out).
    """
    frame = pd.read_csv(real("monthly"), parse_dates=["ds"])
    frame = frame[frame.unique_id.str.startswith("departures_")]
    y = np.log(from_long(frame, freq="MS").y)
    seen = y.isel(time=slice(None, round((1 - validation) * y.sizes["time"])))
    return (y - seen.mean("time")) / seen.std("time")


def _model(hidden=4, **kwargs):
    return Model.init("MinGRU", 1, [hidden], 1, dtype=np.float64, **kwargs)


def _fit(y, target=None, model=None, **kwargs):
    options = {"epochs": 2, "batch_series": 4, "window": 15, "lr": 0.02, "progress": False}
    target = y.shift(time=-1) if target is None else target
    return train(_model() if model is None else model, y, target, **(options | kwargs))


# -- Adam ------------------------------------------------------------------------------


def test_adam_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    params = {"w": rng.normal(size=(3, 2)), "b": rng.normal(size=3)}
    grads = [{k: rng.normal(size=v.shape) for k, v in params.items()} for _ in range(6)]
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    reference = torch.optim.Adam(tensors.values(), lr=0.05, betas=(0.8, 0.99), eps=1e-6)
    adam = Adam(lr=0.05, betas=(0.8, 0.99), eps=1e-6)
    state = adam.init(params)
    for g in grads:
        for k, t in tensors.items():
            t.grad = torch.tensor(g[k])
        reference.step()
        params, state = adam.update(params, g, state)
    assert state.step == 6
    for k, t in tensors.items():
        np.testing.assert_allclose(params[k], t.detach().numpy(), rtol=1e-13, atol=1e-15)
        moments = reference.state[t]
        np.testing.assert_allclose(state.m[k], moments["exp_avg"].numpy(), rtol=1e-13)
        np.testing.assert_allclose(state.v[k], moments["exp_avg_sq"].numpy(), rtol=1e-13)


def test_adam_leaves_its_arguments_and_dtype_alone():
    params = {"w": np.ones(3, np.float32)}
    adam = Adam(lr=0.1)
    state = adam.init(params)
    new, new_state = adam.update(params, {"w": np.ones(3)}, state)
    assert params["w"].tolist() == [1, 1, 1] and state.step == 0 and state.m["w"].sum() == 0
    assert new["w"].dtype == new_state.m["w"].dtype == np.float32
    np.testing.assert_allclose(new["w"], 0.9, rtol=1e-6)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"lr": 0}, "lr must be a positive"),
        ({"lr": float("nan")}, "lr must be a positive"),
        ({"betas": (0.9, 1.0)}, "betas must be two numbers"),
        ({"eps": -1.0}, "eps must be a positive"),
    ],
)
def test_adam_refuses_bad_settings(settings, message):
    with pytest.raises(ValueError, match=message):
        Adam(**settings)


def test_adam_refuses_gradients_of_other_parameters():
    params = {"w": np.ones(2)}
    with pytest.raises(ValueError, match=r"grads has keys \['v'\]"):
        Adam().update(params, {"v": np.ones(2)}, AdamState(0, params, params))


# -- training ----------------------------------------------------------------------------


def test_validation_loss_falls_on_synthetic_series():
    """One-step-ahead prediction of normalised synthetic series (with gaps: NaN steps)."""
    y = generate(8, 96, seed=3).y
    y = (y - y.mean("time")) / y.std("time")
    model = Model.init("MinGRU", 1, [8], 1, dtype=np.float64, seed=1)
    result = train(
        model, y, y.shift(time=-1), epochs=6, batch_series=4, window=48, lr=0.02,
        validation=0.25, seed=0, progress=False,
    )  # fmt: skip
    history = result.history
    assert history.epoch.values.tolist() == list(range(7))
    assert history.validation_loss[-1] < 0.6 * history.validation_loss[0]
    assert history.train_loss[-1] < 0.6 * history.train_loss[0]
    assert result.model.fingerprint() != model.fingerprint()


def test_validation_loss_falls_below_the_naive_forecast_on_real_series():
    """One step ahead on real monthly series, validated on the last fifth of the steps.

    The naive forecast repeats the last value: its loss over the same held-out steps is
    the bar, and the trained model must end clearly below it.
    """
    y = _departures(0.2)
    target = y.shift(time=-1)
    held = slice(y.sizes["time"] - round(0.2 * y.sizes["time"]), None)
    naive = float(((y - target) ** 2).isel(time=held).mean())  # NaN (the last step) skipped
    model = Model.init("MinGRU", 1, [16], 1, dtype=np.float64, seed=0)
    result = train(
        model, y, target, epochs=10, batch_series=5, window=48, lr=0.02, validation=0.2,
        split_by="time", progress=False,
    )  # fmt: skip
    losses = result.history.validation_loss.values
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.5 * losses[0], losses
    assert losses[-1] < 0.8 * naive, (losses[-1], naive)


def test_a_time_split_validates_on_the_last_steps():
    """The first 30 of 40 steps train, the last 10 validate: losses recomputed by hand."""
    y = _sines()
    target = y.shift(time=-1)
    result = _fit(y, split_by="time", validation=0.25, epochs=3)
    losses = result.history.validation_loss.values
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    outputs, _ = result.model(y.values.T[..., None])  # the whole sequences, (time, series, 1)
    squares = (outputs[..., 0] - target.values.T) ** 2  # NaN at the last step: no target
    assert result.history.train_loss[-1] == pytest.approx(squares[:30].mean(), rel=1e-12)
    assert losses[-1] == pytest.approx(np.nanmean(squares[30:]), rel=1e-12)
    # the held-out steps' targets take no part in training, only in the validation loss
    other = _fit(y, target=target.where(target.time < 30, 5.0), split_by="time", validation=0.25,
                 epochs=3)  # fmt: skip
    assert other.model.fingerprint() == result.model.fingerprint()
    assert other.history.validation_loss[-1] > 10 * losses[-1]


def test_float32_training_stays_float32():
    y = _sines().astype(np.float32)
    model = Model.init("MinGRU", 1, [4], 1, dtype=np.float32)
    result = _fit(y, model=model, epochs=3)
    assert result.model.dtype == np.float32
    assert all(value.dtype == np.float32 for value in result.model.state_dict().values())
    history = result.history
    assert history.validation_loss[-1] < history.validation_loss[0]
    assert history.train_loss[-1] < history.train_loss[0]
    # before any step: the float64 model's losses, to float32's rounding
    wide = _fit(y.astype(np.float64), model=_model(), epochs=1).history
    for name in ("train_loss", "validation_loss"):
        assert float(history[name][0]) == pytest.approx(float(wide[name][0]), rel=1e-5), name


def test_the_progress_bar_counts_epochs_and_batches(capsys):
    _fit(_sines(), epochs=2, progress=True)
    bar = capsys.readouterr().err
    # 5 training series in batches of 4: 2 batches an epoch, 4 in all
    assert "epoch 2/2" in bar and "4/4" in bar and "batch" in bar
    assert "validation_loss=" in bar
    _fit(_sines(), epochs=2, progress=False)
    assert capsys.readouterr().err == ""


def test_training_keeps_decays_below_one():
    model = Model.init("DiagonalLinear", 1, [4], 1, dtype=np.float64)
    assert model.layers[0].params["decay"].max() > 0.999  # timescales up to 1000 steps
    y = 2 + _sines()  # a level: the slowest unit's decay is pushed up
    result = train(model, y, y.shift(time=-1), epochs=2, lr=1e-3, progress=False)
    decay = result.model.layers[0].params["decay"]  # an Adam step passes 1: projected back
    assert decay.max() < 1 and decay.max() == np.nextafter(1.0, 0.0)


def test_without_validation_the_loss_is_nan():
    history = _fit(_sines(), validation=None, epochs=1).history
    assert np.isnan(history.validation_loss).all() and np.isfinite(history.train_loss).all()


def test_a_window_without_targets_takes_no_step():
    y = _sines()
    result = train(_model(), y, xr.full_like(y, np.nan), epochs=1, validation=None, progress=False)
    assert result.model.fingerprint() == _model().fingerprint()
    assert result.history.train_loss.values.tolist() == [0.0, 0.0]


def test_the_gradient_function_is_a_parameter():
    calls = []

    def grad_fn(model, x, target, h0=None, mask=None):
        calls.append((x.shape, h0 is None))
        return value_and_grad(model, x, target, h0=h0, mask=mask)

    _fit(_sines(6, 40), grad_fn=grad_fn, epochs=1, validation=None, batch_series=4, window=15)
    # 2 batches (4 + 2 series) of 3 windows (15, 15, 10 steps); a carried state after the first
    assert [shape[:2] for shape, _ in calls[:3]] == [(15, 4), (15, 4), (10, 4)]
    assert [first for _, first in calls] == [True, False, False] * 2


def test_full_sequences_of_all_the_series_take_one_step_per_epoch(tmp_path):
    path = tmp_path / "run.safetensors"
    result = _fit(_sines(), batch_series=None, window=None, epochs=3, checkpoint=path)
    assert read_arrays(path, "checkpoint")[1]["adam_step"] == 3
    assert result.history.attrs["batch_series"] == "none"


def test_a_dataset_and_a_target_variable_name():
    y = _sines()
    ds = xr.Dataset({"y": y, "next": y.shift(time=-1)})
    by_name = train(_model(), ds, "next", epochs=1, progress=False)
    by_array = train(_model(), y, y.shift(time=-1), epochs=1, progress=False)
    assert by_name.model.fingerprint() == by_array.model.fingerprint()


# -- checkpoints -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "steps_per_epoch"),
    [
        (_sines, 2 * 3),  # 5 training series in batches of 4, 40 steps in windows of 15
        (_departures, 1 * 34),  # 4 training series in one batch, 498 steps in windows of 15
    ],
    ids=["sines", "real"],
)
def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path, data, steps_per_epoch):
    y = data()
    whole = _fit(y, epochs=3, checkpoint=tmp_path / "whole.safetensors")
    path = tmp_path / "run.safetensors"
    first = _fit(y, epochs=1, checkpoint=path)
    assert first.history.sizes["epoch"] == 2
    resumed = _fit(y, epochs=3, checkpoint=path, resume=True)
    for key, value in whole.model.state_dict().items():
        assert np.array_equal(resumed.model.state_dict()[key], value), key
    assert resumed.history.identical(whole.history)
    arrays, config = read_arrays(path, "checkpoint")
    assert config["epoch"] == 3 and config["adam_step"] == 3 * steps_per_epoch
    assert {k.split(".")[0] for k in arrays} == {"params", "adam", "history"}


def test_resume_without_a_checkpoint_file_starts_afresh(tmp_path):
    y = _sines()
    fresh = _fit(y, checkpoint=tmp_path / "a.safetensors", resume=True)
    assert fresh.model.fingerprint() == _fit(y).model.fingerprint()


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    y, path = _sines(), tmp_path / "run.safetensors"
    _fit(y, epochs=1, checkpoint=path)
    bigger = Model.init("MinGRU", 1, [5], 1, dtype=np.float64)
    with pytest.raises(ModelFileError, match=r"another model \(MinGRU\(1->4\).*MinGRU\(1->5\)"):
        train(bigger, y, y.shift(time=-1), epochs=2, checkpoint=path, resume=True, progress=False)


def test_a_checkpoint_of_other_settings_is_refused(tmp_path):
    y, path = _sines(), tmp_path / "run.safetensors"
    _fit(y, epochs=1, checkpoint=path)
    with pytest.raises(ValueError, match=r"other lr \(was 0.02, now 0.01\)"):
        _fit(y, epochs=2, lr=0.01, checkpoint=path, resume=True)
    with pytest.raises(ValueError, match="other data"):
        _fit(2 * y, epochs=2, checkpoint=path, resume=True)
    _fit(y, epochs=2, checkpoint=path)
    with pytest.raises(ValueError, match="at epoch 2, beyond epochs=1"):
        _fit(y, epochs=1, checkpoint=path, resume=True)


def test_a_model_file_is_not_a_checkpoint(tmp_path):
    path = _model().save(tmp_path / "model.safetensors")
    with pytest.raises(ModelFileError, match="not an rnnflow checkpoint file"):
        _fit(_sines(), checkpoint=path, resume=True)


# -- bad arguments -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"epochs": 0}, ValueError, "epochs must be an integer of at least 1"),
        ({"batch_series": 0}, ValueError, "batch_series must be an integer of at least 1"),
        ({"window": 0}, ValueError, "window must be an integer of at least 1"),
        ({"lr": -1.0}, ValueError, "lr must be a positive"),
        ({"validation": 1.0}, ValueError, r"validation must be a fraction in \(0, 1\)"),
        ({"validation": 0.99}, ValueError, "holds out all 6 series"),
        ({"split_by": "rows"}, ValueError, "split_by must be one of"),
        ({"resume": True}, ValueError, "resume=True needs a checkpoint path"),
        ({"grad_fn": "adam"}, TypeError, "grad_fn must be callable"),
    ],
)
def test_bad_arguments_are_refused(kwargs, error, message):
    with pytest.raises(error, match=message):
        _fit(_sines(), **kwargs)


def test_bad_targets_are_refused():
    y = _sines()
    with pytest.raises(InputError, match="the target has 5 'series' entries; the data has 6"):
        train(_model(), y, y[:5], epochs=1)
    with pytest.raises(InputError, match="'time' coordinate differs"):
        train(
            _model(),
            y.assign_coords(time=np.arange(40)),
            y.assign_coords(time=1 + np.arange(40)),
            epochs=1,
        )
    with pytest.raises(ValueError, match=r"2 feature.*the model expects output_size=1"):
        train(_model(), y, xr.concat([y, y], "channel").transpose("series", "time", ...), epochs=1)
    with pytest.raises(ValueError, match="target='next' names no data variable"):
        train(_model(), y.to_dataset(), "next", epochs=1)

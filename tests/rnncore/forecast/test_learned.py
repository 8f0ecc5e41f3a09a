"""The learned encoder: trained gated units, saved and loaded, deterministic, no leakage."""

import dask.array as da
import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from rnncore import ModelFileError
from rnncore.errors import InputError
from rnncore.forecast import Forecaster
from rnncore.forecast.learned import DEFAULT_GATED, LearnedEncoder, _targets, fit_encoder
from rnncore.forecast.reservoir import Reservoir
from rnncore.longformat import to_long
from rnncore.synthetic import generate

HORIZON = 6


@pytest.fixture(scope="module")
def data():
    """Two weeks of hourly series with gaps and a late start."""
    return generate(4, 24 * 7 * 2, seed=5, late_start_fraction=0.3)


@pytest.fixture(scope="module")
def fitted(data):
    forecaster = Forecaster(HORIZON, season=24, encoder="learned", n_gated=4)
    return forecaster, forecaster.fit_predict(data)


def test_only_the_gated_units_are_trained(fitted):
    forecaster, _ = fitted
    encoder = forecaster._state().spec.reservoir
    assert isinstance(encoder, LearnedEncoder)
    reservoir = Reservoir(24, n_gated=4)
    start, trained = reservoir.model.layers, encoder.model.layers
    for name in ("weight", "bias"):
        np.testing.assert_array_equal(trained[0].params[name], start[0].params[name])
    n, width = reservoir.n_levels, 2 * reservoir.n_levels + 4
    fixed = np.r_[: 2 * n, width : width + 2 * n]  # the averages' pass-through rows
    before, after = start[1].params["weight"], trained[1].params["weight"]
    np.testing.assert_array_equal(after[fixed], before[fixed])
    np.testing.assert_array_equal(after[:width, 2 * n + 1], before[:width, 2 * n + 1])  # shut
    assert not np.array_equal(after, before)
    assert encoder.fingerprint() != reservoir.fingerprint()
    gated = [name for name in forecaster.feature_names_ if name.startswith("gated")]
    assert gated == [f"gated{k}" for k in range(4)]


def test_fit_is_deterministic_for_a_seed(data, fitted):
    forecaster, forecast = fitted
    again = Forecaster(HORIZON, season=24, encoder="learned", n_gated=4)
    np.testing.assert_array_equal(again.fit_predict(data)["mean"], forecast["mean"])
    assert again.fingerprint() == forecaster.fingerprint()


def test_save_and_load_give_identical_forecasts(tmp_path, data, fitted):
    forecaster, forecast = fitted
    path = forecaster.save(tmp_path / "learned.safetensors")
    loaded = Forecaster.load(path)
    assert loaded.settings() == forecaster.settings()
    assert loaded.fingerprint() == forecaster.fingerprint()
    for name in ("mean", "lower", "upper"):
        np.testing.assert_array_equal(loaded.predict(data)[name], forecast[name])
    with safe_open(str(path), framework="numpy") as handle:
        metadata = handle.metadata()
    arrays = load_file(path)
    arrays["encoder.weight"] = arrays["encoder.weight"] + 1.0
    save_file(arrays, tmp_path / "edited.safetensors", metadata=metadata)
    with pytest.raises(ModelFileError, match="reservoir built from the file"):
        Forecaster.load(tmp_path / "edited.safetensors")
    del arrays["encoder.weight"]
    save_file(arrays, tmp_path / "dropped.safetensors", metadata=metadata)
    with pytest.raises(ModelFileError, match=r"encoder\.weight"):
        Forecaster.load(tmp_path / "dropped.safetensors")


def test_cross_validation_reads_nothing_after_the_cutoff(data):
    df = to_long(data, ["y"])
    later = df.groupby("unique_id").cumcount(ascending=False) < HORIZON
    changed = df.assign(y=df["y"].where(~later, df["y"] * 10 + 100))
    forecaster = Forecaster(HORIZON, season=24, encoder="learned", n_gated=2)
    kept, moved = (forecaster.cross_validation(frame, n_windows=1) for frame in (df, changed))
    forecasts = [c for c in kept.columns if c.startswith("RNNFlow")]
    assert len(kept) and (kept["y"] != moved["y"]).any()
    np.testing.assert_array_equal(kept[forecasts], moved[forecasts])


def test_training_reads_only_the_given_series():
    z = np.random.default_rng(0).normal(size=(3, 120))
    reservoir = Reservoir(4, n_gated=2)
    first = fit_encoder(reservoir, da.from_array(z), 3, seed=0)
    again = fit_encoder(reservoir, da.from_array(z.copy()), 3, seed=0)
    assert first.fingerprint() == again.fingerprint()
    assert fit_encoder(reservoir, da.from_array(z), 3, seed=1).fingerprint() != first.fingerprint()
    with pytest.raises(ValueError, match="n_gated >= 1"):
        fit_encoder(Reservoir(4), da.from_array(z), 3, seed=0)


def test_targets_are_corrections_to_seasonal_naive():
    z = np.random.default_rng(1).normal(size=(2, 11))
    z[1, 4] = np.nan
    season, horizon = 3, 5
    got = _targets(z, season, horizon)
    for t in range(11):
        for h in range(1, horizon + 1):
            back = t + h - season * int(np.ceil(h / season))
            want = z[:, t + h] - z[:, back] if t + h < 11 and back >= 0 else np.nan
            np.testing.assert_array_equal(got[:, t, h - 1], want)


def test_bad_encoder_settings_are_refused_clearly():
    with pytest.raises(InputError, match=r"encoder must be one of \('reservoir', 'learned'\)"):
        Forecaster(HORIZON, encoder="lstm")
    with pytest.raises(InputError, match="n_gated >= 1"):
        Forecaster(HORIZON, encoder="learned", n_gated=0)
    assert Forecaster(HORIZON, encoder="learned")._reservoir(24).n_gated == DEFAULT_GATED
    assert Forecaster(HORIZON)._reservoir(24).n_gated == 0

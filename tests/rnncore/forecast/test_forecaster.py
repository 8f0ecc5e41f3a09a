"""The global forecaster: the distributed fit, forecasts, degenerate series, files."""

import itertools
import json

import numpy as np
import pytest
import xarray as xr
from hypothesis import example, given, settings
from hypothesis import strategies as st
from safetensors.numpy import load_file, save_file

from rnncore import Model, ModelFileError
from rnncore.forecast import Forecaster
from rnncore.forecast.features import SPREAD_FLOOR
from rnncore.forecast.reservoir import Reservoir
from rnncore.forecast.scaling import apply_scaling, series_stats
from rnncore.synthetic import generate
from rnncore.timeaxis import calendar_features

HORIZON = 12
HOUR = np.timedelta64(1, "h")
# Moving averages longer than the lag window: the default's shortest ones are all but
# linear combinations of the lags, which leaves the least-squares comparison ill-posed.
TIMESCALES = (48.0, 336.0)


@pytest.fixture(scope="module")
def data():
    """Four weeks of hourly series with gaps, late and early ends, a constant and an
    all-NaN series."""
    return generate(12, 24 * 7 * 4, seed=3, n_constant=1, n_all_nan=1, late_start_fraction=0.3)


@pytest.fixture(scope="module")
def fitted(data):
    forecaster = Forecaster(HORIZON, ridge=1e-4, timescales=TIMESCALES)
    return forecaster, forecaster.fit_predict(data)


def in_memory_rows(ds, forecaster):
    """Every fitted row's features and targets, built from NumPy arrays in one piece:
    the reservoir run by ``Model.__call__``, the lag windows and their normalisation
    by plain loops."""
    y = ds.y.values.astype(np.float64)
    times = ds.time.values
    n_series, n_steps = y.shape
    season, n_lags = 24, forecaster.training_window_["n_lags"]
    reservoir = Reservoir(season, timescales=TIMESCALES)
    stats = series_stats(ds.y, season, window=28 * season)  # the forecaster's default window
    z = apply_scaling(y, stats.location.values, stats.scale.values)
    observed = np.isfinite(z)
    filled = np.where(observed, z, 0.0)
    x = np.stack([filled, observed.astype(float)], axis=-1).transpose(1, 0, 2)
    raw = reservoir.model(x)[0].transpose(1, 0, 2)
    n = reservoir.n_levels
    with np.errstate(invalid="ignore"):  # 0 / 0 before a series' first value
        averages = raw[..., :n] / raw[..., n : 2 * n]  # bias-corrected by their weights
    units = np.concatenate([averages, raw[..., 2 * n :]], axis=-1)
    features, targets, usable = [], [], np.zeros((n_series, n_steps), bool)
    for s in range(n_series):
        for t in range(n_lags - 1, n_steps - HORIZON):
            lags = z[s, t - n_lags + 1 : t + 1]
            ahead = z[s, t + 1 : t + 1 + HORIZON]
            seen = np.isfinite(lags)
            if not (seen[-1] and np.isfinite(ahead).all() and 2 * (~seen).sum() <= n_lags):
                continue
            last = lags[-season:]
            level = last[np.isfinite(last)].mean()
            spread = max(np.abs(lags[seen] - level).mean(), SPREAD_FLOOR)
            base = lags[n_lags - season + np.arange(HORIZON) % season]
            base = np.where(np.isfinite(base), base, level)
            normalised = np.where(seen, (lags - level) / spread, 0.0)  # a gap is the level
            averages = (units[s, t, : reservoir.n_levels] - level) / spread
            calendar = calendar_features(times[t : t + 1], "h")[0]
            gated = units[s, t, reservoir.n_levels :]
            features.append(np.concatenate([normalised, averages, gated, calendar]))
            targets.append((ahead - base) / spread)
            usable[s, t] = True
    warmup = forecaster.training_window_["warmup"]
    rows = usable[usable] & (np.nonzero(usable)[1] >= warmup)
    return np.array(features)[rows], np.array(targets)[rows]


def lstsq_readout(x, y, lam):
    mean, std = x.mean(axis=0), x.std(axis=0)
    n, p = x.shape
    a = np.vstack([(x - mean) / std, np.sqrt(n * lam) * np.eye(p)])
    b = np.vstack([y - y.mean(axis=0), np.zeros((p, y.shape[1]))])
    coef = np.linalg.lstsq(a, b, rcond=None)[0] / std[:, None]
    return coef, y.mean(axis=0) - mean @ coef


def test_distributed_fit_equals_in_memory_least_squares(data, fitted):
    forecaster, _ = fitted
    x, y = in_memory_rows(data, forecaster)
    assert forecaster.training_window_["n_rows"] == x.shape[0] > 1000
    coef, intercept = lstsq_readout(x, y, 1e-4)
    scale = np.abs(coef).max()
    np.testing.assert_allclose(forecaster.coef_, coef, rtol=1e-8, atol=1e-8 * scale)
    np.testing.assert_allclose(forecaster.intercept_, intercept, rtol=1e-8, atol=1e-8 * scale)


@settings(max_examples=5)
@given(
    series_chunk=st.integers(2, 12),
    cuts=st.lists(st.integers(1, 24 * 7 * 4 - 1), min_size=1, max_size=6, unique=True),
    chunk_rows=st.integers(100, 10_000),
    panel_rows=st.integers(100, 10_000),
)
@example(series_chunk=5, cuts=[100], chunk_rows=100, panel_rows=3000)  # 2 blocks a panel
@example(series_chunk=12, cuts=[1], chunk_rows=50_000, panel_rows=2**21)  # one panel
@pytest.mark.slow
def test_any_layout_gives_the_same_fit_and_forecast(
    data, fitted, series_chunk, cuts, chunk_rows, panel_rows
):
    """Input chunks, blocks and panels (one block or several along time) all agree."""
    forecaster, forecast = fitted
    edges = [0, *sorted(cuts), data.sizes["time"]]
    sizes = tuple(b - a for a, b in itertools.pairwise(edges))
    chunked = data.chunk({"series": series_chunk, "time": sizes})
    other = Forecaster(
        HORIZON, ridge=1e-4, timescales=TIMESCALES, chunk_rows=chunk_rows, panel_rows=panel_rows
    )
    result = other.fit_predict(chunked)
    scale = np.abs(forecaster.coef_).max()
    np.testing.assert_allclose(other.coef_, forecaster.coef_, rtol=1e-8, atol=1e-8 * scale)
    xr.testing.assert_allclose(result.drop_attrs(), forecast.drop_attrs(), rtol=1e-8)


def test_forecast_layout_and_time_coordinate(data, fitted):
    forecaster, forecast = fitted
    assert dict(forecast["mean"].sizes) == {"series": 12, "step": HORIZON}
    assert dict(forecast["lower"].sizes) == {"series": 12, "step": HORIZON, "level": 2}
    assert forecast.step.values.tolist() == list(range(1, HORIZON + 1))
    assert forecast.level.values.tolist() == [0.8, 0.95]
    observed = np.isfinite(data.y.values)
    kept = observed.any(axis=1)
    last = data.time.values[data.sizes["time"] - 1 - np.argmax(observed[:, ::-1], axis=1)]
    expected = last[:, None] + HOUR * np.arange(1, HORIZON + 1)
    np.testing.assert_array_equal(forecast.time.values[kept], expected[kept])
    assert np.isnat(forecast.time.values[~kept]).all()
    np.testing.assert_array_equal(forecast.last_observed.values[kept], last[kept])
    early = kept & (last < data.time.values[-1])
    assert forecast.attrs["ended_early"] == data.series.values[early].tolist()
    assert forecast.attrs["freq"] == "h"
    assert (forecast.series == data.series).all()
    assert forecast.attrs["model_fingerprint"] == forecaster.fingerprint()
    assert forecast.attrs["training_end"] == "2025-01-28T23:00:00"
    assert "rnnflow_version" in forecast.attrs
    finite = ~forecast.all_missing
    lower, upper = forecast.lower.sel(series=finite), forecast.upper.sel(series=finite)
    mean = forecast["mean"].sel(series=finite)
    assert (lower.sel(level=0.95) <= lower.sel(level=0.8)).all()
    assert (lower.sel(level=0.8) <= mean).all() and (mean <= upper.sel(level=0.8)).all()
    assert (upper.sel(level=0.8) <= upper.sel(level=0.95)).all()


def test_predict_equals_fit_predict_and_a_shorter_horizon_is_a_prefix(data, fitted):
    forecaster, forecast = fitted
    xr.testing.assert_identical(forecaster.predict(data), forecast)
    short = forecaster.predict(data, horizon=5)
    xr.testing.assert_identical(short, forecast.isel(step=slice(0, 5)))


def test_degenerate_series_forecast_finite_values_or_nan_flagged(data, fitted):
    _, forecast = fitted
    y = data.y.values
    all_nan = np.isnan(y).all(axis=1)
    constant = ~all_nan & (np.nanmin(y, axis=1, initial=np.inf) == np.nanmax(y, axis=1, initial=0))
    gaps = np.isnan(y).any(axis=1) & ~all_nan
    assert all_nan.sum() == 1 and constant.sum() == 1 and gaps.sum() >= 3
    np.testing.assert_array_equal(forecast.all_missing.values, all_nan)
    for name in ("mean", "lower", "upper"):
        values = forecast[name].values
        assert np.isfinite(values[~all_nan]).all()
        assert np.isnan(values[all_nan]).all()
        assert (values[constant] == np.nanmax(y[constant])).all()


def test_a_series_in_a_gap_at_the_end_still_gets_finite_forecasts(data, fitted):
    forecaster, forecast = fitted
    values = data.y.values.copy()
    spread = np.nanmax(values, axis=1, initial=0) - np.nanmin(values, axis=1, initial=np.inf)
    varying = np.flatnonzero(np.isfinite(values[:, -1]) & (spread > 1))[:2]
    values[varying[0], -30:] = np.nan  # its last 30 steps are missing
    values[varying[1], -3:] = np.nan
    result = forecaster.predict(data.copy(data={"y": values}))
    for name in ("mean", "lower", "upper"):
        assert np.isfinite(result[name].values[varying]).all()
    # each is forecast from its own last observation, at its own timestamps
    assert result.attrs["ended_early"] == data.series.values[varying].tolist()
    first = result.time.values[varying, 0]
    np.testing.assert_array_equal(first, data.time.values[[-30, -3]])
    assert not np.allclose(result["mean"].values[varying], forecast["mean"].values[varying])


def test_exogenous_variables_are_features():
    ds = generate(8, 24 * 7 * 4, seed=1, n_features=2)
    ds["temperature"] = ("time", np.sin(np.arange(ds.sizes["time"]) / 50.0))
    forecaster = Forecaster(6, exog=["x", "temperature"])
    forecast = forecaster.fit_predict(ds)
    assert forecaster.feature_names_[-3:] == ["exog_x[x0]", "exog_x[x1]", "exog_temperature"]
    assert np.isfinite(forecast["mean"].values).all()
    xr.testing.assert_identical(forecaster.predict(ds), forecast)
    with pytest.raises(KeyError, match="temperature"):
        forecaster.predict(ds.drop_vars("temperature"))


def test_save_and_load_give_identical_forecasts(tmp_path, data, fitted):
    forecaster, forecast = fitted
    path = forecaster.save(tmp_path / "forecaster.safetensors")
    loaded = Forecaster.load(path)
    assert loaded.fingerprint() == forecaster.fingerprint()
    assert loaded.settings() == forecaster.settings()
    xr.testing.assert_identical(loaded.predict(data), forecast)


def test_loading_a_corrupt_or_mismatched_file_raises_a_clear_error(tmp_path, fitted):
    forecaster, _ = fitted
    path = forecaster.save(tmp_path / "f.safetensors")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        Forecaster.load(truncated)
    model_file = Model.init("MinGRU", 1, [4]).save(tmp_path / "model.safetensors")
    with pytest.raises(ModelFileError, match="not an rnnflow forecaster file"):
        Forecaster.load(model_file)
    with pytest.raises(ModelFileError, match="does not exist"):
        Forecaster.load(tmp_path / "missing.safetensors")

    def rewrite(name, edit):
        arrays = load_file(path)
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata()
        edit(arrays, metadata)
        target = tmp_path / name
        save_file(arrays, target, metadata=metadata)
        return target

    def shrink(arrays, metadata):
        arrays["coef"] = arrays["coef"][:-1]

    with pytest.raises(ModelFileError, match="'coef' has shape"):
        Forecaster.load(rewrite("shape.safetensors", shrink))

    def reseed(arrays, metadata):
        config = json.loads(metadata["config"])
        config["reservoir"]["n_levels"] += 1
        metadata["config"] = json.dumps(config)

    with pytest.raises(ModelFileError, match="reservoir built from the file"):
        Forecaster.load(rewrite("reservoir.safetensors", reseed))

    def drop(arrays, metadata):
        del arrays["quantiles"]

    with pytest.raises(ModelFileError, match="missing"):
        Forecaster.load(rewrite("dropped.safetensors", drop))


def test_misuse_is_refused_with_clear_errors(data, fitted):
    forecaster, _ = fitted
    with pytest.raises(RuntimeError, match="not fitted"):
        Forecaster(3).predict(data)
    with pytest.raises(ValueError, match="exceeds the 12 steps"):
        forecaster.predict(data, horizon=13)
    daily = data.isel(time=slice(0, None, 24))
    with pytest.raises(ValueError, match="frequency is 'D'; the forecaster was fitted at 'h'"):
        forecaster.predict(daily)
    with pytest.raises(KeyError, match="'load'"):
        forecaster.predict(data, variable="load")
    with pytest.raises(ValueError, match="too few"):
        Forecaster(24).fit(data.isel(time=slice(0, 60)))
    with pytest.raises(ValueError, match="n_folds"):
        Forecaster(24, n_folds=1)
    with pytest.raises(ValueError, match="horizon"):
        Forecaster(0)

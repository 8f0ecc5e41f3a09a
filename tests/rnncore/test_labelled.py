import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import rnncore
from rnncore import Model, run
from tests.rnncore.reference import rel_err


@pytest.fixture
def data(rng):
    values = rng.normal(size=(5, 40, 2))
    values[1, :10] = np.nan  # a late start
    values[2] = np.nan  # an all-NaN series
    values[3, 17, 0] = np.nan  # a gap in one feature
    return xr.DataArray(
        values,
        dims=("series", "time", "feature"),
        coords={
            "series": [f"s{i}" for i in range(5)],
            "time": pd.date_range("2026-01-01", periods=40, freq="h"),
            "region": ("series", list("aabbc")),
        },
        name="y",
        attrs={"units": "kW"},
    )


def in_memory(model, data, h0=None):
    x = data.transpose("time", "series", "feature").values
    return model(x, h0)


@pytest.mark.parametrize("cell", ["MinGRU", "DiagonalLinear", "GRU", "LSTM"])
def test_run_in_memory_and_lazily_equal_the_model(data, cell):
    model = Model.init(cell, 2, [4, 3], output_size=1, dtype=np.float64)
    y, _ = in_memory(model, data)
    eager = run(model, data)
    lazy = run(model, data.chunk({"time": 7, "series": 2}))
    assert isinstance(lazy.output.data, da.Array) and lazy.output.chunks[1] == (7,) * 5 + (5,)
    for result in (eager, lazy):
        assert result.output.dims == ("series", "time", "channel")
        assert rel_err(result.output.values, y.transpose(1, 0, 2)) < 1e-12
        assert np.isnan(result.output.sel(series="s2")).all()
        assert result.state.dims == ("series", "layer", "state_unit")
    xr.testing.assert_allclose(eager.state, lazy.state.compute(), rtol=1e-12)


def test_any_dimension_order_gives_the_same_result(data):
    model = Model.init("QRNN", 2, [4], output_size=2, dtype=np.float64)
    reference = run(model, data)
    for order in (("time", "series", "feature"), ("feature", "time", "series")):
        xr.testing.assert_allclose(run(model, data.transpose(*order)), reference, rtol=1e-12)


def test_coordinates_and_attributes(data):
    model = Model.init("MinLSTM", 2, [4], output_size=1)
    with dask.config.set(num_workers=4):  # one series chunk, four threads: stitch time
        result = run(model, data.chunk({"time": 10}))
    assert list(result.series.values) == list(data.series.values)
    assert (result.time.values == data.time.values).all()
    assert list(result.region.values) == list("aabbc")
    assert result.attrs["model_fingerprint"] == model.fingerprint()
    assert result.attrs["rnnflow_version"] == rnncore.__version__
    assert result.attrs["method"] == "prefix_scan"
    assert result.attrs["model"] == "MinLSTM(2->4) > Readout(1)"


def test_shooting_is_recorded(data):
    model = Model.init("GRU", 2, [4], dtype=np.float64)
    result = run(model, data.chunk({"time": 8}), method="parallel", tol=1e-9)
    assert result.attrs["method"] == "multiple_shooting"
    assert 1 <= result.attrs["iterations"] <= 4
    assert result.attrs["boundary_change"] <= 1e-9
    sequential = run(model, data.chunk({"time": 8}), method="sequential")
    xr.testing.assert_allclose(result.output, sequential.output, atol=1e-8)


@pytest.mark.parametrize("cell", ["MinGRU", "LSTM"])
@pytest.mark.parametrize("chunked", [False, True])
def test_warm_start_continues_a_run(data, cell, chunked):
    model = Model.init(cell, 2, [3, 5], output_size=1, dtype=np.float64)
    source = data.chunk({"time": 6}) if chunked else data
    whole = run(model, source)
    first = run(model, source.isel(time=slice(0, 25)))
    second = run(model, source.isel(time=slice(25, None)), h0=first.state)
    xr.testing.assert_allclose(second.output, whole.output.isel(time=slice(25, None)), rtol=1e-12)
    xr.testing.assert_allclose(second.state, whole.state, rtol=1e-12)


def test_the_input_is_not_changed(data):
    before = data.copy(deep=True)
    run(Model.init("MinGRU", 2, [3]), data)
    run(Model.init("GRU", 2, [3]), data.chunk({"time": 5}))
    xr.testing.assert_identical(data, before)


def test_dataset_with_variable_and_accessors(data):
    model = Model.init("MinGRU", 2, [3], output_size=1, dtype=np.float64)
    ds = xr.Dataset({"y": data, "other": data.isel(feature=0)})
    expected = run(model, data)
    xr.testing.assert_identical(run(model, ds, variable="y"), expected)
    xr.testing.assert_identical(ds.rnn.run(model, variable="y"), expected)
    xr.testing.assert_identical(data.rnn.run(model), expected)
    with pytest.raises(ValueError, match=r"holds variables \['y', 'other'\]; name one"):
        run(model, ds)
    with pytest.raises(KeyError, match="'z' is not in the dataset"):
        run(model, ds, variable="z")


def test_single_feature_without_feature_dim(rng):
    y = xr.DataArray(rng.normal(size=(3, 12)), dims=("series", "time"))
    model = Model.init("MinGRU", 1, [3], dtype=np.float64)
    result = run(model, y)
    expected, _ = model(y.values.T[..., None])
    np.testing.assert_allclose(result.output.values, expected.transpose(1, 0, 2))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"time_dim": "t"}, ValueError, r"time_dim='t' is not a dimension .* \['series', 'time'"),
        ({"series_dim": "id"}, ValueError, "series_dim='id' is not a dimension"),
        ({"feature_dim": "other"}, ValueError, "expected dimensions"),
        ({"method": "fast"}, ValueError, "method must be one of"),
        ({"h0": np.zeros((4, 1, 3))}, ValueError, "h0 holds states for 4 series"),
        ({"h0": np.zeros((5, 2, 3))}, ValueError, r"expected \(series, layer, state_unit\)"),
    ],
)
def test_bad_arguments(data, kwargs, error, match):
    with pytest.raises(error, match=match):
        run(Model.init("MinGRU", 2, [3]), data, **kwargs)


def test_bad_data(data):
    with pytest.raises(ValueError, match=r"has 2 feature.* expects input_size=3"):
        run(Model.init("MinGRU", 3, [3]), data)
    with pytest.raises(TypeError, match="cannot compute with"):
        run(Model.init("MinGRU", 2, [3]), data.astype(str))
    with pytest.raises(TypeError, match="DataArray or Dataset"):
        run(Model.init("MinGRU", 2, [3]), data.values)


def test_lazy_results_write_to_zarr_and_netcdf(tmp_path, data):
    from rnncore.io import open_dataset, write_netcdf, write_zarr

    model = Model.init("MinGRU", 2, [3], output_size=1, dtype=np.float64)
    result = run(model, data.chunk({"time": 9, "series": 2}))
    expected = result.compute()
    for path in (
        write_zarr(result, tmp_path / "out.zarr"),
        write_netcdf(result, tmp_path / "o.nc"),
    ):
        reopened = open_dataset(path).compute()
        xr.testing.assert_allclose(reopened.output, expected.output, rtol=1e-12)
        xr.testing.assert_allclose(reopened.state, expected.state, rtol=1e-12)
        assert reopened.attrs["model_fingerprint"] == model.fingerprint()

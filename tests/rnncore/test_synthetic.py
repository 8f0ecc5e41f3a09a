import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st

from rnncore.io import open_dataset
from rnncore.synthetic import generate, write_synthetic

CLEAN = {"gap_fraction": 0, "late_start_fraction": 0, "early_end_fraction": 0, "n_constant": 0}


def load_cli():
    """``data/generate.py`` as a module (it is a script, not part of a package)."""
    path = Path(__file__).resolve().parents[2] / "data" / "generate.py"
    spec = importlib.util.spec_from_file_location("generate_cli", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def runs(mask):
    """Lengths of the runs of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)


def test_dims_coords_and_dtypes():
    ds = generate(4, 50, n_features=3, freq="15min", start="2024-03-01")
    assert ds.y.dims == ("series", "time") and ds.y.shape == (4, 50)
    assert ds.x.dims == ("series", "time", "feature") and ds.x.shape == (4, 50, 3)
    assert ds.y.dtype == np.float32 and ds.x.dtype == np.float32
    assert ds.series.values.tolist() == ["s00000", "s00001", "s00002", "s00003"]
    assert ds.feature.values.tolist() == ["x0", "x1", "x2"]
    expected_time = pd.date_range("2024-03-01", periods=50, freq="15min")
    assert ds.indexes["time"].equals(expected_time)
    assert isinstance(ds.y.data, np.ndarray)
    assert "x" not in generate(2, 5)


def test_float64_and_wide_ids():
    assert generate(3, 5, dtype=np.float64).y.dtype == np.float64
    lazy = generate(100_001, 2, chunks={"series": 50_000})  # ids only: nothing computed
    assert lazy.series.values[[0, -1]].tolist() == ["s000000", "s100000"]


def test_attrs_record_the_parameters():
    attrs = generate(3, 10, seed=7, n_features=1, gap_fraction=0.2).attrs
    assert attrs["generator"] == "rnncore.synthetic.generate"
    assert attrs["seed"] == 7 and attrs["n_series"] == 3 and attrs["n_steps"] == 10
    assert attrs["n_features"] == 1 and attrs["gap_fraction"] == 0.2 and attrs["freq"] == "h"
    assert attrs["dtype"] == "float32"


def test_deterministic_by_seed():
    a, b = generate(6, 300, seed=5, n_features=1), generate(6, 300, seed=5, n_features=1)
    xr.testing.assert_identical(a, b)
    c = generate(6, 300, seed=6, n_features=1)
    assert not np.allclose(a.y.fillna(0), c.y.fillna(0))


@given(
    n_series=st.integers(1, 12),
    n_steps=st.integers(1, 60),
    series_chunk=st.integers(1, 13),
    time_chunk=st.integers(1, 61),
    n_features=st.integers(0, 2),
    seed=st.integers(0, 2**32),
)
def test_blockwise_equals_all_at_once(
    n_series, n_steps, series_chunk, time_chunk, n_features, seed
):
    options = {"seed": seed, "n_features": n_features, "gap_fraction": 0.2}
    whole = generate(n_series, n_steps, **options)
    lazy = generate(
        n_series, n_steps, chunks={"series": series_chunk, "time": time_chunk}, **options
    )
    assert lazy.y.chunks[0][0] == min(series_chunk, n_series)
    assert lazy.y.chunks[1][0] == min(time_chunk, n_steps)
    xr.testing.assert_identical(lazy.compute(), whole)


def test_a_series_does_not_depend_on_its_block():
    whole = generate(9, 100, seed=2, n_constant=0)
    lazy = generate(9, 100, seed=2, n_constant=0, chunks={"series": 4})
    np.testing.assert_array_equal(lazy.y[5].values, whole.y[5].values)
    assert len(lazy.y.data.dask) < 40  # one task per block, not per series


def test_late_starts_early_ends_gaps_and_one_constant_series_by_default():
    ds = generate(200, 24 * 7 * 4, seed=3)
    y = ds.y.values
    constant = [i for i in range(200) if np.nanmax(y[i]) == np.nanmin(y[i])]
    assert len(constant) == 1 and np.isfinite(y[constant[0]]).all()
    assert not np.isnan(y).all(axis=1).any()
    finite = np.isfinite(y)
    first = finite.argmax(axis=1)
    last = y.shape[1] - 1 - finite[:, ::-1].argmax(axis=1)
    assert 10 < (first > 0).sum() < 80  # about 20% start late
    assert 1 <= (last < y.shape[1] - 1).sum() < 30  # about 5% end early
    inner_gaps = [run for i in range(200) for run in runs(np.isnan(y[i, first[i] : last[i] + 1]))]
    assert len(inner_gaps) > 20 and max(inner_gaps) > 1


def test_parameters_control_gaps_and_special_series():
    clean = generate(50, 400, seed=1, **CLEAN)
    assert np.isfinite(clean.y.values).all()
    gappy = generate(50, 2000, seed=1, **{**CLEAN, "gap_fraction": 0.1})
    assert 0.07 < np.isnan(gappy.y.values).mean() < 0.12
    special = generate(30, 100, seed=1, n_constant=3, n_all_nan=1)
    y = special.y.values
    all_nan = np.isnan(y).all(axis=1)
    assert all_nan.sum() == 1
    assert sum(np.nanmax(y[i]) == np.nanmin(y[i]) for i in np.flatnonzero(~all_nan)) == 3


def test_series_are_positive_and_seasonal_means_beat_seasonal_naive():
    week, n_weeks = 24 * 7, 9
    ds = generate(100, week * n_weeks, seed=11, n_features=2, **CLEAN)
    y = ds.y.values.astype(np.float64)
    assert (y > 0).all()
    actual = y[:, -week:]
    naive = y[:, -2 * week : -week]
    seasonal_mean = y[:, -5 * week : -week].reshape(100, 4, week).mean(axis=1)
    naive_error = np.abs(naive - actual).mean()
    mean_error = np.abs(seasonal_mean - actual).mean()
    assert mean_error < 0.9 * naive_error


def test_series_respond_to_their_covariates():
    week, n_weeks = 24 * 7, 8
    ds = generate(60, week * n_weeks, seed=2, n_features=1, **CLEAN)

    def deseasoned(a):
        a = a.astype(np.float64).reshape(60, n_weeks, week)
        a = (a - a.mean(axis=1, keepdims=True)).reshape(60, -1)
        return a - a.mean(axis=1, keepdims=True)

    def correlation(a, b):
        return np.abs((a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1)))

    y, x = deseasoned(np.log(ds.y.values)), deseasoned(ds.x.values[..., 0])
    assert np.isfinite(ds.x.values).all()
    assert correlation(y, x).mean() > 0.25
    assert correlation(y, np.roll(x, 1, axis=0)).mean() < 0.15  # another series' covariate


@pytest.mark.parametrize(("freq", "day"), [("h", 24), ("15min", 96)])
def test_daily_cycle_follows_the_frequency(freq, day):
    y = np.log(generate(40, day * 21, freq=freq, seed=4, **CLEAN).y.values)
    y = y - y.mean(axis=1, keepdims=True)

    def autocorrelation(lag):
        return (y[:, lag:] * y[:, :-lag]).sum() / (y * y).sum()

    assert autocorrelation(day) > 0.5
    assert autocorrelation(day) > autocorrelation(day // 2) + 0.3


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_series": 0}, ValueError, "n_series"),
        ({"n_steps": 2.5}, ValueError, "n_steps"),
        ({"seed": -1}, ValueError, "seed"),
        ({"gap_fraction": 1.5}, ValueError, "gap_fraction"),
        ({"n_constant": 4, "n_all_nan": 2}, ValueError, "n_constant=4 and n_all_nan=2"),
        ({"freq": "fortnightly"}, ValueError, "freq='fortnightly'"),
        ({"start": "not a date"}, ValueError, "start='not a date'"),
        ({"dtype": np.int32}, TypeError, "dtype"),
        ({"chunks": {"lat": 2}}, ValueError, "unknown dimensions"),
        ({"chunks": {"time": 0}}, ValueError, "chunks\\['time'\\]"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, match):
    args = {"n_series": 5, "n_steps": 10, **kwargs}
    with pytest.raises(error, match=match):
        generate(args.pop("n_series"), args.pop("n_steps"), **args)


def test_write_synthetic_is_independent_of_chunking(tmp_path):
    options = {"seed": 9, "n_features": 1, "freq": "D"}
    a = write_synthetic(tmp_path / "a.zarr", 11, 40, series_chunk=4, time_chunk=15, **options)
    b = write_synthetic(tmp_path / "b.zarr", 11, 40, series_chunk=11, time_chunk=40, **options)
    left, right = open_dataset(a), open_dataset(b)
    assert left.y.encoding["chunks"] == (4, 15) and left.x.encoding["chunks"] == (4, 15, 1)
    assert right.y.encoding["chunks"] == (11, 40)
    xr.testing.assert_identical(left.load(), right.load())
    xr.testing.assert_identical(left, generate(11, 40, **options))
    with pytest.raises(FileExistsError, match=r"a\.zarr"):
        write_synthetic(a, 11, 40)
    write_synthetic(a, 3, 5, overwrite=True)
    assert open_dataset(a).y.shape == (3, 5)


def test_cli_writes_and_reports(tmp_path, capsys):
    cli = load_cli()
    out = tmp_path / "sample.zarr"
    path = cli.main(["-o", str(out), "-n", "12", "-t", "30", "--seed", "4", "--n-features", "2"])
    assert path == out
    assert f"wrote {out}: 12 series x 30 steps" in capsys.readouterr().out
    xr.testing.assert_identical(open_dataset(out), generate(12, 30, seed=4, n_features=2))
    with pytest.raises(SystemExit) as exc:
        cli.main(["-o", str(out), "-n", "12", "-t", "30"])
    assert exc.value.code == 2 and "--overwrite" in capsys.readouterr().err


def test_cli_help_states_the_defaults(capsys):
    cli = load_cli()
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    text = capsys.readouterr().out
    assert exc.value.code == 0
    assert "sample.zarr" in text and "(default: 2000)" in text and "(default: 8760)" in text
    assert cli.DEFAULT_OUTPUT == Path(cli.__file__).parent / "sample.zarr"

"""Long-format tables (unique_id, ds, y) to and from the xarray layout."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from rnncore.longformat import from_long, is_long_format, read_long, to_long, write_long
from rnncore.synthetic import generate


@pytest.fixture(scope="module")
def sample():
    return generate(6, 96, seed=4, gap_fraction=0.1, n_all_nan=1).drop_attrs()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip_through_a_file(sample, tmp_path, suffix):
    path = write_long(sample, tmp_path / f"sample{suffix}")
    frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    assert list(frame.columns) == ["unique_id", "ds", "y"]
    assert frame["y"].notna().all()  # all-NaN rows are left out
    back = read_long(path, freq="h")
    assert back["y"].dims == ("series", "time")
    # the all-NaN series has no rows, so it does not come back
    kept = sample.where(sample["y"].notnull().any("time"), drop=True)
    np.testing.assert_array_equal(back["series"].values, kept["series"].values)
    np.testing.assert_array_equal(back["time"].values, sample["time"].values)
    np.testing.assert_allclose(back["y"].values, kept["y"].values, rtol=1e-6)


def test_from_long_fills_absent_rows_and_keeps_float_dtype():
    frame = pd.DataFrame(
        {
            "unique_id": [2, 1, 1],
            "ds": pd.to_datetime(["2025-01-01 01:00", "2025-01-01 00:00", "2025-01-01 03:00"]),
            "y": np.array([5.0, 1.0, 3.0], np.float32),
            "price": [1, 2, 3],
        }
    )
    ds = from_long(frame, freq="h")
    assert ds["series"].values.tolist() == ["1", "2"]
    assert ds.sizes["time"] == 4 and ds["y"].dtype == np.float32
    assert ds["price"].dtype == np.float64
    np.testing.assert_array_equal(
        ds["y"].values, [[1, np.nan, np.nan, 3], [np.nan, 5, np.nan, np.nan]]
    )


def test_to_long_names_columns_of_extra_dimensions_and_reads_time_along_step():
    forecast = xr.Dataset(
        {
            "mean": (("series", "step"), [[1.0, 2.0]]),
            "lower": (("series", "step", "level"), [[[0.5, 0.1], [1.5, 1.1]]]),
            "all_missing": ("series", [False]),
        },
        coords={
            "series": ["a"],
            "step": [1, 2],
            "level": [0.8, 0.95],
            "time": ("step", pd.date_range("2025-02-01", periods=2, freq="h")),
        },
    )
    frame = to_long(forecast)
    assert list(frame.columns) == ["unique_id", "ds", "mean", "lower-80", "lower-95"]
    assert frame["ds"].tolist() == list(pd.date_range("2025-02-01", periods=2, freq="h"))
    assert frame["lower-95"].tolist() == [0.1, 1.1]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"unique_id": ["a"], "y": [1.0]}), "needs columns"),
        (pd.DataFrame({"unique_id": ["a"], "ds": ["2025-01-01"]}), "needs columns"),
        (pd.DataFrame({"unique_id": ["a"], "ds": ["not a date"], "y": [1.0]}), "timestamps"),
        (pd.DataFrame({"unique_id": ["a"], "ds": ["2025-01-01"], "y": ["x"]}), "expected numbers"),
        (
            pd.DataFrame({"unique_id": ["a", "a"], "ds": ["2025-01-01"] * 2, "y": [1.0, 2.0]}),
            "more than once",
        ),
    ],
)
def test_from_long_refuses_what_is_not_a_long_table(frame, message):
    with pytest.raises(ValueError, match=message):
        from_long(frame)


def test_from_long_refuses_timestamps_off_the_grid():
    frame = pd.DataFrame(
        {"unique_id": ["a", "a"], "ds": ["2025-01-01 00:00", "2025-01-01 00:30"], "y": [1.0, 2.0]}
    )
    with pytest.raises(ValueError, match="not on the 'h' grid"):
        from_long(frame, freq="h")


def test_file_suffixes(tmp_path):
    assert is_long_format("a.CSV") and is_long_format("b.parquet") and is_long_format("c.pq")
    assert not is_long_format("d.zarr")
    with pytest.raises(ValueError, match="not a long-format table"):
        read_long(tmp_path / "data.txt")
    with pytest.raises(FileNotFoundError, match="no long-format table"):
        read_long(tmp_path / "missing.csv")

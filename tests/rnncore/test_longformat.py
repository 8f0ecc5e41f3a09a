"""Long-format tables (unique_id, ds, y) to and from the xarray layout."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from rnncore.longformat import (
    from_long,
    group_by_grid,
    is_long_format,
    read_long,
    to_long,
    write_long,
)
from rnncore.synthetic import generate

REAL = Path(__file__).resolve().parents[2].parent / "shared/data/real"


def real(name):
    path = REAL / f"{name}.csv.gz"
    if not path.is_file():
        pytest.skip(f"no real data at {path}")
    return path


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
    assert is_long_format("e.csv.gz") and is_long_format("f.CSV.xz")
    assert not is_long_format("d.zarr") and not is_long_format("g.gz")
    with pytest.raises(ValueError, match="not a long-format table"):
        read_long(tmp_path / "data.txt")
    with pytest.raises(FileNotFoundError, match="no long-format table"):
        read_long(tmp_path / "missing.csv")


def test_gzipped_csv_round_trip(sample, tmp_path):
    path = write_long(sample, tmp_path / "sample.csv.gz")
    assert path.read_bytes()[:2] == b"\x1f\x8b"  # gzip
    back = read_long(path)
    assert back.attrs["freq"] == "h"
    np.testing.assert_array_equal(back["time"].values, sample["time"].values)


def long(rows):
    ids, stamps = zip(*rows, strict=True)
    return pd.DataFrame({"unique_id": ids, "ds": stamps, "y": np.arange(len(rows), dtype=float)})


def test_from_long_infers_calendar_frequencies_over_ragged_series():
    frame = long(
        [
            *[("a", t) for t in ["2025-01-01", "2025-02-01", "2025-03-01", "2025-04-01"]],
            *[("b", t) for t in ["2025-03-01", "2025-06-01"]],  # a hole; too short to infer
        ]
    )
    ds = from_long(frame)
    assert ds.attrs["freq"] == "MS"
    assert list(ds["time"].values) == list(pd.date_range("2025-01-01", "2025-06-01", freq="MS"))
    np.testing.assert_array_equal(ds["y"].values[1], [np.nan, np.nan, 4, np.nan, np.nan, 5])
    assert from_long(frame, freq="MS").identical(ds)


def test_from_long_needs_two_timestamps_to_infer():
    with pytest.raises(ValueError, match="at least 2 timestamps"):
        from_long(long([("a", "2025-01-01"), ("b", "2025-01-01")]))
    assert from_long(long([("a", "2025-01-01")]), freq="D").attrs["freq"] == "D"


def test_from_long_refuses_an_irregular_axis_naming_the_fix():
    frame = long([("a", t) for t in ["2025-01-01 09:00", "2025-01-01 09:05", "2025-01-01 09:10"]])
    frame = pd.concat([frame, long([("a", "2025-01-02 09:00")])])
    with pytest.raises(ValueError, match=r"the step is 23 hours 50 minutes.*Pass freq="):
        from_long(frame)
    assert from_long(frame, freq="5min").sizes["time"] == 24 * 12 + 1


QUARTERS = long(
    [("dec1", t) for t in ["2025-03-01", "2025-06-01", "2025-09-01", "2025-12-01"]]
    + [("dec2", t) for t in ["2025-06-01", "2025-09-01", "2025-12-01"]]
    + [("jan", t) for t in ["2025-01-01", "2025-04-01", "2025-07-01"]]
    + [("dec3", t) for t in ["2024-12-01", "2025-12-01"]]  # too short to infer: joins QS-DEC
)


def test_from_long_refuses_series_on_different_grids():
    with pytest.raises(ValueError, match="2 different time grids") as caught:
        from_long(QUARTERS)
    message = str(caught.value)
    assert "'QS-DEC' (2 series: dec1, dec2)" in message and "'QS-JAN' (1 series: jan)" in message
    assert "group_by_grid" in message


def test_group_by_grid_splits_quarters_by_anchor():
    groups = group_by_grid(QUARTERS)
    assert [g.attrs["freq"] for g in groups] == ["QS-DEC", "QS-JAN"]
    assert [sorted(g["unique_id"].unique()) for g in groups] == [["dec1", "dec2", "dec3"], ["jan"]]
    assert sum(len(g) for g in groups) == len(QUARTERS)
    assert list(groups[0].columns) == list(QUARTERS.columns)
    ds = from_long(groups[0])
    assert ds.attrs["freq"] == "QS-DEC" and ds.sizes["time"] == 5
    assert from_long(groups[1]).attrs["freq"] == "QS-JAN"
    # a series on no grid of the others forms a group of its own
    odd = pd.concat([QUARTERS, long([("odd", "2025-02-15"), ("odd", "2025-03-20")])])
    assert [g.attrs["freq"] for g in group_by_grid(odd)] == ["QS-DEC", "QS-JAN", None]


def test_to_long_reads_a_per_series_time_coordinate():
    time = np.array([["2025-02-01", "2025-03-01"], ["NaT", "NaT"], ["2025-05-01", "2025-06-01"]])
    forecast = xr.Dataset(
        {
            "mean": (("series", "step"), [[1.0, 2.0], [np.nan, np.nan], [3.0, 4.0]]),
            "lower": (("series", "step", "level"), np.arange(12.0).reshape(3, 2, 2)),
        },
        coords={
            "series": ["a", "b", "c"],
            "level": [0.8, 0.95],
            "time": (("series", "step"), time.astype("datetime64[ns]")),
        },
    )
    frame = to_long(forecast)
    assert list(frame.columns) == ["unique_id", "ds", "mean", "lower-80", "lower-95"]
    assert frame["unique_id"].tolist() == ["a", "a", "c", "c"]
    assert frame["ds"].dt.strftime("%Y-%m").tolist() == ["2025-02", "2025-03", "2025-05", "2025-06"]
    assert frame["lower-95"].tolist() == [1.0, 3.0, 9.0, 11.0]
    with pytest.raises(ValueError, match="'time' coordinate"):
        to_long(forecast.assign_coords(time=("series", time[:, 0].astype("datetime64[ns]"))))


def test_real_monthly_series_are_month_starts():
    ds = read_long(real("monthly"))
    assert ds.attrs["freq"] == "MS" and ds.sizes["series"] == 10
    assert ds["time"].values[0] == np.datetime64("1960-01-01")
    assert ds["time"].values[-1] == np.datetime64("2017-09-01")
    assert ds["y"].isnull().any() and ds["y"].notnull().sum() == 4352


def test_real_half_hourly_and_daily_series():
    ds = read_long(real("halfhourly_taylor"))
    assert ds.attrs["freq"] == "30min" and ds.sizes["time"] == 4032
    daily = read_long(real("daily_elec"))
    assert daily.attrs["freq"] == "D" and set(daily.data_vars) == {"y", "temperature", "workday"}


def test_real_business_hours_calls_need_a_frequency():
    path = real("fiveminute_calls")
    with pytest.raises(ValueError, match="from 2003-03-03 21:00:00 to 2003-03-04 07:00:00") as err:
        read_long(path)
    assert "Pass freq=... (--freq on the command line)" in str(err.value)
    ds = read_long(path, freq="5min")
    assert ds.attrs["freq"] == "5min" and ds["y"].isnull().any()
    assert int(ds["y"].notnull().sum()) == 27716


def test_real_quarterly_file_mixes_two_grids():
    path = real("quarterly")
    with pytest.raises(ValueError, match=r"'QS-DEC' \(32 series.*'QS-JAN' \(1 series: qgas\)"):
        read_long(path)
    groups = group_by_grid(pd.read_csv(path))
    assert [(g.attrs["freq"], g["unique_id"].nunique()) for g in groups] == [
        ("QS-DEC", 32),
        ("QS-JAN", 1),
    ]
    assert from_long(groups[1]).sizes["time"] == 218

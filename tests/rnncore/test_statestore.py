"""The state store: round trips, refused stores, trailing checksums and increment plans."""

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr
from hypothesis import given
from hypothesis import strategies as st

from rnncore.errors import InputError
from rnncore.io import INCOMPLETE, write_zarr
from rnncore.statestore import (
    StateStore,
    last_valid_index,
    plan_increment,
    read_state_store,
    stacked_values,
    trailing_checksums,
    write_state_store,
)

NAT = np.datetime64("NaT", "ns")


def hourly(n, start="2025-01-01"):
    return pd.date_range(start, periods=n, freq="h").values


def frame(values, labels=None):
    labels = [f"s{k}" for k in range(len(values))] if labels is None else labels
    return xr.DataArray(
        values,
        dims=("series", "time"),
        coords={"series": labels, "time": hourly(values.shape[1])},
        name="y",
    )


def store_for(y, stands, window=3, **changes):
    fields = dict(
        series=y.series.values,
        stands_at=stands,
        arrays={"layer0/h": np.zeros((y.sizes["series"], 2))},
        fingerprint="abc",
        freq="h",
        variables=("y",),
        checksums=trailing_checksums(y.values, y.time.values, stands, window),
        window=window,
    )
    return StateStore(**{**fields, **changes})


# -- round trips and refusals ------------------------------------------------------


@pytest.mark.parametrize("where", ["local", "memory"])
def test_round_trip(tmp_path, memory_root, rng, where):
    root = str(tmp_path) if where == "local" else memory_root
    store = StateStore(
        series=np.array(["a", "bb", "c"]),
        stands_at=np.array(["2025-01-01T05", "NaT", "2025-01-02"], "datetime64[ns]"),
        arrays={
            "layer0/h": rng.normal(size=(3, 4)),
            "layer1/c": rng.normal(size=(3, 2)).astype(np.float32),
            "scale": rng.normal(size=(3, 2, 5)),
        },
        fingerprint="f" * 64,
        freq="h",
        variables=("y", "x"),
        checksums=np.array([1, 2**64 - 1, 0], np.uint64),
        window=24,
        attrs={"note": "test", "levels": [0.8, 0.95]},
    )
    path = write_state_store(f"{root}/state.zarr", store)
    back = read_state_store(path)
    assert back.series.tolist() == ["a", "bb", "c"]
    np.testing.assert_array_equal(back.stands_at, store.stands_at)
    np.testing.assert_array_equal(back.checksums, store.checksums)
    assert set(back.arrays) == set(store.arrays)
    for key, value in store.arrays.items():
        assert back.arrays[key].dtype == value.dtype
        np.testing.assert_array_equal(back.arrays[key], value)
    assert (back.fingerprint, back.freq, back.variables, back.window) == (
        "f" * 64,
        "h",
        ("y", "x"),
        24,
    )
    assert back.attrs == {"note": "test", "levels": [0.8, 0.95]}
    write_state_store(path, store)  # replaces the earlier store


def test_integer_labels_and_no_series(tmp_path):
    store = StateStore(
        series=np.array([], np.int64),
        stands_at=np.array([], "datetime64[ns]"),
        arrays={"h": np.zeros((0, 3))},
        fingerprint="f",
        freq="D",
        variables=("y",),
        checksums=np.array([], np.uint64),
        window=1,
    )
    back = read_state_store(write_state_store(tmp_path / "s.zarr", store))
    assert back.series.size == 0 and back.arrays["h"].shape == (0, 3)


def test_bad_store_fields():
    with pytest.raises(ValueError, match="one entry per series"):
        StateStore(
            series=np.array(["a"]),
            stands_at=np.array([NAT]),
            arrays={"h": np.zeros((2, 1))},
            fingerprint="f",
            freq="h",
            variables=("y",),
            checksums=np.zeros(1),
            window=1,
        )


def test_missing_store_is_refused(tmp_path):
    with pytest.raises(InputError, match=r"no state store at .*nothing.zarr"):
        read_state_store(tmp_path / "nothing.zarr")


def test_foreign_store_is_refused(tmp_path):
    path = write_zarr(xr.Dataset({"y": ("time", [1.0])}), tmp_path / "data.zarr")
    with pytest.raises(InputError, match=r"not a state store.*no state store marker"):
        read_state_store(path)


def test_incomplete_store_is_refused(tmp_path):
    y = frame(np.ones((2, 4)))
    path = write_state_store(tmp_path / "s.zarr", store_for(y, y.time.values[[3, 3]]))
    group = zarr.open_group(str(path), mode="r+")
    group.attrs[INCOMPLETE] = "cut"
    with pytest.raises(InputError, match=r"not a usable state store.*interrupted"):
        read_state_store(path)


# -- checksums --------------------------------------------------------------------


def test_checksums_see_the_window_only():
    values = np.arange(20.0).reshape(2, 10)
    times = hourly(10)
    stands = times[[6, 6]]
    base = trailing_checksums(values, times, stands, 3)
    inside, outside, after = values.copy(), values.copy(), values.copy()
    inside[0, 5] += 1e-12
    outside[0, 3] = -1.0
    after[1, 8] = np.nan
    assert (trailing_checksums(inside, times, stands, 3) != base).tolist() == [True, False]
    np.testing.assert_array_equal(trailing_checksums(outside, times, stands, 3), base)
    np.testing.assert_array_equal(trailing_checksums(after, times, stands, 3), base)


def test_checksums_ignore_dtype_nan_payload_and_zero_sign():
    values = np.array([[0.0, 1.5, np.nan, 2.0]])
    other = values.astype(np.float32)
    other[0, 0] = -0.0
    other.view(np.uint32)[0, 2] = 0x7FC00001  # another NaN
    times, stands = hourly(4), hourly(4)[[3]]
    np.testing.assert_array_equal(
        trailing_checksums(values, times, stands, 4), trailing_checksums(other, times, stands, 4)
    )


def test_checksums_of_nat_and_off_axis():
    times = hourly(5)
    assert trailing_checksums(np.ones((1, 5)), times, np.array([NAT]), 2).tolist() == [0]
    with pytest.raises(ValueError, match="not on the data's time axis"):
        trailing_checksums(np.ones((1, 5)), times, hourly(1, "2024-01-01"), 2)


@given(
    n=st.integers(1, 12),
    extra=st.integers(0, 5),
    window=st.integers(1, 15),
    seed=st.integers(0, 2**16),
)
def test_checksums_stable_under_appending_and_chunking(n, extra, window, seed):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(3, n + extra, 2))
    values[rng.uniform(size=values.shape) < 0.2] = np.nan
    times = hourly(n + extra)
    stands = times[rng.integers(0, n, 3)]
    short = trailing_checksums(values[:, :n], times[:n], stands, window)
    lazy = da.from_array(values, chunks=(2, max(1, n // 3), 2))
    np.testing.assert_array_equal(trailing_checksums(lazy, times, stands, window), short)


def test_last_valid_index():
    values = np.array([[1.0, np.nan, 2.0, np.nan], [np.nan] * 4, [1.0] * 4])
    assert last_valid_index(values).tolist() == [2, -1, 3]
    assert last_valid_index(da.from_array(values, chunks=(2, 3))).compute().tolist() == [2, -1, 3]
    assert last_valid_index(np.ones((2, 0, 1))).tolist() == [-1, -1]


# -- plans ---------------------------------------------------------------------------


def test_plan_classifies_series():
    y = frame(np.arange(40.0).reshape(4, 10), ["a", "b", "c", "gone"])
    stands = y.time.values[[5, 5, 7, 5]]
    store = store_for(y, stands)
    night = y.reindex(series=["c", "b", "a", "new"], fill_value=1.0)
    night.loc[{"series": "b", "time": y.time.values[4]}] = 99.0  # a late correction
    later = night.isel(time=slice(0, 3)).assign_coords(time=hourly(3, "2025-01-01T10"))
    night = xr.concat([night, later], "time")
    plan = plan_increment(store, night, fingerprint="abc", freq="h", variables=("y",))
    assert plan.series.tolist() == ["c", "b", "a", "new"]
    assert plan.start.tolist() == [8, 0, 6, 0]
    assert plan.stored.tolist() == [2, -1, 0, -1]
    assert (plan.resume, plan.cold, plan.recompute, plan.removed) == (
        ("c", "a"),
        ("new",),
        ("b",),
        ("gone",),
    )
    assert plan.n_steps == 13 and plan.steps_to_run == 5 + 13 + 7 + 13
    assert plan.summary()["series removed"] == ["gone"]


def test_plan_recomputes_series_whose_timestamp_left_the_axis():
    y = frame(np.ones((2, 6)))
    store = store_for(y, y.time.values[[1, 4]])
    later = y.isel(time=slice(2, None))  # the history was cut: s0's state is off the axis
    plan = plan_increment(store, later, fingerprint="abc", freq="h", variables=("y",))
    assert plan.recompute == ("s0",) and plan.resume == ("s1",)
    assert plan.start.tolist() == [0, 3]


def test_plan_of_a_series_with_nothing_folded_in_is_cold():
    y = frame(np.ones((1, 4)))
    plan = plan_increment(
        store_for(y, np.array([NAT])), y, fingerprint="abc", freq="h", variables=("y",)
    )
    assert plan.cold == ("s0",) and plan.start.tolist() == [0]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"fingerprint": "other"}, "fingerprint 'abc'; this run has 'other'"),
        ({"freq": "D"}, "freq 'h'; this run has 'D'"),
        ({"variables": ("y", "x")}, r"variables \('y',\); this run has \('y', 'x'\)"),
    ],
)
def test_plan_refuses_a_foreign_store(given, message):
    y = frame(np.ones((1, 4)))
    arguments = {"fingerprint": "abc", "freq": "h", "variables": ("y",), **given}
    with pytest.raises(InputError, match=message):
        plan_increment(store_for(y, y.time.values[[2]]), y, **arguments)


def test_plan_refuses_data_off_the_frequency():
    y = frame(np.ones((1, 4)))
    store = store_for(y, y.time.values[[2]])
    daily = y.assign_coords(time=pd.date_range("2025", periods=4, freq="D"))
    with pytest.raises(InputError, match="not a regular 'h' axis"):
        plan_increment(store, daily, fingerprint="abc", freq="h", variables=("y",))


def _poisoned(n_series, history, recent):
    """A lazy ``(series, time)`` array whose first ``history`` steps fail when read."""

    def poison():
        raise AssertionError("the history was read")

    bad = da.from_delayed(dask.delayed(poison)(), (n_series, history), np.float64)
    return da.concatenate([bad, da.from_array(recent, chunks=(n_series, 4))], axis=1)


def test_plan_reads_only_the_trailing_windows(rng):
    history, recent = 1000, rng.normal(size=(3, 12))
    y = xr.DataArray(
        _poisoned(3, history, recent),
        dims=("series", "time"),
        coords={"series": ["a", "b", "c"], "time": hourly(history + 12)},
        name="y",
    )
    stands = y.time.values[[history + 5, history + 8, history + 8]]
    sums = trailing_checksums(recent, y.time.values[history:], stands, 4)
    store = store_for(y.isel(time=slice(history, None)), stands, window=4, checksums=sums)
    plan = plan_increment(store, y, fingerprint="abc", freq="h", variables=("y",))
    assert plan.resume == ("a", "b", "c")
    assert plan.start.tolist() == [history + 6, history + 9, history + 9]
    assert plan.steps_checked == 12


def test_plan_over_a_dataset_of_several_variables(rng):
    ds = xr.Dataset(
        {
            "y": (("series", "time"), rng.normal(size=(2, 6))),
            "x": (("time", "series", "f"), rng.normal(size=(6, 2, 3))),
        },
        coords={"series": ["a", "b"], "time": hourly(6)},
    )
    stacked = stacked_values(ds, ("y", "x"), "time", "series")
    stands = ds.time.values[[4, 4]]
    store = StateStore(
        series=ds.series.values,
        stands_at=stands,
        arrays={},
        fingerprint="abc",
        freq="h",
        variables=("y", "x"),
        checksums=trailing_checksums(stacked, ds.time.values, stands, 2),
        window=2,
    )
    plan = plan_increment(store, ds, fingerprint="abc", freq="h", variables=("y", "x"))
    assert plan.resume == ("a", "b")
    ds["x"][3, 1, 2] = 5.0
    plan = plan_increment(store, ds, fingerprint="abc", freq="h", variables=("y", "x"))
    assert plan.resume == ("a",) and plan.recompute == ("b",)

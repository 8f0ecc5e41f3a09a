"""Incremental runs: night after night, the stores equal a full recompute on the same data."""

import shutil

import numpy as np
import pytest
import xarray as xr
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

import rnncore
from rnncore import Model
from rnncore.errors import InputError
from rnncore.incremental import DEFAULT_WINDOW, run_incremental, state_path
from rnncore.io import INCOMPLETE, open_dataset, write_zarr
from rnncore.states import pack_states
from rnncore.statestore import last_valid_index, read_state_store
from rnncore.synthetic import generate

DAY = 24
TOLERANCE = {np.float64: 1e-12, np.float32: 1e-5}


def truth(n_series, days, dtype, seed=3):
    """Hourly data with gaps, float ``dtype``."""
    ds = generate(n_series, days * DAY, seed=seed, gap_fraction=0.05, dtype=dtype)
    return ds.y


def night(y, series, days):
    """The dataset one night sees: ``series`` (labels) over the first ``days`` days."""
    return y.sel(series=series).isel(time=slice(0, days * DAY))


def check_equal_to_full(model, data, output, dtype):
    """The output store and the state store equal a full in-memory run over ``data``."""
    expected = rnncore.run(model, data.load())
    got = open_dataset(output)
    assert got.series.values.tolist() == data.series.values.tolist()
    np.testing.assert_array_equal(got.time.values, data.time.values)
    tol = TOLERANCE[dtype]
    np.testing.assert_allclose(got.output.values, expected.output.values, rtol=0, atol=tol)
    np.testing.assert_allclose(got.state.values, expected.state.values, rtol=0, atol=tol)
    store = read_state_store(state_path(output))
    layers = []
    for k, cell in enumerate(model.layers):
        parts = tuple(store.arrays[f"layer{k}/{name}"] for name in cell.state_names)
        layers.append(parts if len(parts) > 1 else parts[0])
    np.testing.assert_allclose(pack_states(model, layers), expected.state.values, rtol=0, atol=tol)
    assert store.series.tolist() == data.series.values.tolist()


def nightly(tmp_path, data, model, name="run", **options):
    """Write tonight's data to Zarr, open it lazily and run incrementally."""
    chunks = {"time": 40, "series": 3}
    ds = data.to_dataset(name="y").chunk(chunks)
    ds = open_dataset(write_zarr(ds, tmp_path / f"{name}-data.zarr", overwrite=True), chunks=chunks)
    return run_incremental(model, ds, tmp_path / f"{name}.zarr", variable="y", **options)


@pytest.mark.parametrize(
    ("cell", "hidden", "dtype"),
    [
        ("MinGRU", [4], np.float64),
        ("MinGRU", [3, 5], np.float32),
        ("LSTM", [3, 5], np.float64),
        ("GRU", [4], np.float32),
    ],
)
def test_nights_equal_a_full_recompute(tmp_path, cell, hidden, dtype):
    model = Model.init(cell, input_size=1, hidden_sizes=hidden, output_size=2, dtype=dtype)
    y = truth(8, 9, dtype)
    labels = y.series.values
    output = tmp_path / "run.zarr"

    def check(data, **expected):
        result = nightly(tmp_path, data, model)
        check_equal_to_full(model, data, output, dtype)
        for key, value in expected.items():
            assert getattr(result, key) == value, key
        return result

    def read_since(previous, data, series):
        """Series-steps of ``data`` after each of ``series``' last valid step in ``previous``."""
        last = last_valid_index(previous.sel(series=series).values)
        last = np.maximum(last, previous.sizes["time"] - DEFAULT_WINDOW)
        return int((data.sizes["time"] - 1 - last).sum())

    base = list(labels[:6])
    # night 0: no store yet: a full run
    data = night(y, base, 3)
    check(data, incremental=False, steps_read=6 * 3 * DAY)
    # night 1: one more day, the last hours of s00001 not in yet: in place
    previous, data = data, night(y, base, 4).copy()
    data[1, -5:] = np.nan
    check(data, incremental=True, in_place=True, steps_read=read_since(previous, data, base))
    # night 2: the late hours arrive with the next day: read from where s00001 stands
    previous, data = data, night(y, base, 5)
    result = check(data, in_place=True, steps_read=read_since(previous, data, base))
    assert result.plan.resume == tuple(base) and result.steps_read >= 6 * DAY + 5
    # night 3: a new series starts cold, from its full history
    grown = [*base, labels[6]]
    previous, data = data, night(y, grown, 6)
    result = check(data, in_place=False, steps_read=read_since(previous, data, base) + 6 * DAY)
    assert result.plan.cold == (labels[6],)
    # night 4: a series is removed, another corrected before its timestamp: recomputed
    kept = [s for s in grown if s != labels[2]]
    previous, data = data, night(y, kept, 7).copy()
    data[0, 6 * DAY - 3] += 1.0
    steps = read_since(previous, data, kept[1:]) + 7 * DAY
    result = check(data, in_place=False, steps_read=steps)
    assert result.plan.removed == (labels[2],) and result.plan.recompute == (labels[0],)
    # night 5: nothing changed but the day: in place again
    tonight = night(y, kept, 8).isel(time=slice(7 * DAY, None))
    previous, data = data, xr.concat([data, tonight], "time")
    check(data, incremental=True, in_place=True, steps_read=read_since(previous, data, kept))


def test_a_run_with_no_new_steps_changes_nothing(tmp_path):
    model = Model.init("MinGRU", 1, [3], 1, dtype=np.float64)
    data = night(truth(3, 2, np.float64), ["s00000", "s00001", "s00002"], 2)
    nightly(tmp_path, data, model)
    result = nightly(tmp_path, data, model)
    last = np.maximum(last_valid_index(data.values), data.sizes["time"] - DEFAULT_WINDOW)
    trailing = data.sizes["time"] - 1 - last
    assert result.in_place and result.steps_read == trailing.sum()
    check_equal_to_full(model, data, tmp_path / "run.zarr", np.float64)


def test_a_night_of_missing_steps_only(tmp_path):
    """New steps all missing (and late ones still missing): the series' runs start at
    their first value, none here; every chunk of the grown store is written all the same."""
    model = Model.init("GRU", 1, [3], 1, dtype=np.float64)
    y = truth(3, 3, np.float64).copy()
    y[:, 2 * DAY :] = np.nan
    y[1, 2 * DAY - 8 :] = np.nan
    nightly(tmp_path, night(y, y.series.values, 2), model)
    data = night(y, y.series.values, 3)
    result = nightly(tmp_path, data, model)
    assert result.in_place
    check_equal_to_full(model, data, tmp_path / "run.zarr", np.float64)


def test_full_starts_afresh(tmp_path):
    model = Model.init("MinGRU", 1, [3], 1, dtype=np.float64)
    data = night(truth(3, 3, np.float64), ["s00000", "s00001"], 3)
    nightly(tmp_path, data.isel(time=slice(0, 2 * DAY)), model)
    result = nightly(tmp_path, data, model, full=True)
    assert not result.incremental and result.reason == "asked for"
    assert result.steps_read == 2 * 3 * DAY
    check_equal_to_full(model, data, tmp_path / "run.zarr", np.float64)


def test_on_a_memory_file_system(memory_root):
    model = Model.init("GRU", 1, [3], 1, dtype=np.float64)
    y = truth(3, 3, np.float64)
    output = f"{memory_root}/run.zarr"
    for days in (2, 3):
        data = night(y, y.series.values, days)
        source = write_zarr(data.to_dataset(name="y"), f"{memory_root}/d{days}.zarr")
        result = run_incremental(model, open_dataset(source), output, variable="y")
    assert result.in_place and result.steps_read == 3 * DAY
    got = open_dataset(output)
    expected = rnncore.run(model, data.load())
    np.testing.assert_allclose(got.output.values, expected.output.values, rtol=0, atol=1e-12)


def test_a_cut_update_is_undone_by_the_next_run(tmp_path):
    model = Model.init("MinGRU", 1, [3], 1, dtype=np.float64)
    y = truth(3, 4, np.float64)
    nightly(tmp_path, night(y, y.series.values, 2), model)
    output = tmp_path / "run.zarr"
    # as if an update had grown the store and died: longer, marked incomplete
    group = zarr.open_group(str(output), mode="r+")
    group["output"].resize((3, 3 * DAY, 1))
    group["time"].resize((3 * DAY,))
    group.attrs[INCOMPLETE] = "cut"
    with pytest.raises(InputError, match="interrupted"):
        open_dataset(output)
    data = night(y, y.series.values, 4)
    result = nightly(tmp_path, data, model)
    assert result.in_place
    check_equal_to_full(model, data, output, np.float64)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("model", "fingerprint"),
        ("freq", "freq 'h'; this run has '2h'"),
        ("variable", r"variables \('y',\); this run has \('z',\)"),
    ],
)
def test_a_foreign_store_is_refused(tmp_path, change, message):
    model = Model.init("MinGRU", 1, [3], 1, dtype=np.float64)
    data = night(truth(2, 2, np.float64), ["s00000", "s00001"], 2)
    nightly(tmp_path, data.isel(time=slice(0, DAY)), model)
    ds = data.to_dataset(name="y")
    output = tmp_path / "run.zarr"
    if change == "model":
        model = Model.init("MinGRU", 1, [3], 1, dtype=np.float64, seed=1)
    elif change == "freq":
        ds = ds.isel(time=slice(0, None, 2))
    else:
        ds = ds.rename(y="z")
    with pytest.raises(InputError, match=message):
        run_incremental(model, ds, output, state=state_path(output))


def test_an_irregular_history_is_refused(tmp_path):
    """The axis is checked whole, not only where the night reads it."""
    model = Model.init("MinGRU", 1, [3], 1, dtype=np.float64)
    data = night(truth(2, 3, np.float64), ["s00000", "s00001"], 3)
    run_incremental(model, data.isel(time=slice(0, 2 * DAY)), tmp_path / "run.zarr")
    holed = data.drop_isel(time=[3])  # an hour missing from the axis, long before the night
    with pytest.raises(InputError, match=r"the data's 'time' axis: .*not a regular 'h' axis"):
        run_incremental(model, holed, tmp_path / "run.zarr", freq="h")


def test_a_missing_output_store_is_refused(tmp_path):
    model = Model.init("MinGRU", 1, [3], 1, dtype=np.float64)
    data = night(truth(2, 2, np.float64), ["s00000", "s00001"], 2)
    nightly(tmp_path, data, model)
    with pytest.raises(InputError, match=r"no output store at .*other.zarr"):
        run_incremental(
            model, data, tmp_path / "other.zarr", state=state_path(tmp_path / "run.zarr")
        )


def test_silent_series_are_read_back_no_further_than_the_window(tmp_path):
    model = Model.init("GRU", 1, [3], 1, dtype=np.float64)
    y = truth(3, 4, np.float64).copy()
    y[1, DAY:] = np.nan  # silent after its first day
    y[2] = np.nan  # never a value
    nightly(tmp_path, night(y, y.series.values, 3), model)
    data = night(y, y.series.values, 4)
    result = nightly(tmp_path, data, model)
    assert result.in_place and result.plan.resume == tuple(y.series.values)
    assert result.plan.start.tolist()[1:] == [3 * DAY - DEFAULT_WINDOW + 1] * 2
    check_equal_to_full(model, data, tmp_path / "run.zarr", np.float64)


def test_the_accessor_runs_incrementally(tmp_path):
    model = Model.init("MinGRU", 1, [3], 1, dtype=np.float64)
    data = night(truth(2, 2, np.float64), ["s00000", "s00001"], 2)
    first = data.isel(time=slice(0, DAY)).rnn.run_incremental(model, tmp_path / "a.zarr")
    second = data.rnn.run_incremental(model, tmp_path / "a.zarr")
    assert not first.incremental and second.incremental and second.in_place
    check_equal_to_full(model, data, tmp_path / "a.zarr", np.float64)


def test_a_run_cut_before_its_state_store_is_redone(tmp_path):
    model = Model.init("LSTM", 1, [3], 1, dtype=np.float64)
    y = truth(3, 4, np.float64)
    nightly(tmp_path, night(y, y.series.values, 2), model)
    state = state_path(tmp_path / "run.zarr")
    shutil.copytree(state, tmp_path / "saved.zarr")
    for data in (night(y, y.series.values, 3), night(y, y.series.values[1:], 4)):
        nightly(tmp_path, data, model)  # outputs written, then the state store lost:
        shutil.rmtree(state)
        shutil.copytree(tmp_path / "saved.zarr", state)
        result = nightly(tmp_path, data, model)
        assert result.incremental
        check_equal_to_full(model, data, tmp_path / "run.zarr", np.float64)


def test_a_cut_run_redone_on_data_that_lost_its_late_values(tmp_path):
    """A run cut after writing the outputs of late values, redone on data without them:
    the outputs it wrote there are rewritten (missing again: NaN)."""
    model = Model.init("GRU", 1, [3], 1, dtype=np.float64)
    y = truth(3, 3, np.float64)
    late = y.copy()
    late[1, 2 * DAY - 5 : 2 * DAY] = np.nan
    nightly(tmp_path, night(late, y.series.values, 2), model)
    state = state_path(tmp_path / "run.zarr")
    shutil.copytree(state, tmp_path / "saved.zarr")
    nightly(tmp_path, night(y, y.series.values, 3), model)  # the late values arrived
    shutil.rmtree(state)  # ... but the state store was not written
    shutil.copytree(tmp_path / "saved.zarr", state)
    data = night(late, y.series.values, 3)  # and they are gone again
    assert nightly(tmp_path, data, model).in_place
    check_equal_to_full(model, data, tmp_path / "run.zarr", np.float64)


@settings(max_examples=8)
@given(
    cuts=st.lists(st.integers(1, 30), min_size=1, max_size=4),
    holes=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 29)), max_size=12),
    seed=st.integers(0, 2**16),
)
def test_any_split_into_nights_equals_one_run(tmp_path_factory, cuts, holes, seed):
    """Nights ending at any steps (one step, none new, ...), with missing steps anywhere."""
    model = Model.init("GRU", 1, [3, 2], 1, dtype=np.float64, seed=seed)
    values = np.random.default_rng(seed).normal(size=(3, 30))
    for series, step in holes:
        values[series, step] = np.nan
    y = xr.DataArray(
        values,
        dims=("series", "time"),
        coords={"series": ["a", "b", "c"], "time": truth(1, 2, np.float64).time.values[:30]},
        name="y",
    )
    output = tmp_path_factory.mktemp("split") / "run.zarr"
    for end in sorted(cuts):
        run_incremental(model, y.isel(time=slice(0, end)), output, freq="h", window=4)
    data = y.isel(time=slice(0, max(cuts)))
    check_equal_to_full(model, data, output, np.float64)


def test_inputs_with_features(tmp_path):
    model = Model.init("MinGRU", 2, [3], 1, dtype=np.float64)
    ds = generate(3, 3 * DAY, seed=5, n_features=2, gap_fraction=0.05, dtype=np.float64)
    x = ds.x.copy()
    x[1, -3:, 0] = np.nan  # a missing step: any feature NaN
    for days in (2, 3):
        data = x.isel(time=slice(0, days * DAY))
        result = run_incremental(model, data, tmp_path / "x.zarr", feature_dim="feature")
    assert result.in_place
    check_equal_to_full(model, data, tmp_path / "x.zarr", np.float64)

"""A catalogue of bad input: each refused with a one-line InputError naming what is
wrong and what was expected, the input left as it was and nothing written; or handled
as documented (README, "Bad input")."""

import hashlib
import json
import os
import pickle
import re
import struct
from pathlib import Path

import numcodecs
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st

from rnncore import InputError, MinGRU, Model, ModelFileError
from rnncore.forecast import Forecaster
from rnncore.io import open_dataset, write_netcdf, write_zarr
from rnncore.longformat import from_long, read_long, to_long, write_long
from rnncore.synthetic import generate

# -- helpers ------------------------------------------------------------------------------


def table(n=3, uid="a", **columns):
    """A daily long table of one series, with ``columns`` replacing or adding columns."""
    frame = pd.DataFrame(
        {
            "unique_id": [uid] * n,
            "ds": pd.date_range("2025-01-01", periods=n),
            "y": 1.0 * np.arange(n),
        }
    )
    for name, values in columns.items():
        frame[name] = values
    return frame


def refused(call, pattern, error=InputError):
    """Run ``call``, expecting ``error`` with a one-line message matching ``pattern``."""
    with pytest.raises(error) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message, message
    assert re.search(pattern, message), message
    return message


def digest(path):
    """A hash of a file's bytes, or of every file under a directory."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    h = hashlib.sha256()
    for p in files:
        h.update(str(p.relative_to(path) if path.is_dir() else p.name).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def only(directory, *names):
    """Assert ``directory`` holds exactly ``names``: no partial output, no temporaries."""
    assert sorted(os.listdir(directory)) == sorted(names)


class Payload:
    """Unpickling this creates a marker file: proof that code from a file ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# -- long-format tables: refused ------------------------------------------------------

FRAME_CASES = [
    ("no rows", lambda: table().iloc[:0], r"no rows; expected"),
    ("missing value column", lambda: table().drop(columns="y"), r"needs columns .* it has"),
    ("missing ds", lambda: table().drop(columns="ds"), r"needs columns 'unique_id', 'ds'"),
    ("misnamed id", lambda: table().rename(columns={"unique_id": "id"}), r"it has \['id'"),
    (
        "repeated column",
        lambda: pd.concat([table(), table()[["y"]]], axis=1),
        r"columns \['y'\] appear more than once; expected unique",
    ),
    (
        "extra text column",
        lambda: table(note="x"),
        r"'note' holds non-numeric .*'x'.*expected numbers",
    ),
    (
        "non-numeric value",
        lambda: table(y=["1", "x", "3"]),
        r"'y' holds non-numeric values such as 'x' \(row 1\)",
    ),
    (
        "complex values",
        lambda: table(y=[1j, 2, 3]),
        r"'y' has dtype complex128; expected numbers \(real",
    ),
    (
        "object numbers",
        lambda: table(y=pd.Series([1.0, None, 3.0], dtype=object)),
        r"dtype object; expected numbers",
    ),
    (
        "inf",
        lambda: table(y=[1.0, np.inf, 2.0]),
        r"'y' holds inf \(row 1, unique_id 'a'\); expected finite",
    ),
    (
        "-inf float32",
        lambda: table(y=np.array([1, -np.inf, 2], np.float32)),
        r"holds -inf .*expected finite",
    ),
    ("1e300", lambda: table(y=[1.0, 1e300, 2.0]), r"holds 1e\+300 .*magnitude at most 1e\+150"),
    (
        "duplicate key",
        lambda: pd.concat([table(), table().iloc[[1]]]),
        r"\('a', 2025-01-02 00:00:00\); expected one row",
    ),
    (
        "missing id",
        lambda: table(unique_id=["a", None, "a"]),
        r"missing id \(row 1\); expected an id",
    ),
    (
        "missing timestamp",
        lambda: table(ds=["2025-01-01", None, "2025-01-03"]),
        r"missing timestamp \(row 1\)",
    ),
    (
        "numeric timestamps",
        lambda: table(ds=[1, 2, 3]),
        r"'ds' holds numbers \(int64\); expected timestamps",
    ),
    (
        "unparsable timestamps",
        lambda: table(ds=["2025-01-01", "soon", "2025-01-03"]),
        r"does not hold timestamps: .*expected timestamps",
    ),
    (
        "out-of-range year",
        lambda: table(ds=["2025-01-01", "9999-01-01", "2025-01-03"]),
        r"out of range.*expected years",
    ),
    (
        "mixed frequencies in a series",
        lambda: table(
            5, ds=["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-03 12:00", "2025-01-04"]
        ),
        r"not equally spaced .* the step is 12 hours; before it steps were 1 day",
    ),
    (
        "aware and naive timestamps",
        lambda: table(
            ds=[
                pd.Timestamp("2025-01-01", tz="UTC"),
                pd.Timestamp("2025-01-02"),
                pd.Timestamp("2025-01-03"),
            ]
        ),
        r"mixes timestamps with a time zone .* \(row 0 has, row 1 has none\); expected all",
    ),
    (
        "aware and naive strings",
        lambda: table(ds=["2025-01-01T00:00", "2025-01-02T00:00Z", "2025-01-03T00:00"]),
        r"mixes timestamps with a time zone .*row 1 has\)",
    ),
    (
        "several UTC offsets",
        lambda: table(
            ds=["2025-01-01T00:00+00:00", "2025-01-02T00:00+01:00", "2025-01-03T00:00+00:00"]
        ),
        r"mixes time zones or UTC offsets .*expected one time zone",
    ),
    (
        "one row, frequency to infer",
        lambda: table(1),
        r"at least 2 timestamps; got 1\. Pass freq=",
    ),
    (
        "a grid too large",
        lambda: pd.DataFrame(
            {
                "unique_id": ["a"] * 3 + ["b"] * 3,
                "ds": pd.to_datetime(["2025-01-01"] * 3 + ["2045-01-01"] * 3)
                + pd.to_timedelta([0, 1, 2] * 2, "ns"),
                "y": 1.0,
            }
        ),
        r"has \d+ steps; with 2 series that is more than 1e\+09 values: expected a coarser",
    ),
]


@pytest.mark.parametrize(
    ("make", "pattern"), [c[1:] for c in FRAME_CASES], ids=[c[0] for c in FRAME_CASES]
)
def test_bad_tables_are_refused_and_left_unchanged(make, pattern):
    frame = make()
    before = frame.copy(deep=True)
    refused(lambda: from_long(frame), pattern)
    assert frame.equals(before) and (frame.dtypes == before.dtypes).all()


CSV_CASES = [
    ("empty file", "", r"\.csv is empty; expected a header line such as unique_id,ds,y"),
    ("header only", "unique_id,ds,y\n", r"\.csv: the table has no rows"),
    (
        "non-numeric value",
        "unique_id,ds,y\na,2025-01-01,1\na,2025-01-02,n/a?\n",
        r"'y' holds non-numeric values such as 'n/a\?' \(row 1\)",
    ),
    (
        "misnamed column",
        "id,ds,y\na,2025-01-01,1\n",
        r"needs columns .* it has \['id', 'ds', 'y'\]",
    ),
    ("inf", "unique_id,ds,y\na,2025-01-01,inf\na,2025-01-02,1\n", r"holds inf"),
    (
        "ragged row",
        "unique_id,ds,y\na,2025-01-01,1\na,2025-01-02,1,2,3\n",
        r"cannot be read as a csv table: Error tokenizing",
    ),
    ("not text", "\x00\x01\x02", r"\.csv: a long-format table needs columns|cannot be read"),
]


@pytest.mark.parametrize(
    ("text", "pattern"), [c[1:] for c in CSV_CASES], ids=[c[0] for c in CSV_CASES]
)
def test_bad_csv_files_are_refused_and_left_unchanged(tmp_path, text, pattern):
    path = tmp_path / "in.csv"
    path.write_text(text)
    before = digest(path)
    refused(lambda: read_long(path), pattern)
    assert digest(path) == before
    only(tmp_path, "in.csv")


def test_a_truncated_parquet_file_is_refused(tmp_path):
    path = tmp_path / "in.parquet"
    table().to_parquet(path)
    path.write_bytes(path.read_bytes()[:-20])
    refused(lambda: read_long(path), r"in\.parquet cannot be read as a parquet table")


# -- long-format tables: handled as documented ----------------------------------------


def test_rows_in_any_order_give_the_same_dataset():
    frame = pd.concat([table(5, "a"), table(5, "b")])
    shuffled = frame.sample(frac=1, random_state=0)
    xr.testing.assert_identical(from_long(shuffled), from_long(frame))


@pytest.mark.parametrize(
    ("values", "dtype"),
    [
        ([1, 2, 3], "float64"),
        ([True, False, True], "float64"),
        (np.float32([1, 2, 3]), "float32"),
        (pd.array([1, None, 3], dtype="Int64"), "float64"),
    ],
    ids=["int", "bool", "float32", "nullable int"],
)
def test_integer_boolean_and_float_values_become_floats(values, dtype):
    ds = from_long(table(y=values))
    assert ds.y.dtype == dtype
    assert np.array_equal(ds.y.values[0], np.asarray(pd.Series(values), float), equal_nan=True)


def test_one_row_and_all_nan_series_are_kept_and_forecast_by_fallbacks():
    ds = generate(6, 24 * 7 * 4, seed=1)
    frame = to_long(ds, ["y"], dropna=False)
    frame = frame[(frame.unique_id != ds.series.values[0]) | (frame.ds == frame.ds.max())]
    frame.loc[frame.unique_id == ds.series.values[1], "y"] = np.nan
    read = from_long(frame, freq="h")
    one, empty = (str(s) for s in ds.series.values[:2])
    assert int(read.y.sel(series=one).count()) == 1 and int(read.y.sel(series=empty).count()) == 0
    forecast = Forecaster(6, timescales=(48.0, 336.0)).fit_predict(read)
    method = dict(
        zip(forecast.series.values.tolist(), forecast.method.values.tolist(), strict=True)
    )
    assert method[one] in ("naive", "seasonal_naive") and method[empty] == "none"
    assert np.isfinite(forecast["mean"].sel(series=one)).all()
    assert (
        forecast.all_missing.sel(series=empty)
        and np.isnan(forecast["mean"].sel(series=empty)).all()
    )


def test_series_ids_are_kept_as_given_through_csv(tmp_path):
    ids = ["a b", "c/d", "é€ 日本", "007", " padded "]
    frame = pd.concat([table(3, uid) for uid in ids])
    ds = from_long(frame)
    assert sorted(ds.series.values.tolist()) == sorted(ids)
    path = write_long(ds, tmp_path / "ids.csv")
    assert sorted(read_long(path).series.values.tolist()) == sorted(ids)


def test_iso_timestamps_of_mixed_precision_parse():
    ds = from_long(table(ds=["2025-01-01", "2025-01-02 00:00", "2025-01-03T00:00:00"]))
    assert ds.attrs["freq"] == "D" and ds.sizes["time"] == 3


def test_one_time_zone_is_dropped_keeping_local_times():
    stamps = pd.date_range("2025-03-29", periods=3, tz="Europe/Berlin")
    ds = from_long(table(ds=stamps))
    assert (
        ds.time.values.tolist()
        == pd.date_range("2025-03-29", periods=3).as_unit("ns").values.tolist()
    )


# -- hypothesis: random malformed tables ------------------------------------------------

_NAMES = st.sampled_from(["unique_id", "ds", "y", "x", "id", "", "y "])
_IDS = st.one_of(st.sampled_from(["a", "b", "a b", "c/d", "é"]), st.integers(-2, 2), st.none())
_STAMPS = st.one_of(
    st.sampled_from(
        [
            "2025-01-01",
            "2025-01-02",
            "2025-01-03 12:00",
            "2025-01-04T00:00Z",
            "2025-02-01",
            "2025-01-05T00:00+01:00",
            "soon",
            "",
            "9999-01-01",
            "1999-12-31",
        ]
    ),
    st.datetimes(
        min_value=pd.Timestamp("1990-01-01").to_pydatetime(),
        max_value=pd.Timestamp("2030-01-01").to_pydatetime(),
    ).map(pd.Timestamp),
    st.integers(-3, 3),
    st.none(),
)
_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-10, 10),
    st.booleans(),
    st.none(),
    st.sampled_from(["1.5", "x", "", "inf"]),
    st.complex_numbers(max_magnitude=10),
)


@st.composite
def long_frames(draw):
    n = draw(st.integers(0, 8))
    names = draw(st.lists(_NAMES, min_size=1, max_size=4))
    if draw(st.booleans()):  # mostly the right layout, so that deeper checks are reached
        names = ["unique_id", "ds", "y", *names[:1]]
    columns = {}
    for k, name in enumerate(names):
        pool = {"unique_id": _IDS, "ds": _STAMPS}.get(name, _VALUES)
        if draw(st.booleans()):  # one kind per column, as files give
            pool = {"unique_id": _IDS, "ds": _STAMPS}.get(name, st.floats(allow_nan=True))
        columns[k] = (name, draw(st.lists(pool, min_size=n, max_size=n)))
    frame = pd.DataFrame({k: values for k, (_, values) in columns.items()})
    frame.columns = [name for name, _ in columns.values()]
    return frame


def valid(ds):
    assert ds.sizes["series"] >= 1 and ds.sizes["time"] >= 1
    assert ds.indexes["time"].is_monotonic_increasing and ds.indexes["series"].is_unique
    for var in ds.data_vars.values():
        assert var.dims == ("series", "time") and var.dtype.kind == "f"
        assert not np.isinf(var.values).any()


@given(frame=long_frames(), freq=st.sampled_from([None, "D", "h"]))
def test_random_tables_give_a_valid_dataset_or_an_input_error(frame, freq):
    before = frame.copy(deep=True)
    try:
        valid(from_long(frame, freq=freq))
    except InputError as err:
        assert "\n" not in str(err)
    assert frame.equals(before)


@given(frame=long_frames())
def test_random_csv_files_give_a_valid_dataset_or_an_input_error(tmp_path_factory, frame):
    path = tmp_path_factory.mktemp("csv") / "t.csv"
    frame.to_csv(path, index=False)
    try:
        valid(read_long(path))
    except InputError as err:
        assert "\n" not in str(err)


# -- datasets on disk ---------------------------------------------------------------------


@pytest.fixture
def dataset():
    ds = xr.Dataset(
        {"y": (("series", "time"), np.arange(40.0).reshape(4, 10))},
        coords={"series": list("abcd"), "time": pd.date_range("2025", periods=10)},
    )
    ds.y.encoding["chunks"] = (2, 5)
    return ds


def test_a_zarr_store_missing_a_chunk_is_refused(tmp_path, dataset):
    path = write_zarr(dataset, tmp_path / "a.zarr")
    (path / "y" / "c" / "1" / "1").unlink()
    before = digest(path)
    refused(lambda: open_dataset(path), r"variable 'y' has 3 of its 4 chunks; expected all")
    assert digest(path) == before


def test_a_truncated_netcdf_file_is_refused(tmp_path, dataset):
    path = write_netcdf(dataset, tmp_path / "a.nc")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    before = digest(path)
    refused(lambda: open_dataset(path), r"a\.nc cannot be read as a netcdf dataset: .*truncated")
    assert digest(path) == before


def test_a_zarr_array_of_pickled_objects_is_never_unpickled(tmp_path):
    store, marker = tmp_path / "p.zarr", tmp_path / "MARKER"
    (store / "y").mkdir(parents=True)
    (store / ".zgroup").write_text(json.dumps({"zarr_format": 2}))
    (store / "y" / ".zarray").write_text(
        json.dumps(
            {
                "zarr_format": 2,
                "shape": [1],
                "chunks": [1],
                "dtype": "|O",
                "compressor": None,
                "fill_value": None,
                "order": "C",
                "filters": [{"id": "pickle", "protocol": 5}],
            }
        )
    )
    (store / "y" / ".zattrs").write_text(json.dumps({"_ARRAY_DIMENSIONS": ["x"]}))
    payload = np.empty(1, object)
    payload[0] = Payload(marker)
    (store / "y" / "0").write_bytes(numcodecs.Pickle().encode(payload))
    refused(lambda: open_dataset(store), r"p\.zarr cannot be read as a zarr dataset")
    assert not marker.exists()


def test_a_failed_write_leaves_no_partial_output(tmp_path, dataset):
    bad = dataset.assign(note=("series", np.array([{}, 1, "x", None], object)))
    with pytest.raises((TypeError, ValueError)):
        write_zarr(bad, tmp_path / "o.zarr")
    with pytest.raises(ValueError, match="'time' coordinate"):
        write_long(dataset.drop_vars("time"), tmp_path / "o.csv")
    only(tmp_path)


# -- model and forecaster files -------------------------------------------------------


@pytest.fixture
def model_file(tmp_path):
    model = Model.init(MinGRU, input_size=2, hidden_sizes=[4], output_size=1)
    return model.save(tmp_path / "m.safetensors")


def edit_header(path, edit, target):
    """Rewrite the safetensors JSON header of ``path`` through ``edit`` into ``target``."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    edit(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    Path(target).write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n :])
    return target


def edit_config(key, value):
    def edit(header):
        config = json.loads(header["__metadata__"]["config"])
        config["layers"][0][key] = value
        header["__metadata__"]["config"] = json.dumps(config)

    return edit


def set_meta(key, value):
    def edit(header):
        header["__metadata__"][key] = value

    return edit


def reshape(header):
    header["layers.0.weight"]["shape"] = [8, 3]


def renamed(header):
    header["layers.0.extra"] = header.pop("readout.bias")


MODEL_FILE_CASES = [
    (
        "truncated",
        lambda p, t: t.write_bytes(p.read_bytes()[:-40]),
        r"not a readable safetensors file \(truncated or corrupt\?\)",
    ),
    ("empty", lambda p, t: t.write_bytes(b""), r"not a readable safetensors file"),
    (
        "foreign bytes",
        lambda p, t: t.write_bytes(os.urandom(64)),
        r"not a readable safetensors file",
    ),
    (
        "huge header length",
        lambda p, t: t.write_bytes(struct.pack("<Q", 2**62) + p.read_bytes()[8:]),
        r"not a readable safetensors file",
    ),
    (
        "foreign safetensors",
        lambda p, t: edit_header(p, lambda h: h.pop("__metadata__"), t),
        r"not an rnnflow model file \(format=None, kind=None\)",
    ),
    (
        "another kind",
        lambda p, t: edit_header(p, set_meta("kind", "forecaster"), t),
        r"not an rnnflow model file .*kind='forecaster'",
    ),
    (
        "newer version",
        lambda p, t: edit_header(p, set_meta("format_version", "99"), t),
        r"format version '99'; this rnnflow reads up to 1",
    ),
    (
        "config not JSON",
        lambda p, t: edit_header(p, set_meta("config", "{layers: oops"), t),
        r"no valid JSON config in its metadata",
    ),
    (
        "config a list",
        lambda p, t: edit_header(p, set_meta("config", "[1, 2]"), t),
        r"config is a JSON list; expected a JSON object",
    ),
    (
        "config without layers",
        lambda p, t: edit_header(p, set_meta("config", "{}"), t),
        r"does not describe a valid model: 'layers'",
    ),
    (
        "unknown cell",
        lambda p, t: edit_header(p, edit_config("type", "Magic"), t),
        r"unknown cell type 'Magic'; known:",
    ),
    (
        "sizes edited",
        lambda p, t: edit_header(p, edit_config("hidden_size", 5), t),
        r"arrays have \(input_size, hidden_size\) = \(2, 4\); the metadata says \(2, 5\)",
    ),
    (
        "unknown option",
        lambda p, t: edit_header(p, edit_config("options", {"evil": 1}), t),
        r"does not describe a valid model",
    ),
    (
        "options a list",
        lambda p, t: edit_header(p, edit_config("options", [1]), t),
        r"does not describe a valid model",
    ),
    ("shape edited", lambda p, t: edit_header(p, reshape, t), r"not a readable safetensors file"),
    (
        "array renamed",
        lambda p, t: edit_header(p, renamed, t),
        r"does not describe a valid model|belong to no part",
    ),
    (
        "pickle",
        lambda p, t: t.write_bytes(pickle.dumps(Payload(p.parent / "MARKER"))),
        r"is a Python pickle .*never loads.*expected a safetensors file",
    ),
]


@pytest.mark.parametrize(
    ("make", "pattern"), [c[1:] for c in MODEL_FILE_CASES], ids=[c[0] for c in MODEL_FILE_CASES]
)
def test_bad_model_files_are_refused_and_left_unchanged(model_file, make, pattern):
    target = model_file.parent / "bad.safetensors"
    make(model_file, target)
    before = digest(target)
    refused(lambda: Model.load(target), pattern, ModelFileError)
    assert digest(target) == before
    assert not (model_file.parent / "MARKER").exists()


@pytest.fixture(scope="module")
def forecaster():
    return Forecaster(6, timescales=(48.0, 336.0)).fit(generate(4, 24 * 7 * 3, seed=2))


@pytest.mark.parametrize("payload", ["pickle", "torch zip"])
def test_a_pickle_where_a_forecaster_file_is_expected_is_never_unpickled(tmp_path, payload):
    path, marker = tmp_path / "f.safetensors", tmp_path / "MARKER"
    data = pickle.dumps(Payload(marker))
    path.write_bytes(data if payload == "pickle" else b"PK\x03\x04" + data)
    refused(lambda: Forecaster.load(path), r"is a Python pickle .*never loads", ModelFileError)
    assert not marker.exists()
    assert isinstance(ModelFileError("x"), InputError)


def test_a_hand_edited_forecaster_file_is_refused(tmp_path, forecaster):
    path = forecaster.save(tmp_path / "f.safetensors")

    def edit(header):
        config = json.loads(header["__metadata__"]["config"])
        config["settings"]["horizon"] = -1
        header["__metadata__"]["config"] = json.dumps(config)

    target = edit_header(path, edit, tmp_path / "g.safetensors")
    refused(
        lambda: Forecaster.load(target),
        r"does not describe a valid forecaster.*horizon",
        ModelFileError,
    )


def test_an_unfitted_forecaster_saves_nothing(tmp_path):
    with pytest.raises(RuntimeError, match="not fitted"):
        Forecaster(6).save(tmp_path / "f.safetensors")
    only(tmp_path)


# -- models and forecasters applied to wrong data, and bad arguments -------------------


def test_a_model_applied_to_the_wrong_number_of_features_is_refused():
    model = Model.init(MinGRU, input_size=2, hidden_sizes=[4], output_size=1)
    x = np.zeros((5, 3, 3), np.float32)
    refused(
        lambda: model(x), r"x has 3 features \(shape \(5, 3, 3\)\); MinGRU expects input_size=2"
    )
    refused(lambda: model(x[0]), r"x has 2 dimensions .* expected 3: \(time, batch, feature\)")


def test_a_forecaster_applied_to_other_exogenous_columns_is_refused(forecaster):
    data = generate(4, 24 * 7 * 3, seed=2)
    data["temperature"] = data.y * 0.0
    other = Forecaster(6, exog=["temperature"], timescales=(48.0, 336.0))
    other._fitted = forecaster._fitted  # fitted with no exogenous columns
    refused(
        lambda: other.predict(data),
        r"exogenous columns are \['temperature'\]; the forecaster was fitted with \[\]",
    )


ARGUMENT_CASES = [
    ("horizon 0", lambda f: Forecaster(0), r"horizon must be an integer of at least 1; got 0"),
    (
        "horizon negative",
        lambda f: Forecaster(-3),
        r"horizon must be an integer of at least 1; got -3",
    ),
    (
        "predict horizon 0",
        lambda f: f.predict(generate(4, 24 * 7 * 3, seed=2), 0),
        r"horizon must be .* at least 1; got 0",
    ),
    (
        "forecast h negative",
        lambda f: f.forecast(to_long(generate(2, 24 * 7 * 3), ["y"]), h=-1),
        r"h must be an integer of at least 1; got -1",
    ),
    (
        "level 0",
        lambda f: Forecaster(6, levels=[0.0]),
        r"levels must be one or more numbers in \(0, 1\); got \(0\.0,\)",
    ),
    ("level 1", lambda f: Forecaster(6, levels=[0.5, 1.0]), r"in \(0, 1\); got \(0\.5, 1\.0\)"),
    ("level as percent", lambda f: Forecaster(6, levels=[80]), r"in \(0, 1\); got \(80\.0,\)"),
    (
        "percent 0",
        lambda f: f.forecast(to_long(generate(2, 24 * 7 * 3), ["y"]), level=[0]),
        r"percentages in \(0, 100\); got \[0\]",
    ),
    (
        "percent 100",
        lambda f: f.forecast(to_long(generate(2, 24 * 7 * 3), ["y"]), level=[80, 100]),
        r"in \(0, 100\); got \[80, 100\]",
    ),
    (
        "percent as fraction",
        lambda f: f.forecast(to_long(generate(2, 24 * 7 * 3), ["y"]), level=[-0.9]),
        r"in \(0, 100\)",
    ),
]


@pytest.mark.parametrize(
    ("call", "pattern"), [c[1:] for c in ARGUMENT_CASES], ids=[c[0] for c in ARGUMENT_CASES]
)
def test_bad_horizons_and_levels_are_refused(forecaster, call, pattern):
    refused(lambda: call(forecaster), pattern, ValueError)

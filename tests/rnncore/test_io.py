import math
import tempfile
import warnings
from pathlib import Path
from types import SimpleNamespace

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from zarr.errors import UnstableSpecificationWarning

import rnncore.io
import rnncore.storage
from rnncore.io import COMPLETE, INCOMPLETE, open_dataset, write_netcdf, write_zarr
from rnncore.synthetic import generate

WRITERS = {"zarr": write_zarr, "nc": write_netcdf}


@pytest.fixture(params=sorted(WRITERS))
def fmt(request):
    """The format under test: its file suffix, which also picks its writer."""
    return request.param


def write(ds, path, **kwargs):
    return WRITERS[Path(path).suffix.lstrip(".")](ds, path, **kwargs)


def sample(**kwargs):
    options = {"seed": 3, "n_features": 2, "n_all_nan": 1, "gap_fraction": 0.2, **kwargs}
    return generate(9, 60, **options)


SAMPLE = sample()


def failing(ds, bad_block=1):
    """``ds`` with a ``y`` whose Dask graph raises on one block, after others computed."""

    def block(x, block_id=None):
        if block_id[0] == bad_block:
            raise RuntimeError("disk on fire")
        return x

    y = da.map_blocks(block, ds.y.data.rechunk({0: 3}), dtype=ds.y.dtype)
    return ds.assign(y=(ds.y.dims, y))


def listing(directory):
    return sorted(p.name for p in Path(directory).iterdir())


def test_round_trip_is_identical(tmp_path, fmt):
    ds = sample()
    path = write(ds, tmp_path / f"data.{fmt}")
    assert path == tmp_path / f"data.{fmt}"
    opened = open_dataset(path)
    assert all(isinstance(v.data, da.Array) for v in opened.data_vars.values())
    xr.testing.assert_identical(opened.load(), ds)
    assert listing(tmp_path) == [f"data.{fmt}"]  # no temporary left behind


def test_round_trip_of_lazy_data_and_across_formats(tmp_path, fmt):
    ds = sample(chunks={"series": 4, "time": 25})
    first = open_dataset(write(ds, tmp_path / f"a.{fmt}"))
    other = "nc" if fmt == "zarr" else "zarr"
    second = open_dataset(write(first, tmp_path / f"b.{other}"))
    third = open_dataset(write(second, tmp_path / f"c.{fmt}"))
    xr.testing.assert_identical(third.load(), ds.compute())


def test_empty_axis_round_trips(tmp_path, fmt):
    ds = xr.Dataset({"y": (("series", "time"), np.zeros((3, 0), np.float32))})
    opened = open_dataset(write(ds, tmp_path / f"empty.{fmt}"))
    assert opened.y.chunks == ((3,), (0,))
    xr.testing.assert_identical(opened.load(), ds)


def test_zarr_store_records_completion_and_open_drops_the_markers(tmp_path):
    path = write_zarr(sample(), tmp_path / "a.zarr")
    attrs = zarr.open_group(path, mode="r").attrs
    assert COMPLETE in attrs and INCOMPLETE not in attrs
    assert attrs["seed"] == 3
    opened = open_dataset(path)
    assert COMPLETE not in opened.attrs and opened.attrs["seed"] == 3


def test_strings_are_written_in_a_specified_zarr_dtype(tmp_path):
    ds = sample().assign(label=("series", np.array([f"label {i}" for i in range(9)])))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnstableSpecificationWarning)
        path = write_zarr(ds, tmp_path / "a.zarr")
    assert zarr.open_group(path, mode="r")["label"].metadata.zarr_format == 3
    xr.testing.assert_identical(open_dataset(path).load(), ds)


def test_floats_get_the_fast_codec_unless_their_encoding_names_one(tmp_path):
    ds = sample()
    ds["z"] = ds.y.copy()
    ds.z.encoding["compressors"] = (zarr.codecs.ZstdCodec(level=1),)
    group = zarr.open_group(write_zarr(ds, tmp_path / "a.zarr"), mode="r")
    (codec,) = group["y"].compressors
    assert (codec.cname.value, codec.shuffle.value, codec.typesize) == ("lz4", "shuffle", 4)
    assert group["z"].compressors == (zarr.codecs.ZstdCodec(level=1),)
    xr.testing.assert_identical(open_dataset(tmp_path / "a.zarr").load(), ds)


def test_writers_do_not_modify_the_input(tmp_path, fmt):
    ds = sample(chunks={"series": 5})
    ds.y.encoding["chunks"] = (5, 20)
    before = ds.copy(deep=True)
    encodings = {k: dict(v.encoding) for k, v in ds.variables.items()}
    write(ds, tmp_path / f"a.{fmt}")
    xr.testing.assert_identical(ds, before)
    assert ds.attrs == before.attrs and INCOMPLETE not in ds.attrs
    assert {k: dict(v.encoding) for k, v in ds.variables.items()} == encodings
    assert ds.series.dtype.kind == "U" and isinstance(ds.y.data, da.Array)


def test_third_party_zarr_store_opens(tmp_path):
    ds = xr.Dataset({"y": (("series", "time"), np.arange(12.0).reshape(3, 4))})
    ds.to_zarr(tmp_path / "plain.zarr", consolidated=False)
    xr.testing.assert_identical(open_dataset(tmp_path / "plain.zarr").load(), ds)


def check_alignment(opened, storage, target):
    """Every Dask chunk (but the last) a multiple of each variable's storage chunk; the
    largest chunk within ``target`` (or one chunk of storage) and, unless it holds the
    whole data, above half of it."""
    for name, var in opened.data_vars.items():
        for dim, sizes in zip(var.dims, var.chunks, strict=True):
            assert all(size % storage[name][dim] == 0 for size in sizes[:-1]), (name, dim)
    x = opened.x
    largest = x.dtype.itemsize * math.prod(sizes[0] for sizes in x.chunks)
    base = {
        dim: min(math.lcm(*(storage[v][dim] for v in storage if dim in storage[v])), size)
        for dim, size in x.sizes.items()
    }
    assert largest <= max(target, x.dtype.itemsize * math.prod(base.values()))
    assert all(len(sizes) == 1 for sizes in x.chunks) or largest > target / 2


@settings(max_examples=15)
@given(
    series=st.integers(1, 9),
    time=st.integers(4, 60),
    x_series=st.integers(1, 9),
    x_time=st.integers(4, 60),
    target=st.integers(100, 20_000),
    fmt=st.sampled_from(sorted(WRITERS)),
)
def test_auto_chunks_are_aligned_with_storage(series, time, x_series, x_time, target, fmt):
    ds = SAMPLE.copy()
    ds.y.encoding = {"chunks" if fmt == "zarr" else "chunksizes": (series, time)}
    ds.x.encoding = {"chunks" if fmt == "zarr" else "chunksizes": (x_series, x_time, 2)}
    storage = {"y": {"series": series, "time": time}}
    storage["x"] = {"series": x_series, "time": x_time, "feature": 2}
    with tempfile.TemporaryDirectory() as tmp:
        opened = open_dataset(write(ds, Path(tmp) / f"a.{fmt}"), target_chunk_bytes=target)
        check_alignment(opened, storage, target)
        xr.testing.assert_identical(opened.load(), SAMPLE)


def test_auto_chunks_grow_along_time_then_series(tmp_path):
    ds = xr.Dataset({"y": (("series", "time"), np.zeros((30, 200), np.float32))})
    ds.y.encoding["chunks"] = (7, 10)
    path = write_zarr(ds, tmp_path / "a.zarr")
    small = open_dataset(path, target_chunk_bytes=2000).y.chunks  # 7 x 70 x 4 bytes = 1960
    assert small[0][:4] == (7, 7, 7, 7) and small[1][:2] == (70, 70)
    wider = open_dataset(path, target_chunk_bytes=12000).y.chunks  # 14 x 200 x 4 = 11200
    assert wider == ((14, 14, 2), (200,))
    assert open_dataset(path).y.chunks == ((30,), (200,))


def test_contiguous_netcdf_grows_from_single_elements(tmp_path):
    ds = xr.Dataset({"y": (("series", "time"), np.zeros((50, 400), np.float64))})
    path = write_netcdf(ds, tmp_path / "a.nc")
    assert open_dataset(path, target_chunk_bytes=8000).y.chunks == ((2,) * 25, (400,))


def test_explicit_chunks_are_passed_through(tmp_path, fmt):
    path = write(sample(chunks={"series": 3, "time": 20}), tmp_path / f"a.{fmt}")
    opened = open_dataset(path, chunks={"time": 40, "series": -1})
    assert opened.y.chunks == ((9,), (40, 20))
    with pytest.raises(ValueError, match="'auto' or a mapping"):
        open_dataset(path, chunks="big")
    with pytest.raises(TypeError, match="'auto' or a mapping"):
        open_dataset(path, chunks=10)


def test_failed_write_leaves_nothing(tmp_path, fmt):
    target = tmp_path / f"a.{fmt}"
    with pytest.raises(RuntimeError, match="disk on fire"):
        write(failing(sample(chunks={"series": 3})), target)
    assert listing(tmp_path) == []
    with pytest.raises(FileNotFoundError):
        open_dataset(target)


def test_failed_overwrite_keeps_the_old_data(tmp_path, fmt):
    old = sample(seed=1)
    target = write(old, tmp_path / f"a.{fmt}")
    with pytest.raises(RuntimeError, match="disk on fire"):
        write(failing(sample(chunks={"series": 3})), target, overwrite=True)
    xr.testing.assert_identical(open_dataset(target).load(), old)
    assert listing(tmp_path) == [target.name]


def test_killed_zarr_write_leaves_only_a_hidden_store_that_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(rnncore.storage, "_remove", lambda path: None)  # as if killed: no cleanup
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_zarr(failing(sample(chunks={"series": 3})), tmp_path / "a.zarr")
    (leftover,) = tmp_path.iterdir()
    assert leftover.name.startswith(".a.zarr.tmp-")
    assert INCOMPLETE in zarr.open_group(leftover, mode="r").attrs
    with pytest.raises(ValueError, match="interrupted"):
        open_dataset(leftover)
    with pytest.raises(FileNotFoundError, match=r"a\.zarr"):
        open_dataset(tmp_path / "a.zarr")


def test_zarr_interrupted_before_completion_is_refused(tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(rnncore.storage, "_remove", lambda path: None)
    # The data are written, the marker is never flipped.
    monkeypatch.setattr(rnncore.io, "zarr", SimpleNamespace(open_group=crash))
    with pytest.raises(KeyboardInterrupt):
        write_zarr(sample(), tmp_path / "a.zarr")
    monkeypatch.undo()
    (leftover,) = tmp_path.iterdir()
    xr.testing.assert_identical(xr.open_zarr(leftover, consolidated=False).y.load(), sample().y)
    with pytest.raises(ValueError, match=INCOMPLETE):
        open_dataset(leftover)


def test_existing_target_needs_overwrite(tmp_path, fmt):
    target = write(sample(seed=1), tmp_path / f"a.{fmt}")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write(sample(seed=2), target)
    xr.testing.assert_identical(open_dataset(target).load(), sample(seed=1))
    write(sample(seed=2), target, overwrite=True)
    xr.testing.assert_identical(open_dataset(target).load(), sample(seed=2))
    assert listing(tmp_path) == [target.name]


def test_zarr_overwrites_a_file_and_creates_parents(tmp_path):
    (tmp_path / "a.zarr").write_text("not a store")
    write_zarr(sample(), tmp_path / "a.zarr", overwrite=True)
    write_zarr(sample(), tmp_path / "deep" / "er" / "b.zarr")
    assert open_dataset(tmp_path / "a.zarr").y.shape == (9, 60)
    assert open_dataset(tmp_path / "deep" / "er" / "b.zarr").y.shape == (9, 60)


def test_netcdf_path_needs_a_netcdf_suffix(tmp_path):
    with pytest.raises(ValueError, match=r"\.nc"):
        write_netcdf(sample(), tmp_path / "a.zarr")
    assert listing(tmp_path) == []


def test_missing_path_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.zarr.*Zarr store.*NetCDF"):
        open_dataset(tmp_path / "nope.zarr")


@pytest.mark.parametrize(
    ("name", "make", "match"),
    [
        ("a.nc", lambda p: p.write_bytes(b"garbage" * 100), "cannot be read as a netcdf"),
        ("a.csv", lambda p: p.write_text("a,b\n1,2\n"), "without a NetCDF suffix"),
        ("a.zarr", lambda p: p.mkdir(), "cannot be read as a zarr"),
        ("b.zarr", lambda p: (p.mkdir(), (p / "zarr.json").write_text("{oops")), "zarr"),
    ],
)
def test_unreadable_files_are_named(tmp_path, name, make, match):
    make(tmp_path / name)
    with pytest.raises(ValueError, match=match) as exc:
        open_dataset(tmp_path / name)
    assert str(tmp_path / name) in str(exc.value)

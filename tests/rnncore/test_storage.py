"""Remote storage through fsspec: datasets, tables and model files at ``memory://`` URLs.

fsspec's memory file system is process-global (Dask worker processes cannot see
it), so everything here runs in-process, Dask on its threaded scheduler.
"""

import importlib.util
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from fsspec.implementations.memory import MemoryFileSystem

import rnncore.storage
from rnncore.io import COMPLETE, INCOMPLETE, open_dataset, write_netcdf, write_zarr
from rnncore.longformat import read_long, write_long, write_table
from rnncore.serialization import ModelFileError, read_arrays, write_arrays
from rnncore.storage import join, locate, read_bytes, with_suffix, write_file, write_store
from rnncore.synthetic import generate


def objects(url: str) -> list[str]:
    """The objects under ``url``, relative to it."""
    where = locate(url)
    return sorted(p[len(where.path) + 1 :] for p in where.fs.find(where.path))


def sample(seed: int = 0, **kwargs) -> xr.Dataset:
    return generate(6, 48, seed=seed, **kwargs)


def failing(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with a Dask-backed variable whose last chunk fails to compute."""

    def boom(block, block_info=None):
        if block_info[0]["chunk-location"][0] == block_info[0]["num-chunks"][0] - 1:
            raise RuntimeError("disk on fire")
        return block

    return ds.assign(y=ds.y.copy(data=ds.y.data.map_blocks(boom, dtype=ds.y.dtype)))


# -- datasets -------------------------------------------------------------------------


def test_zarr_round_trip_at_a_memory_url(memory_root):
    ds = sample(chunks={"series": 3})
    url = f"{memory_root}/out/a.zarr"
    assert write_zarr(ds, url) == url
    opened = open_dataset(url)
    assert opened.y.chunks is not None
    xr.testing.assert_identical(opened.load(), ds.compute())
    # no temporary left beside it
    assert objects(f"{memory_root}/out") == [f"a.zarr/{p}" for p in objects(url)]
    assert "zarr.json" in objects(url)


def test_zarr_overwrite_at_a_memory_url_replaces_the_store(memory_root):
    url = f"{memory_root}/a.zarr"
    write_zarr(sample(seed=1), url)
    with pytest.raises(FileExistsError, match="already exists"):
        write_zarr(sample(seed=2), url)
    new = sample(seed=2, n_features=1)
    write_zarr(new, url, overwrite=True)
    xr.testing.assert_identical(open_dataset(url).load(), new)
    assert all(not name.startswith(".") for name in objects(memory_root))


def test_netcdf_round_trip_at_a_memory_url(memory_root):
    ds = sample()
    url = f"{memory_root}/a.nc"
    assert write_netcdf(ds, url) == url
    xr.testing.assert_identical(open_dataset(url).load(), ds)
    assert objects(memory_root) == ["a.nc"]


def test_a_missing_url_says_no_dataset(memory_root):
    with pytest.raises(FileNotFoundError, match=f"no dataset at {memory_root}/missing.zarr"):
        open_dataset(f"{memory_root}/missing.zarr")


def test_a_file_url_is_local_and_renamed_into_place(tmp_path):
    url = f"file://{tmp_path}/a.zarr"
    assert write_zarr(sample(), url) == tmp_path / "a.zarr"
    xr.testing.assert_identical(open_dataset(url).load(), sample())
    assert [p.name for p in tmp_path.iterdir()] == ["a.zarr"]


@pytest.mark.skipif(importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed")
def test_an_s3_url_without_s3fs_names_the_package_to_install():
    with pytest.raises(ImportError, match=r"pip install s3fs"):
        open_dataset("s3://bucket/data.zarr")
    with pytest.raises(ImportError, match=r"s3fs"):
        write_table(pd.DataFrame({"a": [1]}), "s3://bucket/t.csv")


def test_an_unknown_protocol_is_refused():
    with pytest.raises(ValueError, match="Protocol not known"):
        open_dataset("nosuchprotocol://bucket/data.zarr")


# -- the atomic guarantee on an object store -------------------------------------------


def test_a_failed_zarr_write_leaves_the_old_store_and_no_temporary(memory_root):
    url = f"{memory_root}/a.zarr"
    old = sample(seed=1)
    write_zarr(old, url)
    before = objects(memory_root)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_zarr(failing(sample(chunks={"series": 3})), url, overwrite=True)
    assert objects(memory_root) == before
    xr.testing.assert_identical(open_dataset(url).load(), old)


def test_the_store_is_copied_with_its_root_document_last(memory_root, monkeypatch):
    url = f"{memory_root}/a.zarr"
    write_zarr(sample(seed=1), url)
    events = []
    copy, rm_file = MemoryFileSystem.cp_file, MemoryFileSystem.rm_file

    def spy_copy(self, path1, path2, **kwargs):
        events.append(("copy", path2.rsplit("/a.zarr/", 1)[-1]))
        return copy(self, path1, path2, **kwargs)

    def spy_rm_file(self, path):
        events.append(("rm", path.rsplit("/", 1)[-1]))
        return rm_file(self, path)

    monkeypatch.setattr(MemoryFileSystem, "cp_file", spy_copy)
    monkeypatch.setattr(MemoryFileSystem, "rm_file", spy_rm_file)
    write_zarr(sample(seed=2), url, overwrite=True)
    monkeypatch.undo()
    copies = [name for kind, name in events if kind == "copy"]
    assert copies[-1] == "zarr.json" and copies.count("zarr.json") == 1
    assert events[0] == ("rm", "zarr.json")  # the old store stops opening first
    assert open_dataset(url).attrs == sample(seed=2).attrs


def test_a_copy_cut_short_leaves_a_store_that_is_refused_then_replaced(memory_root, monkeypatch):
    url = f"{memory_root}/a.zarr"
    copy = MemoryFileSystem.cp_file

    def cut(self, path1, path2, **kwargs):
        if path2.endswith("/a.zarr/zarr.json"):
            raise KeyboardInterrupt  # killed before the root document lands
        return copy(self, path1, path2, **kwargs)

    monkeypatch.setattr(MemoryFileSystem, "cp_file", cut)
    with pytest.raises(KeyboardInterrupt):
        write_zarr(sample(), url)
    monkeypatch.undo()
    assert "zarr.json" not in objects(url) and "y/zarr.json" in objects(url)
    with pytest.raises(ValueError, match=r"no root document 'zarr\.json'"):
        open_dataset(url)
    write_zarr(sample(seed=3), url, overwrite=True)
    xr.testing.assert_identical(open_dataset(url).load(), sample(seed=3))


def test_a_killed_remote_write_leaves_a_hidden_temporary_marked_incomplete(
    memory_root, monkeypatch
):
    monkeypatch.setattr(rnncore.storage, "_remove_remote", lambda where: None)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_zarr(failing(sample(chunks={"series": 3})), f"{memory_root}/a.zarr")
    (leftover,) = {name.split("/")[0] for name in objects(memory_root)}
    assert leftover.startswith(".a.zarr.tmp-")
    with pytest.raises(ValueError, match=INCOMPLETE):
        open_dataset(f"{memory_root}/{leftover}")


def test_the_completion_marker_is_not_among_the_attributes(memory_root):
    url = write_zarr(sample(), f"{memory_root}/a.zarr")
    assert COMPLETE not in open_dataset(url).attrs


def test_write_store_and_write_file_refuse_an_existing_target_unless_overwrite(memory_root):
    url = f"{memory_root}/f.txt"
    write_file(url, lambda tmp: Path(tmp).write_text("one"))
    with pytest.raises(FileExistsError):
        write_file(url, lambda tmp: Path(tmp).write_text("two"), overwrite=False)
    with pytest.raises(FileExistsError):
        write_store(url, lambda tmp: None)
    write_file(url, lambda tmp: Path(tmp).write_text("two"))
    assert locate(url).fs.cat_file(locate(url).path) == b"two"


def test_a_failed_file_write_leaves_nothing_at_a_url(memory_root):
    def fail(tmp):
        Path(tmp).write_text("half")
        raise RuntimeError("cut")

    with pytest.raises(RuntimeError, match="cut"):
        write_file(f"{memory_root}/f.json", fail)
    assert not locate(memory_root).exists() or objects(memory_root) == []


def test_a_failed_file_write_leaves_nothing_locally(tmp_path):
    def fail(tmp: str) -> None:
        Path(tmp).write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_file(tmp_path / "out.json", fail)
    assert list(tmp_path.iterdir()) == []
    assert write_file(tmp_path / "a" / "b.txt", lambda t: Path(t).write_text("ok")).read_text()


# -- tables and model files --------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_table_round_trip_at_a_memory_url(memory_root, suffix):
    ds = generate(3, 24, seed=4)
    url = f"{memory_root}/tables/t{suffix}"
    assert write_long(ds, url) == url
    back = read_long(url)
    np.testing.assert_allclose(back.y.values, ds.y.values)
    assert objects(f"{memory_root}/tables") == [f"t{suffix}"]
    if suffix == ".csv":
        assert pd.read_csv(url).columns.tolist()[:2] == ["unique_id", "ds"]


def test_a_missing_table_url_is_not_found(memory_root):
    with pytest.raises(FileNotFoundError, match=f"no long-format table at {memory_root}/t.csv"):
        read_long(f"{memory_root}/t.csv")


def test_model_file_round_trip_at_a_memory_url(memory_root):
    url = f"{memory_root}/m.safetensors"
    assert write_arrays(url, {"w": np.arange(3.0)}, "model", {"a": 1}) == url
    arrays, config = read_arrays(url, "model")
    np.testing.assert_array_equal(arrays["w"], np.arange(3.0))
    assert config == {"a": 1}
    with pytest.raises(ModelFileError, match="does not exist"):
        read_arrays(f"{memory_root}/none.safetensors", "model")


# -- names -----------------------------------------------------------------------------


def test_join_and_with_suffix_keep_urls_urls():
    assert join("memory://a/", "b.zarr") == "memory://a/b.zarr"
    assert join("out", "b.zarr") == Path("out/b.zarr")
    assert with_suffix("gs://b/m.safetensors", ".metrics.json") == "gs://b/m.metrics.json"
    assert with_suffix("m.safetensors", ".metrics.json") == Path("m.metrics.json")


def test_read_bytes_reads_a_path_a_file_url_and_a_memory_url(memory_root, tmp_path):
    local = write_file(tmp_path / "a.bin", lambda t: Path(t).write_bytes(b"local"))
    assert read_bytes(local) == read_bytes(local.as_uri()) == b"local"
    url = write_file(f"{memory_root}/a.bin", lambda t: Path(t).write_bytes(b"remote"))
    assert read_bytes(url) == b"remote"
    for missing in (tmp_path / "none.bin", f"{memory_root}/none.bin"):
        with pytest.raises(FileNotFoundError):
            read_bytes(missing)


def test_model_files_at_a_url_read_whole_from_many_threads_at_once(memory_root):
    """fsspec's memory file system gives every reader one shared file object: the forecast
    tasks of one in-process cluster load the forecaster at once, and each must see it whole."""
    arrays = {"w": np.arange(200_000, dtype=np.float64)}
    url = str(write_arrays(f"{memory_root}/m.safetensors", arrays, "model", {"n": 1}))
    with ThreadPoolExecutor(8) as pool:
        loaded = list(pool.map(lambda _: read_arrays(url, "model"), range(32)))
    for got, config in loaded:
        np.testing.assert_array_equal(got["w"], arrays["w"])
        assert config == {"n": 1}


def test_remove_debris_clears_temporaries_and_puts_back_a_set_aside_store(tmp_path):
    """What killed writers leave: temporaries go; a store set aside between the two renames
    of an install (its target absent) comes back; one whose target exists goes."""
    from rnncore.storage import remove_debris

    (tmp_path / ".a.zarr.tmp-0123abcd").mkdir()
    (tmp_path / ".b.json.tmp-89abcdef").write_text("{")
    (tmp_path / ".c.zarr.old-00000000").mkdir()
    (tmp_path / ".c.zarr.old-00000000" / "zarr.json").write_text("{}")
    (tmp_path / "d.zarr").mkdir()
    (tmp_path / ".d.zarr.old-11111111").mkdir()
    (tmp_path / ".e.json.tmp-nothex!").write_text("not ours")
    cleared = remove_debris(tmp_path)
    assert sorted(p.name for p in cleared) == ["a.zarr", "b.json", "c.zarr", "d.zarr"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".e.json.tmp-nothex!", "c.zarr", "d.zarr"]
    assert (tmp_path / "c.zarr" / "zarr.json").read_text() == "{}"
    assert remove_debris(tmp_path / "missing") == []


def test_the_same_arrays_and_config_save_the_same_bytes(tmp_path):
    """safetensors writes its metadata in hash-map order; rnnflow's files sort it."""
    arrays = {"w": np.arange(6.0).reshape(2, 3), "b": np.ones(3, np.float32)}
    config = {"layers": [8, 4], "cell": "MinGRU", "seed": 3}
    saved = [
        write_arrays(tmp_path / f"m{i}.safetensors", arrays, "model", config).read_bytes()
        for i in range(5)
    ]
    assert len(set(saved)) == 1
    read, read_config = read_arrays(tmp_path / "m0.safetensors", "model")
    assert read_config == config and np.array_equal(read["w"], arrays["w"])

"""Datasets on disk: Zarr stores and NetCDF files, read lazily and never half-written.

Reading
-------
:func:`open_dataset` opens a Zarr store (a directory) or a NetCDF file (``.nc``,
``.nc4``, ``.netcdf``) lazily, as Dask arrays whose chunks are whole multiples of
the storage chunks, grown along ``time`` and ``series`` to about a target size, so
that no storage chunk is read by two tasks.

Paths and URLs
--------------
Every function takes a local path or an fsspec URL (``s3://bucket/data.zarr``,
``gs://...``, ``memory://...``, ``file://...``) with ``storage_options`` for its
file system; Zarr stores are read and written through Zarr's own fsspec support,
NetCDF files through fsspec file objects (see :mod:`rnncore.storage`).

Writing policy
--------------
An interrupted write never leaves anything at the target that looks complete:

1. The data are written to a hidden temporary sibling of the target
   (``.NAME.tmp-XXXXXXXX``, in the same directory or prefix), as every rnnflow
   writer does (:mod:`rnncore.storage`).
2. A Zarr store carries the attribute ``rnnflow_incomplete`` while it is written;
   once every chunk is on disk it is replaced by ``rnnflow_complete`` (the UTC
   time of completion).
3. The finished temporary is installed on the target. Locally it is renamed: a
   NetCDF file replaces an existing file atomically (``os.replace``); an existing
   Zarr store is first renamed aside (``.NAME.old-XXXXXXXX``) and deleted once the
   new one is in place: at every moment the target is the old complete store, the
   new one, or (for the instant between two renames) absent. An object store has
   no rename: the old store's root document (``zarr.json``) is deleted first, then
   the rest of it, and the new store is copied with its root document last, so the
   target is the old complete store, no store (while the copy runs), or the new
   complete store; :func:`open_dataset` refuses a remote Zarr store without its
   root document. A NetCDF file is moved onto its target as one object.

A write that fails removes its temporary, once the Dask tasks still running have
finished (under Dask's threaded scheduler; on a distributed cluster such a task may
write into the temporary after it is gone and leave part of it behind). A process
killed outright leaves its temporary behind, hidden, and :func:`open_dataset`
refuses any store that carries ``rnnflow_incomplete``. Stores with neither marker
(written by other tools) open as usual; the markers are storage bookkeeping and are
not among the attributes :func:`open_dataset` returns. Writers racing for the same
target are not guarded against: the last install wins.

Zarr stores are written in Zarr format 3 without consolidated metadata (not part
of the format 3 specification); fixed-width strings, which have no format 3
specification either, are stored as variable-length strings. The dataset given to
a writer is never modified. Floating-point variables are compressed with Blosc
(LZ4, byte shuffle; Zarr format 2's default) unless their ``encoding`` names
``compressors``: model outputs are full-precision floats, which LZ4 shrinks by
about 15% and Zstandard (Zarr 3's default) by 16%, writing at a third of the speed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dask
import dask.threaded
import numpy as np
import xarray as xr
import zarr
from dask.base import get_scheduler
from dask.delayed import Delayed
from zarr.codecs import BloscCodec

from .arrays import to_numpy
from .chunked import scheduler_slots
from .errors import InputError, one_line
from .storage import ROOT_DOCUMENT, Location, locate, write_file, write_store

__all__ = [
    "COMPLETE",
    "FLOAT_CODEC",
    "INCOMPLETE",
    "NETCDF_SUFFIXES",
    "mark_store",
    "open_dataset",
    "write_netcdf",
    "write_zarr",
]

#: Attribute of a Zarr store whose write finished: the UTC time it did.
COMPLETE = "rnnflow_complete"
#: Attribute of a Zarr store being written; still there, the write was interrupted.
INCOMPLETE = "rnnflow_incomplete"

NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf")
#: The codec floating-point variables are written with unless their encoding names one.
FLOAT_CODEC = BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")
# The dimensions along which open_dataset grows chunks beyond the storage chunks.
_GROW_DIMS = ("time", "series")
_ENGINES = {"zarr": {"engine": "zarr", "consolidated": False}, "netcdf": {"engine": "h5netcdf"}}


def open_dataset(
    path: str | os.PathLike[str],
    *,
    chunks: str | Mapping[str, Any] = "auto",
    target_chunk_bytes: int = 100 * 2**20,
    storage_options: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Open a Zarr store or NetCDF file lazily, with Dask chunks aligned to storage.

    Parameters
    ----------
    path
        A Zarr store (a directory) or a NetCDF file (``.nc``, ``.nc4``, ``.netcdf``):
        a local path or an fsspec URL.
    chunks
        ``"auto"``: along every dimension a multiple of the storage chunk (of every
        variable), grown along ``time`` then ``series`` while a chunk of the largest
        variable stays within ``target_chunk_bytes`` (or up to the whole axis);
        other dimensions keep the storage chunk. Unchunked (contiguous) NetCDF
        variables count as having storage chunks of 1. A mapping from dimension to
        chunk size is passed to :func:`xarray.open_dataset` as it is.
    target_chunk_bytes
        The size a chunk grows to under ``chunks="auto"``.
    storage_options
        Options of the file system of a URL (credentials, endpoint, ...).

    Returns
    -------
    xarray.Dataset
        Dask-backed; nothing is read but the metadata and the index coordinates.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    rnncore.errors.InputError
        A :class:`ValueError`: if ``path`` is neither a directory nor a NetCDF file,
        cannot be read as one (a truncated NetCDF file, a Zarr array of Python
        objects, which Zarr would decode with pickle and is never read), is a Zarr
        store whose write was interrupted (on an object store: one without its root
        document ``zarr.json``), or a store written by rnnflow with a chunk missing
        (rnnflow writes every chunk, so a missing one is damage, not fill values;
        stores of other tools may omit chunks, read as the fill value).
    ImportError
        If the URL's protocol needs a package that is not installed (``s3fs``, ...).

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> import xarray as xr
    >>> ds = xr.Dataset({"y": (("series", "time"), np.zeros((4, 1000), np.float32))})
    >>> ds.y.encoding["chunks"] = (2, 100)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = write_zarr(ds, f"{tmp}/demo.zarr")
    ...     open_dataset(path, target_chunk_bytes=2000).y.chunks
    ((2, 2), (200, 200, 200, 200, 200))
    """
    where = locate(path, storage_options)
    kind = _kind(where)
    path = where.returned()
    if isinstance(chunks, str) and chunks != "auto":
        raise ValueError(f"chunks must be 'auto' or a mapping of dimension to size; got {chunks!r}")
    if not isinstance(chunks, str | Mapping):
        raise TypeError(f"chunks must be 'auto' or a mapping of dimension to size; got {chunks!r}")
    try:
        probe = xr.open_dataset(_source(where, kind), chunks=None, **_options(where, kind))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(f"{path} cannot be read as a {kind} dataset: {one_line(err)}") from err
    with probe:
        if INCOMPLETE in probe.attrs:
            raise InputError(
                f"{path} is marked {INCOMPLETE!r}: its write was interrupted and its data "
                "may be partial; write it again"
            )
        if kind == "zarr" and COMPLETE in probe.attrs:
            _check_chunks(where, path)
        if chunks == "auto":
            chunks = _aligned_chunks(probe, target_chunk_bytes)
    ds = xr.open_dataset(_source(where, kind), chunks=dict(chunks), **_options(where, kind))
    ds.attrs = {k: v for k, v in ds.attrs.items() if k != COMPLETE}
    return ds


def write_zarr(
    ds: xr.Dataset,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> Path | str:
    """Write ``ds`` to a Zarr store at ``path``, atomically (see the module docstring).

    Dask-backed variables are computed and written chunk by chunk, never loaded whole;
    Dask chunks become the storage chunks unless a variable's ``encoding["chunks"]``
    says otherwise.

    Parameters
    ----------
    ds
        The dataset; it is not modified.
    path
        The store to create, a local path or an fsspec URL; missing parent
        directories are created.
    overwrite
        Replace an existing file or store at ``path``, once the new store is complete.
    storage_options
        Options of the file system of a URL (credentials, endpoint, ...).

    Returns
    -------
    pathlib.Path or str
        ``path``: a Path if it is local, else the URL.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is false.

    Examples
    --------
    >>> import tempfile
    >>> import xarray as xr
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = write_zarr(xr.Dataset({"y": ("time", [1.0, 2.0])}), f"{tmp}/a.zarr")
    ...     open_dataset(path).y.values.tolist()
    [1.0, 2.0]
    """
    where = locate(path, storage_options)
    options = where.open_options

    def write(tmp: str) -> None:
        _run(
            _for_zarr(ds).to_zarr(
                tmp,
                mode="w-",
                consolidated=False,
                zarr_format=3,
                compute=False,
                # every chunk is written: no scan of each for all-fill values first
                write_empty_chunks=True,
                **options,
            )
        )
        mark_store(zarr.open_group(tmp, mode="r+", zarr_format=3, **options), complete=True)

    return write_store(where, write, overwrite=overwrite)


def mark_store(
    group: zarr.Group,
    *,
    complete: bool,
    writer: str = "rnncore.io",
    attrs: Mapping[str, Any] | None = None,
) -> None:
    """Set a Zarr group's completion marker (:data:`COMPLETE`, the time) or its
    incompleteness marker (:data:`INCOMPLETE`, naming ``writer``), removing the other,
    with ``attrs`` added."""
    drop = INCOMPLETE if complete else COMPLETE
    kept = {k: v for k, v in group.attrs.items() if k != drop}
    now = datetime.now(UTC).isoformat(timespec="seconds")
    marker = {COMPLETE: now} if complete else {INCOMPLETE: f"set while {writer} writes"}
    group.attrs.put({**kept, **(attrs or {}), **marker})


def write_netcdf(
    ds: xr.Dataset,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> Path | str:
    """Write ``ds`` to a NetCDF file at ``path`` (h5netcdf), atomically.

    The file is written to a hidden temporary sibling and moved onto ``path`` only
    once complete (:func:`rnncore.storage.write_file`; for a URL it is written
    locally, then uploaded). Dask-backed variables are computed and written chunk
    by chunk, never loaded whole.

    Parameters
    ----------
    ds
        The dataset; it is not modified.
    path
        The file to create, ending in ``.nc``, ``.nc4`` or ``.netcdf`` (so that
        :func:`open_dataset` knows it), a local path or an fsspec URL; missing
        parent directories are created.
    overwrite
        Replace an existing file at ``path``, once the new file is complete.
    storage_options
        Options of the file system of a URL (credentials, endpoint, ...).

    Returns
    -------
    pathlib.Path or str
        ``path``: a Path if it is local, else the URL.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is false.
    ValueError
        If ``path`` does not end in a NetCDF suffix.

    Examples
    --------
    >>> import tempfile
    >>> import xarray as xr
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = write_netcdf(xr.Dataset({"y": ("time", [1.0, 2.0])}), f"{tmp}/a.nc")
    ...     open_dataset(path).y.values.tolist()
    [1.0, 2.0]
    """
    if Path(path).suffix.lower() not in NETCDF_SUFFIXES:
        raise ValueError(
            f"NetCDF path {str(path)!r} must end in one of {', '.join(NETCDF_SUFFIXES)}"
        )
    return write_file(
        path,
        lambda tmp: _run(_on_host(ds).to_netcdf(tmp, engine="h5netcdf", compute=False)),
        overwrite=overwrite,
        storage_options=storage_options,
    )


# -- internals ----------------------------------------------------------------------


def _kind(where: Location) -> str:
    """``"zarr"`` or ``"netcdf"``, from what is at ``where``."""
    expected = f"a Zarr store (a directory) or a NetCDF file ({', '.join(NETCDF_SUFFIXES)})"
    path = where.returned()
    if not (where.local.exists() if where.local is not None else where.exists()):
        raise FileNotFoundError(f"no dataset at {path}; expected {expected}")
    if where.is_dir():
        if where.local is None and not where.child(ROOT_DOCUMENT).exists():
            raise InputError(
                f"{path} has no root document {ROOT_DOCUMENT!r}: not a Zarr store (format 3), "
                "or one whose copy into place was cut; write it again"
            )
        return "zarr"
    if Path(where.name).suffix.lower() in NETCDF_SUFFIXES:
        return "netcdf"
    raise InputError(f"{path} is a file without a NetCDF suffix; expected {expected}")


def _check_chunks(where: Location, path: Path | str) -> None:
    """Refuse a Zarr store written by rnnflow (``write_empty_chunks=True``: every chunk
    is on disk) with a chunk missing, which Zarr would read as fill values."""
    group = zarr.open_group(where.target, mode="r", **where.open_options)
    for name, array in group.arrays():
        present, expected = array.nchunks_initialized, array.nchunks
        if present < expected:
            raise InputError(
                f"{path}: variable {name!r} has {present} of its {expected} chunks; expected "
                "all (rnnflow writes every chunk): the store is damaged, write it again"
            )


def _source(where: Location, kind: str) -> Any:
    """What :func:`xarray.open_dataset` reads: the local path, the URL of a remote Zarr
    store, or a file object of a remote NetCDF file."""
    if where.local is not None:
        return where.local
    return where.url if kind == "zarr" else where.open("rb")


def _options(where: Location, kind: str) -> dict[str, Any]:
    """Keywords of :func:`xarray.open_dataset` for a dataset of ``kind`` at ``where``."""
    if where.local is None and kind == "zarr":
        return {**_ENGINES[kind], "storage_options": where.storage_options}
    return _ENGINES[kind]


def _aligned_chunks(ds: xr.Dataset, target_bytes: int) -> dict[str, int]:
    """Chunk sizes by dimension: multiples of every variable's storage chunks, grown
    along ``time`` then ``series`` while the largest variable's chunk fits ``target_bytes``."""
    variables = [v for name, v in ds.variables.items() if name not in ds.xindexes]
    sizes = {dim: max(size, 1) for dim, size in ds.sizes.items()}  # a chunk of 1 if empty
    chunks = dict.fromkeys(sizes, 1)
    for var in variables:
        for dim, size in var.encoding.get("preferred_chunks", {}).items():
            chunks[dim] = math.lcm(chunks[dim], size)
    chunks = {dim: min(size, sizes[dim]) for dim, size in chunks.items()}
    for dim in _GROW_DIMS:
        if dim in chunks:
            unit = max(
                (v.dtype.itemsize * math.prod(chunks[d] for d in v.dims) for v in variables),
                default=1,
            )
            chunks[dim] = min(chunks[dim] * max(1, target_bytes // unit), sizes[dim])
    return chunks


def _on_host(ds: xr.Dataset) -> xr.Dataset:
    """A shallow copy of ``ds`` whose device (CuPy) arrays come to host memory.

    Dask-backed ones chunk by chunk, as they are written: the file formats take
    NumPy arrays only.
    """
    out = ds.copy(deep=False)
    for name, var in ds.data_vars.items():
        if var.chunks is None:  # in memory, or loaded whole by the write anyway
            out[name] = var.copy(data=var.to_numpy())
        elif not isinstance(var.data._meta, np.ndarray):
            meta = np.empty((0,) * var.ndim, var.dtype)
            out[name] = var.copy(data=var.data.map_blocks(to_numpy, meta=meta))
    return out


def _for_zarr(ds: xr.Dataset) -> xr.Dataset:
    """A shallow copy of ``ds`` ready for Zarr format 3: on the host, the incomplete
    marker set, fixed-width strings turned into variable-length ones, floats given the
    fast codec."""
    out = _on_host(ds)
    out.attrs = {
        **ds.attrs,
        INCOMPLETE: "set while rnncore.io writes; still here: the write was cut",
    }
    for name, var in ds.variables.items():
        if var.dtype.kind == "U":  # labels: small, so loaded (xarray must see object strings)
            strings = var.compute().astype(object)
            strings.encoding = {k: v for k, v in var.encoding.items() if k != "dtype"}
            out[name] = strings
        elif var.dtype.kind == "f" and "compressors" not in var.encoding:
            out[name].encoding = {**var.encoding, "compressors": (FLOAT_CODEC,)}
    return out


def _run(write: Delayed) -> None:
    """Compute a deferred write, and if it fails, return only once its tasks have stopped.

    Dask's threaded scheduler raises at the first failed task without waiting for the
    tasks still running, which would go on writing into a temporary being removed:
    run them in a pool of our own, which is drained before the error propagates.
    """
    if get_scheduler(collections=[write]) is not dask.threaded.get:
        write.compute()
        return
    with ThreadPoolExecutor(scheduler_slots()) as pool:
        write.compute(scheduler="threads", pool=pool)

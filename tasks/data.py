"""Tasks that find and describe the input: convert long tables, inspect, plan chunks.

They read metadata only and return small descriptions (:class:`DatasetInfo`,
:class:`ChunkPlan`), never the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from prefect import task
from prefect.cache_policies import NO_CACHE

from rnncore.io import open_dataset, write_zarr
from rnncore.longformat import is_long_format, read_long
from rnncore.storage import join
from rnncore.timeaxis import infer_freq

from .runtime import io_task

__all__ = [
    "CHUNK_BYTES",
    "LONG_INPUT_CHUNKS",
    "TARGET_BLOCKS",
    "ChunkPlan",
    "DatasetInfo",
    "inspect_dataset",
    "plan_chunks",
    "prepare_input",
]

#: Storage chunks of the Zarr store a long-format table is converted to.
LONG_INPUT_CHUNKS = {"series": 500, "time": 2160}
#: Size Dask chunks grow to from the storage chunks (:func:`rnncore.io.open_dataset`).
CHUNK_BYTES = 4 * 2**20
#: Series blocks a plan aims for when the series per task are not given.
TARGET_BLOCKS = 8


@dataclass(frozen=True)
class DatasetInfo:
    """What a run needs to know of its dataset, read from its metadata.

    Attributes
    ----------
    path
        The Zarr store or NetCDF file.
    variable
        The data variable the run reads.
    n_series, n_steps
        Sizes of its ``series`` and ``time`` dimensions.
    start, end
        First and last timestamps (ISO 8601).
    storage_series
        The storage chunk size along ``series``.
    series_chunk, time_chunk
        Dask chunk sizes: the storage chunks grown (time first) to about
        :data:`CHUNK_BYTES`, as :func:`rnncore.io.open_dataset` grows them.
    freq
        The pandas frequency of the time axis: the dataset's ``freq`` attribute, else
        the one inferred from its timestamps; ``None`` if it has none.
    """

    path: str
    variable: str
    n_series: int
    n_steps: int
    start: str
    end: str
    storage_series: int
    series_chunk: int
    time_chunk: int
    freq: str | None = None


@dataclass(frozen=True)
class ChunkPlan:
    """How a run splits a dataset: Dask chunks, and the blocks of series tasks take.

    Attributes
    ----------
    n_series
        Series in the dataset.
    series, time
        Dask chunk sizes, whole multiples of the storage chunks.
    block
        Series per task, a whole multiple of ``series``.
    """

    n_series: int
    series: int
    time: int
    block: int

    @property
    def chunks(self) -> dict[str, int]:
        """The chunks to open the dataset with (:func:`rnncore.io.open_dataset`)."""
        return {"series": self.series, "time": self.time}

    @property
    def values_per_chunk(self) -> int:
        """Values (series x time) in a chunk."""
        return self.series * self.time

    @property
    def blocks(self) -> list[tuple[int, int]]:
        """``(start, stop)`` of each block of series."""
        return [
            (start, min(start + self.block, self.n_series))
            for start in range(0, self.n_series, self.block)
        ]


@io_task()
def prepare_input(data: str, workdir: str, freq: str | None = None) -> str:
    """The Zarr store or NetCDF file to read: ``data`` itself, or, for a CSV or Parquet
    long-format table (``unique_id, ds, y`` and any exogenous columns), a Zarr store
    converted from it in ``workdir``.

    ``freq`` is the table's pandas frequency (``"MS"``, ``"W-SUN"``, ...): the series
    are placed on its grid, steps without a row left NaN; ``None`` infers it.

    Raises
    ------
    ValueError
        If the table is not in long format, or ``freq`` is ``None`` and its timestamps
        are not regular at any frequency (the message names ``--freq``).
    """
    if not is_long_format(data):
        return data
    ds = read_long(data, freq=freq).chunk(LONG_INPUT_CHUNKS)
    return str(write_zarr(ds, join(workdir, "input.zarr"), overwrite=True))


@io_task()
def inspect_dataset(path: str, variable: str) -> DatasetInfo:
    """Open ``path`` lazily and describe it.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If it cannot be read, was left incomplete by an interrupted write, lacks
        ``variable``, or ``variable`` lacks a ``series`` or ``time`` dimension.
    """
    ds = open_dataset(path, target_chunk_bytes=CHUNK_BYTES)
    if variable not in ds.data_vars:
        raise ValueError(f"{path} has no variable {variable!r}; it holds {sorted(ds.data_vars)}")
    array = ds[variable]
    missing = [d for d in ("series", "time") if d not in array.dims]
    if missing:
        raise ValueError(f"{path}: {variable!r} has dims {array.dims}; it lacks {missing}")
    chunks = dict(zip(array.dims, array.chunks, strict=True))
    storage = array.encoding.get("preferred_chunks", {})
    time = ds["time"].to_index()
    freq = ds.attrs.get("freq")
    if freq is None and time.size >= 2:
        try:
            freq = infer_freq(time.values)
        except (TypeError, ValueError):
            freq = None  # not regular: the forecaster says where, or freq is given
    return DatasetInfo(
        path=path,
        variable=variable,
        n_series=array.sizes["series"],
        n_steps=array.sizes["time"],
        start=time[0].isoformat(),
        end=time[-1].isoformat(),
        storage_series=storage.get("series", chunks["series"][0]),
        series_chunk=chunks["series"][0],
        time_chunk=chunks["time"][0],
        freq=freq,
    )


@task(cache_policy=NO_CACHE)
def plan_chunks(info: DatasetInfo, series_per_task: int | None = None) -> ChunkPlan:
    """Blocks of about ``series_per_task`` series (``None``: about :data:`TARGET_BLOCKS`
    blocks), whole storage chunks; Dask chunks as :class:`DatasetInfo` has them, cut
    along ``series`` to fit in a block.

    Raises
    ------
    ValueError
        If ``series_per_task`` is not positive.
    """
    if series_per_task is not None and series_per_task < 1:
        raise ValueError(f"series_per_task must be at least 1; got {series_per_task}")
    wanted = series_per_task or math.ceil(info.n_series / TARGET_BLOCKS)
    block = info.storage_series * math.ceil(wanted / info.storage_series)
    series = min(info.series_chunk, block)
    block = min(series * math.ceil(block / series), info.n_series)
    return ChunkPlan(n_series=info.n_series, series=series, time=info.time_chunk, block=block)

"""The training data: inputs and targets as arrays, the validation split and the batches.

Every random choice is drawn from a generator seeded by the run's ``seed`` and what it
is for (the split; the order of the series in epoch ``e``), never from a generator
carried from one epoch to the next: the batches of an epoch depend on ``(seed,
epoch)`` alone, so a resumed run draws exactly what an uninterrupted one does.
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

import dask
import dask.array as da
import numpy as np
import xarray as xr
from dask.base import is_dask_collection

from ..arrays import to_numpy
from ..errors import InputError
from ..labelled import _select, _time_major
from ..model import Model

__all__ = [
    "SPLITS",
    "Split",
    "batches",
    "fingerprint",
    "split",
    "targets_by_window",
    "time_major",
    "window_of",
    "windows",
]

#: What a validation set holds out: whole series, or the last steps of every series.
SPLITS = ("series", "time")


class Split(NamedTuple):
    """Which values train and which validate.

    Attributes
    ----------
    series
        The indices of the training series, ascending.
    steps
        The number of training steps (the first ones of every training series).
    train, validation
        Boolean masks of the values each loss counts, broadcasting against ``(time,
        series, 1)``: ``(1, series, 1)`` for held-out series, ``(time, 1, 1)`` for held-out
        steps (``validation`` is ``None`` without a validation set).
    """

    series: np.ndarray
    steps: int
    train: np.ndarray
    validation: np.ndarray | None


def time_major(
    model: Model,
    data: xr.DataArray | xr.Dataset,
    target: str | xr.DataArray,
    variable: str | None,
    dims: tuple[str, str, str | None],
) -> tuple[Any, Any]:
    """Inputs ``(time, series, input_size)`` and targets ``(time, series, output_size)``.

    In the model's dtype. ``target`` names a variable of the Dataset ``data`` (the
    inputs are then the other variable, or ``variable``) or is a DataArray
    ``(series, time[, output])``; ``dims`` are the time, series and feature dimensions.
    Dask-backed inputs stay lazy, and the targets become Dask arrays chunked like them
    along time and series; other inputs are loaded into memory, and the targets with them.
    """
    time_dim, series_dim, feature_dim = dims
    if isinstance(target, str):
        if not isinstance(data, xr.Dataset) or target not in data.data_vars:
            raise ValueError(f"target={target!r} names no data variable of data")
        target, data = data[target], data.drop_vars(target)
    elif not isinstance(target, xr.DataArray):
        raise TypeError(f"target must be a variable name or a DataArray; got {type(target)}")
    inputs = _select(data, variable)
    for dim in (series_dim, time_dim):
        _check_aligned(inputs, target, dim)
    x = _time_major(inputs, model.input_size, time_dim, series_dim, feature_dim)
    y = _time_major(target, model.output_size, time_dim, series_dim, None, role="output_size")
    if not is_dask_collection(x):
        return np.asarray(x, dtype=model.dtype), np.asarray(y, dtype=model.dtype)
    x = x.astype(model.dtype).rechunk({2: -1})
    return x, da.asarray(y).astype(model.dtype).rechunk((*x.chunks[:2], -1))


def _check_aligned(inputs: xr.DataArray, target: xr.DataArray, dim: str) -> None:
    if dim not in target.dims:
        raise InputError(f"the target has dimensions {list(target.dims)}; it lacks {dim!r}")
    if target.sizes[dim] != inputs.sizes.get(dim):
        raise InputError(
            f"the target has {target.sizes[dim]} {dim!r} entries; the data has "
            f"{inputs.sizes.get(dim)}"
        )
    if dim in target.indexes and dim in inputs.indexes:
        if not target.indexes[dim].equals(inputs.indexes[dim]):
            raise InputError(f"the target's {dim!r} coordinate differs from the data's")


def split(n_steps: int, n_series: int, validation: float | None, how: str, seed: int) -> Split:
    """Hold out ``validation`` (a fraction) of the series, or of the last steps.

    Series are drawn from ``seed``; at least one is held out and one trains, and so
    for steps.

    Examples
    --------
    >>> s = split(10, 5, 0.4, "series", seed=0)
    >>> len(s.series), s.steps, s.validation.ravel().tolist()
    (3, 10, [False, False, True, False, True])
    >>> s = split(10, 5, 0.2, "time", seed=0)
    >>> s.series.tolist(), s.steps
    ([0, 1, 2, 3, 4], 8)
    """
    if validation is None:
        return Split(np.arange(n_series), n_steps, np.ones((1, 1, 1), bool), None)
    size = n_series if how == "series" else n_steps
    held = max(1, round(validation * size))
    if held >= size:
        raise ValueError(
            f"validation={validation} holds out all {size} {how if how == 'series' else 'steps'}; "
            "nothing is left to train on"
        )
    if how == "series":
        order = np.random.default_rng([seed, 0]).permutation(n_series)
        train = np.ones((1, n_series, 1), bool)
        train[:, order[:held]] = False
        series = np.sort(order[held:])
    else:
        train = np.ones((n_steps, 1, 1), bool)
        train[n_steps - held :] = False
        series = np.arange(n_series)
    return Split(series, n_steps - held if how == "time" else n_steps, train, ~train)


def batches(series: np.ndarray, size: int | None, seed: int, epoch: int) -> list[np.ndarray]:
    """The series of each batch of ``epoch``: a shuffle drawn from ``(seed, epoch)``.

    ``size`` series per batch; ``None`` for one batch of them all.

    Examples
    --------
    >>> [b.tolist() for b in batches(np.arange(5), 2, seed=0, epoch=1)]
    [[0, 4], [1, 3], [2]]
    >>> [b.tolist() for b in batches(np.arange(5), None, seed=0, epoch=1)]
    [[0, 1, 2, 3, 4]]
    """
    size = size or len(series)
    order = np.random.default_rng([seed, 1, epoch]).permutation(series)
    return [np.sort(order[i : i + size]) for i in range(0, len(order), size)]


def windows(steps: int, window: int | None) -> list[slice]:
    """Consecutive windows of ``window`` steps over ``steps`` (one if ``window`` is None).

    Examples
    --------
    >>> windows(10, 4)
    [slice(0, 4, None), slice(4, 8, None), slice(8, 10, None)]
    """
    size = window or steps
    return [slice(t, min(t + size, steps)) for t in range(0, steps, size)]


def window_of(array: Any, span: slice, series: np.ndarray) -> Any:
    """``array[span, series]`` (a view, for all the series); ``series`` ascending, unique."""
    return array[span] if len(series) == array.shape[1] else array[span, series]


def targets_by_window(y: Any, spans: list[slice]) -> np.ndarray:
    """``(window, series)``: whether each series has a target value in each window.

    ``y`` is ``(time, series, output)``, NumPy or Dask (reduced where it is: only the
    table comes back).

    Examples
    --------
    >>> y = np.array([[1.0, np.nan], [np.nan, np.nan], [np.nan, 2.0]])[..., None]
    >>> targets_by_window(y, windows(3, 2)).tolist()
    [[True, False], [False, True]]
    """
    counts = np.isfinite(y).any(axis=2).cumsum(axis=0)  # a Dask array stays one
    (ends,) = dask.compute(counts[[span.stop - 1 for span in spans]])
    return np.diff(ends, axis=0, prepend=0) > 0


def fingerprint(*arrays: Any) -> str:
    """A SHA-256 hex digest of the arrays' shapes, dtypes and bytes.

    A Dask array's blocks are hashed where they are; their digests come back and are
    hashed here with its chunks: data chunked otherwise has another fingerprint.
    """
    parts: list[Any] = []
    for array in arrays:
        parts.append(f"{array.shape}{array.dtype}".encode())
        if is_dask_collection(array):
            parts.append(f"{array.chunks}".encode())
            parts += [dask.delayed(_digest)(block) for block in array.to_delayed().ravel()]
        else:
            parts.append(np.ascontiguousarray(array).tobytes())
    digest = hashlib.sha256()
    for part in dask.compute(*parts):
        digest.update(part)
    return digest.hexdigest()


def _digest(block: Any) -> bytes:
    """The SHA-256 digest of one block's bytes."""
    return hashlib.sha256(np.ascontiguousarray(to_numpy(block)).tobytes()).digest()

"""The training data: inputs and targets as arrays, the validation split and the batches.

Every random choice is drawn from a generator seeded by the run's ``seed`` and what it
is for (the split; the order of the series in epoch ``e``), never from a generator
carried from one epoch to the next: the batches of an epoch depend on ``(seed,
epoch)`` alone, so a resumed run draws exactly what an uninterrupted one does.
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

from ..errors import InputError
from ..labelled import _select, _time_major
from ..model import Model

__all__ = ["SPLITS", "Split", "batches", "fingerprint", "split", "time_major", "windows"]

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
        ``(time, series, 1)`` boolean masks of the values each loss counts
        (``validation`` is ``None`` without a validation set).
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
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``(time, series, input_size)`` and targets ``(time, series, output_size)``.

    In memory, in the model's dtype. ``target`` names a variable of the Dataset ``data``
    (the inputs are then the other variable, or ``variable``) or is a DataArray
    ``(series, time[, output])``; ``dims`` are the time, series and feature dimensions.
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
    return np.asarray(x, dtype=model.dtype), np.asarray(y, dtype=model.dtype)


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
    >>> len(s.series), s.steps, int(s.validation.sum())
    (3, 10, 20)
    >>> s = split(10, 5, 0.2, "time", seed=0)
    >>> s.series.tolist(), s.steps
    ([0, 1, 2, 3, 4], 8)
    """
    train = np.ones((n_steps, n_series, 1), bool)
    if validation is None:
        return Split(np.arange(n_series), n_steps, train, None)
    size = n_series if how == "series" else n_steps
    held = max(1, round(validation * size))
    if held >= size:
        raise ValueError(
            f"validation={validation} holds out all {size} {how if how == 'series' else 'steps'}; "
            "nothing is left to train on"
        )
    if how == "series":
        order = np.random.default_rng([seed, 0]).permutation(n_series)
        train[:, np.sort(order[:held])] = False
        series = np.sort(order[held:])
    else:
        train[n_steps - held :] = False
        series = np.arange(n_series)
    return Split(series, n_steps - held if how == "time" else n_steps, train, ~train)


def batches(series: np.ndarray, size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The series of each batch of ``epoch``: a shuffle drawn from ``(seed, epoch)``.

    Examples
    --------
    >>> [b.tolist() for b in batches(np.arange(5), 2, seed=0, epoch=1)]
    [[0, 4], [1, 3], [2]]
    """
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


def fingerprint(*arrays: Any) -> str:
    """A SHA-256 hex digest of the arrays' shapes, dtypes and bytes."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(f"{array.shape}{array.dtype}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()

"""The training loop: Adam on mini-batches of series and time windows, with checkpoints.

Written once for data in memory and data on Dask (:mod:`rnncore.training.engine`).
"""

from __future__ import annotations

import math
import os
from typing import Any, NamedTuple

import numpy as np
import xarray as xr
from dask.base import is_dask_collection
from tqdm.auto import tqdm

from ..checks import check_int
from ..chunked import PREFIX_SCAN, SEQUENTIAL
from ..errors import InputError
from ..grad import value_and_grad
from ..model import Model
from ..storage import locate
from .adam import Adam
from .checkpoint import Checkpoint, read_checkpoint, write_checkpoint
from .data import (
    SPLITS,
    Split,
    batches,
    fingerprint,
    split,
    targets_by_window,
    time_major,
    window_of,
    windows,
)
from .engine import Engine, GradFn, in_memory, on_dask

__all__ = ["TrainResult", "train"]

#: The losses the history records, by epoch.
LOSSES = ("train_loss", "validation_loss")


class TrainResult(NamedTuple):
    """What :func:`train` returns.

    Attributes
    ----------
    model
        The trained model (the one passed in is unchanged).
    history
        ``train_loss`` and ``validation_loss`` by ``epoch``, from 0 (before training).
    """

    model: Model
    history: xr.Dataset


class _Data(NamedTuple):
    """The run's data: ``x``, ``y`` ``(time, series, feature)``, NumPy or Dask.

    ``spans`` are the training windows, ``targets`` ``(window, series)`` whether a
    series has a target value in a window (:func:`~rnncore.training.data.targets_by_window`).
    """

    x: Any
    y: Any
    plan: Split
    spans: list[slice]
    targets: np.ndarray


def train(
    model: Model,
    data: xr.DataArray | xr.Dataset,
    target: str | xr.DataArray,
    *,
    epochs: int,
    batch_series: int | None = 32,
    window: int | None = None,
    lr: float = 1e-3,
    seed: int = 0,
    validation: float | None = 0.2,
    split_by: str = "series",
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    method: str = "auto",
    grad_fn: GradFn | None = None,
    variable: str | None = None,
    time_dim: str = "time",
    series_dim: str = "series",
    feature_dim: str | None = None,
) -> TrainResult:
    """Train ``model`` to predict ``target`` from ``data`` with Adam on the masked MSE.

    Each epoch shuffles the training series (from ``seed`` and the epoch) into batches
    of ``batch_series``; each batch runs through its time windows in order, one Adam
    step per window. The recurrent state at a window's start is the one the previous
    window of the same series ended in (zeros for the first window), computed with the
    parameters of that window's step: truncated backpropagation through time, no
    gradient crosses a window's start. A window without any target value is skipped.

    Dask-backed data train on the cluster: every window's gradients are computed by a
    Dask graph over the data's chunks (:func:`rnncore.grad.chunked.value_and_grad_chunked`:
    series chunks in parallel, time chunks joined by ``method``), on the active
    scheduler (a ``distributed.Client``), and only the losses, the parameter gradients
    and a batch's states come back. ``window=None, batch_series=None`` takes one step
    per epoch on the gradient of the full sequences of all the training series. The
    results equal the in-memory run's up to rounding, whatever the chunking.

    Parameters
    ----------
    model
        The model to start from (unchanged; with ``resume``, its architecture only).
    data
        Inputs: a DataArray ``(series, time[, feature])`` in any dimension order, or a
        Dataset holding it (see ``variable``), in the model's dtype; NaN marks a missing
        step (the state carries over; no loss there). Dask-backed data stay lazy and
        train on the active Dask scheduler, chunk by chunk (``data.chunk({"series": 100,
        "time": 1000})`` chunks data in memory); other data are loaded into memory.
    target
        What the outputs should be: a DataArray ``(series, time[, output])`` on the
        data's series and time, or the name of a variable of the Dataset ``data``
        (the inputs are then its other variable). NaN values are left out of the loss.
        For one-step-ahead prediction, ``y.shift(time=-1)``. With Dask-backed data it
        is chunked like them (loaded into memory otherwise).
    epochs
        Passes over the training series to complete (counting those a resumed
        checkpoint holds).
    batch_series
        Series per batch; ``None`` for all the training series in one batch.
    window
        Time steps per window; ``None`` for full sequences (one window).
    lr
        Adam's learning rate (:class:`~rnncore.training.Adam`, PyTorch's defaults
        otherwise).
    seed
        Draws the validation series and each epoch's batches.
    validation
        The fraction held out to validate on (at least one series or step), or
        ``None`` for no validation (``validation_loss`` is then NaN).
    split_by
        ``"series"``: hold out whole series; ``"time"``: the last steps of every
        series (the model runs over the whole sequence; only those steps count).
    checkpoint
        A safetensors file written (atomically) after every epoch: parameters, Adam's
        state, epoch and history (:mod:`rnncore.training.checkpoint`).
    resume
        Continue from ``checkpoint`` if it exists (else start afresh): the result
        equals an uninterrupted run's, bit for bit. The data's fingerprint covers their
        chunks: a run on data chunked otherwise (or in memory) is another run.
    progress
        Show a progress bar (tqdm) of the batches.
    method
        How time chunks of Dask-backed data are joined, forward and backward:
        ``"auto"``, ``"sequential"``, or ``"prefix_scan"`` / ``"parallel"`` for models
        linear in the state (:data:`rnncore.chunked.METHODS`; all exact; multiple
        shooting is refused). Checked, and unused, for data in memory. ``"auto"``
        chooses for each window from its series chunks and the cluster's threads
        (:func:`rnncore.chunked.resolve_method`): name the method for a checkpoint to
        resume bit for bit on a cluster of another size.
    grad_fn
        Computes the loss and gradients of one window, ``grad_fn(model, x, target,
        h0=None)`` with ``h0`` per-layer states: by default
        :func:`rnncore.grad.value_and_grad` in memory, and
        :func:`~rnncore.grad.chunked.value_and_grad_chunked` by ``method`` for
        Dask-backed data (whose windows it is then given as Dask arrays).
    variable, time_dim, series_dim, feature_dim
        As for :func:`rnncore.run`.

    Returns
    -------
    TrainResult
        The trained model and the history: both losses after every epoch, from the
        model run over whole sequences (the training loss over the training series
        and steps, the validation loss over the held-out ones).

    Raises
    ------
    ValueError
        If an argument is out of range, or the checkpoint's run had other settings.
    rnncore.errors.InputError
        If the target does not match the data's series and time, or ``method`` is not
        an exact method for this model.
    rnncore.ModelFileError
        If the checkpoint is unreadable or holds a model of another architecture.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from rnncore import Model
    >>> t = np.arange(60.0)
    >>> y = xr.DataArray(np.sin(0.3 * t + np.arange(8)[:, None]), dims=("series", "time"))
    >>> model = Model.init("MinGRU", 1, [8], 1, dtype=np.float64)
    >>> result = train(model, y, y.shift(time=-1), epochs=20, batch_series=4, window=20,
    ...                lr=0.02, validation=0.25, progress=False)
    >>> losses = result.history.validation_loss
    >>> bool(losses[-1] < 0.2 * losses[0])
    True

    The same run's first two epochs over Dask chunks of 3 series and 25 steps (on a
    cluster: inside ``with distributed.Client(...)``), and full-sequence gradients of
    all the training series, one step per epoch:

    >>> chunked = y.chunk({"series": 3, "time": 25})
    >>> again = train(model, chunked, chunked.shift(time=-1), epochs=2, batch_series=4,
    ...               window=20, lr=0.02, validation=0.25, progress=False)
    >>> bool(np.allclose(again.history.validation_loss, losses[:3], rtol=1e-10))
    True
    >>> full = train(model, chunked, chunked.shift(time=-1), epochs=3, batch_series=None,
    ...              window=None, lr=0.02, validation=0.25, progress=False)
    >>> full.history.attrs["batch_series"], full.history.attrs["method"]
    ('none', 'auto')
    """
    epochs = check_int("epochs", epochs, 1)
    settings = _settings(batch_series, window, lr, seed, validation, split_by)
    if resume and checkpoint is None:
        raise ValueError("resume=True needs a checkpoint path")
    if grad_fn is not None and not callable(grad_fn):
        raise TypeError(f"grad_fn must be callable; got {type(grad_fn).__name__}")
    _check_method(model, method)
    adam = Adam(lr=settings["lr"])
    x, y = time_major(model, data, target, variable, (time_dim, series_dim, feature_dim))
    if is_dask_collection(x):
        engine = on_dask(method, grad_fn)
        settings["method"] = method
    else:
        engine = in_memory(value_and_grad if grad_fn is None else grad_fn)
    plan = split(x.shape[0], x.shape[1], validation, split_by, seed)
    spans = windows(plan.steps, settings["window"])
    run_data = _Data(x, y, plan, spans, targets_by_window(y, spans))
    settings["data"] = fingerprint(x, y)
    run = _start(model, run_data, engine, adam, checkpoint if resume else None, settings)
    if run.epoch > epochs:
        raise ValueError(f"the checkpoint is at epoch {run.epoch}, beyond epochs={epochs}")
    n_batches = math.ceil(len(plan.series) / (batch_series or len(plan.series)))
    with tqdm(total=(epochs - run.epoch) * n_batches, disable=not progress, unit="batch") as bar:
        while run.epoch < epochs:
            bar.set_description(f"epoch {run.epoch + 1}/{epochs}")
            run = _epoch(model, run, run_data, adam, engine, settings, bar)
            if checkpoint is not None:
                write_checkpoint(checkpoint, run, model, settings)
    return TrainResult(model.with_state_dict(run.params), _history(run.history, settings))


def _check_method(model: Model, method: str) -> None:
    """Refuse a ``method`` that is not exact for ``model`` (:data:`rnncore.chunked.METHODS`)."""
    linear = model.is_linear_state
    exact = ("auto", SEQUENTIAL, "parallel", PREFIX_SCAN) if linear else ("auto", SEQUENTIAL)
    if method not in exact:
        raise InputError(
            f"method={method!r} is not an exact method for this model (which is "
            f"{'linear' if linear else 'nonlinear'} in the state); training takes exact "
            f"gradients: use one of {exact}"
        )


def _settings(
    batch_series: int | None,
    window: int | None,
    lr: float,
    seed: int,
    validation: float | None,
    split_by: str,
) -> dict[str, Any]:
    """The run's settings, checked: what a checkpoint must share to be resumed."""
    if validation is not None and not (
        isinstance(validation, int | float)
        and not isinstance(validation, bool)
        and 0 < validation < 1
    ):
        raise ValueError(f"validation must be a fraction in (0, 1) or None; got {validation!r}")
    if split_by not in SPLITS:
        raise ValueError(f"split_by must be one of {SPLITS}; got {split_by!r}")
    return {
        "batch_series": None
        if batch_series is None
        else check_int("batch_series", batch_series, 1),
        "window": None if window is None else check_int("window", window, 1),
        "lr": Adam(lr=lr).lr,
        "seed": check_int("seed", seed, 0),
        "validation": None if validation is None else float(validation),
        "split_by": split_by,
    }


def _start(
    model: Model,
    data: _Data,
    engine: Engine,
    adam: Adam,
    path: str | os.PathLike | None,
    settings: dict[str, Any],
) -> Checkpoint:
    """The checkpoint at ``path`` if there is one, else the run before its first epoch."""
    if path is not None and locate(path, None).is_file():
        return read_checkpoint(path, model, settings)
    params = model.state_dict()
    losses = _losses(model, data, engine)
    return Checkpoint(0, params, adam.init(params), {k: np.array([v]) for k, v in losses.items()})


def _epoch(
    model: Model,
    run: Checkpoint,
    data: _Data,
    adam: Adam,
    engine: Engine,
    settings: dict[str, Any],
    bar: tqdm,
) -> Checkpoint:
    """The run after one more epoch."""
    params, state, epoch = run.params, run.adam, run.epoch + 1
    for series in batches(data.plan.series, settings["batch_series"], settings["seed"], epoch):
        h0 = None
        for span, has_targets in zip(data.spans, data.targets[:, series].any(axis=1), strict=True):
            current = model.with_state_dict(params)
            xw, yw = window_of(data.x, span, series), window_of(data.y, span, series)
            more = span.stop < data.plan.steps
            grads, h0 = engine.step(current, xw, yw, h0, grad=has_targets, states=more)
            if grads is not None:
                params, state = adam.update(params, grads, state)
                params = model.feasible(params)
        bar.update()
    losses = _losses(model.with_state_dict(params), data, engine)
    bar.set_postfix({k: f"{v:.4g}" for k, v in losses.items()})
    history = {k: np.append(run.history[k], losses[k]) for k in LOSSES}
    return Checkpoint(epoch, params, state, history)


def _losses(model: Model, data: _Data, engine: Engine) -> dict[str, float]:
    """Both losses of ``model`` run over the whole sequences."""
    plan = data.plan
    masks = [plan.train] if plan.validation is None else [plan.train, plan.validation]
    losses = engine.losses(model, data.x, data.y, masks)
    return dict(zip(LOSSES, [*losses, math.nan][:2], strict=True))


def _history(history: dict[str, np.ndarray], settings: dict[str, Any]) -> xr.Dataset:
    """The history as a Dataset by ``epoch``, the settings as attributes."""
    n = len(history[LOSSES[0]])
    return xr.Dataset(
        {k: ("epoch", np.asarray(history[k], np.float64)) for k in LOSSES},
        coords={"epoch": np.arange(n)},
        attrs={k: "none" if v is None else v for k, v in settings.items()},
    )

"""The training loop: Adam on mini-batches of series and time windows, with checkpoints."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from ..checks import check_int
from ..grad import masked_mse, value_and_grad
from ..model import Model
from ..storage import locate
from .adam import Adam
from .checkpoint import Checkpoint, read_checkpoint, write_checkpoint
from .data import SPLITS, Split, batches, fingerprint, split, time_major, windows

__all__ = ["GradFn", "TrainResult", "train"]

#: ``grad_fn(model, x, target, h0=None, mask=None) -> (loss, grads)``, as
#: :func:`rnncore.grad.value_and_grad`: the loss and its gradient in every parameter.
GradFn = Callable[..., tuple[float, dict[str, Any]]]

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


def train(
    model: Model,
    data: xr.DataArray | xr.Dataset,
    target: str | xr.DataArray,
    *,
    epochs: int,
    batch_series: int = 32,
    window: int | None = None,
    lr: float = 1e-3,
    seed: int = 0,
    validation: float | None = 0.2,
    split_by: str = "series",
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    grad_fn: GradFn = value_and_grad,
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

    Parameters
    ----------
    model
        The model to start from (unchanged; with ``resume``, its architecture only).
    data
        Inputs: a DataArray ``(series, time[, feature])`` in any dimension order, or a
        Dataset holding it (see ``variable``). Loaded into memory in the model's dtype;
        NaN marks a missing step (the state carries over; no loss there).
    target
        What the outputs should be: a DataArray ``(series, time[, output])`` on the
        data's series and time, or the name of a variable of the Dataset ``data``
        (the inputs are then its other variable). NaN values are left out of the loss.
        For one-step-ahead prediction, ``y.shift(time=-1)``.
    epochs
        Passes over the training series to complete (counting those a resumed
        checkpoint holds).
    batch_series
        Series per batch.
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
        equals an uninterrupted run's, bit for bit.
    progress
        Show a progress bar (tqdm) of the batches.
    grad_fn
        Computes the loss and gradients of one window
        (default :func:`rnncore.grad.value_and_grad`).
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
        If the target does not match the data's series and time.
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
    """
    epochs = check_int("epochs", epochs, 1)
    settings = _settings(batch_series, window, lr, seed, validation, split_by)
    if resume and checkpoint is None:
        raise ValueError("resume=True needs a checkpoint path")
    if not callable(grad_fn):
        raise TypeError(f"grad_fn must be callable; got {type(grad_fn).__name__}")
    adam = Adam(lr=settings["lr"])
    x, y = time_major(model, data, target, variable, (time_dim, series_dim, feature_dim))
    plan = split(x.shape[0], x.shape[1], validation, split_by, seed)
    settings["data"] = fingerprint(x, y)
    run = _start(model, x, y, plan, adam, checkpoint if resume else None, settings)
    if run.epoch > epochs:
        raise ValueError(f"the checkpoint is at epoch {run.epoch}, beyond epochs={epochs}")
    n_batches = math.ceil(len(plan.series) / batch_series)
    with tqdm(total=(epochs - run.epoch) * n_batches, disable=not progress, unit="batch") as bar:
        while run.epoch < epochs:
            bar.set_description(f"epoch {run.epoch + 1}/{epochs}")
            run = _epoch(model, run, x, y, plan, adam, grad_fn, settings, bar)
            if checkpoint is not None:
                write_checkpoint(checkpoint, run, model, settings)
    return TrainResult(model.with_state_dict(run.params), _history(run.history, settings))


def _settings(
    batch_series: int,
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
        "batch_series": check_int("batch_series", batch_series, 1),
        "window": None if window is None else check_int("window", window, 1),
        "lr": Adam(lr=lr).lr,
        "seed": check_int("seed", seed, 0),
        "validation": None if validation is None else float(validation),
        "split_by": split_by,
    }


def _start(
    model: Model,
    x: np.ndarray,
    y: np.ndarray,
    plan: Split,
    adam: Adam,
    path: str | os.PathLike | None,
    settings: dict[str, Any],
) -> Checkpoint:
    """The checkpoint at ``path`` if there is one, else the run before its first epoch."""
    if path is not None and locate(path, None).is_file():
        return read_checkpoint(path, model, settings)
    params = model.state_dict()
    losses = _losses(model, x, y, plan)
    return Checkpoint(0, params, adam.init(params), {k: np.array([v]) for k, v in losses.items()})


def _epoch(
    model: Model,
    run: Checkpoint,
    x: np.ndarray,
    y: np.ndarray,
    plan: Split,
    adam: Adam,
    grad_fn: GradFn,
    settings: dict[str, Any],
    bar: tqdm,
) -> Checkpoint:
    """The run after one more epoch."""
    params, state, epoch = run.params, run.adam, run.epoch + 1
    for series in batches(plan.series, settings["batch_series"], settings["seed"], epoch):
        h0 = None
        for span in windows(plan.steps, settings["window"]):
            current = model.with_state_dict(params)
            xw, yw = x[span, series], y[span, series]
            h_next = current(xw, h0)[1] if span.stop < plan.steps else None
            if np.isfinite(yw).any():
                _, grads = grad_fn(current, xw, yw, h0=h0)
                params, state = adam.update(params, grads, state)
            h0 = h_next
        bar.update()
    losses = _losses(model.with_state_dict(params), x, y, plan)
    bar.set_postfix({k: f"{v:.4g}" for k, v in losses.items()})
    history = {k: np.append(run.history[k], losses[k]) for k in LOSSES}
    return Checkpoint(epoch, params, state, history)


def _losses(model: Model, x: np.ndarray, y: np.ndarray, plan: Split) -> dict[str, float]:
    """Both losses of ``model`` run over the whole sequences."""
    outputs, _ = model(x)
    train = masked_mse(outputs, y, plan.train)[0]
    if plan.validation is None:
        return {"train_loss": train, "validation_loss": math.nan}
    return {"train_loss": train, "validation_loss": masked_mse(outputs, y, plan.validation)[0]}


def _history(history: dict[str, np.ndarray], settings: dict[str, Any]) -> xr.Dataset:
    """The history as a Dataset by ``epoch``, the settings as attributes."""
    n = len(history[LOSSES[0]])
    return xr.Dataset(
        {k: ("epoch", np.asarray(history[k], np.float64)) for k in LOSSES},
        coords={"epoch": np.arange(n)},
        attrs={k: "none" if v is None else v for k, v in settings.items()},
    )

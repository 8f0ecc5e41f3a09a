"""Training checkpoints: one safetensors file with everything a resumed run needs.

The arrays are the model's parameters (``params.<key>``), Adam's moments
(``adam.m.<key>``, ``adam.v.<key>``) and the history so far (``history.<name>``); the
JSON config records the model's configuration, the run's settings, the epoch reached
and Adam's step count. The random state needs no entry: the batches of an epoch are
drawn from ``(seed, epoch)`` (see :mod:`rnncore.training.data`). Written atomically
by :func:`rnncore.serialization.write_arrays`, read without executing code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..model import Model, describe
from ..serialization import ModelFileError, read_arrays, write_arrays
from .adam import AdamState

__all__ = ["KIND", "Checkpoint", "read_checkpoint", "write_checkpoint"]

#: The ``kind`` of a checkpoint file.
KIND = "checkpoint"


class Checkpoint(NamedTuple):
    """A training run after ``epoch`` epochs.

    Attributes
    ----------
    epoch
        Epochs completed.
    params
        The model's parameters, keyed as :meth:`rnncore.Model.state_dict` keys them.
    adam
        The optimiser's state.
    history
        Each loss by epoch, from epoch 0 (before training) to ``epoch``.
    """

    epoch: int
    params: dict[str, np.ndarray]
    adam: AdamState
    history: dict[str, np.ndarray]


def write_checkpoint(
    path: str | os.PathLike, checkpoint: Checkpoint, model: Model, settings: dict[str, Any]
) -> Path | str:
    """Write ``checkpoint`` of a run of ``model`` with ``settings`` (JSON) to ``path``."""
    arrays = {f"params.{k}": v for k, v in checkpoint.params.items()}
    arrays |= {f"adam.m.{k}": v for k, v in checkpoint.adam.m.items()}
    arrays |= {f"adam.v.{k}": v for k, v in checkpoint.adam.v.items()}
    arrays |= {f"history.{k}": v for k, v in checkpoint.history.items()}
    config = {
        "model": model.config(),
        "settings": settings,
        "epoch": checkpoint.epoch,
        "adam_step": checkpoint.adam.step,
    }
    return write_arrays(path, arrays, KIND, config)


def read_checkpoint(path: str | os.PathLike, model: Model, settings: dict[str, Any]) -> Checkpoint:
    """Read a checkpoint that :func:`write_checkpoint` wrote for ``model`` and ``settings``.

    Raises
    ------
    ModelFileError
        If the file is not a readable checkpoint, or holds one of a model of another
        architecture (cells, sizes, dtype).
    ValueError
        If the checkpoint's run had other settings (data, batches, learning rate, ...):
        resuming it would not continue that run.
    """
    arrays, config = read_arrays(path, KIND)
    if config.get("model") != model.config():
        raise ModelFileError(
            f"{path} is a checkpoint of another model ({_describe(config.get('model'))}); "
            f"this model is {_describe(model.config())}"
        )
    recorded = config.get("settings", {})
    keys = settings.keys() | recorded.keys()
    changed = sorted(k for k in keys if recorded.get(k) != settings.get(k))
    if changed:
        raise ValueError(
            f"{path} is a checkpoint of a run with other "
            + ", ".join(f"{k} (was {recorded.get(k)!r}, now {settings.get(k)!r})" for k in changed)
            + "; resuming it would not continue that run"
        )
    try:
        keys = model.state_dict()
        params = {k: arrays[f"params.{k}"] for k in keys}
        model.with_state_dict(params)  # checks shapes, dtypes and finiteness
        adam = AdamState(
            int(config["adam_step"]),
            {k: arrays[f"adam.m.{k}"] for k in keys},
            {k: arrays[f"adam.v.{k}"] for k in keys},
        )
        history = {
            k.removeprefix("history."): v for k, v in arrays.items() if k.startswith("history.")
        }
        return Checkpoint(int(config["epoch"]), params, adam, history)
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(f"{path} is not a complete checkpoint: {err}") from None


def _describe(config: Any) -> str:
    """``MinGRU(1->8) > Readout(1), float32`` for a model's config, or its repr."""
    try:
        return f"{describe(config)}, {config['dtype']}"
    except (KeyError, TypeError):
        return repr(config)

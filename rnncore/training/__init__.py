"""Training: Adam on exact gradients through the scan, over xarray data, with checkpoints.

- :func:`train`: mini-batches of series and time windows (or full sequences), a
  masked MSE on xarray targets, a validation loss, a progress bar, and checkpoints
  that a restarted run resumes from exactly; Dask-backed data train on the active
  Dask scheduler, chunk by chunk (:mod:`~rnncore.training.engine`);
- :class:`Adam`: the optimiser, functional and namespace-agnostic;
- :mod:`~rnncore.training.checkpoint`: the checkpoint file (safetensors).

>>> import numpy as np, xarray as xr
>>> from rnncore import Model, train
>>> y = xr.DataArray(np.sin(np.arange(120.0)).reshape(4, 30), dims=("series", "time"))
>>> model = Model.init("MinGRU", 1, [4], 1, dtype=np.float64)
>>> result = train(model, y, y.shift(time=-1), epochs=2, batch_series=2, progress=False)
>>> list(result.history.data_vars), result.history.sizes["epoch"]
(['train_loss', 'validation_loss'], 3)
"""

from .adam import Adam, AdamState
from .checkpoint import Checkpoint, read_checkpoint, write_checkpoint
from .engine import GradFn
from .loop import TrainResult, train

__all__ = [
    "Adam",
    "AdamState",
    "Checkpoint",
    "GradFn",
    "TrainResult",
    "read_checkpoint",
    "train",
    "write_checkpoint",
]

"""rnncore: exact, parallel recurrent neural networks on NumPy (and CuPy) arrays.

The compute library of rnnflow: the affine scan and its composition, recurrent
cells written once against an array namespace, and models stacking them.

The top level holds the engine. Its names are loaded on first use (module
``__getattr__``), so ``from rnncore import linear_scan`` imports the scan alone, not
Dask, xarray or the forecaster; the forecaster is the submodule ``rnncore.forecast``.

>>> import numpy as np
>>> from rnncore import linear_scan
>>> linear_scan(np.full(3, 0.5), np.ones(3)).tolist()
[1.0, 1.5, 1.75]
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import accessor as accessor  # registers `.rnn` on xarray objects
from .version import __version__

#: Each public name, and the submodule that defines it.
_ENGINE = {
    "CELLS": "cells",
    "GRU": "cells",
    "LSTM": "cells",
    "QRNN": "cells",
    "Cell": "cells",
    "DiagonalLinear": "cells",
    "Elman": "cells",
    "MinGRU": "cells",
    "MinLSTM": "cells",
    "ConvergenceError": "chunked",
    "RNNAccessor": "accessor",
    "run": "labelled",
    "Model": "model",
    "Readout": "readout",
    "IDENTITY": "scan",
    "compose": "scan",
    "linear_scan": "scan",
    "scan_summary": "scan",
    "stitch": "scan",
    "ModelFileError": "serialization",
    "InputError": "errors",
    "model_vjp": "grad",
    "value_and_grad": "grad",
    "Adam": "training",
    "TrainResult": "training",
    "train": "training",
}

__all__ = [
    "CELLS",
    "GRU",
    "IDENTITY",
    "LSTM",
    "QRNN",
    "Adam",
    "Cell",
    "ConvergenceError",
    "DiagonalLinear",
    "Elman",
    "InputError",
    "MinGRU",
    "MinLSTM",
    "Model",
    "ModelFileError",
    "RNNAccessor",
    "Readout",
    "TrainResult",
    "__version__",
    "compose",
    "forecast",
    "linear_scan",
    "model_vjp",
    "run",
    "scan_summary",
    "stitch",
    "train",
    "value_and_grad",
]

if TYPE_CHECKING:
    from . import forecast
    from .accessor import RNNAccessor
    from .cells import CELLS, GRU, LSTM, QRNN, Cell, DiagonalLinear, Elman, MinGRU, MinLSTM
    from .chunked import ConvergenceError
    from .errors import InputError
    from .grad import model_vjp, value_and_grad
    from .labelled import run
    from .model import Model
    from .readout import Readout
    from .scan import IDENTITY, compose, linear_scan, scan_summary, stitch
    from .serialization import ModelFileError
    from .training import Adam, TrainResult, train


def __getattr__(name: str) -> Any:
    if name == "forecast":
        return importlib.import_module(".forecast", __name__)
    if name not in _ENGINE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_ENGINE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

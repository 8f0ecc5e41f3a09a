"""rnncore: exact, parallel recurrent neural networks on NumPy (and CuPy) arrays.

The compute library of rnnflow: the affine scan and its composition, recurrent
cells written once against an array namespace, and models stacking them.
"""

from .cells import CELLS, GRU, LSTM, QRNN, Cell, DiagonalLinear, Elman, MinGRU, MinLSTM
from .chunked import ConvergenceError
from .forecast import Forecaster, backtest
from .labelled import RNNAccessor, run
from .model import Model
from .readout import Readout
from .scan import IDENTITY, compose, linear_scan, scan_summary, stitch
from .serialization import ModelFileError

__version__ = "0.1.0"

__all__ = [
    "CELLS",
    "GRU",
    "IDENTITY",
    "LSTM",
    "QRNN",
    "Cell",
    "ConvergenceError",
    "DiagonalLinear",
    "Elman",
    "Forecaster",
    "MinGRU",
    "MinLSTM",
    "Model",
    "ModelFileError",
    "RNNAccessor",
    "Readout",
    "__version__",
    "backtest",
    "compose",
    "linear_scan",
    "run",
    "scan_summary",
    "stitch",
]

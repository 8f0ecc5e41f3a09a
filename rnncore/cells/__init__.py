"""Recurrent cells: linear in the state (exactly parallel) and nonlinear (PyTorch's)."""

from .base import Cell, State
from .linear import QRNN, DiagonalLinear, LinearStateCell, MinGRU, MinLSTM
from .nonlinear import GRU, LSTM, Elman, NonlinearCell, torch_layers

#: Every cell type by name, as model files record them.
CELLS: dict[str, type[Cell]] = {
    cls.__name__: cls for cls in (MinGRU, MinLSTM, QRNN, DiagonalLinear, Elman, GRU, LSTM)
}

__all__ = [
    "CELLS",
    "GRU",
    "LSTM",
    "QRNN",
    "Cell",
    "DiagonalLinear",
    "Elman",
    "LinearStateCell",
    "MinGRU",
    "MinLSTM",
    "NonlinearCell",
    "State",
    "torch_layers",
]

"""Exact reverse-mode gradients: of the scan, of every cell, and of whole models.

- :func:`linear_scan_vjp`: the scan's gradients in ``a``, ``b`` and ``h0``; the
  adjoint is itself an affine scan run backwards (:func:`adjoint_scan`), so it
  inherits the scan's chunking;
- :func:`cell_vjp`: one layer's gradients in its parameters, inputs and initial state;
- :func:`model_vjp`: a model's, for any cotangents of its outputs and final states;
- :func:`value_and_grad`: the masked MSE of a model's outputs (:func:`masked_mse`)
  and its parameter gradients, keyed as :meth:`rnncore.Model.state_dict` keys them;
- :func:`rnncore.grad.chunked.value_and_grad_chunked`: the same over Dask arrays chunked
  along time and series (its module, :mod:`rnncore.grad.chunked`, imports Dask).

Everything is written against the inputs' array namespace (NumPy or CuPy).

>>> import numpy as np
>>> from rnncore import Model
>>> from rnncore.grad import value_and_grad
>>> model = Model.init("LSTM", input_size=1, hidden_sizes=[4], output_size=1, dtype=np.float64)
>>> x = np.linspace(0, 1, 12).reshape(6, 2, 1)
>>> loss, grads = value_and_grad(model, x, 2 * x)
>>> grads["layers.0.weight_ih_l0"].shape
(16, 1)
"""

from .cells import CellGradients, cell_vjp
from .model import ModelGradients, masked_mse, model_vjp, value_and_grad
from .scan import adjoint_scan, linear_scan_vjp, reduce_to_shape

__all__ = [
    "CellGradients",
    "ModelGradients",
    "adjoint_scan",
    "cell_vjp",
    "linear_scan_vjp",
    "masked_mse",
    "model_vjp",
    "reduce_to_shape",
    "value_and_grad",
]

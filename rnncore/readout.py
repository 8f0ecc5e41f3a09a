"""The linear readout on top of a stack of recurrent layers.

A leaf: it depends on the array helpers and the kernels' interface only, so that the
cells, which fuse a readout into their kernels, need not import the model.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from .arrays import check_param, namespace
from .kernels.interface import ReadoutArrays

__all__ = ["Readout"]


class Readout:
    """A linear map ``y = h @ weight.T + bias`` from hidden units to outputs.

    Parameters
    ----------
    weight
        ``(output_size, hidden_size)``.
    bias
        ``(output_size,)``; zeros if ``None``.
    """

    def __init__(self, weight: Any, bias: Any = None) -> None:
        weight = np.asarray(weight)
        if weight.ndim != 2:
            raise ValueError(f"readout weight has shape {weight.shape}; expected (outputs, hidden)")
        dtype = weight.dtype
        self.weight = check_param("readout.weight", weight, weight.shape, dtype)
        bias = np.zeros(weight.shape[0], dtype) if bias is None else bias
        self.bias = check_param("readout.bias", bias, (weight.shape[0],), dtype)
        self._cast_cache: dict[tuple[str, np.dtype], ReadoutArrays] = {}

    @property
    def output_size(self) -> int:
        """Number of outputs."""
        return self.weight.shape[0]

    @property
    def input_size(self) -> int:
        """Number of hidden units read."""
        return self.weight.shape[1]

    def arrays(self, xp: ModuleType, dtype: Any) -> ReadoutArrays:
        """The weight and bias as C-contiguous ``xp`` arrays of ``dtype``: what kernels take.

        Cached per namespace and dtype, as cells cache their parameters: a GPU run
        copies them to the device once.
        """
        key = (xp.__name__, np.dtype(dtype))
        if key not in self._cast_cache:
            weight, bias = (
                xp.ascontiguousarray(xp.asarray(v, dtype=dtype)) for v in (self.weight, self.bias)
            )
            self._cast_cache[key] = ReadoutArrays(weight=weight, bias=bias)
        return self._cast_cache[key]

    def __call__(self, h: Any) -> Any:
        """Apply the readout to ``(..., hidden)`` states in their own namespace and dtype."""
        return self.arrays(namespace(h), h.dtype)(h)

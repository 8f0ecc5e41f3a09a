"""The ``.rnn`` accessor on xarray DataArrays and Datasets, registered by ``import rnncore``.

It imports xarray alone: the engine behind it (:mod:`rnncore.labelled`, which brings
Dask) loads on the first call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import xarray as xr

if TYPE_CHECKING:
    import os

    from .incremental import IncrementalRun
    from .model import Model

__all__ = ["RNNAccessor"]


class RNNAccessor:
    """``.rnn`` on DataArrays and Datasets: ``ds.rnn.run(model, variable="y")``, and
    ``ds.rnn.run_incremental(model, "out.zarr", variable="y")`` night after night.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> import rnncore
    >>> model = rnncore.Model.init("QRNN", 1, [4], 1)
    >>> da = xr.DataArray(np.zeros((2, 5)), dims=("series", "time"))
    >>> da.rnn.run(model).output.shape
    (2, 5, 1)
    """

    def __init__(self, obj: xr.DataArray | xr.Dataset) -> None:
        self._obj = obj

    def run(self, model: Model, **kwargs: Any) -> xr.Dataset:
        """Run ``model`` over this object; keywords as for :func:`rnncore.run`."""
        from .labelled import run

        return run(model, self._obj, **kwargs)

    def run_incremental(
        self, model: Model, output: str | os.PathLike[str], **kwargs: Any
    ) -> IncrementalRun:
        """Run ``model`` over this object into the store ``output``, continuing from the
        state store of the previous run; keywords as for
        :func:`rnncore.incremental.run_incremental`."""
        from .incremental import run_incremental

        return run_incremental(model, self._obj, output, **kwargs)


xr.register_dataarray_accessor("rnn")(RNNAccessor)
xr.register_dataset_accessor("rnn")(RNNAccessor)

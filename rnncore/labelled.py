"""The labelled layer: run a model over xarray objects with named dimensions.

:func:`run` takes a DataArray ``(series, time[, feature])`` in any dimension order
(or a Dataset and a variable name), runs the model in memory or, for Dask-backed
data, lazily through :func:`rnncore.chunked.run_chunked`, and returns a Dataset
with named dimensions, the input's coordinates and attributes describing the run.
Importing :mod:`rnncore` registers the ``.rnn`` accessor (:mod:`rnncore.accessor`) that
calls it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from .arrays import float_dtype
from .chunked import SEQUENTIAL, ChunkedRun, resolve_method, run_chunked
from .model import Model, describe
from .states import pack_states, unpack_states
from .version import __version__

__all__ = ["run"]

#: Dimension names of the outputs.
OUTPUT_DIM, LAYER_DIM, STATE_DIM = "channel", "layer", "state_unit"


def run(
    model: Model,
    data: xr.DataArray | xr.Dataset,
    *,
    variable: str | None = None,
    time_dim: str = "time",
    series_dim: str = "series",
    feature_dim: str | None = None,
    h0: Any = None,
    method: str = "auto",
    tol: float = 1e-6,
    max_iter: int | None = None,
    resources: Mapping[str, float] | None = None,
) -> xr.Dataset:
    """Run ``model`` over every series of ``data``.

    Parameters
    ----------
    model
        The model to run.
    data
        A DataArray with dims ``series_dim``, ``time_dim`` and optionally
        ``feature_dim``, in any order; or a Dataset holding one (name it with
        ``variable`` unless it is the only data variable). float32/float64
        (integers are promoted to float64); NumPy- or Dask-backed. NaN marks a
        missing step: the state carries over and the output is NaN there.
    variable
        Which data variable of a Dataset to run over.
    time_dim, series_dim
        Names of the time and series dimensions.
    feature_dim
        Name of the feature dimension; ``None`` takes the one remaining dimension
        if there is one, else a single feature.
    h0
        Initial states, as the ``state`` variable of an earlier result
        (``(series, layer, state_unit)``, a DataArray or array); zeros if ``None``.
    method
        How to join time chunks: ``"auto"``, ``"parallel"`` or an algorithm by name
        (:data:`rnncore.chunked.METHODS`); the one used is the ``method`` attribute.
    tol, max_iter
        Convergence controls of parallel runs of nonlinear models.
    resources
        Worker resources the model's tasks need on a distributed cluster; ``None``
        asks ``{"GPU": 1}`` for CuPy-backed data (see :func:`rnncore.chunked.run_chunked`).

    Returns
    -------
    xr.Dataset
        ``output`` ``(series, time, channel)`` and ``state`` ``(series, layer,
        state_unit)``: lazy when ``data`` is Dask-backed. Attributes record the
        model, its parameter fingerprint, the rnnflow version and the method.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from rnncore import Model
    >>> y = xr.DataArray(np.ones((3, 10), np.float32), dims=("series", "time"))
    >>> model = Model.init("MinGRU", input_size=1, hidden_sizes=[4], output_size=1)
    >>> ds = run(model, y)
    >>> dict(ds.output.sizes)
    {'series': 3, 'time': 10, 'channel': 1}
    """
    array = _select(data, variable)
    x = _time_major(array, model.input_size, time_dim, series_dim, feature_dim)
    packed_h0 = _initial_states(h0, array, series_dim, model)
    if isinstance(x, np.ndarray) or not hasattr(x, "dask"):
        resolve_method(model, method)  # validates the argument
        # in memory, the whole time axis is one chunk: one sequential pass
        y, states = model(x, None if packed_h0 is None else unpack_states(model, packed_h0))
        result = ChunkedRun(output=y, states=pack_states(model, states), method=SEQUENTIAL)
    else:
        result = run_chunked(
            model, x, packed_h0, method=method, tol=tol, max_iter=max_iter, resources=resources
        )
    return _to_dataset(result, array, model, time_dim, series_dim)


def _select(data: xr.DataArray | xr.Dataset, variable: str | None) -> xr.DataArray:
    if isinstance(data, xr.DataArray):
        return data
    if not isinstance(data, xr.Dataset):
        raise TypeError(f"data must be an xarray DataArray or Dataset; got {type(data).__name__}")
    names = list(data.data_vars)
    if variable is None:
        if len(names) != 1:
            raise ValueError(f"the dataset holds variables {names}; name one with variable=")
        variable = names[0]
    if variable not in data.data_vars:
        raise KeyError(f"variable {variable!r} is not in the dataset; it holds {names}")
    return data[variable]


def _time_major(
    array: xr.DataArray,
    size: int,
    time_dim: str,
    series_dim: str,
    feature_dim: str | None,
    role: str = "input_size",
) -> Any:
    """The data as a ``(time, series, feature)`` array, the user's object untouched.

    ``size`` is the number of features the model takes (its ``role``, ``input_size``
    for inputs, ``output_size`` for targets).
    """
    dims = list(array.dims)
    for argument, name in (("time_dim", time_dim), ("series_dim", series_dim)):
        if name not in dims:
            raise ValueError(
                f"{argument}={name!r} is not a dimension of the data; its dimensions are {dims}"
            )
    rest = [d for d in dims if d not in (time_dim, series_dim)]
    if feature_dim is None and len(rest) == 1:
        feature_dim = rest[0]
    if rest != ([feature_dim] if feature_dim else []):
        raise ValueError(
            f"expected dimensions ({series_dim!r}, {time_dim!r}[, feature]); got {dims}"
            + ("" if feature_dim is None else f" with feature_dim={feature_dim!r}")
        )
    if feature_dim is None:
        array = array.expand_dims("__feature__", axis=-1)
        feature_dim = "__feature__"
    n_features = array.sizes[feature_dim]
    if n_features != size:
        raise ValueError(
            f"the data has {n_features} feature(s) along {feature_dim!r}; "
            f"the model expects {role}={size}"
        )
    x = array.transpose(time_dim, series_dim, feature_dim).data
    return x.astype(float_dtype(x.dtype, what=f"data variable {array.name!r}"), copy=False)


def _initial_states(h0: Any, array: xr.DataArray, series_dim: str, model: Model) -> Any:
    if h0 is None:
        return None
    if isinstance(h0, xr.DataArray):
        if series_dim in h0.dims and series_dim in array.coords and series_dim in h0.coords:
            h0 = h0.sel({series_dim: array[series_dim]})
        h0 = h0.transpose(series_dim, LAYER_DIM, STATE_DIM).values
    h0 = np.asarray(h0)
    if h0.shape[:1] != (array.sizes[series_dim],):
        raise ValueError(
            f"h0 holds states for {h0.shape[0] if h0.ndim else 0} series; "
            f"the data has {array.sizes[series_dim]}"
        )
    unpack_states(model, h0)  # checks the layer and state_unit sizes
    return h0


def _to_dataset(
    result: ChunkedRun, array: xr.DataArray, model: Model, time_dim: str, series_dim: str
) -> xr.Dataset:
    coords = {
        name: coord
        for name, coord in array.coords.items()
        if set(coord.dims) <= {time_dim, series_dim}
    }
    output = result.output.transpose(1, 0, 2)
    attrs = {
        "rnnflow_version": __version__,
        "model": describe(model.config()),
        "model_fingerprint": model.fingerprint(),
        "method": result.method,
    }
    if result.iterations is not None:
        attrs["iterations"] = result.iterations
        attrs["boundary_change"] = result.boundary_change
    return xr.Dataset(
        {
            "output": ((series_dim, time_dim, OUTPUT_DIM), output),
            "state": ((series_dim, LAYER_DIM, STATE_DIM), result.states),
        },
        coords=coords,
        attrs=attrs,
    )

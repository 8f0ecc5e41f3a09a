"""A stack of recurrent layers with an optional linear readout."""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from .cells import CELLS, Cell, LinearStateCell, State, torch_layers
from .readout import Readout
from .serialization import ModelFileError, read_arrays, write_arrays

if TYPE_CHECKING:
    from .grad import ModelGradients

__all__ = ["Model", "describe"]


class Model:
    """A stack of recurrent layers and an optional linear readout.

    Parameters
    ----------
    layers
        Cells, each reading the previous one's outputs.
    readout
        Maps the last layer's outputs to the model's outputs; ``None`` outputs
        the last layer's hidden units.

    Examples
    --------
    >>> import numpy as np
    >>> from rnncore import Model, MinGRU
    >>> model = Model.init(MinGRU, input_size=1, hidden_sizes=[8, 8], output_size=1)
    >>> y, states = model(np.zeros((10, 3, 1), np.float32))
    >>> y.shape, len(states)
    ((10, 3, 1), 2)
    """

    def __init__(self, layers: Sequence[Cell], readout: Readout | None = None) -> None:
        layers = list(layers)
        if not layers:
            raise ValueError("a Model needs at least one layer")
        for k, (before, after) in enumerate(itertools.pairwise(layers)):
            if after.input_size != before.hidden_size:
                raise ValueError(
                    f"layer {k + 1} expects input_size={after.input_size} but layer {k} "
                    f"has hidden_size={before.hidden_size}"
                )
        dtypes = {cell.dtype for cell in layers} | ({readout.weight.dtype} if readout else set())
        if len(dtypes) > 1:
            raise TypeError(f"all layers and the readout must share one dtype; got {dtypes}")
        if readout is not None and readout.input_size != layers[-1].hidden_size:
            raise ValueError(
                f"readout reads {readout.input_size} units but the last layer has "
                f"hidden_size={layers[-1].hidden_size}"
            )
        self.layers = layers
        self.readout = readout

    @classmethod
    def init(
        cls,
        cell: type[Cell] | str,
        input_size: int,
        hidden_sizes: Sequence[int],
        output_size: int | None = None,
        *,
        seed: int | None = 0,
        dtype: Any = np.float32,
        **options: Any,
    ) -> Self:
        """A freshly initialised stack of ``cell`` layers (and readout if ``output_size``)."""
        cell_type = CELLS[cell] if isinstance(cell, str) else cell
        rng = np.random.default_rng(seed)
        sizes = [input_size, *hidden_sizes]
        layers = [
            cell_type.init(f, h, seed=int(rng.integers(2**63)), dtype=dtype, **options)
            for f, h in itertools.pairwise(sizes)
        ]
        readout = None
        if output_size is not None:
            bound = 1.0 / np.sqrt(sizes[-1])
            readout = Readout(
                rng.uniform(-bound, bound, (output_size, sizes[-1])).astype(dtype),
                rng.uniform(-bound, bound, output_size).astype(dtype),
            )
        return cls(layers, readout)

    @classmethod
    def from_torch(
        cls, state_dict: Mapping[str, Any], cell: str = "GRU", readout: Readout | None = None
    ) -> Self:
        """Build a model from a ``torch.nn.RNN/GRU/LSTM`` state dict of NumPy arrays.

        Parameters
        ----------
        state_dict
            ``{k: v.numpy() for k, v in module.state_dict().items()}``, any number of layers.
        cell
            ``"Elman"`` (for ``torch.nn.RNN`` with tanh), ``"GRU"`` or ``"LSTM"``.
        readout
            An optional readout to put on top.
        """
        if cell not in ("Elman", "GRU", "LSTM"):
            raise ValueError(f"cell must be 'Elman', 'GRU' or 'LSTM'; got {cell!r}")
        layers = torch_layers(state_dict)
        if layers != list(range(len(layers))) or not layers:
            raise ValueError(f"state dict layers {layers} are not 0..n-1")
        cell_type = CELLS[cell]
        return cls([cell_type.from_state_dict(state_dict, layer=k) for k in layers], readout)

    # -- properties -------------------------------------------------------------------

    @property
    def input_size(self) -> int:
        """Features per step."""
        return self.layers[0].input_size

    @property
    def output_size(self) -> int:
        """Outputs per step."""
        return self.readout.output_size if self.readout else self.layers[-1].hidden_size

    @property
    def dtype(self) -> np.dtype:
        """The parameters' dtype."""
        return self.layers[0].dtype

    @property
    def is_linear_state(self) -> bool:
        """True when every layer is linear in its state (exactly parallel over time)."""
        return all(isinstance(cell, LinearStateCell) for cell in self.layers)

    def __repr__(self) -> str:
        inner = ", ".join(repr(cell) for cell in self.layers)
        return f"Model([{inner}], readout={self.readout is not None})"

    # -- running ----------------------------------------------------------------------

    def __call__(self, x: Any, h0: Sequence[State] | None = None) -> tuple[Any, list[State]]:
        """Run the stack over ``x`` ``(T, B, F)``.

        Parameters
        ----------
        x
            Inputs; NaN marks a missing step (see :mod:`rnncore.cells.base`).
        h0
            One initial state per layer, or ``None`` for zeros.

        Returns
        -------
        y
            ``(T, B, output_size)``; NaN at missing steps.
        states
            Each layer's final state.
        """
        if h0 is not None and len(h0) != len(self.layers):
            raise ValueError(f"h0 has {len(h0)} states; the model has {len(self.layers)} layers")
        states = []
        y, last = x, len(self.layers) - 1
        for k, cell in enumerate(self.layers):
            readout = self.readout if k == last else None
            y, state = cell.run(y, None if h0 is None else h0[k], readout)
            states.append(state)
        return y, states

    # -- gradients -------------------------------------------------------------------

    def value_and_grad(
        self, x: Any, target: Any, h0: Sequence[State] | None = None, mask: Any = None
    ) -> tuple[float, dict[str, Any]]:
        """The masked mean squared error of the outputs and its parameter gradients.

        :func:`rnncore.grad.value_and_grad` of this model: exact reverse mode through
        the scan.

        Parameters
        ----------
        x, h0
            As for :meth:`__call__`.
        target
            ``(T, B, output_size)``; NaN marks a value to ignore.
        mask
            Boolean, broadcasting against ``target``: True where a value counts (all of
            them if ``None``).

        Returns
        -------
        loss
            The mean squared error over the values that count.
        grads
            Its gradient with respect to every parameter, keyed as :meth:`state_dict`
            keys them, in the dtype of ``x``.

        Examples
        --------
        >>> import numpy as np
        >>> model = Model.init("MinGRU", input_size=1, hidden_sizes=[4], output_size=1)
        >>> x = np.sin(np.arange(20.0, dtype=np.float32)).reshape(10, 2, 1)
        >>> loss, grads = model.value_and_grad(x[:-1], x[1:])
        >>> loss > 0, grads["readout.weight"].shape
        (True, (1, 4))
        """
        from .grad import value_and_grad  # rnncore.grad imports this module

        return value_and_grad(self, x, target, h0, mask)

    def vjp(
        self,
        x: Any,
        grad_outputs: Any,
        h0: Sequence[State] | None = None,
        grad_final_states: Sequence[State] | None = None,
    ) -> ModelGradients:
        """Pull cotangents of the outputs and final states back: any loss on the outputs.

        For a scalar ``L`` of ``y, states = model(x, h0)``, given ``grad_outputs =
        dL/dy`` and ``grad_final_states = dL/dstates``: ``dL/dparams``, ``dL/dx`` and
        ``dL/dh0`` (:func:`rnncore.grad.model_vjp` of this model).

        Parameters
        ----------
        x, h0
            As for :meth:`__call__`.
        grad_outputs
            ``(T, B, output_size)``; ignored at missing steps.
        grad_final_states
            One cotangent per layer (``None`` entries for zeros), or ``None`` for all
            zeros.

        Returns
        -------
        rnncore.grad.ModelGradients
            ``params`` (keyed as :meth:`state_dict` keys them), ``x`` and ``h0``, in
            the dtype of ``x``.

        Examples
        --------
        The gradient of the mean absolute error, a loss of the outputs' own:

        >>> import numpy as np
        >>> model = Model.init("LSTM", input_size=1, hidden_sizes=[3], output_size=1)
        >>> x = np.linspace(0, 1, 12, dtype=np.float32).reshape(6, 2, 1)
        >>> y, _ = model(x)
        >>> grads = model.vjp(x, np.sign(y - 2 * x) / y.size)
        >>> grads.params["layers.0.weight_hh_l0"].shape, grads.x.shape, len(grads.h0)
        ((12, 3), (6, 2, 1), 1)
        """
        from .grad import model_vjp  # rnncore.grad imports this module

        return model_vjp(self, x, grad_outputs, h0, grad_final_states)

    # -- persistence ----------------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        """Every parameter, keyed ``layers.K.<name>`` and ``readout.weight/bias``."""
        out = {
            f"layers.{k}.{name}": value
            for k, cell in enumerate(self.layers)
            for name, value in cell.state_dict().items()
        }
        if self.readout is not None:
            out["readout.weight"] = self.readout.weight.copy()
            out["readout.bias"] = self.readout.bias.copy()
        return out

    def with_state_dict(self, params: Mapping[str, Any]) -> Self:
        """A model of this architecture with other parameters (this one is unchanged).

        Parameters
        ----------
        params
            Every parameter, keyed as :meth:`state_dict` keys them.

        Raises
        ------
        ValueError
            If a key is missing or unexpected, or the arrays describe a model of
            other sizes or dtype, or are not finite.

        Examples
        --------
        >>> from rnncore import Model
        >>> model = Model.init("MinGRU", input_size=1, hidden_sizes=[4], output_size=1)
        >>> zeros = {k: 0 * v for k, v in model.state_dict().items()}
        >>> float(abs(model.with_state_dict(zeros).readout.weight).sum())
        0.0
        """
        expected, given = set(self.state_dict()), set(params)
        if given != expected:
            raise ValueError(
                f"parameters missing: {sorted(expected - given)}; "
                f"unexpected: {sorted(given - expected)}"
            )
        layers = [
            type(cell).from_state_dict(
                {name: params[f"layers.{k}.{name}"] for name in cell.state_dict()},
                **cell.options,
            )
            for k, cell in enumerate(self.layers)
        ]
        readout = None
        if self.readout is not None:
            readout = Readout(params["readout.weight"], params["readout.bias"])
        model = type(self)(layers, readout)
        if model.config() != self.config():
            raise ValueError(
                f"the parameters describe the model {model.config()}; expected {self.config()}"
            )
        return model

    def feasible(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The parameters nearest ``params`` that this model's cells accept.

        An optimiser's step may leave the set a cell accepts (a DiagonalLinear decay
        past 1): :func:`rnncore.train` brings each step back with this projection.

        Parameters
        ----------
        params
            Every parameter, keyed as :meth:`state_dict` keys them.

        Returns
        -------
        dict
            The same keys; each layer's values as its cell's ``feasible`` gives them.

        Examples
        --------
        >>> import numpy as np
        >>> from rnncore import Model
        >>> model = Model.init("DiagonalLinear", 1, [2], 1, dtype=np.float64)
        >>> params = {**model.state_dict(), "layers.0.decay": np.array([0.5, 1.5])}
        >>> model.feasible(params)["layers.0.decay"] < 1
        array([ True,  True])
        """
        out = dict(params)
        for k, cell in enumerate(self.layers):  # by key prefix: no copies of the parameters
            prefix = f"layers.{k}."
            own = {key[len(prefix) :]: v for key, v in params.items() if key.startswith(prefix)}
            out |= {prefix + name: v for name, v in cell.feasible(own).items()}
        return out

    def config(self) -> dict[str, Any]:
        """JSON-serialisable description (cell types, sizes, options)."""
        return {
            "layers": [cell.config() for cell in self.layers],
            "readout": self.readout.output_size if self.readout else None,
            "dtype": str(self.dtype),
        }

    def fingerprint(self) -> str:
        """A SHA-256 hex digest of the configuration and every parameter's bytes."""
        digest = hashlib.sha256(repr(self.config()).encode())
        for name, value in sorted(self.state_dict().items()):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(value).tobytes())
        return digest.hexdigest()

    def save(self, path: str | os.PathLike) -> Path:
        """Save to a safetensors file with JSON metadata (written atomically)."""
        return write_arrays(path, self.state_dict(), "model", self.config())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Self:
        """Load a model saved by :meth:`save`, executing no code from the file.

        Raises
        ------
        ModelFileError
            If the file is missing, truncated, not an rnnflow model, or its arrays
            do not match its recorded configuration.
        """
        arrays, config = read_arrays(path, "model")
        try:
            layers, used = [], set()
            for k, spec in enumerate(config["layers"]):
                cell_type = CELLS.get(spec["type"])
                if cell_type is None:
                    raise ModelFileError(
                        f"{path}: layer {k} has unknown cell type {spec['type']!r}; "
                        f"known: {sorted(CELLS)}"
                    )
                prefix = f"layers.{k}."
                names = [n for n in arrays if n.startswith(prefix)]
                used.update(names)
                cell = cell_type.from_state_dict(
                    {n[len(prefix) :]: arrays[n] for n in names}, **spec["options"]
                )
                sizes = (cell.input_size, cell.hidden_size)
                if sizes != (spec["input_size"], spec["hidden_size"]):
                    raise ModelFileError(
                        f"{path}: layer {k} arrays have (input_size, hidden_size) = {sizes}; "
                        f"the metadata says ({spec['input_size']}, {spec['hidden_size']})"
                    )
                layers.append(cell)
            readout = None
            if config["readout"] is not None:
                readout = Readout(arrays["readout.weight"], arrays["readout.bias"])
                used.update(("readout.weight", "readout.bias"))
            stray = sorted(set(arrays) - used)
            if stray:
                raise ModelFileError(f"{path}: arrays {stray} belong to no part of the model")
            return cls(layers, readout)
        except ModelFileError:
            raise
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as err:
            raise ModelFileError(f"{path} does not describe a valid model: {err}") from None


def describe(config: Mapping[str, Any]) -> str:
    """A model's layers and readout in one line, from its :meth:`Model.config`.

    Examples
    --------
    >>> describe(Model.init("MinGRU", input_size=1, hidden_sizes=[8], output_size=1).config())
    'MinGRU(1->8) > Readout(1)'
    """
    layers = " > ".join(
        f"{c['type']}({c['input_size']}->{c['hidden_size']})" for c in config["layers"]
    )
    return layers + (f" > Readout({config['readout']})" if config["readout"] else "")

"""The cell interface shared by every recurrent layer.

A cell is one recurrent layer: parameters held as plain NumPy arrays, maths written
once against an array namespace. Arrays are time-major: ``x`` is ``(T, B, F)``
and outputs are ``(T, B, H)``, as in PyTorch's default layout.

Missing values: a step where any feature of ``x`` is NaN for a series is *missing*
for that series. Its transition is the identity (the state carries over unchanged)
and its output is NaN. Series that start late, end early or are all NaN need no
special handling.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np

from .. import kernels
from ..arrays import check_param, float_dtype, may_hold_any, namespace
from ..errors import InputError
from ..kernels.interface import KernelSpec

if TYPE_CHECKING:
    from ..readout import Readout

__all__ = ["Cell", "State"]

#: A cell's recurrent state: one ``(B, H)`` array, or a tuple of them (LSTM's ``(h, c)``).
State = Any


class Cell(ABC):
    """One recurrent layer.

    Parameters
    ----------
    params
        The parameter arrays, by name (as :meth:`state_dict` returns them).
    **options
        Cell-specific options (see each subclass), recorded by :meth:`config`.

    Raises
    ------
    ValueError
        If a parameter is missing, unexpected, of the wrong shape, or not finite.
    TypeError
        If a parameter is not a floating-point array.
    """

    #: Number of gate blocks stacked in the rows of the input weight.
    n_blocks: ClassVar[int] = 1
    #: The parameter whose shape ``(n_blocks * H, F)`` gives the cell's sizes.
    weight_name: ClassVar[str] = "weight"
    #: Names of the tuple entries of the state (``("h",)`` for a single array).
    state_names: ClassVar[tuple[str, ...]] = ("h",)
    #: Options that only shape :meth:`init` and are not part of the cell.
    init_only: ClassVar[tuple[str, ...]] = ()
    #: The cell's fused kernels (:data:`rnncore.kernels.KINDS`; ``None``: reference only).
    kernel_kind: ClassVar[str | None] = None
    #: True for cells linear in their state (:class:`~rnncore.cells.LinearStateCell`).
    linear_state: ClassVar[bool] = False

    def __init__(self, params: Mapping[str, Any], **options: Any) -> None:
        self.options = self._check_options(options)
        if self.weight_name not in params:
            raise ValueError(
                f"{type(self).__name__} parameters lack {self.weight_name!r}; got {sorted(params)}"
            )
        weight = np.asarray(params[self.weight_name])
        if weight.ndim != 2 or weight.shape[0] % self.n_blocks:
            raise ValueError(
                f"{type(self).__name__}.{self.weight_name} has shape {weight.shape}; "
                f"expected (hidden_size * {self.n_blocks}, input_size)"
            )
        self.hidden_size = weight.shape[0] // self.n_blocks
        self.input_size = weight.shape[1]
        self.params = self._check_params(params)
        self._cast_cache: dict[tuple[str, str, np.dtype], Any] = {}

    # -- construction -----------------------------------------------------------------

    @classmethod
    def init(
        cls,
        input_size: int,
        hidden_size: int,
        *,
        seed: int | None = 0,
        dtype: Any = np.float32,
        **options: Any,
    ) -> Self:
        """Create a cell with freshly initialised parameters.

        Parameters
        ----------
        input_size, hidden_size
            Features in, hidden units.
        seed
            Seed of the random generator (``None`` for fresh entropy).
        dtype
            float32 or float64.
        **options
            Cell-specific options.

        Examples
        --------
        >>> from rnncore import MinGRU
        >>> MinGRU.init(3, 8, seed=1).hidden_size
        8
        """
        for name, size in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(size, int | np.integer) or size < 1:
                raise ValueError(f"{name} must be a positive integer; got {size!r}")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64; got {dtype}")
        rng = np.random.default_rng(seed)
        params = cls._init_params(rng, int(input_size), int(hidden_size), **options)
        cell_options = {k: v for k, v in options.items() if k not in cls.init_only}
        return cls({k: v.astype(dtype) for k, v in params.items()}, **cell_options)

    @classmethod
    @abstractmethod
    def _init_params(
        cls, rng: np.random.Generator, input_size: int, hidden_size: int, **options: Any
    ) -> dict[str, np.ndarray]:
        """Draw initial parameters (float64; :meth:`init` casts them)."""

    @classmethod
    def from_state_dict(cls, mapping: Mapping[str, Any], **options: Any) -> Self:
        """Build a cell from a mapping of parameter arrays, as :meth:`state_dict` gives.

        Arrays may be NumPy arrays or anything ``numpy.asarray`` accepts.
        """
        return cls({k: np.asarray(v) for k, v in mapping.items()}, **options)

    def state_dict(self) -> dict[str, np.ndarray]:
        """The parameters as plain NumPy arrays, by name."""
        return {k: v.copy() for k, v in self.params.items()}

    def feasible(self, state: Mapping[str, Any]) -> dict[str, Any]:
        """The parameters nearest ``state`` (keyed as :meth:`state_dict`) that the cell accepts.

        The identity, unless a cell constrains its parameters (DiagonalLinear's decays).
        """
        return dict(state)

    def config(self) -> dict[str, Any]:
        """JSON-serialisable description: type, sizes and options."""
        return {
            "type": type(self).__name__,
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "options": dict(self.options),
        }

    @property
    def dtype(self) -> np.dtype:
        """The parameters' dtype."""
        return self.params[self.weight_name].dtype

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return (
            f"{type(self).__name__}(input_size={self.input_size}, "
            f"hidden_size={self.hidden_size}, dtype={self.dtype}{opts})"
        )

    # -- validation ---------------------------------------------------------------

    @classmethod
    def _check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """Validate cell options; cells with options override this."""
        if options:
            raise TypeError(f"{cls.__name__} takes no options; got {sorted(options)}")
        return {}

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """The expected shape of every parameter."""
        rows = self.n_blocks * self.hidden_size
        return {"weight": (rows, self.input_size), "bias": (rows,)}

    def _check_params(self, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
        name = type(self).__name__
        shapes = self.param_shapes()
        missing = sorted(set(shapes) - set(params))
        extra = sorted(set(params) - set(shapes))
        if missing or extra:
            raise ValueError(
                f"{name} parameters do not match: missing {missing}, unexpected {extra}; "
                f"expected exactly {sorted(shapes)}"
            )
        dtype = np.asarray(params[self.weight_name]).dtype
        return {
            key: check_param(f"{name}.{key}", params[key], shape, dtype)
            for key, shape in shapes.items()
        }

    # -- running --------------------------------------------------------------------

    def params_for(self, xp: ModuleType, dtype: np.dtype) -> dict[str, Any]:
        """The parameters as ``xp`` arrays of ``dtype`` (cached per namespace and dtype)."""
        key = ("params", xp.__name__, np.dtype(dtype))
        if key not in self._cast_cache:
            self._cast_cache[key] = {k: xp.asarray(v, dtype=dtype) for k, v in self.params.items()}
        return self._cast_cache[key]

    def kernel_spec(self, xp: ModuleType, dtype: np.dtype) -> KernelSpec | None:
        """What the fused kernels need of this cell, with ``xp`` arrays of ``dtype``.

        Cached per namespace and dtype, as :meth:`params_for`.

        Returns
        -------
        KernelSpec or None
            ``None`` for a cell with no fused kernels (:attr:`kernel_kind` ``None``).

        Examples
        --------
        >>> import numpy as np
        >>> from rnncore import MinGRU
        >>> spec = MinGRU.init(1, 4).kernel_spec(np, np.float32)
        >>> spec.kind, spec.linear, spec.activation, spec.hidden, sorted(spec.params)
        ('mingru', True, 'identity', 4, ['bias', 'decay', 'weight'])
        """
        if self.kernel_kind is None:
            return None
        key = ("spec", xp.__name__, np.dtype(dtype))
        if key not in self._cast_cache:
            self._cast_cache[key] = KernelSpec(
                kind=self.kernel_kind,
                linear=self.linear_state,
                activation=self.options.get("activation", "identity"),
                hidden=self.hidden_size,
                params=self._kernel_params(xp, np.dtype(dtype)),
            )
        return self._cast_cache[key]

    def _kernel_params(self, xp: ModuleType, dtype: np.dtype) -> dict[str, Any]:
        """The parameter arrays of :meth:`kernel_spec`: :meth:`params_for`, unless overridden."""
        return self.params_for(xp, dtype)

    def check_input(self, x: Any) -> tuple[ModuleType, Any]:
        """Validate ``x``: its namespace, and ``x`` as a float array ``(T, B, F)``."""
        xp = namespace(x)
        x = xp.asarray(x)
        if x.ndim != 3:
            raise InputError(
                f"x has {x.ndim} dimensions (shape {x.shape}); expected 3: (time, batch, feature)"
            )
        if x.shape[2] != self.input_size:
            raise InputError(
                f"x has {x.shape[2]} features (shape {x.shape}); "
                f"{type(self).__name__} expects input_size={self.input_size}"
            )
        return xp, x.astype(float_dtype(x.dtype, what="x"), copy=False)

    def prepare_input(self, x: Any) -> tuple[ModuleType, Any, Any]:
        """Validate ``x`` and split off its missing steps.

        Returns
        -------
        xp
            The array namespace of ``x``.
        x
            ``x`` as a float array of shape ``(T, B, F)`` with missing steps set to 0.
        missing
            Boolean ``(T, B, 1)``: True where any feature is NaN.
        """
        xp, x = self.check_input(x)
        missing = xp.isnan(x).any(axis=2, keepdims=True)
        return xp, (xp.where(missing, 0, x) if may_hold_any(missing) else x), missing

    def prepare_state(self, xp: ModuleType, h0: State, batch: int, dtype: np.dtype) -> State:
        """Validate ``h0`` (zeros when ``None``) as this cell's state for ``batch`` series."""
        shape = (batch, self.hidden_size)
        if h0 is None:
            parts = tuple(xp.zeros(shape, dtype) for _ in self.state_names)
        else:
            parts = (h0,) if len(self.state_names) == 1 else tuple(h0)
            if len(parts) != len(self.state_names):
                raise ValueError(
                    f"{type(self).__name__} state is {self.state_names}; got {len(parts)} arrays"
                )
            parts = tuple(xp.asarray(p) for p in parts)
            for name, part in zip(self.state_names, parts, strict=True):
                if part.shape != shape:
                    raise ValueError(
                        f"{type(self).__name__} initial state {name} has shape {part.shape}; "
                        f"expected (batch, hidden_size) = {shape}"
                    )
            parts = tuple(
                p.astype(float_dtype(p.dtype, what="h0")).astype(dtype, copy=False) for p in parts
            )
        return parts[0] if len(parts) == 1 else parts

    def __call__(self, x: Any, h0: State = None) -> tuple[Any, State]:
        """Run the layer over ``x``.

        Parameters
        ----------
        x
            ``(T, B, F)`` inputs; NaN marks a missing step.
        h0
            Initial state ``(B, H)`` (LSTM: the pair ``(h, c)``); zeros if ``None``.

        Returns
        -------
        y
            ``(T, B, H)`` outputs, NaN at missing steps.
        state
            The state after the last step (``h0`` when ``T = 0``).
        """
        return self.run(x, h0)

    def run(self, x: Any, h0: State = None, readout: Readout | None = None) -> tuple[Any, State]:
        """Run the layer over ``x``, then ``readout`` on its outputs if given.

        NumPy inputs take the cell's fused numba kernel while ``"numba"`` is the
        selected path (:mod:`rnncore.kernels`; the readout fused in, no hidden outputs
        stored), CuPy inputs its CUDA kernel (:mod:`rnncore.kernels.cuda`); other
        arrays, and NumPy ones with ``"reference"`` selected, take the reference path.

        Parameters
        ----------
        x, h0
            As for :meth:`__call__`.
        readout
            A :class:`rnncore.Readout`, or ``None``.

        Returns
        -------
        y
            ``(T, B, H)`` outputs, or ``(T, B, outputs)`` with a readout; NaN at
            missing steps.
        state
            The state after the last step.
        """
        xp, x = self.check_input(x)
        state = self.prepare_state(xp, h0, x.shape[1], x.dtype)
        spec = self.kernel_spec(xp, x.dtype)
        if (module := kernels.cell_kernels(xp, spec)) is not None:
            arrays = None if readout is None else readout.arrays(xp, x.dtype)
            return module.run(spec, x, state, arrays)
        y, state = self._reference(xp, x, state)
        return (y if readout is None else readout(y)), state

    @abstractmethod
    def _reference(self, xp: ModuleType, x: Any, state: State) -> tuple[Any, State]:
        """The reference path: outputs and final state for checked ``x`` and ``state``."""


def uniform(rng: np.random.Generator, bound: float, shape: tuple[int, ...]) -> np.ndarray:
    """Draw ``U(-bound, bound)`` (PyTorch's default initialisation for recurrent layers)."""
    return rng.uniform(-bound, bound, size=shape)


def fan_in_bound(size: int) -> float:
    """``1 / sqrt(size)``, the bound of PyTorch's default initialisation."""
    return 1.0 / math.sqrt(size)

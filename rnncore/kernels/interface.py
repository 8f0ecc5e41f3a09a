"""The kernel interface: what a cell hands its kernels, and what every kernel module offers.

The kernels never see a :class:`~rnncore.Cell` or a :class:`~rnncore.Readout`. A cell
describes itself once, as a :class:`KernelSpec` (:meth:`rnncore.Cell.kernel_spec`),
and a readout as :class:`ReadoutArrays` (:meth:`rnncore.Readout.arrays`); the kernel
modules take those. Two implementations share one call convention:

- :mod:`rnncore.kernels.cells` and :mod:`rnncore.kernels.scan`: numba, for NumPy arrays;
- :mod:`rnncore.kernels.cuda.cells` and :mod:`rnncore.kernels.cuda.scan`: CUDA, for CuPy
  arrays.

Each cells module satisfies :class:`CellKernels`, each scan module :class:`ScanKernels`;
:func:`rnncore.kernels.cell_kernels` and :func:`rnncore.kernels.scan_kernels` pick one
by the inputs' array namespace. The backward pass of the linear-state cells has numba
kernels only (:mod:`rnncore.kernels.linear_vjp`, a :class:`LinearVJPKernels`, picked by
:func:`rnncore.kernels.linear_vjp_kernels`); CuPy arrays take the reference path there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "CellKernels",
    "KernelSpec",
    "LinearVJPKernels",
    "NonlinearVJPKernels",
    "ReadoutArrays",
    "ScanKernels",
]


@dataclass(frozen=True)
class KernelSpec:
    """What a fused kernel needs to know of a cell.

    Attributes
    ----------
    kind
        The cell's kernel, a key of :data:`rnncore.kernels.KINDS` (``"mingru"``, ...).
    linear
        True for a cell linear in its state (gates from the inputs alone, then a
        scan); False for one stepping a nonlinear recurrence.
    activation
        The candidate's activation: ``"g"`` (the log-space variant of minGRU and
        minLSTM) or ``"identity"``.
    hidden
        Hidden units.
    params
        The parameter arrays in the inputs' namespace and dtype, in the cell's own
        layout, by name: ``weight``, ``bias`` and ``decay`` (ones unless the cell has
        its own) for linear cells; ``weight_ih``, ``weight_hh``, ``bias_ih`` and
        ``bias_hh`` for nonlinear ones. Read only.
    """

    kind: str
    linear: bool
    activation: str
    hidden: int
    params: Mapping[str, Any]


@dataclass(frozen=True)
class ReadoutArrays:
    """A readout's arrays, in the namespace and dtype of the states it reads.

    Attributes
    ----------
    weight
        ``(outputs, hidden)``, C-contiguous.
    bias
        ``(outputs,)``.
    """

    weight: Any
    bias: Any

    @property
    def output_size(self) -> int:
        """Number of outputs."""
        return self.weight.shape[0]

    def __call__(self, h: Any) -> Any:
        """``h @ weight.T + bias`` for ``(..., hidden)`` states ``h``."""
        return h @ self.weight.T + self.bias


class CellKernels(Protocol):
    """The fused kernels of cells, for one kind of array.

    Inputs ``x`` are checked ``(T, B, F)`` float arrays; NaN marks a missing step
    (the identity, with NaN outputs).
    """

    def supports(self, spec: KernelSpec) -> bool:
        """True when a kernel here runs the cell ``spec`` describes."""
        ...

    def run(
        self, spec: KernelSpec, x: Any, state: Any, readout: ReadoutArrays | None
    ) -> tuple[Any, Any]:
        """Outputs ``(T, B, H)`` (or the readout's ``(T, B, outputs)``) and final state.

        ``state`` is the cell's initial state: a ``(B, H)`` array of ``x``'s dtype, or
        a tuple of them (LSTM's ``(h, c)``), returned in the same form.
        """
        ...

    def transition(self, spec: KernelSpec, x: Any) -> tuple[Any, Any]:
        """A linear cell's decays and inputs ``(a, b)``, each ``(T, B, H)``."""
        ...

    def summary(self, spec: KernelSpec, x: Any) -> tuple[Any, Any]:
        """A linear cell's summary ``(A, B)``, each ``(B, H)``, without storing its gates."""
        ...

    def emit(self, spec: KernelSpec, c: Any, x: Any) -> Any:
        """A linear cell's outputs ``(T, B, H)`` for scanned states ``c``."""
        ...


class LinearVJPKernels(Protocol):
    """The fused backward pass of linear-state cells, for one kind of array."""

    def supports(self, spec: KernelSpec) -> bool:
        """True when a kernel here differentiates the cell ``spec`` describes."""
        ...

    def linear_vjp(
        self,
        spec: KernelSpec,
        x: Any,
        grad_y: Any,
        h0: Any,
        grad_state: Any,
        readout: ReadoutArrays | None = None,
    ) -> tuple[dict[str, Any], Any, Any, tuple[Any, Any] | None]:
        """Parameter (by name), input and initial-state gradients of a linear-state cell.

        For checked inputs ``x`` ``(T, B, F)`` with ``T > 0`` (NaN marks a missing
        step), the outputs' cotangent ``grad_y`` ``(T, B, H)``, the initial state
        ``h0`` and the final state's cotangent ``grad_state`` (each ``(B, H)``); as
        :func:`rnncore.grad.cell_vjp`. With a ``readout``, ``grad_y`` is the cotangent
        of its outputs, and the gradients of its weight and bias come last (else
        ``None``).
        """
        ...


class NonlinearVJPKernels(Protocol):
    """The fused backward pass of the nonlinear cells (numba only).

    The forward pass records a tape, from which the backward pass forms the
    gradients of :func:`rnncore.grad.cell_vjp`.
    """

    def supports(self, spec: KernelSpec) -> bool:
        """True when the cell ``spec`` describes is differentiated here."""
        ...

    def forward(self, spec: KernelSpec, x: Any, state: Any) -> tuple[Any, Any, Any]:
        """Outputs ``(T, B, H)``, final state and the tape, from the initial ``state``."""
        ...

    def backward(
        self, tape: Any, x: Any, grad_y: Any, grad_state: Any
    ) -> tuple[dict[str, Any], Any, Any]:
        """Parameter, input and initial-state gradients from a tape of inputs ``x``.

        ``x`` has its missing steps set to zero; ``grad_y`` ``(T, B, H)`` and
        ``grad_state`` are the cotangents of the outputs and the final state.
        """
        ...


class ScanKernels(Protocol):
    """The affine scan over blocks of time laid side by side, ``(n_blocks, steps, ...)``."""

    def min_step_width(self) -> int:
        """Elements per step below which :mod:`rnncore.scan` splits time into blocks."""
        ...

    def scan_blocks(self, ab: Any, bb: Any, entries: Any, out: Any = None) -> Any:
        """Every block scanned from its entry state ``entries`` ``(n_blocks, ...)``."""
        ...

    def summarise_blocks(self, ab: Any, bb: Any) -> tuple[Any, Any]:
        """Each block's ``(A, B)``: the product of its decays, and its scan from zero."""
        ...

"""Adam (Kingma and Ba, 2015) on named parameter arrays, as PyTorch's ``torch.optim.Adam``.

Functional: :meth:`Adam.update` returns new parameters and a new :class:`AdamState`
and changes neither its arguments nor the optimiser, so a run is a pure function of
its inputs. Written against the parameters' array namespace (NumPy or CuPy); the
moments keep the parameters' dtype.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..arrays import namespace

__all__ = ["Adam", "AdamState"]


class AdamState(NamedTuple):
    """Adam's state: the number of steps taken and each parameter's two moments.

    Attributes
    ----------
    step
        Updates applied so far.
    m, v
        The moving averages of the gradients and of their squares, keyed as the
        parameters are.
    """

    step: int
    m: dict[str, Any]
    v: dict[str, Any]


@dataclass(frozen=True)
class Adam:
    """The Adam optimiser's settings.

    Parameters
    ----------
    lr
        The learning rate (step size), positive.
    betas
        The decay rates of the two moving averages, each in ``[0, 1)``.
    eps
        Added to the root of the second moment, positive.

    Examples
    --------
    >>> import numpy as np
    >>> adam = Adam(lr=0.1)
    >>> params = {"w": np.array([1.0, -2.0])}
    >>> state = adam.init(params)
    >>> for _ in range(3):
    ...     params, state = adam.update(params, {"w": 2 * params["w"]}, state)
    >>> state.step, params["w"].round(2).tolist()
    (3, [0.7, -1.7])
    """

    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def __post_init__(self) -> None:
        if not _positive(self.lr):
            raise ValueError(f"lr must be a positive finite number; got {self.lr!r}")
        if len(self.betas) != 2 or not all(_fraction(b) for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1); got {self.betas!r}")
        if not _positive(self.eps):
            raise ValueError(f"eps must be a positive finite number; got {self.eps!r}")

    def init(self, params: Mapping[str, Any]) -> AdamState:
        """The state before the first step: zero moments of the parameters' shapes."""
        zeros = {k: namespace(v).zeros_like(v) for k, v in params.items()}
        return AdamState(0, zeros, {k: v.copy() for k, v in zeros.items()})

    def update(
        self, params: Mapping[str, Any], grads: Mapping[str, Any], state: AdamState
    ) -> tuple[dict[str, Any], AdamState]:
        """One step: the new parameters and state (the arguments are left unchanged).

        Raises
        ------
        ValueError
            If ``grads`` or the state's moments are not keyed as ``params`` are.
        """
        for what, keys in (("grads", grads), ("state.m", state.m), ("state.v", state.v)):
            if set(keys) != set(params):
                raise ValueError(
                    f"{what} has keys {sorted(keys)}; expected the parameters' {sorted(params)}"
                )
        (beta1, beta2), step = self.betas, state.step + 1
        step_size = self.lr / (1 - beta1**step)
        root_correction = math.sqrt(1 - beta2**step)
        new_params, m, v = {}, {}, {}
        for key, value in params.items():
            xp = namespace(value)
            grad = xp.asarray(grads[key], dtype=value.dtype)
            m[key] = beta1 * state.m[key] + (1 - beta1) * grad
            v[key] = beta2 * state.v[key] + (1 - beta2) * grad * grad
            denom = xp.sqrt(v[key]) / root_correction + self.eps
            new_params[key] = value - step_size * (m[key] / denom)
        return new_params, AdamState(step, m, v)


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < math.inf


def _fraction(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1

"""Ridge regression fitted exactly by a distributed reduction, its strength chosen by GCV.

The rows ``w = [x, y]`` (features, then targets) of every block are summarised by
their :class:`Moments`: count, mean and centred cross-product matrix. Moments merge
exactly and associatively (Chan, Golub and LeVeque's pairwise update), so Dask can
sum the blocks' moments in a tree (:func:`rnncore.trees.tree_reduce`) and one small solve at the
end (:func:`solve_ridge`) gives the coefficients: one pass over the data, memory of
one block plus a ``(p + k)^2`` matrix per merge, whatever the data's length.

The problem solved, for features ``X`` ``(n, p)`` and targets ``Y`` ``(n, k)``::

    minimise  || Y - 1 b' - X B ||^2 + n * lambda * || S B ||^2

with ``S = diag(std(X))``: the ridge penalty acts on standardised features and the
intercept ``b`` is not penalised. Each target column ``h`` may have its own
``lambda_h``; given ``None`` it is chosen on a grid by generalised cross-validation,

    GCV(lambda) = (RSS(lambda) / n) / (1 - df(lambda) / n)^2,
    df(lambda) = 1 + sum_i e_i / (e_i + lambda),

where ``e_i`` are the eigenvalues of the features' correlation matrix. ``RSS`` and
``df`` both follow from the accumulated moments and one eigendecomposition: choosing
``lambda`` costs no further pass over the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np

__all__ = ["GRID", "Moments", "RidgeSolution", "solve_ridge"]

#: The ridge strengths GCV chooses among (relative to standardised features). None is
#: zero: with collinear features and few rows, GCV's minimum can sit at an unstable 0.
GRID = np.logspace(-6, 3, 37)

# Eigenvalues below this fraction of the largest are treated as zero (pseudo-inverse).
_RCOND = 1e-13


@dataclass(frozen=True)
class Moments:
    """Count, column means and centred cross-products of a set of rows.

    Attributes
    ----------
    n
        Number of rows.
    mean
        ``(q,)`` column means (zeros when ``n == 0``).
    comoment
        ``(q, q)``: ``sum_rows (w - mean)(w - mean)'``.

    Examples
    --------
    >>> rows = np.arange(12.0).reshape(6, 2) ** 2
    >>> merged = Moments.of(rows[:2]).merge(Moments.of(rows[2:]))
    >>> bool(np.allclose(merged.comoment, Moments.of(rows).comoment))
    True
    """

    n: int
    mean: np.ndarray
    comoment: np.ndarray

    @classmethod
    def of(cls, rows: np.ndarray, *, overwrite: bool = False) -> Self:
        """The moments of ``rows`` ``(n, q)``, in float64.

        With ``overwrite``, a float64 ``rows`` is centred in place (saving a copy).
        """
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2:
            raise ValueError(f"rows must be a 2-D array (rows, columns); got shape {rows.shape}")
        if rows.shape[0] == 0:
            return cls.empty(rows.shape[1])
        mean = rows.mean(axis=0)
        centred = np.subtract(rows, mean, out=rows if overwrite else None)
        return cls(rows.shape[0], mean, centred.T @ centred)

    @classmethod
    def empty(cls, width: int) -> Self:
        """The moments of no rows of ``width`` columns (the identity of :meth:`merge`)."""
        return cls(0, np.zeros(width), np.zeros((width, width)))

    def merge(self, other: Moments) -> Moments:
        """The moments of both sets of rows together."""
        if self.mean.shape != other.mean.shape:
            raise ValueError(
                f"cannot merge moments of {self.mean.size} and {other.mean.size} columns"
            )
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.n / n)
        comoment = self.comoment + other.comoment + np.outer(delta, delta) * (self.n * other.n / n)
        return Moments(n, mean, comoment)


@dataclass(frozen=True)
class RidgeSolution:
    """A fitted ridge readout.

    Attributes
    ----------
    coef
        ``(p, k)`` coefficients of the raw (unstandardised) features.
    intercept
        ``(k,)``.
    ridge
        ``(k,)`` the strength used for every target column.
    gcv
        ``(len(grid), k)`` GCV score on the grid (NaN when ``ridge`` was given).
    feature_mean
        ``(p,)`` the features' means over the rows fitted.
    n
        Rows fitted.
    """

    coef: np.ndarray
    intercept: np.ndarray
    ridge: np.ndarray
    gcv: np.ndarray
    feature_mean: np.ndarray
    n: int

    def predict(self, features: np.ndarray) -> np.ndarray:
        """``features @ coef + intercept`` for ``(..., p)`` features."""
        return features @ self.coef + self.intercept


def solve_ridge(
    moments: Moments,
    n_features: int,
    ridge: float | Sequence[float] | None = None,
    *,
    grid: np.ndarray = GRID,
) -> RidgeSolution:
    """Solve the ridge problem of the module for rows summarised by ``moments``.

    Parameters
    ----------
    moments
        Moments of rows ``[x, y]`` whose first ``n_features`` columns are features.
    n_features
        ``p``; the remaining columns are the targets.
    ridge
        ``lambda`` (one for all targets, or one per target); ``None`` chooses each
        target's by GCV on ``grid``.
    grid
        Candidate strengths for GCV, non-negative.

    Returns
    -------
    RidgeSolution

    Raises
    ------
    ValueError
        If there are fewer rows than two, a strength is negative or not finite, or
        ``n_features`` leaves no target.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 2))
    >>> y = 3 + x @ [[1.0], [-2.0]]
    >>> fit = solve_ridge(Moments.of(np.hstack([x, y])), 2, ridge=0.0)
    >>> fit.coef.ravel().round(6).tolist(), fit.intercept.round(6).tolist()
    ([1.0, -2.0], [3.0])
    """
    q = moments.mean.size
    p, k = n_features, q - n_features
    if not 0 <= p < q:
        raise ValueError(f"n_features={p} must leave at least one target among {q} columns")
    n = moments.n
    if n < 2:
        raise ValueError(f"ridge regression needs at least 2 rows; got {n}")
    cxx, cxy = moments.comoment[:p, :p], moments.comoment[:p, p:]
    cyy = np.diag(moments.comoment)[p:]
    std = np.sqrt(np.maximum(np.diag(cxx), 0.0) / n)
    kept = std > _RCOND * max(std.max(initial=0.0), 1.0)
    s = std[kept]
    corr = cxx[np.ix_(kept, kept)] / (n * np.outer(s, s))
    cross = cxy[kept] / (n * s[:, None])
    eigval, eigvec = np.linalg.eigh(corr)
    eigval = np.clip(eigval, 0.0, None)
    active = eigval > _RCOND * max(eigval.max(initial=0.0), 1e-300)
    rotated = eigvec.T @ cross  # (p_kept, k)

    if ridge is None:
        grid = _check_strengths(grid, "grid")
        gcv = np.stack([_gcv(eigval, active, rotated, cyy / n, n, lam) for lam in grid])
        strengths = grid[np.argmin(np.where(np.isfinite(gcv), gcv, np.inf), axis=0)]
    else:
        strengths = _check_strengths(np.broadcast_to(np.asarray(ridge, float), (k,)), "ridge")
        gcv = np.full((grid.size, k), np.nan)

    coef = np.zeros((p, k))
    for h in range(k):
        inverse = np.where(active, 1.0 / np.where(active, eigval + strengths[h], 1.0), 0.0)
        coef[kept, h] = eigvec @ (inverse * rotated[:, h]) / s
    intercept = moments.mean[p:] - moments.mean[:p] @ coef
    return RidgeSolution(coef, intercept, strengths.copy(), gcv, moments.mean[:p].copy(), n)


def _gcv(
    eigval: np.ndarray,
    active: np.ndarray,
    rotated: np.ndarray,
    var_y: np.ndarray,
    n: int,
    lam: float,
) -> np.ndarray:
    """GCV of every target column at strength ``lam`` (see the module)."""
    denom = np.where(active, eigval + lam, 1.0)
    shrink = np.where(active, (eigval + 2 * lam) / denom**2, 0.0)
    rss = np.maximum(var_y - shrink @ rotated**2, 0.0)
    df = 1 + np.where(active, eigval / denom, 0.0).sum()
    if df >= n:
        return np.full(rotated.shape[1], np.inf)
    return rss / (1 - df / n) ** 2


def _check_strengths(values: Any, what: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if not (np.isfinite(values) & (values >= 0)).all():
        raise ValueError(f"{what} strengths must be finite and non-negative; got {values}")
    return values

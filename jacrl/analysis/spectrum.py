"""Matrix-free spectral estimates of ∇²L, hence of Df = I − α∇²L (seed 002, eqs. 12, 22).

Df is symmetric, so its eigenvalues are 1 − αλ for the Hessian eigenvalues λ, and its spectral
radius only needs the two ends of the Hessian spectrum: ρ(Df) = max(|1 − αλ_max|, |1 − αλ_min|).
Both ends come from Lanczos (:func:`jacrl.analysis.lanczos.lanczos_top`) on the
Hessian-vector product, each stopped once a residual bound computed from the products certifies
its tolerance ``tol``. λ_max (float64) converges in a few products (it is well separated);
λ_min sits at the edge of a crowded cluster of small eigenvalues, so it is computed as the top of
the shifted operator λ_max·I − ∇²L with a looser tolerance and, by default, float32 products.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from jacrl.analysis.hessian import HessianOperator
from jacrl.analysis.lanczos import check_tol, lanczos_top


def start_vector(hessian: HessianOperator, seed: int = 0) -> Tensor:
    """A fixed random start for Lanczos, so repeated runs give identical numbers."""
    values = np.random.default_rng(seed).standard_normal(hessian.n)
    return torch.as_tensor(values, dtype=torch.float64, device=hessian.a1.device)


def top_eigenpairs(
    hessian: HessianOperator,
    k: int = 1,
    tol: float = 1e-6,
    v0: np.ndarray | None = None,
    max_products: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The k largest (algebraic) Hessian eigenvalues, descending, and their eigenvectors.

    :param tol: relative accuracy: Lanczos stops when the residual ‖Hy − ρy‖, recomputed from
        the products, is ≤ tol·|ρ|, and a symmetric matrix has an eigenvalue within that of ρ
        (:mod:`jacrl.analysis.lanczos`). The actual error is far smaller for a separated
        eigenvalue (about ‖r‖²/gap): on the digits net 64-50-10 at init, tol = 1e-3 takes
        7 products and is off by 3e-7, tol = 1e-10 takes 15 products and is off by 3e-16
        (benchmarks/spectrum.py). PyHessian's power iteration, at its default tolerance 1e-3 on
        the change of its estimate, states no bound (off by 6e-4 there, after 7 products).
    :param v0: start vector; pass the previous top eigenvector when tracking over training.
    :param max_products: product budget (default min(n, 500)); ConvergenceError if spent.
    """
    start = start_vector(hessian) if v0 is None else torch.as_tensor(v0, device=hessian.a1.device)
    pairs = lanczos_top(hessian.matvec, start, k=k, tol=tol, max_products=max_products)
    return pairs.values, pairs.vectors


def smallest_eigenvalue(
    hessian: HessianOperator,
    lam_max: float,
    tol: float = 1e-4,
    dtype: torch.dtype = torch.float32,
) -> float:
    """λ_min(∇²L), as λ_max − (top eigenvalue of λ_max·I − ∇²L).

    The shift makes the wanted eigenvalue the largest of a positive semi-definite operator, so
    the relative tolerance is relative to the spectrum's width λ_max − λ_min, not to λ_min (which
    may be ≈ 0): the error is at most tol·(λ_max − λ_min) by the residual bound, and in practice
    far smaller. A Ritz value never lies below λ_min (up to rounding), so a negative estimate is
    not a false alarm.

    The products run in ``dtype``, float32 by default: about 100 products are needed on the
    seed's network, float32 halves their cost, and its ≈ 3e-6 relative error per product is
    far below the accuracy asked for here (the residual bound then holds for the operator as
    computed; λ_max, which needs float64, is computed separately).
    """
    low = hessian.to(dtype)

    def shifted(v: Tensor) -> Tensor:
        return lam_max * v - low.matvec(v.to(dtype)).to(v.dtype)

    pairs = lanczos_top(shifted, start_vector(hessian, seed=1), k=1, tol=tol)
    return float(lam_max - pairs.values[0])


@dataclass(frozen=True)
class ExtremeEigenvalues:
    """Both ends of the Hessian spectrum and the top eigenvector (for warm starts)."""

    lam_max: float
    lam_min: float
    top_vector: np.ndarray


def extreme_eigenvalues(
    hessian: HessianOperator,
    v0: np.ndarray | None = None,
    tol: float = 1e-6,
    lam_min_tol: float = 1e-4,
) -> ExtremeEigenvalues:
    """λ_max and λ_min of ∇²L by Lanczos: all that ρ(Df) and the stability verdict need.

    :param tol: relative accuracy of λ_max (:func:`top_eigenpairs`).
    :param lam_min_tol: accuracy of λ_min relative to λ_max − λ_min (:func:`smallest_eigenvalue`).
    """
    tol, lam_min_tol = check_tol(tol), check_tol(lam_min_tol, "lam_min_tol")
    values, vectors = top_eigenpairs(hessian, k=1, tol=tol, v0=v0)
    lam_max = float(values[0])
    lam_min = smallest_eigenvalue(hessian, lam_max, tol=lam_min_tol)
    return ExtremeEigenvalues(lam_max, lam_min, vectors[:, 0])

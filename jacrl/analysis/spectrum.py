"""Matrix-free spectral estimates of ∇²L, hence of Df = I − α∇²L (seed 002, eqs. 12, 22).

Df is symmetric, so its eigenvalues are 1 − αλ for the Hessian eigenvalues λ, and its spectral
radius only needs the two ends of the Hessian spectrum: ρ(Df) = max(|1 − αλ_max|, |1 − αλ_min|).
Both ends come from Lanczos (ARPACK's ``eigsh``) on a ``LinearOperator`` that calls the
Hessian-vector product. λ_max (float64) converges in about 20 products (it is well separated);
λ_min sits at the edge of a crowded cluster of small eigenvalues, so it is computed as the top of
the shifted operator λ_max·I − ∇²L with a larger Krylov space, a looser tolerance and, by
default, float32 products.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, eigsh

from jacrl.analysis.hessian import HessianOperator


def as_linear_operator(
    hessian: HessianOperator, scale: float = 1.0, shift: float = 0.0
) -> LinearOperator:
    """The float64 SciPy operator v ↦ shift·v + scale·∇²L v (on θ's device, copied to host)."""
    like = hessian.a1

    def matvec(v: np.ndarray) -> np.ndarray:
        vector = torch.as_tensor(np.ascontiguousarray(v).reshape(-1), dtype=like.dtype)
        product = hessian.matvec(vector.to(like.device)).cpu().double().numpy()
        return shift * v.reshape(-1) + scale * product

    return LinearOperator((hessian.n, hessian.n), matvec=matvec, dtype=np.float64)


def start_vector(n: int, seed: int = 0) -> np.ndarray:
    """A fixed random start for Lanczos, so repeated runs give identical numbers."""
    return np.random.default_rng(seed).standard_normal(n)


def top_eigenpairs(
    hessian: HessianOperator, k: int = 1, tol: float = 1e-6, v0: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The k largest (algebraic) Hessian eigenvalues, descending, and their eigenvectors.

    :param tol: ARPACK stops when the residual ‖Hx − θx‖ ≤ tol·|θ|; a symmetric matrix has an
        eigenvalue within ‖r‖ of θ, so 1e-6 bounds the relative error by 1e-6. On the digits net
        at init the error is ≈ 2e-15 after 21 products; a power iteration stopped at PyHessian's
        default tolerance 1e-3 is off by ≈ 1e-4 (benchmarks/iteration_jacobian.py).
    :param v0: start vector; pass the previous top eigenvector when tracking over training.
    """
    start = start_vector(hessian.n) if v0 is None else v0
    values, vectors = eigsh(as_linear_operator(hessian), k=k, which="LA", tol=tol, v0=start)
    order = np.argsort(values)[::-1]
    return values[order], vectors[:, order]


def smallest_eigenvalue(
    hessian: HessianOperator,
    lam_max: float,
    tol: float = 1e-4,
    ncv: int = 40,
    dtype: torch.dtype = torch.float32,
) -> float:
    """λ_min(∇²L), as λ_max − (top eigenvalue of λ_max·I − ∇²L).

    The shift makes the wanted eigenvalue the largest of a positive semi-definite operator, so
    ARPACK's relative tolerance is relative to the spectrum's width λ_max − λ_min, not to λ_min
    (which may be ≈ 0). Its stopping test bounds the residual ‖r‖, and a symmetric matrix has an
    eigenvalue within ‖r‖ of the Ritz value, so the error is at most ≈ tol·(λ_max − λ_min); in
    practice it is far smaller (≈ 1e-7 relative on the digits net at tol = 1e-4, which needs 41
    products instead of 71 at 1e-6: the bottom of the spectrum is a tight cluster). A Ritz value
    never lies below λ_min (up to rounding), so a negative estimate is not a false alarm.

    The products run in ``dtype``, float32 by default: about 100 products are needed on the
    seed's network, float32 halves their cost, and its ≈ 3e-6 relative error per product is
    far below the accuracy asked for here (λ_max, which needs float64, is computed separately).
    """
    shifted = as_linear_operator(hessian.to(dtype), scale=-1.0, shift=lam_max)
    ncv = min(ncv, hessian.n - 1)
    (top,) = eigsh(
        shifted,
        k=1,
        which="LA",
        tol=tol,
        ncv=ncv,
        v0=start_vector(hessian.n, seed=1),
        return_eigenvectors=False,
    )
    return float(lam_max - top)


@dataclass(frozen=True)
class ExtremeEigenvalues:
    """Both ends of the Hessian spectrum and the top eigenvector (for warm starts)."""

    lam_max: float
    lam_min: float
    top_vector: np.ndarray


def extreme_eigenvalues(
    hessian: HessianOperator, v0: np.ndarray | None = None
) -> ExtremeEigenvalues:
    """λ_max and λ_min of ∇²L by Lanczos: all that ρ(Df) and the stability verdict need."""
    values, vectors = top_eigenpairs(hessian, k=1, v0=v0)
    lam_max = float(values[0])
    return ExtremeEigenvalues(lam_max, smallest_eigenvalue(hessian, lam_max), vectors[:, 0])

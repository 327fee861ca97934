"""Lanczos for the top of a symmetric operator's spectrum, stopped by a verified residual.

Why not ARPACK's ``eigsh``: it builds ``ncv`` ≥ 20 Krylov vectors before its first convergence
test, so even a loose tolerance costs 20 products, and its test uses the recurrence's Ritz
estimate |β_j s_j| rather than the products themselves. Here every step tests the Ritz estimate
and, once it passes, the residual is *recomputed from the stored products*: with Q the Krylov
basis and HQ the products already made, a Ritz vector y = Q s has H y = (HQ) s, so

    r = H y − ρ y,   ρ = yᵀ H y / yᵀ y

costs no extra product. For a symmetric H some eigenvalue lies within ‖r‖/‖y‖ of ρ (the
residual bound; Parlett, *The Symmetric Eigenvalue Problem*, Thm 4.5.1), so stopping at
‖r‖/‖y‖ ≤ tol·|ρ| makes ρ accurate to ``tol`` relative. A Ritz value never exceeds λ_max, so
the eigenvalue found is λ_max itself unless the start vector is (numerically) orthogonal to its
eigenvector; a random start misses it with probability 0. The residual bound is loose for a
well-separated eigenvalue — the error is about ‖r‖²/gap — so the result is usually far more
accurate than ``tol`` (tests/test_analysis.py measures both against the dense spectrum).

Full reorthogonalisation (classical Gram–Schmidt, twice) keeps the basis orthonormal to
rounding, so no spurious copies of converged eigenvalues appear; at the sizes here (≤ a few
hundred vectors) it costs far less than the products.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from jacrl.common.errors import ConfigError, ConvergenceError

#: Tolerances below this are refused: the residual of float64 products cannot be certified much
#: below ~1e-14 relative (the rounding of one product of a 10⁴-wide operator).
MIN_TOL = 1e-13


def check_tol(tol: object, name: str = "tol") -> float:
    """``tol`` as a float if it is a real number in [MIN_TOL, 1), else ConfigError."""
    if isinstance(tol, bool) or not isinstance(tol, int | float) or not math.isfinite(tol):
        raise ConfigError(f"{name} must be a finite real number, got {tol!r}")
    if not MIN_TOL <= tol < 1:
        raise ConfigError(
            f"{name}={tol!r}: expected {MIN_TOL:g} <= {name} < 1 (a relative accuracy; below "
            f"{MIN_TOL:g} the residual of float64 products cannot certify it)"
        )
    return float(tol)


@dataclass(frozen=True)
class Eigenpairs:
    """The top k eigenvalue estimates (descending), their vectors ``(n, k)`` and residual bounds
    ‖H y − ρ y‖ / ‖y‖ (each value lies within its bound of an eigenvalue), and the products
    used."""

    values: np.ndarray
    vectors: np.ndarray
    residuals: np.ndarray
    products: int


def lanczos_top(
    matvec: Callable[[Tensor], Tensor],
    start: Tensor,
    k: int = 1,
    tol: float = 1e-6,
    max_products: int | None = None,
) -> Eigenpairs:
    """The k largest (algebraic) eigenvalues of the symmetric operator ``matvec``, each accurate
    to ``tol`` relative by its verified residual bound (see the module docstring).

    :param matvec: v ↦ H v on float64 vectors shaped like ``start`` (the products may round in
        a lower precision; the bound then holds for the operator as computed).
    :param start: the start vector (any non-zero vector; its direction is what matters).
    :param max_products: product budget, default min(n, 500); ConvergenceError if spent.
    """
    tol = check_tol(tol)
    n = start.numel()
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= n:
        raise ConfigError(f"k must be an int in [1, {n}], got {k!r}")
    budget = min(n, 500) if max_products is None else max_products
    if not isinstance(budget, int) or budget < k:
        raise ConfigError(f"max_products must be an int >= k = {k}, got {max_products!r}")
    norm = start.norm()
    if not bool(torch.isfinite(norm)) or float(norm) == 0.0:
        raise ConfigError("the start vector must be finite and non-zero")
    # The Krylov basis q_1, q_2, … and the products H q_1, H q_2, …, one row each; allocated for
    # the whole budget at once (pages are only touched as rows are written).
    basis = torch.empty(budget + 1, n, dtype=torch.float64, device=start.device)
    images = torch.empty(budget, n, dtype=torch.float64, device=start.device)
    basis[0] = start.reshape(-1).to(torch.float64) / norm
    alphas: list[float] = []
    betas: list[float] = []
    for step in range(budget):
        q, done = basis[step], basis[: step + 1]
        w = images[step]
        w.copy_(matvec(q).reshape(-1))
        alphas.append(float(q @ w))
        r = w - alphas[-1] * q
        if betas:
            r -= betas[-1] * basis[step - 1]
        for _ in range(2):  # full reorthogonalisation; twice is enough (Giraud et al. 2005)
            r -= done.mT @ (done @ r)
        beta = float(r.norm())
        found = _verified(alphas, betas, beta, done, images[: step + 1], k, tol)
        if found is not None:
            return Eigenpairs(*found, products=step + 1)
        if beta <= 1e-14 * max(abs(a) for a in alphas):
            break  # an exhausted Krylov space: nothing more to find from this start vector
        betas.append(beta)
        basis[step + 1] = r / beta
    raise ConvergenceError(
        f"Lanczos did not reach tol={tol:g} for the top {k} eigenvalue(s) after "
        f"{len(alphas)} products (max_products={budget}); raise max_products or tol"
    )


def _verified(
    alphas: list[float],
    betas: list[float],
    beta: float,
    basis: Tensor,
    images: Tensor,
    k: int,
    tol: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The top k Ritz pairs if all pass the residual test, checked from the products; else None."""
    steps = len(alphas)
    if steps < k:
        return None
    tridiagonal = np.diag(alphas)
    if betas:
        tridiagonal += np.diag(betas, 1) + np.diag(betas, -1)
    thetas, s = np.linalg.eigh(tridiagonal)  # a few dozen rows: LAPACK's dense solver is fine
    top = np.argsort(thetas)[::-1][:k]
    # the recurrence's estimate ‖H y − θ y‖ = |β s_last|: cheap, tested first
    if np.any(np.abs(beta * s[-1, top]) > tol * np.abs(thetas[top])):
        return None
    coefficients = torch.as_tensor(s[:, top].copy(), dtype=torch.float64, device=basis.device)
    vectors = basis.mT @ coefficients  # (n, k)
    images = images.mT @ coefficients  # H y, from the products made
    sizes = vectors.norm(dim=0)
    quotients = (vectors * images).sum(0) / sizes**2
    residuals = (images - vectors * quotients).norm(dim=0) / sizes
    if bool((residuals > tol * quotients.abs()).any()):
        return None
    return (
        quotients.cpu().numpy(),
        (vectors / sizes).cpu().numpy(),
        residuals.cpu().numpy(),
    )

"""Gradients of matrix functions by backprop: the three worked examples of seed 001 (UFLDL).

Seed 001 (``001_d1c8fbeaf61e5320.txt``, UFLDL "Deriving gradients using the backpropagation
idea") treats a function ``F: R^{r×c} → R`` as a small network — weights, elementwise
activations, a summing output — and reads its gradient off the backward pass
``δ^{(l)} = (W^{(l)ᵀ} δ^{(l+1)}) ∘ f′(z^{(l)})``, ``∇_{W^{(l)}} = δ^{(l+1)} a^{(l)ᵀ}``. Each
function below follows one of its examples, layer by layer, with the seed's typos corrected
(and pinned by tests against autograd):

- Example 1 asks for ``∇_A`` of the sparse-coding cost but its table computes the gradient
  w.r.t. the network *input* ``s``; both are given here.
- Example 2 writes ``V s sᵀ``; its network table (layer 1 activation ``f(z) = z²``, elementwise)
  shows the penalty means ``V (s ∘ s)``, which is what is implemented.
- Example 3's gradient through the first ``W`` reads ``(Wᵀ)(2(WᵀWx − x))xᵀ``; the delta there is
  ``(Wᵀ)ᵀ δ^{(3)} = W δ^{(3)}``, so the correct term is ``W · 2(WᵀWx − x) · xᵀ`` (the seed's
  version only type-checks for square W).

Shapes: columns are examples. ``A (d×k)``, ``s (k×m)``, ``x (d×m)`` for sparse coding;
``V (g×k)`` groups features; ``W (k×n)``, ``x (n×m)`` for ICA. Norms are Frobenius.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ica_reconstruction_cost",
    "ica_reconstruction_grad",
    "sparse_coding_cost",
    "sparse_coding_grad_A",
    "sparse_coding_grad_s",
    "topographic_l1",
    "topographic_l1_grad",
]


def sparse_coding_cost(A: np.ndarray, s: np.ndarray, x: np.ndarray, gamma: float) -> float:
    """Example 1: ``F(A; s) = ‖As − x‖² + γ‖A‖²``."""
    return float(np.sum((A @ s - x) ** 2) + gamma * np.sum(A**2))


def _sparse_coding_delta(A: np.ndarray, s: np.ndarray, x: np.ndarray) -> np.ndarray:
    """δ^{(2)} = 2(As − x): the square's f′ = 2z, passed unchanged back through "− x" (f′ = 1)."""
    return 2.0 * (A @ s - x)


def sparse_coding_grad_A(A: np.ndarray, s: np.ndarray, x: np.ndarray, gamma: float) -> np.ndarray:
    """``∇_A F = 2(As − x) sᵀ + 2γA``: the weight A between layers 1 and 2 gets δ^{(2)} sᵀ."""
    return _sparse_coding_delta(A, s, x) @ s.T + 2.0 * gamma * A


def sparse_coding_grad_s(A: np.ndarray, s: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``∇_s F = Aᵀ · 2(As − x)``: the seed's result, δ^{(1)} = Aᵀ δ^{(2)} at the input s."""
    return A.T @ _sparse_coding_delta(A, s, x)


def topographic_l1(s: np.ndarray, V: np.ndarray, epsilon: float) -> float:
    """Example 2: the smoothed topographic L1 penalty ``Σ √(V (s ∘ s) + ε)``."""
    return float(np.sum(np.sqrt(V @ (s * s) + epsilon)))


def topographic_l1_grad(s: np.ndarray, V: np.ndarray, epsilon: float) -> np.ndarray:
    """``∇_s = (Vᵀ (V(s ∘ s) + ε)^{−½}) ∘ s``.

    Layers: square (f′ = 2z), weight V, add ε, square root (f′ = ½ z^{−½}), sum.
    """
    delta4 = 0.5 / np.sqrt(V @ (s * s) + epsilon)  # square root at z = V(s∘s) + ε
    delta2 = V.T @ delta4  # through "+ ε" (f′ = 1) and the weight V
    return delta2 * 2.0 * s  # the square at the input: f′(z) = 2z


def ica_reconstruction_cost(W: np.ndarray, x: np.ndarray) -> float:
    """Example 3: the ICA reconstruction cost ``‖WᵀWx − x‖²`` with tied weights."""
    return float(np.sum((W.T @ (W @ x) - x) ** 2))


def ica_reconstruction_grad(W: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``∇_W = W · 2r · xᵀ + (Wx) · (2r)ᵀ`` with ``r = WᵀWx − x``.

    W appears twice (layer 1 weight W, layer 2 weight Wᵀ): the gradient of a tied weight is the
    sum over its instances, the Wᵀ instance's gradient transposed back.
    """
    a2 = W @ x  # layer 2 activation (identity)
    delta3 = 2.0 * (W.T @ a2 - x)  # δ at the reconstruction: square after subtracting x
    delta2 = W @ delta3  # (Wᵀ)ᵀ δ^{(3)}, identity activation
    grad_Wt = delta3 @ a2.T  # ∇ w.r.t. the instance Wᵀ, an (n×k) matrix
    grad_W = delta2 @ x.T  # ∇ w.r.t. the instance W
    return grad_W + grad_Wt.T

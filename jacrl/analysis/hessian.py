"""The full-batch loss of seed 002, its gradient step (eq. 20) and Hessian-vector products.

Df(θ) = I − α∇²L(θ) (eqs. 12, 22, 23), so everything about Df reduces to products ∇²L v. For the
seed's network (k = 60000, 784-50-10) one product must not cost much more than one gradient,
and must not hold anything of size k × d per vector. Both follow from eq. 13: X enters only
through A1 = X W1 + b1, which is *linear* in (W1, b1). Writing L(θ) = φ(Pθ) with the linear map
P θ = (X W1 + b1, W2, b2) and the small head φ(A1, W2, b2) (eqs. 14-17) gives exactly

    ∇²L = Pᵀ ∇²φ P        (a linear map adds no second-order term)

so one product costs X V1 (forward), an HVP of φ on k × h numbers (written out by hand, with
the head's values cached per θ; ``torch.func.jvp`` of ``torch.func.grad`` is the reference it is
tested against, about 3× slower) and Xᵀ G (backward): two k × d × h matmuls, like one gradient.
``jvp(grad(L))`` of the whole loss also recomputes X W1 and Xᵀ δ every time, and double backward
does four such matmuls; benchmarks/iteration_jacobian.py times all three.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor
from torch.func import grad, jvp, vmap

from jacrl.analysis.data import Batch
from jacrl.analysis.network import (
    ParamLayout,
    cross_entropy_sum,
    head_cross_entropy_sum,
    hidden_preactivation,
)


class FullBatchLoss:
    """L(θ) = −(1/k) Σ_i Σ_j t_j^i log y_j^i over one full batch (the corrected eq. 17).

    :param layout: the network's widths and where W1, b1, W2, b2 sit in θ (eq. 18).
    :param batch: the full batch (X, T) of eqs. 1 and 6.
    """

    def __init__(self, layout: ParamLayout, batch: Batch) -> None:
        self.layout = layout
        self.batch = batch

    def value(self, theta: Tensor) -> Tensor:
        """L(θ), a scalar tensor."""
        return cross_entropy_sum(self.layout, theta, self.batch.x, self.batch.t) / self.batch.k

    def gradient(self, theta: Tensor) -> Tensor:
        """grad(t) of eq. 19 as a flat vector ordered like θ."""
        return grad(self.value)(theta)

    def step(self, theta: Tensor, lr: float) -> Tensor:
        """One full-batch gradient-descent step θ − α·grad (eq. 20); Df is its Jacobian."""
        return theta - lr * self.gradient(theta)

    def hessian(self, theta: Tensor) -> HessianOperator:
        """The operator v ↦ ∇²L(θ) v at this θ."""
        return HessianOperator(self, theta)


class HessianOperator:
    """v ↦ ∇²L(θ) v at a fixed θ, factored through the first layer: ∇²L = Pᵀ ∇²φ P.

    Memory per product is O(k·h) (A1 and its tangent), never O(k·d). ``matmat`` vmaps the
    product over a stack of vectors; ``dense`` assembles ∇²L column block by column block, the
    chunked Jacobian that makes the dense Df of the 39,760-parameter network feasible on a GPU.
    """

    def __init__(self, loss: FullBatchLoss, theta: Tensor) -> None:
        self.layout = loss.layout
        self.x, self.t = loss.batch.x, loss.batch.t
        self.k = loss.batch.k
        self.n = loss.layout.n_params
        p = loss.layout.unflatten(theta)
        # The head's inputs at θ, cached: every product reuses A1 = X W1 + b1 (eq. 13).
        self.a1 = hidden_preactivation(loss.layout, theta, self.x)
        self.w2, self.b2 = p["W2"], p["b2"]
        # ... and what the hand-written ∇²φ product needs of the head at θ (see :meth:`matvec`),
        # the loss's 1/k folded into the derivatives:
        self.z = torch.sigmoid(self.a1)  # Z1 (eq. 14)
        self.slope = self.z * (1 - self.z)  # σ′(A1)
        self.p = torch.softmax(torch.addmm(self.b2, self.z, self.w2), dim=-1)  # Y (eq. 16)
        self.tau = self.t.sum(-1, keepdim=True) / self.k  # Σ_j t_j per row (1 for one-hot) / k
        self.g_s = self.p * self.tau - self.t / self.k  # ∂L/∂A2, row by row
        # ∂L/∂Z1 ⊙ σ″(A1), σ″ = σ′ (1 − 2 σ)
        self.curvature = (self.g_s @ self.w2.T) * self.slope * (1 - 2 * self.z)

    def to(self, dtype: torch.dtype) -> HessianOperator:
        """The same operator computing in ``dtype`` (X, T and the cached A1, W2, b2 cast once).

        float32 halves the cost of a product; :func:`~jacrl.analysis.spectrum.smallest_eigenvalue`
        uses it where ≈ 1e-7 relative rounding is far below the accuracy it needs.
        """
        other = copy.copy(self)
        for name in self._CACHED:
            setattr(other, name, getattr(self, name).to(dtype))
        return other

    #: the tensors :meth:`to` casts: the data and everything cached at θ
    _CACHED = ("x", "t", "a1", "w2", "b2", "z", "slope", "p", "tau", "g_s", "curvature")

    def _head_loss(self, a1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
        return head_cross_entropy_sum(a1, w2, b2, self.t) / self.k

    def matvec(self, v: Tensor) -> Tensor:
        """∇²L(θ) v for one flat vector v (shape (n,)): ∇²φ P v by hand, from the head's values
        cached at θ. With S = Z1 W2 + b2, G = ∂φ/∂S = τ Y − T and the tangent (Ȧ1, Ẇ2, ḃ2) =
        P v, the derivative of φ's gradient is

            Ż = σ′ ⊙ Ȧ1,  Ṡ = Ż W2 + Z1 Ẇ2 + ḃ2,  Ġ = τ Y ⊙ (Ṡ − rowsum(Y ⊙ Ṡ)),
            ∂/∂W2: Żᵀ G + Z1ᵀ Ġ,  ∂/∂b2: Σ_rows Ġ,
            ∂/∂A1: (Ġ W2ᵀ + G Ẇ2ᵀ) ⊙ σ′ + (G W2ᵀ) ⊙ σ″ ⊙ Ȧ1,

        the last pulled back by Pᵀ. Two k × d × h matmuls and a dozen k × h operations, against
        about three times that for torch.func's forward-over-reverse of the same head
        (:meth:`reference_matvec`, which it is tested against)."""
        dv = self.layout.unflatten(v)
        a1_dot = torch.addmm(dv["b1"], self.x, dv["W1"])  # P v, first component
        z_dot = self.slope * a1_dot
        s_dot = torch.addmm(torch.addmm(dv["b2"], self.z, dv["W2"]), z_dot, self.w2)
        ps_dot = self.p * s_dot
        g_dot = self.tau * (ps_dot - self.p * ps_dot.sum(-1, keepdim=True))
        g_z = torch.addmm(g_dot @ self.w2.T, self.g_s, dv["W2"].T)
        g_a1 = torch.addcmul(self.curvature * a1_dot, g_z, self.slope)
        blocks = {
            "W1": self.x.T @ g_a1,
            "b1": g_a1.sum(0),
            "W2": torch.addmm(self.z.T @ g_dot, z_dot.T, self.g_s),
            "b2": g_dot.sum(0),
        }
        return self.layout.flatten(blocks)

    def reference_matvec(self, v: Tensor) -> Tensor:
        """∇²L(θ) v by torch.func: the simple path :meth:`matvec` is tested against."""
        dv = self.layout.unflatten(v)
        a1_dot = self.x @ dv["W1"] + dv["b1"]  # P v, first component
        # ∇²φ P v: forward-mode derivative of φ's gradient along P v.
        g_a1, g_w2, g_b2 = jvp(
            grad(self._head_loss, argnums=(0, 1, 2)),
            (self.a1, self.w2, self.b2),
            (a1_dot, dv["W2"], dv["b2"]),
        )[1]
        # Pᵀ applied to ∇²φ P v: the adjoint of A1 = X W1 + b1 is (Xᵀ G, Σ_rows G).
        blocks = {"W1": self.x.T @ g_a1, "b1": g_a1.sum(0), "W2": g_w2, "b2": g_b2}
        return self.layout.flatten(blocks)

    def matmat(self, vectors: Tensor, chunk_bytes: int | None = None) -> Tensor:
        """∇²L(θ) v for each row v of ``vectors`` (shape (m, n)), vmapped into batched matmuls
        over as many rows at a time as ``chunk_bytes`` allows (see :meth:`chunk_rows`)."""
        step = self.chunk_rows(chunk_bytes)
        products = [vmap(self.matvec)(vectors[i : i + step]) for i in range(0, len(vectors), step)]
        return torch.cat(products)

    def chunk_rows(self, chunk_bytes: int | None = None) -> int:
        """How many vectors one vmapped product may take: each holds about 12·k·h numbers in
        flight, kept under ``chunk_bytes`` (default 128 MiB on CPU, where small blocks stay in
        cache; 4 GiB on a GPU, where large ones fill it). One at a time for the seed's k = 60000."""
        if chunk_bytes is None:
            chunk_bytes = 2**32 if self.a1.device.type == "cuda" else 2**27
        per_vector = 12 * self.k * self.layout.n_hidden * self.a1.element_size()
        return max(1, min(self.n, chunk_bytes // per_vector))

    def dense(self, chunk_bytes: int | None = None) -> Tensor:
        """The full n × n Hessian, assembled from products with blocks of unit vectors: the
        chunked Jacobian (never one n-wide ``jacrev``) that makes the dense Df of the
        39,760-parameter network fit on a GPU. The result stays on θ's device."""
        device, dtype = self.a1.device, self.a1.dtype
        step = self.chunk_rows(chunk_bytes)
        hessian = torch.empty(self.n, self.n, dtype=dtype, device=device)
        for start in range(0, self.n, step):
            stop = min(start + step, self.n)
            units = torch.zeros(stop - start, self.n, dtype=dtype, device=device)
            rows = torch.arange(stop - start, device=device)
            units[rows, rows + start] = 1.0
            # Row i of ∇²L equals column i: the Hessian is symmetric.
            hessian[start:stop] = vmap(self.matvec)(units)
        return hessian

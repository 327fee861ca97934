"""The simple exact gradient of ℓ(y0) = log|det ∂F⁻¹/∂y (y0)|: autograd through one inverse pass
(docs/method.md §2). It is the reference the hand-written :mod:`jacrl.logdet.fast` is tested
against, and what an agent does inside its own loss.

Seed eq. 7 asks to increase |J| = |det ∂F⁻¹/∂y (y0)|; eq. 11 gives ∂|J|/∂w = |J|·tr(J⁻¹ ∂J/∂w).
We follow ∇ log|J| = ∇|J| / |J| instead: the same direction (|J| > 0), no overflow of |J| for
large n or depth, and it splits into a sum over layers because J is a product of per-layer
Jacobians:

    ℓ(y0) = Σ_l log|det V_l| + Σ_l Σ_i log|(σ⁻¹)′(u_{l,i})|           (u: inputs of σ⁻¹)

That sum is what :meth:`jacrl.nn.InvertibleMLP.inverse_and_logdet` returns. Its gradient, with
y0 held fixed (the seed's ∂y/∂V ≡ 0) and per-sample weights a_b, is therefore plain
backpropagation through one inverse pass:

* the activation terms: one backward pass through the inverse pass, O(L n² B);
* the weight terms: ∂ log|det V_l|/∂V_l = V_l⁻ᵀ, independent of the sample, so the batch needs
  it once, scaled by Σ_b a_b (autograd sums the weights first, because log|det V_l| is one scalar
  broadcast to the batch) — one LU per layer, O(L n³) (``inverse``); or ∂(Σ s)/∂s = −1, O(L n)
  (``lu``), whose inverse pass is triangular solves instead.

Total O(L n² B + L n³), against the seed's eqs. 13–19: one n×n recursion per weight, i.e.
O(L n²) weights × O(L n³) each (see :mod:`jacrl.logdet.seed`), and against autograd of the
dense Jacobian, n backward passes per sample plus B determinants (:mod:`jacrl.logdet.autograd`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from jacrl.nn import InputShapeError, InvertibleMLP


def checked_weights(weights: Tensor | None, batch: int, dtype: torch.dtype) -> Tensor | None:
    """The per-sample weights a, detached and cast to ``dtype``, or None for all ones; raises
    InputShapeError unless they have shape ``(batch,)``."""
    if weights is None:
        return None
    if weights.shape != (batch,):
        raise InputShapeError(
            f"weights must have shape (batch,) = ({batch},), got {tuple(weights.shape)}"
        )
    return weights.detach().to(dtype)


def weighted_logdet(net: InvertibleMLP, y0: Tensor, weights: Tensor | None = None) -> Tensor:
    """Σ_b a_b ℓ(y0_b), differentiable in the parameters (y0 detached: ∂y/∂V ≡ 0).

    :param weights: per-sample weights a of shape ``(batch,)`` (e.g. advantages); default all 1.
    """
    logabsdet = net.inverse_and_logdet(y0.detach())[1]
    a = checked_weights(weights, logabsdet.shape[0], logabsdet.dtype)
    return logabsdet.sum() if a is None else (a * logabsdet).sum()


def named_gradients(net: InvertibleMLP, scalar: Tensor) -> dict[str, Tensor]:
    """∂scalar/∂θ for every trainable parameter of ``net``, keyed by parameter name; zeros where
    the scalar does not depend on a parameter (e.g. b_1, which acts after the last σ⁻¹)."""
    params = {name: p for name, p in net.named_parameters() if p.requires_grad}
    if not params:
        return {}
    grads = torch.autograd.grad(scalar, list(params.values()), allow_unused=True)
    return {
        name: torch.zeros_like(p) if g is None else g
        for (name, p), g in zip(params.items(), grads, strict=True)
    }


def backprop_logdet_grad(
    net: InvertibleMLP, y0: Tensor, weights: Tensor | None = None
) -> dict[str, Tensor]:
    """∇θ Σ_b a_b log|det ∂F⁻¹/∂y (y0_b)|, exact, keyed by parameter name, by autograd through
    :meth:`~jacrl.nn.InvertibleMLP.inverse_and_logdet` (one inverse pass, one backward pass, one
    LU per layer): the simple reference of :func:`jacrl.logdet.logdet_grad`."""
    return named_gradients(net, weighted_logdet(net, y0, weights))

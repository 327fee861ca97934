"""The naive reference: differentiate log|det| of the explicit Jacobian, sample by sample.

For each y0_b, ``torch.func.jacrev`` builds the dense n×n Jacobian J_b = ∂F⁻¹/∂y (y0_b) (n
reverse passes), ``slogdet`` takes its log|det|, and one more backward pass differentiates
Σ_b a_b log|det J_b| through all of that to the weights. It shares no formula with the fast path
(:mod:`jacrl.logdet.fast`) or the seed recursion (:mod:`jacrl.logdet.seed`) — only the
matrices V_l and σ⁻¹ — which is what makes it a useful check; its cost, O(B n) backward passes
plus B dense determinants, is what the fast path avoids.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from jacrl.logdet.backprop import named_gradients
from jacrl.nn import InvertibleMLP


def inverse_map(net: InvertibleMLP) -> Callable[[Tensor], Tensor]:
    """F⁻¹ on a single sample ``(n,)``, x = V_1(σ⁻¹(… V_L(σ⁻¹(y) − b_L) …) − b_1) (seed eq. 4).

    Built from the dense V_l = ``layer.inverse_weight()`` (formed once, outside any
    ``torch.func`` transform, still differentiable in the parameters) and plain matrix products:
    independent of the layers' own inverse passes, and free of ops such as triangular solves
    whose vmap rules copy the matrix once per sample.
    """
    layers = [(layer.inverse_weight(), layer.bias) for layer in net.layers()]

    def inverse(y: Tensor) -> Tensor:
        for v, bias in reversed(layers):
            y = net.activation.inverse_value(y)
            if bias is not None:
                y = y - bias
            y = v @ y
        return y

    return inverse


def autograd_jacobian(net: InvertibleMLP, y0: Tensor) -> Tensor:
    """J_b = ∂F⁻¹/∂y (y0_b) for every row of ``y0``, shape ``(batch, n, n)``, differentiable in
    the parameters."""
    return torch.func.vmap(torch.func.jacrev(inverse_map(net)))(y0.detach())


def autograd_logdet(
    net: InvertibleMLP, y0: Tensor, weights: Tensor | None = None
) -> dict[str, Tensor]:
    """∇θ Σ_b a_b log|det J_b| via jacrev + slogdet + backward, keyed by parameter name."""
    logabsdet = torch.linalg.slogdet(autograd_jacobian(net, y0))[1]
    if weights is not None:
        logabsdet = logabsdet * weights.to(logabsdet.dtype)
    return named_gradients(net, logabsdet.sum())

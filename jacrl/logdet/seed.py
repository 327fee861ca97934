"""The seed's literal algorithm (Yan, eqs. 13–19): a slow reference for small n.

Notation (inverse pass, seed eq. 4, layers l = L … 1): u_l enters σ⁻¹, c_l = σ⁻¹(u_l) − b_l,
u_{l−1} = V_l c_l, x = u_0; d_l = (σ⁻¹)′(u_l), e_l = (σ⁻¹)″(u_l). Then

* eqs. 13–14, the local gradients: ∇^{L+1}_{kj} = δ_kj,
  ∇^l_{k_{l−1} j} = Σ_{k_l} V^l_{k_{l−1} k_l} d_{l,k_l} ∇^{l+1}_{k_l j}, and J_ij = ∇^1_ij;
* eqs. 15–16, ∂J/∂w for one weight w of layer m, by the same recursion differentiated:
  ∂∇^l = 0 for l > m; for w = V^m_gh the terminal form ∂∇^m_{kj} = δ_kg d_{m,h} ∇^{m+1}_{hj}
  (for w = b^m_h, ∂∇^m = 0); and for l < m
  ∂∇^l_{k_{l−1} j} = Σ_{k_l} V^l_{k_{l−1} k_l} [d_{l,k_l} ∂∇^{l+1}_{k_l j}
                                              + ∂d_{l,k_l} ∇^{l+1}_{k_l j}];
* eq. 19 with its transpose restored: tr(J⁻¹ ∂J) = Σ_ij (J⁻¹)_ji (∂J)_ij, which is
  ∂ log|J|/∂w; eq. 11's ∂|J|/∂w is |J| times it (:func:`seed_absdet_grad`).

**The seed's eq. 16 is exact only for piecewise-linear σ.** It keeps the first bracket alone.
But u_l for l < m is computed *after* V_m on the inverse pass, so d_l = (σ⁻¹)′(u_l) depends on w
through ∂d_l = e_l ⊙ ∂u_l, with ∂u_{m−1} = e_g c_{m,h} (w = V^m_gh) or −V^m_{:,h} (w = b^m_h) and
∂u_{l−1} = V_l (d_l ⊙ ∂u_l). For leaky ReLU e ≡ 0 and the truncation is exact (and every bias
gradient is 0); for asinh it is not. ``seed_truncated=True`` gives the seed's version.

The ``lu`` parameterization is handled honestly by the chain rule from ∂/∂V: with G_V the
reference gradient and V = W⁻¹, G_W = −Vᵀ G_V Vᵀ; with W = P L U′,
∂/∂L = strict_lower(Pᵀ G_W U′ᵀ), ∂/∂U′ = Lᵀ Pᵀ G_W, ∂/∂upper = strict_upper(∂/∂U′),
∂/∂s = diag(∂/∂U′) ⊙ sign ⊙ exp(s).

What is literal and what is vectorised: the loop over weights w is an explicit Python loop, and
each ∂J/∂w runs its own recursion, as in the seed; the free indices (i, j) of J_ij and the
samples b are array axes of each step (an einsum over k_l), which changes the constant, not the
algorithm.

Cost: one O(L n³) recursion per weight, L(n² + n) weights: O(L² n⁵) per batch of samples —
the n² (and more) times a backprop step that the seed itself warns about.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor

from jacrl.nn import InverseLinear, InvertibleLinear, InvertibleMLP, LULinear


@dataclass
class _InversePass:
    """Per-layer quantities of the inverse pass, index 0 = layer 1 (forward order)."""

    v: list[Tensor]  # V_l, (n, n)
    c: list[Tensor]  # σ⁻¹(u_l) − b_l, (B, n)
    d: list[Tensor]  # (σ⁻¹)′(u_l), (B, n)
    e: list[Tensor]  # (σ⁻¹)″(u_l), (B, n)
    local: list[Tensor]  # ∇^l, (B, n, n); local[L] = identity


def _step(v: Tensor, d: Tensor, below: Tensor) -> Tensor:
    """Σ_{k_l} V_{k_{l−1} k_l} d_{k_l} ∇_{k_l j}: one level of eqs. 14–15, batched over samples."""
    return torch.einsum("ik,bk,bkj->bij", v, d, below)


def _inverse_pass(net: InvertibleMLP, y0: Tensor) -> _InversePass:
    layers = net.layers()
    v = [layer.inverse_weight().detach() for layer in layers]
    c: list[Tensor] = []
    d: list[Tensor] = []
    e: list[Tensor] = []
    u = y0.detach()
    for layer, v_l in zip(reversed(layers), reversed(v), strict=True):
        c_l = net.activation.inverse_value(u)
        if layer.bias is not None:
            c_l = c_l - layer.bias.detach()
        c.insert(0, c_l)
        d.insert(0, net.activation.inverse_derivative(u))
        e.insert(0, net.activation.inverse_second_derivative(u))
        u = c_l @ v_l.mT
    eye = torch.eye(net.n, dtype=y0.dtype).expand(y0.shape[0], net.n, net.n)
    local = [eye]
    for v_l, d_l in zip(reversed(v), reversed(d), strict=True):  # eq. 14, from l = L down to 1
        local.insert(0, _step(v_l, d_l, local[0]))
    return _InversePass(v, c, d, e, local)


def seed_jacobian(net: InvertibleMLP, y0: Tensor) -> Tensor:
    """J = ∂F⁻¹/∂y (y0) by the local-gradient recursion of eqs. 13–14, shape (batch, n, n)."""
    return _inverse_pass(net, y0).local[0]


def _d_jacobian(
    state: _InversePass, m: int, d_local: Tensor, d_u: Tensor, truncated: bool
) -> Tensor:
    """∂J/∂w for a weight w of layer index m, from ∂∇ at that layer and ∂u entering the layer
    below (eqs. 15–16, with the σ⁻¹″ terms unless ``truncated``)."""
    for level in range(m - 1, -1, -1):
        v, d = state.v[level], state.d[level]
        below = _step(v, d, d_local)
        if not truncated:
            below = below + _step(v, state.e[level] * d_u, state.local[level + 1])
            d_u = (d * d_u) @ v.mT
        d_local = below
    return d_local


def _reference_grads(
    state: _InversePass,
    m: int,
    has_bias: bool,
    inverse_t: Tensor,
    weights: Tensor,
    truncated: bool,
    limit: int | None,
) -> tuple[Tensor, Tensor | None]:
    """Σ_b a_b ∂ℓ_b/∂V_m and ∂/∂b_m, one weight at a time (eq. 19 with the transpose);
    ``inverse_t`` = (J⁻¹)ᵀ per sample; only the first ``limit`` entries of V_m (row-major) and
    of b_m when ``limit`` is set, the others NaN."""
    n = state.v[m].shape[0]

    def contract(d_jacobian: Tensor) -> Tensor:
        return (weights * (inverse_t * d_jacobian).sum((-2, -1))).sum()

    grad_v = torch.full((n, n), float("nan"), dtype=inverse_t.dtype)
    for g, h in itertools.islice(itertools.product(range(n), range(n)), limit):
        d_local = torch.zeros_like(state.local[m])
        d_local[:, g, :] = state.d[m][:, h, None] * state.local[m + 1][:, h, :]  # eq. 16
        d_u = torch.zeros_like(state.c[m])
        d_u[:, g] = state.c[m][:, h]
        grad_v[g, h] = contract(_d_jacobian(state, m, d_local, d_u, truncated))
    if not has_bias:
        return grad_v, None
    grad_b = torch.full((n,), float("nan"), dtype=inverse_t.dtype)
    for h in range(n if limit is None else min(n, limit)):
        d_u = -state.v[m][:, h].expand_as(state.c[m])
        d_local = torch.zeros_like(state.local[m])
        grad_b[h] = contract(_d_jacobian(state, m, d_local, d_u, truncated))
    return grad_v, grad_b


def _pull_back(layer: InvertibleLinear, grad_v: Tensor) -> dict[str, Tensor]:
    """Map ∂/∂V to the layer's own matrix parameters (chain rule, see module docstring)."""
    if isinstance(layer, InverseLinear):
        return {"V": grad_v}
    if isinstance(layer, LULinear):
        with torch.no_grad():
            v = layer.inverse_weight()
            grad_w = -v.mT @ grad_v @ v.mT
            pt_grad_w = grad_w[layer.inverse_perm]  # Pᵀ G_W
            grad_upper_full = layer.unit_lower().mT @ pt_grad_w
            return {
                "lower": torch.tril(pt_grad_w @ layer.upper_with_diagonal().mT, -1),
                "upper": torch.triu(grad_upper_full, 1),
                "log_diag": grad_upper_full.diagonal() * layer.sign * layer.log_diag.exp(),
            }
    raise TypeError(f"no seed reference for {type(layer).__name__}")


def seed_logdet_grad(
    net: InvertibleMLP,
    y0: Tensor,
    weights: Tensor | None = None,
    seed_truncated: bool = False,
    max_weights_per_layer: int | None = None,
) -> dict[str, Tensor]:
    """∇θ Σ_b a_b log|det ∂F⁻¹/∂y (y0_b)| by the seed's eqs. 13–19, one weight at a time.

    :param seed_truncated: keep only the first term of eq. 16, as the seed does — exact for
        piecewise-linear σ (leaky ReLU) only.
    :param max_weights_per_layer: compute only the first k entries of each V_l (row-major) and
        of each b_l, leaving the rest NaN: a spot check (and a timing sample) for n where the
        full reference is out of reach. With ``lu`` the chain rule mixes every entry of ∂/∂V
        into every factor, so the matrix gradients come out NaN: a timing sample only.
    """
    weights = torch.ones(y0.shape[0], dtype=y0.dtype) if weights is None else weights
    state = _inverse_pass(net, y0)
    inverse_t = torch.linalg.inv(state.local[0]).mT  # once per sample, outside the loop (eq. 11)
    names = {module: name for name, module in net.named_modules()}
    grads: dict[str, Tensor] = {}
    for m, layer in enumerate(net.layers()):
        grad_v, grad_b = _reference_grads(
            state,
            m,
            layer.bias is not None,
            inverse_t,
            weights.to(y0.dtype),
            seed_truncated,
            max_weights_per_layer,
        )
        for key, value in _pull_back(layer, grad_v).items():
            grads[f"{names[layer]}.{key}"] = value
        if grad_b is not None:
            grads[f"{names[layer]}.bias"] = grad_b
    return grads


def seed_absdet_grad(
    net: InvertibleMLP, y0: Tensor, weights: Tensor | None = None, seed_truncated: bool = False
) -> dict[str, Tensor]:
    """∇θ Σ_b a_b |det J_b|, the seed's own objective (eq. 11): |J_b|·tr(J_b⁻¹ ∂J_b/∂w), i.e. the
    log-det gradient with each sample's weight multiplied by |J_b|. It overflows where log|J|
    does not — prefer :func:`seed_logdet_grad`."""
    abs_det = torch.linalg.det(seed_jacobian(net, y0)).abs()
    weights = abs_det if weights is None else weights.to(abs_det.dtype) * abs_det
    return seed_logdet_grad(net, y0, weights, seed_truncated)

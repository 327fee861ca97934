"""The fast exact gradient of ℓ(y0) = log|det ∂F⁻¹/∂y (y0)|: one inverse pass and a hand-written
backward (docs/method.md §2).

It computes the same gradient as :func:`jacrl.logdet.backprop_logdet_grad` (autograd through
:meth:`~jacrl.nn.InvertibleMLP.inverse_and_logdet`, the reference it is tested against) with less
work, because ℓ needs less than the general inverse pass and its autograd graph provide. With
layers l = L … 1 on the inverse pass, u_L = y0, c_l = σ⁻¹(u_l) − b_l, u_{l−1} = V_l c_l and
φ = log (σ⁻¹)′:

    ℓ = Σ_l log|det V_l| + Σ_l Σ_i φ(u_{l,i}),

* x = u_0 = V_1 c_1 never enters ℓ, so the pass stops at u_1: no product with V_1 (and no
  accuracy check of x: the check covers ℓ and every value the gradient uses);
* the backward pass, with g_l = ∂(Σ_b a_b ℓ_b)/∂u_l, is
  g_1 = a ⊙ φ′(u_1),  ∂/∂V_l = g_{l−1}ᵀ c_l,  ∂/∂c_l = g_{l−1} V_l,  ∂/∂b_l = −Σ_b ∂/∂c_l,
  g_l = a ⊙ φ′(u_l) + (∂/∂c_l) ⊙ (σ⁻¹)′(u_l) for 1 < l < L; the top layer needs only the
  column sum of ∂/∂c_L (for b_L), one vector–matrix product, and b_1 gets 0;
* σ⁻¹, (σ⁻¹)′ and (σ⁻¹)″ come from one call (:meth:`~jacrl.nn.Activation.inverse_terms`: for
  asinh one sinh and one cosh, which autograd of sinh and log cosh would each evaluate twice);
* ∂ log|det V_l|/∂V_l = (Σ_b a_b) V_l⁻ᵀ from the LU that gives log|det V_l| (``inverse``), or
  −Σ_b a_b on s (``lu``, whose products are Glow's two triangular solves, differentiated by hand:
  for X = Z T⁻¹, ∂/∂Z = G T⁻ᵀ and ∂/∂T = −Xᵀ (∂/∂Z)).

With L = 3 and B = n that is 5 matrix products instead of 7 for the ``inverse`` parameterization,
and the accuracy check runs on 2 layers' products instead of 3. The values agree with the
reference to rounding (float64: ≤ 1e-12 relative in tests/test_logdet.py). Other layer types
than :class:`~jacrl.nn.InverseLinear` and :class:`~jacrl.nn.LULinear` take the reference path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import get_lapack_funcs
from torch import Tensor

from jacrl.logdet.backprop import backprop_logdet_grad, checked_weights
from jacrl.nn import InverseLinear, InvertibleLinear, InvertibleMLP, LULinear
from jacrl.nn.accuracy import ErrorBound
from jacrl.nn.validation import SingularWeightError, check_batch


class _TransposedLU:
    """The LU factors of Vᵀ: log|det V| at once, V⁻ᵀ (the gradient of log|det V|) on demand.

    On the CPU through LAPACK's getrf/getri (SciPy's wrappers, on Vᵀ, which is V's memory read
    in column-major order: no copy): getri inverts from the factors in 4/3 n³ flops, where torch's
    ``lu_solve`` against the identity takes 2 n³ (measured at n = 256, one thread, float64:
    1.3 ms against 2.2 ms). Elsewhere (CUDA) with torch's ``lu_factor`` / ``lu_solve``.
    """

    def __init__(self, v: Tensor, lapack: bool | None = None) -> None:
        """:param lapack: whether to use LAPACK (default: on the CPU)."""
        self.v = v
        if v.device.type == "cpu" if lapack is None else lapack:
            matrix = v.detach().numpy().T
            getrf, self._getri, lwork = get_lapack_funcs(
                ("getrf", "getri", "getri_lwork"), (matrix,)
            )
            self._lu, self._pivots, _ = getrf(matrix)  # a singular V leaves a 0 on the diagonal
            self._lwork = int(lwork(matrix.shape[0])[0])
            diagonal = torch.from_numpy(np.abs(self._lu.diagonal()))
        else:
            self._lu, self._pivots = torch.linalg.lu_factor(v.mT)
            diagonal = self._lu.diagonal().abs()
        #: log|det V| (−inf for a singular V, which the pass's guard turns into an error)
        self.log_abs_det = diagonal.log().sum()

    def inverse_transpose(self) -> Tensor:
        """V⁻ᵀ (call only for a nonsingular V)."""
        if isinstance(self._lu, np.ndarray):
            inverse, info = self._getri(self._lu, self._pivots, lwork=self._lwork)
            if info != 0:
                raise SingularWeightError(f"LAPACK getri failed with info={info}")
            return torch.from_numpy(inverse)
        eye = torch.eye(self.v.shape[0], dtype=self.v.dtype, device=self.v.device)
        return torch.linalg.lu_solve(self._lu, self._pivots, eye)


class _InverseLinearSteps:
    """u = c Vᵀ and its backward, for V = ``layer.V`` (Yan's parameterization)."""

    def __init__(self, layer: InverseLinear) -> None:
        self.v = layer.V
        self.factors = _TransposedLU(self.v)
        self.log_abs_det = self.factors.log_abs_det

    def forward(self, c: Tensor) -> Tensor:
        return c @ self.v.mT

    def backward(self, g_u: Tensor, c: Tensor, u: Tensor, rows: bool) -> tuple[Tensor, ...]:
        """(∂/∂V, ∂/∂c), the latter per row if ``rows`` else only its column sum (1, n)."""
        g_c = g_u @ self.v if rows else g_u.sum(0, keepdim=True) @ self.v
        return g_u.mT @ c, g_c

    def with_logdet(self, grads: tuple[Tensor, ...] | None, total: Tensor) -> tuple[Tensor, ...]:
        """Add ``total`` · ∂ log|det V|/∂V = total · V⁻ᵀ to the matrix gradient."""
        inverse_t = self.factors.inverse_transpose()
        return (inverse_t * total if grads is None else grads[0] + total * inverse_t,)


class _LULinearSteps:
    """u = V c = U′⁻¹ L⁻¹ Pᵀ c per row and its backward (Glow's parameterization)."""

    def __init__(self, layer: LULinear) -> None:
        self.layer = layer
        self.lower, self.upper = layer.unit_lower(), layer.upper_with_diagonal()
        self.log_abs_det = layer.log_abs_det_inverse()
        self.between: Tensor | None = None  # L⁻¹ Pᵀ c, kept for the backward

    def forward(self, c: Tensor) -> Tensor:
        # as LULinear.apply_inverse_weight, keeping the intermediate z = L⁻¹ Pᵀ c
        self.between = torch.linalg.solve_triangular(
            self.lower.mT,
            c[..., self.layer.inverse_perm],
            upper=True,
            left=False,
            unitriangular=True,
        )
        return torch.linalg.solve_triangular(self.upper.mT, self.between, upper=False, left=False)

    def backward(self, g_u: Tensor, c: Tensor, u: Tensor, rows: bool) -> tuple[Tensor, ...]:
        """(∂/∂lower, ∂/∂upper, ∂/∂log_diag without the log-det term, ∂/∂c (per row, or its
        column sum (1, n) unless ``rows``)): u = z U′⁻ᵀ and z = (Pᵀ c) L⁻ᵀ, differentiated."""
        assert self.between is not None, "forward runs first"
        g_z = torch.linalg.solve_triangular(self.upper, g_u, upper=True, left=False)
        g_upper = -(g_z.mT @ u)
        g_pc = torch.linalg.solve_triangular(
            self.lower, g_z, upper=False, left=False, unitriangular=True
        )
        g_lower = -(g_pc.mT @ self.between)
        g_c = g_pc[..., self.layer.perm]
        layer = self.layer
        return (
            torch.tril(g_lower, -1),
            torch.triu(g_upper, 1),
            g_upper.diagonal() * layer.sign * layer.log_diag.exp(),
            g_c if rows else g_c.sum(0, keepdim=True),
        )

    def with_logdet(self, grads: tuple[Tensor, ...] | None, total: Tensor) -> tuple[Tensor, ...]:
        """Add ``total`` · ∂ log|det V|/∂s = −total to the log_diag gradient."""
        if grads is None:
            zeros = torch.zeros_like(self.lower)
            return zeros, zeros.clone(), torch.full_like(self.layer.log_diag, -float(total))
        return grads[0], grads[1], grads[2] - total


_Steps = _InverseLinearSteps | _LULinearSteps
#: The matrix parameters of each layer type, in the order the steps return their gradients.
_MATRIX_PARAMETERS: dict[type[InvertibleLinear], tuple[str, ...]] = {
    InverseLinear: ("V",),
    LULinear: ("lower", "upper", "log_diag"),
}


def _steps(layer: InvertibleLinear) -> _Steps:
    if type(layer) is InverseLinear:
        return _InverseLinearSteps(layer)
    assert type(layer) is LULinear
    return _LULinearSteps(layer)


@dataclass
class _Level:
    """What the backward needs of one layer's visit on the inverse pass."""

    steps: _Steps
    u: Tensor  # input of σ⁻¹
    derivative: Tensor  # (σ⁻¹)′(u)
    slope: Tensor  # φ′(u) = (σ⁻¹)″(u) / (σ⁻¹)′(u)
    c: Tensor | None = None  # σ⁻¹(u) − b, None on layer 1 (the pass stops there)


def _inverse_pass(
    net: InvertibleMLP, levels: list[_Level], y0: Tensor, bound: ErrorBound
) -> tuple[Tensor, Tensor]:
    """The inverse pass from y0 down to u_1, with the reference pass's accuracy bookkeeping.

    Fills ``levels`` in forward order (index 0 = layer 1) and returns (σ⁻¹(u_1), ℓ): the last
    values the gradient uses, which :meth:`InvertibleMLP._guarded` checks."""
    layers = net.layers()
    steps = [_steps(layer) for layer in layers]
    logabsdet = torch.stack([s.log_abs_det for s in steps]).sum()
    u = y0
    for index in range(len(layers) - 1, -1, -1):
        value, derivative, second = net.activation.inverse_terms(u)
        activation_logdet = torch.log(derivative).sum(-1)
        bound.activation(net.activation, u, value, activation_logdet, derivative)
        logabsdet = logabsdet + activation_logdet
        levels.insert(0, _Level(steps[index], u, derivative, second / derivative))
        if index == 0:
            break
        bias = layers[index].bias
        c = value
        if bias is not None:
            c = value - bias
            bound.rounding(c)
        levels[0].c = c
        u = steps[index].forward(c)
        bound.linear(layers[index], c, u)
        bound.end_layer(index, u)
    bound.end_layer(0, value)
    return value, logabsdet


def logdet_grad(net: InvertibleMLP, y0: Tensor, weights: Tensor | None = None) -> dict[str, Tensor]:
    """∇θ Σ_b a_b log|det ∂F⁻¹/∂y (y0_b)|, exact, keyed by parameter name (trainable ones only;
    zeros where ℓ does not depend on a parameter, e.g. b_1).

    One inverse pass down to u_1, a hand-written backward pass, one LU per ``inverse`` layer (see
    the module docstring). Like every pass it raises PrecisionLossError when its running error
    bound (:mod:`jacrl.nn.accuracy`) cannot certify ℓ or σ⁻¹(u_1) to ``net.rtol`` (x is not
    formed, so it is not checked), and SingularWeightError / NonFiniteError as
    :meth:`~jacrl.nn.InvertibleMLP.inverse_and_logdet` does.

    :param weights: per-sample weights a of shape ``(batch,)`` (e.g. advantages); default all 1.
    """
    layers = net.layers()
    if not layers or any(type(layer) not in _MATRIX_PARAMETERS for layer in layers):
        return backprop_logdet_grad(net, y0, weights)
    y0 = check_batch(y0, net.n, net.dtype, "y").detach()
    a = checked_weights(weights, y0.shape[0], y0.dtype)
    levels: list[_Level] = []
    with torch.no_grad():
        net._guarded(lambda y, bound: _inverse_pass(net, levels, y, bound), y0, "y")
        total = y0.new_tensor(y0.shape[0]) if a is None else a.sum()
        column = None if a is None else a[:, None]
        grads: dict[InvertibleLinear, tuple[Tensor, ...] | None] = {layers[0]: None}
        biases: dict[InvertibleLinear, Tensor] = {}
        g_u = levels[0].slope if column is None else column * levels[0].slope
        for index in range(1, len(layers)):
            level, rows = levels[index], index < len(layers) - 1
            assert level.c is not None
            *matrix, g_c = level.steps.backward(g_u, level.c, levels[index - 1].u, rows)
            grads[layers[index]] = tuple(matrix)
            biases[layers[index]] = -g_c.sum(0)
            if rows:
                slope = level.slope if column is None else column * level.slope
                g_u = slope + g_c * level.derivative
        return _named(net, grads, biases, levels, total)


def _named(
    net: InvertibleMLP,
    grads: dict[InvertibleLinear, tuple[Tensor, ...] | None],
    biases: dict[InvertibleLinear, Tensor],
    levels: list[_Level],
    total: Tensor,
) -> dict[str, Tensor]:
    """The gradients keyed by parameter name in ``named_parameters`` order, with the log-det
    terms added; trainable parameters only (as :func:`~jacrl.logdet.named_gradients`)."""
    names = {module: name for name, module in net.named_modules()}
    found: dict[str, Tensor] = {}
    for layer, level in zip(net.layers(), levels, strict=True):
        matrix = level.steps.with_logdet(grads[layer], total)
        for key, value in zip(_MATRIX_PARAMETERS[type(layer)], matrix, strict=True):
            found[f"{names[layer]}.{key}"] = value
        if layer.bias is not None:
            found[f"{names[layer]}.bias"] = biases.get(layer, torch.zeros_like(layer.bias))
    return {name: found[name] for name, p in net.named_parameters() if p.requires_grad}

"""Invertible elementwise activations σ with closed-form inverses (the circles of seed eqs. 2, 4).

Every activation follows the nflows contract: ``forward(x) -> (σ(x), Σ_i log σ′(x_i))`` and
``inverse(u) -> (σ⁻¹(u), Σ_i log (σ⁻¹)′(u_i))``, both log-dets of shape ``(batch,)``. The inverse
path is the one the learning signal ℓ(y0) uses, so each activation also exposes
``(σ⁻¹)′`` and ``(σ⁻¹)″`` for the seed's element-wise reference (eqs. 14–16).

Why ``asinh`` is the default: the volume rule needs log|(σ⁻¹)′(u)| to depend on u, otherwise
its gradient cannot see the input. ``asinh`` is smooth, maps R onto R (so every y has a
preimage: the inverse pass never leaves the domain), has the closed-form inverse ``sinh`` and the
closed-form log-derivative log cosh(u). Its cost is the exponential growth of ``sinh`` on the
inverse path: in float32 ``sinh`` overflows past |u| ≈ 89, which InvertibleMLP reports as an
error instead of returning inf/NaN.

Why ``smooth_leaky_relu`` is offered too: asinh's inverse compounds over layers —
sinh(sinh(sinh(3))) already overflows float64 — so outputs y of moderate size become unusable on
the inverse path of a deep net, and log cosh(u) ≈ |u| lets the activation term of ℓ grow without
bound. A leaky ReLU with a rounded kink keeps linear tails on both sides (no overflow, log|(σ⁻¹)′|
bounded by log(1/α)) while staying smooth, with a closed-form inverse. asinh stays the default,
as the architecture contract names it; for float32 inverse paths or deep nets prefer
``smooth_leaky_relu``.

Why ``leaky_relu`` kills the volume rule (docs/method.md §5): log|(σ⁻¹)′| is piecewise constant, so
∇_V ℓ = V⁻ᵀ for every input and the biases get zero gradient — the update ignores the state.
It is kept because it is the seed's setting, and because for it the seed's truncated recursion
(eqs. 15–16) is exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

from jacrl.common.errors import ConfigError
from jacrl.nn.accuracy import unit_roundoff


class Activation(nn.Module):
    """An invertible elementwise map σ: R → R, applied to a ``(batch, n)`` tensor."""

    #: True when σ is piecewise linear, i.e. (σ⁻¹)″ = 0 almost everywhere (seed eqs. 15–16 exact).
    piecewise_linear: bool = False

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(σ(x), Σ_i log σ′(x_i))``."""
        raise NotImplementedError

    def value(self, x: Tensor) -> Tensor:
        """σ(x) alone (the acting path: no log-det); subclasses avoid computing it."""
        return self.forward(x)[0]

    def inverse(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """``(σ⁻¹(u), Σ_i log (σ⁻¹)′(u_i))`` — the per-layer activation term of ℓ(y0)."""
        return self.inverse_value(u), self.log_inverse_derivative(u).sum(-1)

    def inverse_value(self, u: Tensor) -> Tensor:
        """σ⁻¹(u)."""
        raise NotImplementedError

    def log_inverse_derivative(self, u: Tensor) -> Tensor:
        """log (σ⁻¹)′(u), elementwise."""
        raise NotImplementedError

    def inverse_derivative(self, u: Tensor) -> Tensor:
        """(σ⁻¹)′(u), elementwise: the diagonal factor of seed eq. 14."""
        raise NotImplementedError

    def inverse_second_derivative(self, u: Tensor) -> Tensor:
        """(σ⁻¹)″(u), elementwise: what seed eqs. 15–16 drop (zero for piecewise-linear σ)."""
        raise NotImplementedError

    def inverse_terms(self, u: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(σ⁻¹(u), (σ⁻¹)′(u), (σ⁻¹)″(u)) together, elementwise: what the hand-written backward
        of :func:`jacrl.logdet.logdet_grad` needs; subclasses share work between the three."""
        return self.inverse_value(u), self.inverse_derivative(u), self.inverse_second_derivative(u)

    # Error propagation (docs/method.md §6) ------------------------------------------------------
    #: Bound on the rounding error of σ, σ⁻¹ and their log-derivatives as implemented, in units
    #: of the dtype's unit roundoff, relative to the value (library sinh, cosh, log, sqrt are
    #: within 1–2 ulp; the formulas below chain a few such operations).
    rounding_ulps: float = 8.0

    def forward_error(self, x: Tensor, error: Tensor) -> tuple[Tensor, Tensor]:
        """How an error in the input reaches σ: for x known to within ``error`` (elementwise),
        bounds on sup_{|δ|≤error} |σ(x+δ) − σ(x)| and on sup |log σ′(x+δ) − log σ′(x)|, both
        elementwise. Exact bounds over the interval, not first-order estimates, so a large error
        is not underestimated; :class:`jacrl.nn.accuracy.ErrorBound` adds the rounding."""
        raise NotImplementedError

    def inverse_error(
        self, u: Tensor, error: Tensor, derivative: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """As :meth:`forward_error`, for σ⁻¹ and log (σ⁻¹)′ (the inverse pass).

        :param derivative: (σ⁻¹)′(u) as the pass computed it, if it did (the log-det gradient's
            pass does), for a subclass that can use it instead of evaluating its own.
        """
        raise NotImplementedError


def _distance_from_zero(x: Tensor, error: Tensor) -> Tensor:
    """min |x + δ| over |δ| <= error, elementwise."""
    return (x.abs() - error).clamp_min(0.0)


class Asinh(Activation):
    """σ = asinh, σ⁻¹ = sinh, (σ⁻¹)′ = cosh, (σ⁻¹)″ = sinh, log σ′(x) = −½ log(1 + x²)."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return torch.asinh(x), -0.5 * torch.log1p(x * x).sum(-1)

    def value(self, x: Tensor) -> Tensor:
        return torch.asinh(x)

    def inverse_value(self, u: Tensor) -> Tensor:
        return torch.sinh(u)

    def inverse(self, u: Tensor) -> tuple[Tensor, Tensor]:
        # Inside an inverse pass log cosh(u) is taken directly (2 ops instead of 5, forward and
        # backward): cosh overflows exactly where sinh does, and the pass refuses that anyway.
        return torch.sinh(u), torch.log(torch.cosh(u)).sum(-1)

    def log_inverse_derivative(self, u: Tensor) -> Tensor:
        # log cosh(u) = |u| + log(1 + e^{-2|u|}) - log 2, finite for every finite u.
        a = u.abs()
        return a + nn.functional.softplus(-2.0 * a) - math.log(2.0)

    def inverse_derivative(self, u: Tensor) -> Tensor:
        return torch.cosh(u)

    def inverse_second_derivative(self, u: Tensor) -> Tensor:
        return torch.sinh(u)

    def inverse_terms(self, u: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        s = torch.sinh(u)  # σ⁻¹ and (σ⁻¹)″ are both sinh
        return s, torch.cosh(u), s

    def forward_error(self, x: Tensor, error: Tensor) -> tuple[Tensor, Tensor]:
        # σ′ = 1/√(1+x²) is largest nearest 0; |(log σ′)′| = |x|/(1+x²) <= min(1/2, 1/|x|)
        m = _distance_from_zero(x, error)
        return error / torch.sqrt(1 + m * m), error * torch.clamp(1 / m, max=0.5)

    def inverse_error(
        self, u: Tensor, error: Tensor, derivative: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        # (σ⁻¹)′ = cosh is largest farthest from 0 (this is the growth that makes a deep asinh
        # inverse pass lose accuracy); |(log cosh)′| = |tanh| <= 1
        if derivative is None:
            return error * torch.cosh(u.abs() + error), error
        # from the pass's cosh(u), without another cosh: cosh(|u| + e) = cosh u cosh e +
        # sinh|u| sinh e <= cosh(u) e^e, and the computed cosh is within rounding_ulps of cosh
        slack = 1 - self.rounding_ulps * unit_roundoff(derivative.dtype)
        growth = torch.exp(error.amax(-1, keepdim=True)) / slack
        return error * derivative.double() * growth, error


class LeakyReLU(Activation):
    """σ(x) = x for x > 0, αx otherwise (0 < α ≤ 1); σ⁻¹(u) = u for u > 0, u/α otherwise."""

    piecewise_linear = True

    def __init__(self, negative_slope: float = 0.1) -> None:
        super().__init__()
        if not 0.0 < negative_slope <= 1.0:
            raise ConfigError(
                "leaky_relu negative_slope must lie in (0, 1] to be invertible, "
                f"got {negative_slope}"
            )
        self.negative_slope = negative_slope

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        negative = x <= 0
        y = torch.where(negative, x * self.negative_slope, x)
        return y, negative.to(x.dtype).sum(-1) * math.log(self.negative_slope)

    def value(self, x: Tensor) -> Tensor:
        return torch.where(x <= 0, x * self.negative_slope, x)

    def inverse_value(self, u: Tensor) -> Tensor:
        return torch.where(u <= 0, u / self.negative_slope, u)

    def log_inverse_derivative(self, u: Tensor) -> Tensor:
        return (u <= 0).to(u.dtype) * -math.log(self.negative_slope)

    def inverse_derivative(self, u: Tensor) -> Tensor:
        return torch.where(u <= 0, 1.0 / self.negative_slope, 1.0).to(u.dtype)

    def inverse_second_derivative(self, u: Tensor) -> Tensor:
        return torch.zeros_like(u)

    def forward_error(self, x: Tensor, error: Tensor) -> tuple[Tensor, Tensor]:
        # σ′ <= 1; log σ′ jumps by log α where the interval crosses the kink
        return error, _kink_jump(x, error, -math.log(self.negative_slope))

    def inverse_error(
        self, u: Tensor, error: Tensor, derivative: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        slope = torch.where(u - error <= 0, 1.0 / self.negative_slope, 1.0).to(u.dtype)
        return error * slope, _kink_jump(u, error, -math.log(self.negative_slope))


def _kink_jump(x: Tensor, error: Tensor, jump: float) -> Tensor:
    """``jump`` where x ± error reaches across 0 (an exact x = 0 has no uncertainty), else 0."""
    return torch.where(x.abs() < error, jump, 0.0).to(x.dtype)


class SmoothLeakyReLU(Activation):
    """A leaky ReLU with its kink rounded off by a hyperbola (0 < α < 1, a = (1+α)/2, b = (1−α)/2):

        σ(x) = a·x + b·(√(x² + 1) − 1),   σ′(x) = a + b·x/√(x² + 1) ∈ (α, 1),
        σ⁻¹(u) = (a·t − b·s)/α  with t = u + b, s = √(t² + α),
        (σ⁻¹)′(u) = (a − b·t/s)/α ∈ (1, 1/α),   (σ⁻¹)″(u) = −b/s³.

    Unlike ``asinh`` its inverse has linear tails, so a deep inverse pass cannot overflow (asinh's
    inverse sinh∘…∘sinh grows double-exponentially: sinh(sinh(sinh(3))) is inf even in float64)
    and log|(σ⁻¹)′| is bounded by log(1/α), so the activation term of ℓ(y0) cannot grow without
    bound. It still depends smoothly on u, which is what the volume rule needs.
    """

    def __init__(self, negative_slope: float = 0.1) -> None:
        super().__init__()
        if not 0.0 < negative_slope < 1.0:
            raise ConfigError(
                f"smooth_leaky_relu negative_slope must lie in (0, 1), got {negative_slope}"
            )
        self.negative_slope = negative_slope
        self.a, self.b = (1 + negative_slope) / 2, (1 - negative_slope) / 2

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r = torch.sqrt(x * x + 1)
        y = self.a * x + self.b * (r - 1)
        return y, torch.log(self.a + self.b * x / r).sum(-1)

    def value(self, x: Tensor) -> Tensor:
        return self.a * x + self.b * (torch.sqrt(x * x + 1) - 1)

    def _t_s(self, u: Tensor) -> tuple[Tensor, Tensor]:
        t = u + self.b
        return t, torch.sqrt(t * t + self.negative_slope)

    def inverse_value(self, u: Tensor) -> Tensor:
        t, s = self._t_s(u)
        # For t > 0 the two terms cancel; there use (a t − b s)/α = (t² − b²)/(a t + b s).
        positive = (t * t - self.b**2) / (self.a * t + self.b * s)
        return torch.where(t > 0, positive, (self.a * t - self.b * s) / self.negative_slope)

    def inverse_derivative(self, u: Tensor) -> Tensor:
        t, s = self._t_s(u)
        # For t > 0 likewise: (a − b t/s)/α = (t² + a²)/(s (a s + b t)).
        positive = (t * t + self.a**2) / (s * (self.a * s + self.b * t))
        return torch.where(t > 0, positive, (self.a - self.b * t / s) / self.negative_slope)

    def log_inverse_derivative(self, u: Tensor) -> Tensor:
        return torch.log(self.inverse_derivative(u))

    def inverse_second_derivative(self, u: Tensor) -> Tensor:
        return -self.b / self._t_s(u)[1] ** 3

    def forward_error(self, x: Tensor, error: Tensor) -> tuple[Tensor, Tensor]:
        # σ′ < 1; |(log σ′)′| = σ″/σ′ <= b / (α (1 + x²)^{3/2}), largest nearest 0
        m = _distance_from_zero(x, error)
        return error, error * self.b / (self.negative_slope * (1 + m * m) ** 1.5)

    def inverse_error(
        self, u: Tensor, error: Tensor, derivative: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        # (σ⁻¹)′ decreases in u (σ⁻¹″ < 0), so it is largest at u − error;
        # |(log σ⁻¹′)′| = (b/s³)/(σ⁻¹)′ <= b/s³ as (σ⁻¹)′ >= 1, s = √(t² + α) smallest nearest t = 0
        m = _distance_from_zero(u + self.b, error)
        s = torch.sqrt(m * m + self.negative_slope)
        return error * self.inverse_derivative(u - error), error * self.b / s**3


#: The names of the activations (keys of :data:`ACTIVATIONS`).
ActivationName = Literal["asinh", "leaky_relu", "smooth_leaky_relu"]
#: Accepted activation names and their constructors.
ACTIVATIONS: dict[ActivationName, Callable[..., Activation]] = {
    "asinh": Asinh,
    "leaky_relu": LeakyReLU,
    "smooth_leaky_relu": SmoothLeakyReLU,
}


def make_activation(name: ActivationName, **kwargs: float) -> Activation:
    """Build the activation registered under ``name`` (e.g. ``make_activation("leaky_relu",
    negative_slope=0.2)``); raises :class:`ConfigError` listing the accepted names."""
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}; accepted: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name](**kwargs)

"""Running error bounds for the passes of :class:`~jacrl.nn.InvertibleMLP` (docs/method.md §6).

The contract: every x and log-det a pass returns is accurate to a stated tolerance, or the pass
raises :class:`~jacrl.common.errors.PrecisionLossError` naming the layer where the accuracy was
lost. Per sample,

    ‖x̂ − x‖∞ <= rtol · max(1, ‖x̂‖∞)   and   |ℓ̂ − ℓ| <= rtol · max(1, |ℓ̂|),

x the output of the pass (F⁻¹(y), or F(x) for the forward pass) and ℓ its log-det. In float64
rtol = √u ≈ 1.1e-8 (u the unit roundoff: half the digits). In float32 rtol = 1e-3: the bounds below
grow with the width like n·u (the worst case of a length-n sum), so √u = 2.4e-4 would refuse
healthy float32 passes from width ~32 (measured: bounds up to 4.7e-4 there, actual errors ~1e-6);
a log-probability off by 1e-3 moves a PPO ratio by 0.1%, far inside its clip. For an accurate
inverse path use float64 (docs/method.md §6).

Why a check is needed: a pass can lose its digits without producing NaN or inf. asinh's inverse
sinh grows exponentially, so an inverse pass multiplies the errors of its inputs by cosh(u) per
layer, and a matrix product loses digits where it cancels. What the check found on random y
(tests/test_inverse_accuracy.py, against an 80-digit evaluation): for ``InvertibleMLP(16,
depth=3)`` and y ~ N(0, I) the inverse pass still returns x (|x| up to 1e117) to ~1e-13 relative
and ℓ to ~1e-12, while ``slogdet`` of the autograd Jacobian — a matrix whose entries span 1e117 —
is off by 2e3, and the *forward* pass at that x misses y by ~4 even from the correctly rounded x:
there F squeezes a region of size 1e117 onto a unit ball, so its rounding errors (~1e101) swamp
the small components. The forward pass's bound says so and raises.

How (running error analysis, Wilkinson; Higham, *Accuracy and Stability of Numerical
Algorithms*, §3): along the pass an elementwise bound on |v̂ − v| is carried from the exact input.
Each activation maps it through exact interval bounds of σ⁻¹ (or σ) and of its log-derivative
(:meth:`~jacrl.nn.activations.Activation.inverse_error`), each matrix through Higham's
componentwise bounds for a product or a triangular solve
(:meth:`~jacrl.nn.linear.InvertibleLinear.inverse_error`): a matrix product by its a priori
bound γ_n|V||z|, a solve (the ``lu`` inverse pass, both forward passes) a posteriori by its
residual taken in float64 (a priori bounds for solves run 10²–10⁵ times the actual error); each
elementwise operation adds its rounding. The bounds are computed in float64. Cost: one or two
extra matrix products per layer and a few elementwise operations, without autograd, plus one
n×n inverse per layer for the solves, shared by the batch. Measured against 50-digit arithmetic
(tests/test_inverse_accuracy.py) the actual errors stay below the bounds, at 1/3–1/1000 of them.

What the bound leaves out: the layers' log|det V_l| (one number per layer, from an LU, with
error ≈ n·u·cond(V_l), which ``max_cond`` keeps far below the tolerance in float64), and the acting
snapshot :class:`~jacrl.nn.mlp.FrozenForward` (unchecked: its pre-actions are scored by the
checked inverse pass).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor

from jacrl.common.errors import PrecisionLossError

if TYPE_CHECKING:
    from jacrl.nn.activations import Activation
    from jacrl.nn.linear import InvertibleLinear

Direction = Literal["forward", "inverse"]


def unit_roundoff(dtype: torch.dtype) -> float:
    """u = half the machine epsilon: |fl(a ∘ b) − a ∘ b| <= u |a ∘ b|."""
    return torch.finfo(dtype).eps / 2


def gamma(k: int, dtype: torch.dtype) -> float:
    """Higham's γ_k = k u / (1 − k u), the relative error bound of a length-k inner product."""
    ku = k * unit_roundoff(dtype)
    return ku / (1 - ku)


#: The stated tolerance of a pass, by dtype (see the module docstring for why float32's is wide).
TOLERANCES = {torch.float64: math.sqrt(unit_roundoff(torch.float64)), torch.float32: 1e-3}


def default_rtol(dtype: torch.dtype) -> float:
    """The stated tolerance of a pass in ``dtype`` (:data:`TOLERANCES`)."""
    return TOLERANCES[dtype]


def _relative(error: Tensor, values: Tensor) -> Tensor:
    """max_i error_i / max(1, max_i |values_i|) per row."""
    return error.amax(-1) / values.abs().amax(-1).clamp_min(1.0)


class ErrorBound:
    """The running error bound of one pass of an InvertibleMLP, fed as the pass goes.

    The pass calls :meth:`activation`, :meth:`elementwise` and :meth:`linear` with the (computed)
    values before and after each operation, :meth:`end_layer` after each block, then
    :meth:`check` on its result. Everything is computed without autograd.

    :param inputs: the pass's input ``(batch, n)``, taken as exact.
    :param direction: ``"inverse"`` (F⁻¹) or ``"forward"`` (F).
    """

    def __init__(self, inputs: Tensor, direction: Direction) -> None:
        self.direction = direction
        #: the pass's dtype and its unit roundoff
        self.dtype = inputs.dtype
        self.unit = unit_roundoff(inputs.dtype)
        #: max |input| per sample, for the message
        self.input_sizes = inputs.detach().abs().amax(-1)
        #: elementwise bound on the error of the current values (float64, whatever the pass's
        #: dtype: a float32 bound would round as much as the float32 pass it bounds)
        self.value = torch.zeros(inputs.shape, dtype=torch.float64, device=inputs.device)
        #: per-sample bound on the error of the log-det so far
        self.logdet = torch.zeros(inputs.shape[0], dtype=torch.float64, device=inputs.device)
        #: (layer index, output, value bound, log-det bound) after each block, in pass order
        self.layers: list[tuple[int, Tensor, Tensor, Tensor]] = []

    @torch.no_grad()
    def activation(
        self, activation: Activation, inputs: Tensor, outputs: Tensor, logdet: Tensor
    ) -> None:
        """σ⁻¹ (or σ) applied: ``outputs`` from ``inputs``, with log-det term ``logdet``
        ``(batch,)`` (a sum of n terms of one sign, so |logdet| is the sum of their sizes)."""
        inputs, outputs, logdet = (t.detach().double() for t in (inputs, outputs, logdet))
        propagate = (
            activation.inverse_error if self.direction == "inverse" else activation.forward_error
        )
        value_error, log_error = propagate(inputs, self.value)
        n = inputs.shape[-1]
        rounding = activation.rounding_ulps * self.unit
        self.value = value_error + rounding * outputs.abs()
        self.logdet = (
            self.logdet
            + log_error.sum(-1)
            + rounding * n
            + (rounding + gamma(n, self.dtype)) * logdet.abs()
        )

    @torch.no_grad()
    def elementwise(self, inputs: Tensor, outputs: Tensor, scale: Tensor | None = None) -> None:
        """A few roundings between activation and matrix (bias, the condition's shift and
        scale): ``outputs`` = (``inputs`` ± shifts) · ``scale``, up to three operations."""
        inputs, outputs = inputs.detach().double(), outputs.detach().double()
        if scale is None:
            self.value = self.value + 3 * self.unit * (inputs.abs() + outputs.abs())
            return
        scale = scale.detach().double()
        self.value = self.value * scale + 3 * self.unit * (inputs.abs() * scale + outputs.abs())

    @torch.no_grad()
    def linear(self, layer: InvertibleLinear, inputs: Tensor, outputs: Tensor) -> None:
        """The layer's matrix applied (V on the inverse pass, W on the forward pass, without the
        bias)."""
        propagate = layer.inverse_error if self.direction == "inverse" else layer.forward_error
        self.value = propagate(inputs.detach(), outputs.detach(), self.value)

    @torch.no_grad()
    def end_layer(self, index: int, values: Tensor) -> None:
        """Block ``index`` is done and produced ``values``."""
        # kept as they are (no operation: only a refused pass needs them, to name the layer)
        self.layers.append((index, values.detach(), self.value, self.logdet))

    @torch.no_grad()
    def check(self, outputs: Tensor, logabsdet: Tensor, rtol: float, name: str) -> None:
        """Raise PrecisionLossError if some sample's x or ℓ may be off by more than ``rtol``
        (see the module docstring), naming the first layer where its bound passed it.

        :param name: what the pass started from (``"y"`` or ``"x"``), for the message.
        """
        dtype = outputs.dtype
        outputs, logabsdet = outputs.detach().double(), logabsdet.detach().double()
        value_bound = _relative(self.value, outputs)
        logdet_allowed = rtol * logabsdet.abs().clamp_min(1.0)
        # written so that a NaN bound counts as too large
        bad = ~((value_bound <= rtol) & (self.logdet <= logdet_allowed))
        if not bool(bad.any()):
            return
        sample = int(torch.nonzero(bad)[0])
        layer = next(
            (
                index
                for index, values, value, logdet in self.layers
                if not (
                    _relative(value[sample], values[sample].double()) <= rtol
                    and logdet[sample] <= logdet_allowed[sample]
                )
            ),
            self.layers[-1][0] if self.layers else 0,
        )
        result = "x = F⁻¹(y)" if self.direction == "inverse" else "y = F(x)"
        raise PrecisionLossError(
            f"the {self.direction} pass from {name} loses accuracy at layer {layer}: for sample "
            f"{sample} (|{name}|max = {float(self.input_sizes[sample]):.3g}) the error bound on "
            f"{result} is {float(value_bound[sample]):.2g} of max(1, |result|) and on its log-det "
            f"{float(self.logdet[sample]):.2g}, past the tolerance {rtol:.2g} of {dtype}. "
            "The pass amplifies rounding errors (asinh's inverse sinh by "
            "cosh(u) per layer; an ill-conditioned V_l by up to cond(V_l)): this input is too far "
            "out for this network; use activation='smooth_leaky_relu' (linear tails), float64, "
            "or smaller inputs"
        )

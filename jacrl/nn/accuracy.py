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
n×n inverse per layer for the solves, shared by the batch; in float64 the products of
``inverse`` layers are first replaced by row sums (a coarse bound, see :class:`ErrorBound`),
and taken only where that one cannot certify the pass. Measured against 50-digit arithmetic
(tests/test_inverse_accuracy.py) the actual errors stay below the bounds, at 1/3–1/1000 of them.

What the bound leaves out: the layers' log|det V_l| (one number per layer, from an LU, with
error ≈ n·u·cond(V_l), which ``max_cond`` keeps far below the tolerance in float64), and the acting
snapshot :class:`~jacrl.nn.mlp.FrozenForward` (unchecked: its pre-actions are scored by the
checked inverse pass). ``max_cond`` is checked by the learners after every update and by the
acting snapshot, not by each pass (an SVD per layer): code that writes the weights itself must
call :meth:`~jacrl.nn.InvertibleMLP.check_conditioning`. An exactly singular V need not show as
−inf: on some CPUs its LU keeps a rounding-sized pivot and ``slogdet`` returns a finite number.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

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


#: The narrowest pass whose bound is judged coarse first (:class:`ErrorBound`).
COARSE_FROM_WIDTH = 16


def default_rtol(dtype: torch.dtype) -> float:
    """The stated tolerance of a pass in ``dtype`` (:data:`TOLERANCES`)."""
    return TOLERANCES[dtype]


def _relative(error: Tensor, values: Tensor) -> Tensor:
    """max_i error_i / max(1, max_i |values_i|) per row."""
    return error.amax(-1) / values.abs().amax(-1).clamp_min(1.0)


def _float64(t: Tensor) -> Tensor:
    """``t`` in float64 (itself when it already is: no copy, no dispatch)."""
    return t if t.dtype is torch.float64 else t.double()


class ErrorBound:
    """The running error bound of one pass of an InvertibleMLP, fed as the pass goes.

    The pass calls :meth:`activation`, :meth:`elementwise` and :meth:`linear` with the (computed)
    values before and after each operation, :meth:`end_layer` after each block, then
    :meth:`accurate` (or :meth:`check`) on its result.

    Why the bound is computed after the pass, not along it: each hook only records its tensors
    (a list append), and the propagation runs once, in one ``no_grad`` block, when the result is
    judged (or :attr:`value` / :attr:`logdet` are read). The arithmetic is the same as along the
    pass; what this saves is a ``no_grad`` entry and the detach/dtype dispatches per operation,
    which at the sizes of the policies cost more than the bound's arithmetic. Two more savings:
    while the error is exactly zero (the pass's input is taken as exact) the propagation of the
    zero error is skipped (every activation and matrix maps a zero error to zero), and the
    log-det's constant rounding terms are summed as Python floats.

    Why the verdict is taken twice at most: the bound's largest cost at large widths is its
    products of the batch with |matrix| per layer (for an ``inverse`` layer on the inverse pass
    one, as large as the pass's own product; two on its forward pass). A *coarse* bound
    replaces each by every row's largest entry times the matrix's row sums — elementwise at
    least the product, so still a bound, at O(n²) instead of O(batch·n²). ``lu`` layers keep
    their products: their a-posteriori bound sits within a few times the tolerance at large
    widths (n = 256, float64: about half of it), where a coarse one would fail and cost both
    (measured: the log-det gradient 50 → 77 ms). In float64 a healthy pass through ``inverse``
    layers sits orders of magnitude inside its tolerance (measured, depth 3, 256 Gaussian
    inputs: the coarse bound at 4·10⁻⁶ of it for n = 2, 3·10⁻⁴ for n = 16, 0.07–0.34 for
    n = 256, the tight one 1.3–8× lower), so the coarse verdict settles it; only when the coarse
    bound fails is the propagation run again with the products (the *tight* bound), and that
    one decides. So a pass is refused only by the tight bound, as before. float32 passes start
    tight: their bounds sit near their tolerance (n = 16: coarse 1.5×, tight 0.1× of it), where
    the coarse one would fail and cost both. So do passes narrower than
    :data:`COARSE_FROM_WIDTH`, where a product with the batch costs no more than the row sums'
    extra operations (measured for 256 rows, float64: n = 4: product 10 µs, row sums 13 µs;
    n = 16: 18 vs 14; n = 64: 77 vs 21).

    :param inputs: the pass's input ``(batch, n)``, taken as exact.
    :param direction: ``"inverse"`` (F⁻¹) or ``"forward"`` (F).
    :param coarse: start with the coarse bound, or take the tight one at once; default: coarse
        in float64 from width :data:`COARSE_FROM_WIDTH` on, else tight (see above).
    """

    def __init__(self, inputs: Tensor, direction: Direction, coarse: bool | None = None) -> None:
        self.direction = direction
        #: the pass's dtype and its unit roundoff
        self.dtype = inputs.dtype
        self.unit = unit_roundoff(inputs.dtype)
        self._inputs = inputs
        #: whether the propagation uses the coarse bounds (see the class docstring)
        if coarse is None:
            coarse = inputs.dtype == torch.float64 and inputs.shape[-1] >= COARSE_FROM_WIDTH
        self.coarse = coarse
        #: every operation recorded, in pass order
        self._recorded: list[tuple[Any, ...]] = []
        self._restart()

    def _restart(self) -> None:
        """Forget the propagation (not the recorded operations)."""
        # how many of the recorded operations the state below has propagated
        self._propagated = 0
        # elementwise bound on the error of the current values (float64, whatever the pass's
        # dtype: a float32 bound would round as much as the float32 pass it bounds); None while
        # it is exactly zero
        self._value: Tensor | None = None
        # per-sample bound on the error of the log-det so far: a tensor part and a constant
        self._logdet: Tensor | None = None
        self._logdet_constant = 0.0
        # after each block, in pass order: (layer index, output, value bound, log-det bound as
        # its tensor part and constant)
        self._layers: list[tuple[int, Tensor, Tensor | None, Tensor | None, float]] = []

    # What the pass reports (recorded only) ------------------------------------------------------
    def activation(
        self,
        activation: Activation,
        inputs: Tensor,
        outputs: Tensor,
        logdet: Tensor,
        derivative: Tensor | None = None,
    ) -> None:
        """σ⁻¹ (or σ) applied: ``outputs`` from ``inputs``, with log-det term ``logdet``
        ``(batch,)`` (a sum of n terms of one sign, so |logdet| is the sum of their sizes), and
        on the inverse pass (σ⁻¹)′(``inputs``) where the pass computed it (saves the bound
        evaluating it again, see :meth:`Activation.inverse_error`)."""
        self._recorded.append(("activation", activation, inputs, outputs, logdet, derivative))

    def elementwise(self, inputs: Tensor, outputs: Tensor, scale: Tensor) -> None:
        """A few roundings between activation and matrix (the condition's shift and scale, and
        the bias): ``outputs`` = (``inputs`` ± shifts) · ``scale``, up to three operations."""
        self._recorded.append(("elementwise", inputs, outputs, scale))

    def rounding(self, outputs: Tensor) -> None:
        """One correctly rounded operation of exact operands (a bias subtracted) produced
        ``outputs``: it adds γ_1 |outputs| to the error it carries."""
        self._recorded.append(("rounding", outputs))

    def linear(self, layer: InvertibleLinear, inputs: Tensor, outputs: Tensor) -> None:
        """The layer's matrix applied (V on the inverse pass, W on the forward pass, without the
        bias)."""
        self._recorded.append(("linear", layer, inputs, outputs))

    def end_layer(self, index: int, values: Tensor) -> None:
        """Block ``index`` is done and produced ``values``."""
        self._recorded.append(("end_layer", index, values))

    # The propagation ------------------------------------------------------------------------------
    @property
    def value(self) -> Tensor:
        """Elementwise bound on the error of the pass's current values, float64."""
        self._propagate()
        if self._value is None:
            return torch.zeros(self._inputs.shape, dtype=torch.float64, device=self._inputs.device)
        return self._value

    @property
    def logdet(self) -> Tensor:
        """Per-sample bound on the error of the log-det so far, float64 ``(batch,)``."""
        self._propagate()
        return self._logdet_bound(self._logdet, self._logdet_constant)

    def _logdet_bound(self, tensor: Tensor | None, constant: float) -> Tensor:
        if tensor is None:
            inputs = self._inputs
            return torch.full(inputs.shape[:1], constant, dtype=torch.float64, device=inputs.device)
        return tensor + constant

    def _propagate(self) -> None:
        """Carry the bound through the operations recorded since the last call."""
        if self._propagated == len(self._recorded):
            return
        pending = self._recorded[self._propagated :]
        self._propagated = len(self._recorded)
        with torch.no_grad():
            for kind, *args in pending:
                if kind == "activation":
                    self._propagate_activation(*args)
                elif kind == "elementwise":
                    self._propagate_elementwise(*args)
                elif kind == "rounding":
                    (outputs,) = args
                    own = gamma(1, self.dtype) * _float64(outputs).abs()
                    self._value = own if self._value is None else self._value + own
                elif kind == "linear":
                    self._propagate_linear(*args)
                else:
                    index, values = args
                    self._layers.append(
                        (index, values, self._value, self._logdet, self._logdet_constant)
                    )

    def _propagate_activation(
        self,
        activation: Activation,
        inputs: Tensor,
        outputs: Tensor,
        logdet: Tensor,
        derivative: Tensor | None,
    ) -> None:
        n = inputs.shape[-1]
        rounding = activation.rounding_ulps * self.unit
        own = rounding * _float64(outputs).abs()
        log_terms = (rounding + gamma(n, self.dtype)) * _float64(logdet).abs()
        self._logdet_constant += rounding * n
        if self._value is not None:
            if self.direction == "inverse":
                value_error, log_error = activation.inverse_error(
                    _float64(inputs), self._value, derivative
                )
            else:
                value_error, log_error = activation.forward_error(_float64(inputs), self._value)
            own = value_error + own
            log_terms = log_terms + log_error.sum(-1)
        self._value = own
        self._logdet = log_terms if self._logdet is None else self._logdet + log_terms

    def _propagate_elementwise(self, inputs: Tensor, outputs: Tensor, scale: Tensor) -> None:
        inputs, outputs = _float64(inputs).abs(), _float64(outputs).abs()
        scale = _float64(scale)
        own = 3 * self.unit * (inputs * scale + outputs)
        self._value = own if self._value is None else self._value * scale + own

    def _propagate_linear(self, layer: InvertibleLinear, inputs: Tensor, outputs: Tensor) -> None:
        propagate = layer.inverse_error if self.direction == "inverse" else layer.forward_error
        error = self._value
        if error is None:
            error = torch.zeros(inputs.shape, dtype=torch.float64, device=inputs.device)
        self._value = propagate(inputs, outputs, error, coarse=self.coarse)

    # The verdict ----------------------------------------------------------------------------------
    def _ok(self, outputs: Tensor, logabsdet: Tensor, rtol: float) -> Tensor:
        """Per sample: whether x and ℓ are finite and within ``rtol`` by the bound (see the
        module docstring). Written so that NaN anywhere counts as a failure (``amax`` propagates
        NaN, and every comparison with NaN is false), which also makes it the finiteness check."""
        self._propagate()
        sizes = _float64(outputs).abs().amax(-1)
        ok = sizes < math.inf
        if self._value is not None:
            ok = ok & (self._value.amax(-1) <= rtol * sizes.clamp_min(1.0))
        logdet_sizes = _float64(logabsdet).abs()
        allowed = rtol * logdet_sizes.clamp_min(1.0)
        return ok & (logdet_sizes < math.inf) & (self.logdet <= allowed)

    def _verdict(self, outputs: Tensor, logabsdet: Tensor, rtol: float) -> tuple[Tensor, bool]:
        """(:meth:`_ok`, whether it holds for every sample), by the coarse bound and, where that
        fails some sample, by the tight one (see the class docstring): one host sync when the
        coarse bound settles it."""
        ok = self._ok(outputs, logabsdet, rtol)
        every = bool(ok.all())
        if self.coarse and not every:
            self.coarse = False
            self._restart()
            ok = self._ok(outputs, logabsdet, rtol)
            every = bool(ok.all())
        return ok, every

    def accurate(self, outputs: Tensor, logabsdet: Tensor, rtol: float) -> bool:
        """Whether every sample's x and ℓ are finite and within ``rtol`` by the bound: the whole
        verdict in one host sync when the coarse bound settles it (:meth:`check` then says what
        failed)."""
        with torch.no_grad():
            return self._verdict(outputs, logabsdet, rtol)[1]

    def check(self, outputs: Tensor, logabsdet: Tensor, rtol: float, name: str) -> None:
        """Raise PrecisionLossError if some sample's x or ℓ may be off by more than ``rtol``
        (see the module docstring) by the tight bound, naming the first layer where its bound
        passed it.

        :param name: what the pass started from (``"y"`` or ``"x"``), for the message.
        """
        with torch.no_grad():
            ok, every = self._verdict(outputs, logabsdet, rtol)
            if not every:
                self._refuse(outputs, logabsdet, rtol, name, int(torch.nonzero(~ok)[0]))

    def _refuse(
        self, outputs: Tensor, logabsdet: Tensor, rtol: float, name: str, sample: int
    ) -> None:
        dtype = outputs.dtype
        outputs, logabsdet = _float64(outputs), _float64(logabsdet)
        value_bound = _relative(self.value, outputs)
        logdet_bound = self.logdet
        logdet_allowed = rtol * logabsdet.abs().clamp_min(1.0)
        layer = next(
            (
                index
                for index, values, value, tensor, constant in self._layers
                if not (
                    (value is None or _relative(value[sample], _float64(values[sample])) <= rtol)
                    and self._logdet_bound(tensor, constant)[sample] <= logdet_allowed[sample]
                )
            ),
            self._layers[-1][0] if self._layers else 0,
        )
        result = "x = F⁻¹(y)" if self.direction == "inverse" else "y = F(x)"
        size = float(self._inputs[sample].detach().abs().max())
        raise PrecisionLossError(
            f"the {self.direction} pass from {name} loses accuracy at layer {layer}: for sample "
            f"{sample} (|{name}|max = {size:.3g}) the error bound on "
            f"{result} is {float(value_bound[sample]):.2g} of max(1, |result|) and on its log-det "
            f"{float(logdet_bound[sample]):.2g}, past the tolerance {rtol:.2g} of {dtype}. "
            "The pass amplifies rounding errors (asinh's inverse sinh by "
            "cosh(u) per layer; an ill-conditioned V_l by up to cond(V_l)): this input is too far "
            "out for this network; use activation='smooth_leaky_relu' (linear tails), float64, "
            "or smaller inputs"
        )

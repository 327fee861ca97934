"""InvertibleMLP: y = F(x) = σ(A_L … σ(A_1 x)), A_l x = W_l x + b_l (seed eqs. 1–4,
docs/method.md §1).

The learning signal is ℓ(y0) = log|det ∂F⁻¹/∂y (y0)|. The Jacobian of a composition is a
product, so

    ℓ(y0) = Σ_l log|det V_l| + Σ_l Σ_i log|(σ⁻¹)′(u_{l,i})|,

u_l the values entering σ⁻¹ on the inverse pass from y0. :meth:`InvertibleMLP.inverse_and_logdet`
returns exactly this sum, differentiable in every parameter: backpropagating a weighted sum of it
*is* the fast exact gradient of :mod:`jacrl.logdet` (one inverse pass, one backward pass and one
LU per layer, shared by the batch; docs/method.md §2).

Numerics (docs/method.md §6). An inverse pass in float32 loses about cond(V)·2⁻²⁴ relative
accuracy per layer without any NaN to warn. Hence:

* ``max_cond`` bounds cond(V_l); :meth:`check_conditioning` raises :class:`SingularWeightError`
  naming the layer past it. It costs one SVD per layer, so it runs when a pass produced NaN/inf
  and whenever the caller asks (``InvertiblePolicy``: after each update and before acting on new
  weights) — not on every pass. The default 1e6 suits float64 (round trips ≈ 1e-10); in float32
  pick about 1e3 for ≈1e-4 round trips.
* float64 is recommended for the inverse path (the learning signal); float32 is fine for acting.
* No pass returns an inaccurate result silently: each carries a running error bound and raises
  :class:`PrecisionLossError` naming the layer where x or the log-det may be off by more than
  :attr:`InvertibleMLP.rtol` (:mod:`jacrl.nn.accuracy`; the acting snapshot is not checked).
* No pass returns NaN/inf silently: a non-finite result raises SingularWeightError (bad weights)
  or NonFiniteError (non-finite input, or ``sinh`` overflow on the inverse path, |u| ≳ 89 in
  float32, ≳ 710 in float64 — with asinh, depth 3, already y ≈ 3: sinh(sinh(sinh(3))) = inf.
  ``smooth_leaky_relu`` has linear tails and cannot overflow this way).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Literal

import torch
from torch import Tensor, nn

from jacrl.common.errors import ConfigError, NonFiniteError
from jacrl.nn.accuracy import ErrorBound, default_rtol
from jacrl.nn.activations import Activation, ActivationName, make_activation
from jacrl.nn.conditioner import Condition, check_condition
from jacrl.nn.linear import InverseLinear, InvertibleLinear, LULinear
from jacrl.nn.validation import SingularWeightError, all_finite, check_batch

#: The parameterizations of the affine layers (keys of :data:`PARAMETERIZATIONS`).
Parameterization = Literal["inverse", "lu"]
#: Accepted ``parameterization`` names and the layer each builds.
PARAMETERIZATIONS: dict[Parameterization, type[InvertibleLinear]] = {
    "inverse": InverseLinear,
    "lu": LULinear,
}

_DTYPES = (torch.float32, torch.float64)

Pass = Callable[[Tensor, ErrorBound], tuple[Tensor, Tensor]]


def _stacked_log_abs_det_inverse(layers: list[InvertibleLinear]) -> Tensor | None:
    """Σ_l log|det V_l| as one batched ``slogdet`` (and one batched solve in backward) when every
    layer is an :class:`InverseLinear` and there are several, else ``None`` (each layer then adds
    its own). The same LU per matrix as layer by layer, so the same log-dets and gradients; they
    are batch-independent scalars, so the sum is added to the pass once rather than broadcast per
    layer (fewer autograd nodes and LAPACK calls on the hot path of both passes)."""
    if len(layers) < 2 or not all(type(layer) is InverseLinear for layer in layers):
        return None
    matrices = torch.stack([layer.inverse_weight() for layer in layers])
    return torch.linalg.slogdet(matrices).logabsdet.sum()


class FrozenForward:
    """y = F(x) from a snapshot of the weights: W_l = V_l⁻¹ and b_l computed once, as plain tensors.

    The acting path of a rollout: one matrix product, one bias add and one activation per layer,
    without autograd, log-det, input checks or staleness checks — the caller checks what it
    stores once per batch. It equals :meth:`InvertibleMLP.forward` up to rounding (that pass
    solves with V instead of multiplying by W). Build it with :meth:`InvertibleMLP.frozen_forward`;
    the owner decides how long it stays valid (``InvertiblePolicy`` keeps one per weight
    generation).
    """

    __slots__ = ("activation", "layers")

    def __init__(
        self,
        layers: tuple[tuple[Tensor, Tensor | None], ...],
        activation: Callable[[Tensor], Tensor],
    ) -> None:
        #: (Wᵀ_l, b_l) per layer, detached copies
        self.layers = layers
        self.activation = activation

    def __call__(self, x: Tensor, condition: Condition | None = None) -> Tensor:
        """F(x), or F_s(x) for a ``condition`` (as in :meth:`InvertibleMLP.forward_and_logdet`;
        not checked here)."""
        if condition is not None:
            shift, log_scale = condition
            scale = log_scale.exp()
        for index, (weight_t, bias) in enumerate(self.layers):
            x = x @ weight_t
            if bias is not None:
                x = x + bias
            if condition is not None:
                x = (x + shift[:, index]) * scale[:, index]
            x = self.activation(x)
        return x

    def all_finite(self) -> bool:
        """Whether every snapshot tensor is finite (one check per snapshot, not per call)."""
        return all_finite(t for layer in self.layers for t in layer if t is not None)


class InvertibleMLP(nn.Module):
    """A square invertible MLP of ``depth`` blocks σ(W_l x + b_l) on R^n.

    :param n: width (input = output dimension).
    :param depth: number of blocks L; 0 gives the identity (log-det 0), the "no F" ablation.
    :param parameterization: ``"inverse"`` (train V = W⁻¹, Yan) or ``"lu"`` (Glow LU).
    :param activation: a name from :data:`jacrl.nn.ACTIVATIONS` or an :class:`Activation`.
    :param bias: whether each block has a bias b_l.
    :param dtype: ``torch.float32`` or ``torch.float64`` (recommended for the inverse path).
    :param max_cond: bound on cond(V_l) enforced by :meth:`check_conditioning`.
    """

    def __init__(
        self,
        n: int,
        depth: int,
        parameterization: Parameterization = "inverse",
        activation: ActivationName | Activation = "asinh",
        bias: bool = True,
        dtype: torch.dtype = torch.float32,
        max_cond: float = 1e6,
    ) -> None:
        super().__init__()
        if not isinstance(n, int) or n < 1:
            raise ConfigError(f"n must be a positive int, got {n!r}")
        if not isinstance(depth, int) or depth < 0:
            raise ConfigError(f"depth must be an int >= 0, got {depth!r}")
        if parameterization not in PARAMETERIZATIONS:
            raise ConfigError(
                f"unknown parameterization {parameterization!r}; "
                f"accepted: {sorted(PARAMETERIZATIONS)}"
            )
        if dtype not in _DTYPES:
            raise ConfigError(f"dtype must be one of {_DTYPES}, got {dtype}")
        if not max_cond > 1.0:
            raise ConfigError(f"max_cond must be > 1, got {max_cond!r}")
        self.n = n
        self.depth = depth
        self.parameterization = parameterization
        self._dtype = dtype
        self.max_cond = float(max_cond)
        layer = PARAMETERIZATIONS[parameterization]
        self.linears = nn.ModuleList([layer(n, bias=bias, dtype=dtype) for _ in range(depth)])
        self.activation = (
            activation if isinstance(activation, Activation) else make_activation(activation)
        )

    def extra_repr(self) -> str:
        return (
            f"n={self.n}, depth={self.depth}, parameterization={self.parameterization!r}, "
            f"dtype={self.dtype}, max_cond={self.max_cond:g}"
        )

    @property
    def dtype(self) -> torch.dtype:
        """The dtype inputs must have: that of the parameters (it follows ``.to(dtype)``)."""
        for layer in self.linears:  # cheaper than parameters(): called on every pass
            for p in layer._parameters.values():
                if p is not None:
                    return p.dtype
        return self._dtype

    def layers(self) -> list[InvertibleLinear]:
        """The affine layers A_1 … A_L, in forward order."""
        return [layer for layer in self.linears if isinstance(layer, InvertibleLinear)]

    # Passes ----------------------------------------------------------------------------------
    def forward(self, x: Tensor, condition: Condition | None = None) -> Tensor:
        """y = F(x) (or F_s(x) with a ``condition``) for a ``(batch, n)`` tensor."""
        return self.forward_and_logdet(x, condition)[0]

    def inverse(self, y: Tensor, condition: Condition | None = None) -> Tensor:
        """x = F⁻¹(y) (seed eq. 4; F_s⁻¹ with a ``condition``) for a ``(batch, n)`` tensor."""
        return self.inverse_and_logdet(y, condition)[0]

    def forward_and_logdet(
        self, x: Tensor, condition: Condition | None = None
    ) -> tuple[Tensor, Tensor]:
        """(F(x), log|det ∂F/∂x|), the log-det of shape ``(batch,)``.

        ``condition`` = (shift, log_scale), each ``(batch, depth, n)``, makes it the state-
        conditioned F_s of :mod:`jacrl.nn.conditioner` (block l: σ((W_l x + b_l + shift_l) ⊙
        exp(log_scale_l)), log-det + Σ log_scale); ``None`` is F itself.
        """
        x = check_batch(x, self.n, self.dtype, "x")
        condition = self._checked_condition(condition, x)
        return self._guarded(partial(self._forward_pass, condition=condition), x, "x", condition)

    def inverse_and_logdet(
        self, y: Tensor, condition: Condition | None = None
    ) -> tuple[Tensor, Tensor]:
        """(F⁻¹(y), ℓ(y) = log|det ∂F⁻¹/∂y|), ℓ of shape ``(batch,)``, differentiable in the
        parameters: the learning signal of seed eq. 7 (as a log, see jacrl.logdet). With a
        ``condition`` (see :meth:`forward_and_logdet`) it inverts F_s."""
        y = check_batch(y, self.n, self.dtype, "y")
        condition = self._checked_condition(condition, y)
        return self._guarded(partial(self._inverse_pass, condition=condition), y, "y", condition)

    def _checked_condition(self, condition: Condition | None, inputs: Tensor) -> Condition | None:
        if condition is not None:
            check_condition(condition, inputs.shape[0], self.depth, self.n, self.dtype)
        return condition

    def _forward_pass(
        self, x: Tensor, bound: ErrorBound, condition: Condition | None = None
    ) -> tuple[Tensor, Tensor]:
        layers = self.layers()
        stacked = _stacked_log_abs_det_inverse(layers)
        logabsdet = x.new_zeros(x.shape[:-1]) if stacked is None else -stacked
        if condition is not None:
            shift, log_scale = condition
            scale = log_scale.exp()
            logabsdet = logabsdet + log_scale.sum((-2, -1))
        for index, layer in enumerate(layers):
            inputs = x
            if stacked is None:
                x, layer_logdet = layer(x)
                logabsdet = logabsdet + layer_logdet
            else:  # its log-det is in ``stacked``
                x = layer.affine(x)
            bound.linear(layer, inputs, x if layer.bias is None else x - layer.bias)
            if condition is not None:
                shifted = x
                x = (x + shift[:, index]) * scale[:, index]
                bound.elementwise(shifted, x, scale[:, index])
            inputs = x
            x, activation_logdet = self.activation(x)
            bound.activation(self.activation, inputs, x, activation_logdet)
            bound.end_layer(index, x)
            logabsdet = logabsdet + activation_logdet
        return x, logabsdet

    def _inverse_pass(
        self, y: Tensor, bound: ErrorBound, condition: Condition | None = None
    ) -> tuple[Tensor, Tensor]:
        layers = self.layers()
        if condition is not None:
            shift, log_scale = condition
            inverse_scale = (-log_scale).exp()
        stacked = _stacked_log_abs_det_inverse(layers)
        logabsdet = y.new_zeros(y.shape[:-1]) if stacked is None else stacked
        if condition is not None:
            logabsdet = logabsdet - log_scale.sum((-2, -1))
        for index, layer in reversed(list(enumerate(layers))):
            inputs = y
            y, activation_logdet = self.activation.inverse(y)
            bound.activation(self.activation, inputs, y, activation_logdet)
            inputs = y
            if condition is not None:
                y = y * inverse_scale[:, index] - shift[:, index]
            if layer.bias is not None:
                y = y - layer.bias
            if condition is not None:
                bound.elementwise(inputs, y, inverse_scale[:, index])
            elif layer.bias is not None:
                bound.rounding(y)  # the bias subtraction alone: one rounding
            inputs = y
            y = layer.apply_inverse_weight(y)
            bound.linear(layer, inputs, y)
            bound.end_layer(index, y)
            logabsdet = logabsdet + activation_logdet
            if stacked is None:
                logabsdet = logabsdet + layer.log_abs_det_inverse()
        return y, logabsdet

    @property
    def rtol(self) -> float:
        """The stated accuracy of every pass (:mod:`jacrl.nn.accuracy`): x to
        rtol·max(1, ‖x‖∞) and the log-det to rtol·max(1, |log-det|) per sample, or the pass
        raises PrecisionLossError; 1.1e-8 in float64, 1e-3 in float32 (jacrl.nn.accuracy)."""
        return default_rtol(self.dtype)

    def _guarded(
        self, run: Pass, inputs: Tensor, name: str, condition: Condition | None = None
    ) -> tuple[Tensor, Tensor]:
        """Run a pass; turn a singular-matrix failure, a NaN/inf result or a result less
        accurate than :attr:`rtol` into a clear error."""
        bound = ErrorBound(inputs, "inverse" if name == "y" else "forward")
        try:
            outputs, logabsdet = run(inputs, bound)
            # the common case in one host sync: finite and within the tolerance (the bound
            # inverts the layer matrices in float64, so a matrix singular there but not in the
            # pass's own solve fails here)
            if bound.accurate(outputs, logabsdet, self.rtol):
                return outputs, logabsdet
        except torch.linalg.LinAlgError as error:
            self.check_conditioning()
            raise SingularWeightError(f"a layer matrix is singular: {error}") from error
        if bool(torch.isfinite(outputs).all()) and bool(torch.isfinite(logabsdet).all()):
            bound.check(outputs, logabsdet, self.rtol, name)  # raises: the bound is past rtol
            return outputs, logabsdet
        if not bool(torch.isfinite(inputs).all()):
            raise NonFiniteError(f"{name} contains NaN or inf; the network needs finite inputs")
        if condition is not None and not all_finite(condition):
            raise NonFiniteError("the condition (shift, log_scale) contains NaN or inf")
        self.check_conditioning()
        raise NonFiniteError(
            f"the pass from {name} overflowed to NaN/inf in {self.dtype} although every layer has "
            f"cond(V) <= max_cond={self.max_cond:g}, so {name} is too large for this network "
            "(asinh's inverse sinh overflows past |u| ~ 89 in float32, ~ 710 in float64, and "
            "compounds over layers); use float64, smaller inputs, or "
            "activation='smooth_leaky_relu' (linear tails)"
        )

    # Conditioning ----------------------------------------------------------------------------
    @torch.no_grad()
    def condition_numbers(self) -> Tensor:
        """cond(V_l) = cond(W_l) for each layer, shape ``(depth,)`` (one SVD each)."""
        if self.depth == 0:
            return torch.zeros(0, dtype=self.dtype)
        return torch.stack([layer.condition_number() for layer in self.layers()])

    def check_conditioning(self) -> Tensor:
        """Raise :class:`SingularWeightError` if some cond(V_l) exceeds ``max_cond`` or is NaN;
        return the condition numbers (shape ``(depth,)``) otherwise."""
        conds = self.condition_numbers()
        for index, cond in enumerate(conds.tolist()):
            if not cond <= self.max_cond:  # also catches NaN
                kind = type(self.layers()[index]).__name__
                raise SingularWeightError(
                    f"layer {index} ({kind}) has condition number {cond:.3g} > max_cond="
                    f"{self.max_cond:g} (NaN means non-finite weights); lower the learning rate, "
                    "regularise or re-condition V, or use float64"
                )
        return conds

    def recondition(self) -> list[int]:
        """Project every layer whose cond exceeds ``max_cond`` back to cond = ``max_cond`` / 2
        (:meth:`InvertibleLinear.recondition`; halfway, so the next update does not cross the
        bound again at once) and return the indices of the layers it changed."""
        return [
            index
            for index, layer in enumerate(self.layers())
            if layer.recondition(self.max_cond, self.max_cond / 2)
        ]

    # Acting ----------------------------------------------------------------------------------
    def frozen_forward(self) -> FrozenForward:
        """A lean forward pass for acting from W_l = V_l⁻¹ and b_l computed now (no gradient, no
        cache: the caller keeps it while the weights stay as they are). Raises
        :class:`SingularWeightError` if some W_l or b_l is not finite; the conditioning is the
        caller's to check (:meth:`check_conditioning`)."""
        with torch.no_grad():
            layers = tuple(
                (
                    layer.weight().detach().mT,
                    None if layer.bias is None else layer.bias.detach().clone(),
                )
                for layer in self.layers()
            )
        snapshot = FrozenForward(layers, self.activation.value)
        if not snapshot.all_finite():
            raise SingularWeightError(
                "a forward matrix W = V⁻¹ or a bias is not finite; lower the learning rate or "
                "max_cond, or use float64"
            )
        return snapshot

"""InvertibleMLP: y = F(x) = σ(A_L … σ(A_1 x)), A_l x = W_l x + b_l (seed eqs. 1–4, design §2).

The learning signal is ℓ(y0) = log|det ∂F⁻¹/∂y (y0)|. The Jacobian of a composition is a
product, so

    ℓ(y0) = Σ_l log|det V_l| + Σ_l Σ_i log|(σ⁻¹)′(u_{l,i})|,

u_l the values entering σ⁻¹ on the inverse pass from y0. :meth:`InvertibleMLP.inverse_and_logdet`
returns exactly this sum, differentiable in every parameter: backpropagating a weighted sum of it
*is* the fast exact gradient of :mod:`jacrl.logdet` (one inverse pass, one backward pass and one
LU per layer, shared by the batch).

Numerics (design §3b). An inverse pass in float32 loses about cond(V)·2⁻²⁴ relative accuracy per
layer without any NaN to warn: measured round-trip errors were 3e-5 at cond 1e2 and 0.77 at 1e6.
Hence:

* ``max_cond`` bounds cond(V_l); :meth:`check_conditioning` raises :class:`SingularWeightError`
  naming the layer past it. It costs one SVD per layer, so it runs when entering :meth:`frozen`,
  when a pass produced NaN/inf, and whenever the caller asks (e.g. after each optimizer step) —
  not on every pass. The default 1e6 suits float64 (round trips ≈ 1e-10); in float32 pick about
  1e3 for ≈1e-4 round trips.
* float64 is recommended for the inverse path (the learning signal); float32 is fine for acting.
* No pass returns NaN/inf silently: a non-finite result raises SingularWeightError (bad weights)
  or NonFiniteError (non-finite input, or ``sinh`` overflow on the inverse path, |u| ≳ 89 in
  float32, ≳ 710 in float64 — with asinh, depth 3, already y ≈ 3: sinh(sinh(sinh(3))) = inf.
  ``smooth_leaky_relu`` has linear tails and cannot overflow this way).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from jacrl.common.errors import ConfigError, NonFiniteError
from jacrl.nn.activations import Activation, make_activation
from jacrl.nn.linear import InverseLinear, InvertibleLinear, LULinear
from jacrl.nn.validation import SingularWeightError, check_batch

#: Accepted ``parameterization`` names and the layer each builds.
PARAMETERIZATIONS: dict[str, type[InvertibleLinear]] = {"inverse": InverseLinear, "lu": LULinear}

_DTYPES = (torch.float32, torch.float64)

Pass = Callable[[Tensor], tuple[Tensor, Tensor]]
#: Identifies the values of a set of tensors: (storage address, in-place version) of each.
ParameterKey = tuple[tuple[int, int], ...]


class FrozenForward:
    """y = F(x) from a snapshot of the weights: W_l = V_l⁻¹ and b_l computed once, as plain tensors.

    The acting path of a rollout (design §3b "Cost"): one matrix product, one bias add and one
    activation per layer, without autograd, log-det, input checks or staleness checks — the
    caller checks what it stores once per batch. Same operations in the same order as
    :meth:`InvertibleMLP.forward`, so the outputs are bit-identical to it. Build it with
    :meth:`InvertibleMLP.frozen_forward`, which keeps it until a parameter changes.
    """

    __slots__ = ("activation", "key", "layers")

    def __init__(
        self,
        key: ParameterKey,
        layers: tuple[tuple[Tensor, Tensor | None], ...],
        activation: Callable[[Tensor], Tensor],
    ) -> None:
        self.key = key
        #: (Wᵀ_l, b_l) per layer, detached copies
        self.layers = layers
        self.activation = activation

    def __call__(self, x: Tensor) -> Tensor:
        for weight_t, bias in self.layers:
            x = x @ weight_t
            if bias is not None:
                x = x + bias
            x = self.activation(x)
        return x

    def all_finite(self) -> bool:
        """Whether every snapshot tensor is finite (one check per snapshot, not per call)."""
        return all(
            bool(torch.isfinite(t).all()) for layer in self.layers for t in layer if t is not None
        )


def parameter_key(module: nn.Module) -> ParameterKey:
    """(storage address, version counter) of every parameter and buffer of ``module``: it changes
    when an optimizer step, ``load_state_dict`` or ``.to()`` changes a value. Writes that bypass
    the version counter — through ``.data``, or torch's fused optimizers (``Adam(fused=True)``) —
    need the owner's ``invalidate`` afterwards."""
    return tuple(
        (t.data_ptr(), t._version)
        for sub in module.modules()
        for group in (sub._parameters, sub._buffers)
        for t in group.values()
        if t is not None
    )


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
        parameterization: str = "inverse",
        activation: str | Activation = "asinh",
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
        self._frozen_forward: FrozenForward | None = None
        #: parameter key of the weights check_conditioning last passed
        self._conditioning_checked: ParameterKey | None = None

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
    def forward(self, x: Tensor) -> Tensor:
        """y = F(x) for a ``(batch, n)`` tensor."""
        return self.forward_and_logdet(x)[0]

    def inverse(self, y: Tensor) -> Tensor:
        """x = F⁻¹(y) (seed eq. 4) for a ``(batch, n)`` tensor."""
        return self.inverse_and_logdet(y)[0]

    def forward_and_logdet(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(F(x), log|det ∂F/∂x|), the log-det of shape ``(batch,)``."""
        return self._guarded(self._forward_pass, check_batch(x, self.n, self.dtype, "x"), "x")

    def inverse_and_logdet(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """(F⁻¹(y), ℓ(y) = log|det ∂F⁻¹/∂y|), ℓ of shape ``(batch,)``, differentiable in the
        parameters: the learning signal of seed eq. 7 (as a log, see jacrl.logdet)."""
        return self._guarded(self._inverse_pass, check_batch(y, self.n, self.dtype, "y"), "y")

    def _forward_pass(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logabsdet = x.new_zeros(x.shape[:-1])
        for layer in self.layers():
            x, layer_logdet = layer(x)
            x, activation_logdet = self.activation(x)
            logabsdet = logabsdet + layer_logdet + activation_logdet
        return x, logabsdet

    def _inverse_pass(self, y: Tensor) -> tuple[Tensor, Tensor]:
        layers = self.layers()
        if len(layers) > 1 and all(type(layer) is InverseLinear for layer in layers):
            # One batched slogdet (and one batched solve in backward) for all layers instead of
            # one per layer: the same LU per matrix, so the same values and gradients. The
            # per-layer log-dets are batch-independent scalars, so they are summed once and added
            # once, not broadcast per layer (fewer autograd nodes on this hot path).
            matrices = torch.stack([layer.inverse_weight() for layer in layers])
            logabsdet = torch.linalg.slogdet(matrices).logabsdet.sum()
            for layer in reversed(layers):
                y, activation_logdet = self.activation.inverse(y)
                if layer.bias is not None:
                    y = y - layer.bias
                y = layer.apply_inverse_weight(y)
                logabsdet = logabsdet + activation_logdet
            return y, logabsdet
        logabsdet = y.new_zeros(y.shape[:-1])
        for layer in reversed(layers):
            y, activation_logdet = self.activation.inverse(y)
            y, layer_logdet = layer.inverse(y)
            logabsdet = logabsdet + activation_logdet + layer_logdet
        return y, logabsdet

    def _guarded(self, run: Pass, inputs: Tensor, name: str) -> tuple[Tensor, Tensor]:
        """Run a pass; turn a singular-matrix failure or a NaN/inf result into a clear error."""
        try:
            outputs, logabsdet = run(inputs)
        except torch.linalg.LinAlgError as error:
            self.check_conditioning()
            raise SingularWeightError(f"a layer matrix is singular: {error}") from error
        if bool(torch.isfinite(outputs).all()) and bool(torch.isfinite(logabsdet).all()):
            return outputs, logabsdet
        if not bool(torch.isfinite(inputs).all()):
            raise NonFiniteError(f"{name} contains NaN or inf; the network needs finite inputs")
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
        key = parameter_key(self)
        conds = self.condition_numbers()
        for index, cond in enumerate(conds.tolist()):
            if not cond <= self.max_cond:  # also catches NaN
                kind = type(self.layers()[index]).__name__
                raise SingularWeightError(
                    f"layer {index} ({kind}) has condition number {cond:.3g} > max_cond="
                    f"{self.max_cond:g} (NaN means non-finite weights); lower the learning rate, "
                    "regularise or re-condition V, or use float64"
                )
        self._conditioning_checked = key
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
        """The lean forward pass for acting, from W_l = V_l⁻¹ computed once (no gradient).

        Kept until a parameter changes (keyed on :func:`parameter_key`, checked here, not per
        pass): call this once per rollout, or once per ``predict``. Building a new snapshot checks
        the conditioning (unless :meth:`check_conditioning` already passed for these weights) and
        that W_l, b_l are finite, raising :class:`SingularWeightError` otherwise.
        """
        key = parameter_key(self)
        cached = self._frozen_forward
        if cached is not None and cached.key == key:
            return cached
        if self._conditioning_checked != key:
            self.check_conditioning()
        with torch.no_grad():
            layers = tuple(
                (
                    layer.weight().detach().mT,
                    None if layer.bias is None else layer.bias.detach().clone(),
                )
                for layer in self.layers()
            )
        snapshot = FrozenForward(key, layers, self.activation.value)
        if not snapshot.all_finite():
            raise SingularWeightError(
                "a forward matrix W = V⁻¹ or a bias is not finite; lower the learning rate or "
                "max_cond, or use float64"
            )
        self._frozen_forward = snapshot
        return snapshot

    def invalidate(self) -> None:
        """Drop the acting snapshot and the conditioning record: the next
        :meth:`frozen_forward` recomputes both. Needed only after writing the weights in a way
        that bypasses version counters (``p.data[...] = ...``, fused optimizers); foreach and
        single-tensor optimizer steps and ``load_state_dict`` are detected."""
        self._frozen_forward = None
        self._conditioning_checked = None

    @contextmanager
    def frozen(self) -> Iterator[InvertibleMLP]:
        """Within the block, forward passes reuse W_l = V_l⁻¹ and log|det W_l| computed once (no
        gradient reaches the weights through forward); the cache refreshes itself if a parameter
        changes. Checks the conditioning on entry."""
        self.check_conditioning()
        previous = [layer.is_frozen for layer in self.layers()]
        for layer in self.layers():
            layer.set_frozen(True)
        try:
            yield self
        finally:
            for layer, was_frozen in zip(self.layers(), previous, strict=True):
                layer.set_frozen(was_frozen)

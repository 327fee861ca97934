"""The invertible-network policy of the Jacobian agent (design.md §3).

The network sees the state through perceptual noise: x = x0(s) + σ_x ε, ε ~ N(0, I), and emits the
continuous pre-action y0 = F(x). Because F is invertible, y0 has the exact density

    log p(y0 | s) = log N(F⁻¹(y0); x0(s), σ_x² I) + ℓ(y0),   ℓ(y0) = log|det J_{F⁻¹}(y0)|,

which the two learning rules use:

- ``rule="density"``: the log-probability is the whole expression (REINFORCE/PPO on this policy);
- ``rule="volume"`` (the seed, eq. 7 as a log): the "log-probability" is ℓ(y0) alone, y0 held fixed
  (∂y0/∂V ≡ 0). It ignores the Gaussian term, so the lift and σ_x get no gradient from it.
  Variants (docs/volume_rule.md): ``volume_objective="absdet"`` scores |J| = exp ℓ itself, whose
  gradient is seed eq. 11, |J|·∇ℓ; ``volume_hold="x0"`` holds the input x that produced y0 fixed
  instead of y0 and scores ℓ(F(x)) = −log|det J_F(x)|.

The env action is read off y0: ``argmax y0[:k]`` for Discrete(k), the first k components squashed
into the bounds (``tanh``) for Box(k). The reward depends on y0 only through the action, so the
gradient with respect to the density of y0 stays unbiased.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from jacrl.common.errors import ConfigError, NonFiniteError
from jacrl.nn import InvertibleMLP
from jacrl.nn.mlp import FrozenForward, ParameterKey, parameter_key

RULES = ("density", "volume")
EMBEDS = ("mlp", "pad")
VOLUME_OBJECTIVES = ("logdet", "absdet")
VOLUME_HOLDS = ("y0", "x0")


def tanh_mlp(in_dim: int, hidden: Sequence[int], out_dim: int) -> nn.Sequential:
    """An SB3-style MLP (tanh hidden layers, linear output), float32."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), nn.Tanh()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


def action_size(action_space: spaces.Discrete | spaces.Box) -> int:
    """k: the number of components of y0 that the action is read from."""
    if isinstance(action_space, spaces.Discrete):
        return int(action_space.n)
    return int(action_space.shape[0])


class Actor:
    """The policy's acting path from a snapshot of its weights: y0 = F(x0(s) + σ_x ε).

    Built once per rollout (or kept across ``predict`` calls until a parameter changes) by
    :meth:`InvertiblePolicy.actor`: σ_x = exp(log σ_x) and F's W_l = V_l⁻¹ are computed once, the
    lift runs as plain ``linear``/``tanh`` calls. No autograd, no per-call checks: the caller
    checks the pre-actions it stores. The operations are those of :meth:`InvertiblePolicy.sample`,
    in the same order, so the outputs (and the random stream) are bit-identical to it.
    """

    __slots__ = ("embed", "forward", "key", "sigma")

    def __init__(
        self,
        key: ParameterKey,
        embed: Callable[[Tensor], Tensor],
        sigma: Tensor,
        forward: FrozenForward,
    ) -> None:
        self.key, self.embed, self.sigma, self.forward = key, embed, sigma, forward

    def __call__(self, obs: Tensor, deterministic: bool = False) -> Tensor:
        """Pre-actions y0, ``(batch, n)``, for normalised observations ``(batch, obs_dim)``."""
        x0 = self.embed(obs)
        x = x0 if deterministic else x0 + self.sigma * torch.randn_like(x0)
        return self.forward(x)


def _lean_embed(policy: InvertiblePolicy) -> Callable[[Tensor], Tensor]:
    """x0(s) as plain tensor calls: a :func:`tanh_mlp` lift unrolled into ``linear``/``tanh``
    with detached weights (other lift modules are called as they are), or the zero-padding."""
    dtype, lift = policy.dtype, policy.lift
    if lift is None:
        pad = (0, policy.n - policy.obs_dim)
        return lambda obs: nn.functional.pad(obs.to(dtype), pad)
    children = list(lift.children()) if isinstance(lift, nn.Sequential) else []
    linears = [m for m in children[0::2] if isinstance(m, nn.Linear) and m.bias is not None]
    if (
        len(children) % 2 == 0
        or len(linears) != len(children[0::2])
        or not all(isinstance(m, nn.Tanh) for m in children[1::2])
    ):
        return lambda obs: lift(obs).to(dtype)
    pairs = [(m.weight.detach(), m.bias.detach()) for m in linears]
    *hidden, (last_weight, last_bias) = pairs
    linear, tanh = nn.functional.linear, torch.tanh

    def embed(obs: Tensor) -> Tensor:
        for weight, bias in hidden:
            obs = tanh(linear(obs, weight, bias))
        return linear(obs, last_weight, last_bias).to(dtype)

    return embed


class InvertiblePolicy(nn.Module):
    """Lift x0(s), noise scale σ_x, invertible network F and (optionally) a value network.

    :param obs_dim: flat observation size.
    :param action_space: Discrete(k) or a 1-D Box(k), with k <= n.
    :param n: width of F (its input and output dimension).
    :param depth: number of blocks of F; 0 is no F (a Gaussian policy on the lift).
    :param rule: ``"density"`` or ``"volume"``, see the module docstring.
    :param embed: ``"mlp"`` (learned lift x0 = g(s), tanh MLP ``lift_hidden`` -> n) or ``"pad"``
        (x0 = the normalised observation zero-padded to n, the seed's fixed embedding).
    :param parameterization: ``"inverse"`` (Yan's V = W⁻¹) or ``"lu"``, see :mod:`jacrl.nn`.
    :param activation: F's invertible activation (a name from ``jacrl.nn.ACTIVATIONS``).
    :param sigma_x: initial perceptual-noise scale.
    :param learn_sigma: learn a state-independent log σ_x per dimension (design §3b: it helped).
    :param lift_hidden: hidden sizes of the lift.
    :param value_hidden: hidden sizes of the value network, or ``None`` for no critic.
    :param max_cond: bound on cond(V_l), checked by ``net.check_conditioning``.
    :param dtype: dtype of F and the density (float64: float32 inverses lose accuracy, §3b).
    :param volume_objective: the volume rule's score: ``"logdet"`` ℓ (design §2) or ``"absdet"``
        |J| = exp ℓ (seed eqs. 7 and 11 literally: ∇|J| = |J|·∇ℓ, so each sample's step is
        weighted by its own volume).
    :param volume_hold: what the volume rule holds fixed: ``"y0"`` (the seed, ∂y0/∂V ≡ 0) or
        ``"x0"`` (the seed's x0, i.e. the noisy input x = x0(s) + σ_x ε that produced y0; the
        score is ℓ at y = F(x), −log|det J_F(x)|, and y moves with the weights).
    """

    net: InvertibleMLP
    action_bounded: Tensor
    action_low: Tensor
    action_high: Tensor

    def __init__(
        self,
        obs_dim: int,
        action_space: spaces.Discrete | spaces.Box,
        n: int,
        depth: int,
        rule: str,
        embed: str,
        parameterization: str,
        activation: str,
        sigma_x: float,
        learn_sigma: bool,
        lift_hidden: Sequence[int],
        value_hidden: Sequence[int] | None,
        max_cond: float,
        dtype: torch.dtype,
        volume_objective: str = "logdet",
        volume_hold: str = "y0",
    ) -> None:
        super().__init__()
        for name, value, accepted in (
            ("rule", rule, RULES),
            ("volume_objective", volume_objective, VOLUME_OBJECTIVES),
            ("volume_hold", volume_hold, VOLUME_HOLDS),
        ):
            if value not in accepted:
                raise ConfigError(f"{name}={value!r}: expected one of {accepted}")
        if embed not in EMBEDS:
            raise ConfigError(f"embed={embed!r}: expected one of {EMBEDS}")
        k = action_size(action_space)
        if n < k:
            raise ConfigError(f"width={n} is too small: the action is read from y0[:{k}]")
        if embed == "pad" and n < obs_dim:
            raise ConfigError(
                f"width={n} is too small for embed='pad': the observation (size {obs_dim}) is "
                "zero-padded to the width; use width >= the observation size or embed='mlp'"
            )
        if not sigma_x > 0:
            raise ConfigError(f"sigma_x={sigma_x}: the noise scale must be positive")
        self.obs_dim, self.n, self.k = obs_dim, n, k
        self.rule, self.dtype = rule, dtype
        self.volume_objective, self.volume_hold = volume_objective, volume_hold
        self.discrete = isinstance(action_space, spaces.Discrete)
        self.action_start = (
            int(action_space.start) if isinstance(action_space, spaces.Discrete) else 0
        )
        self.action_dtype = action_space.dtype
        self.lift = tanh_mlp(obs_dim, lift_hidden, n) if embed == "mlp" else None
        self.log_sigma = nn.Parameter(
            torch.full((n,), math.log(sigma_x), dtype=dtype), requires_grad=learn_sigma
        )
        self.net = InvertibleMLP(
            n, depth, parameterization, activation, dtype=dtype, max_cond=max_cond
        )
        self.value_net = None if value_hidden is None else tanh_mlp(obs_dim, value_hidden, 1)
        self._actor: Actor | None = None
        if isinstance(action_space, spaces.Box):
            # tanh squashing into finite bounds; unbounded dimensions pass through unchanged
            # (derived from the space, so not saved)
            low, high = (
                np.asarray(b, dtype=np.float64) for b in (action_space.low, action_space.high)
            )
            bounded = np.isfinite(low) & np.isfinite(high)
            self.register_buffer("action_bounded", torch.as_tensor(bounded), persistent=False)
            self.register_buffer(
                "action_low", torch.as_tensor(np.where(bounded, low, 0.0)), persistent=False
            )
            self.register_buffer(
                "action_high", torch.as_tensor(np.where(bounded, high, 0.0)), persistent=False
            )

    def embed(self, obs: Tensor) -> Tensor:
        """x0(s): the lift of the normalised observations, ``(batch, n)`` in ``dtype``."""
        if self.lift is not None:
            return self.lift(obs).to(self.dtype)
        return nn.functional.pad(obs.to(self.dtype), (0, self.n - self.obs_dim))

    def predict_values(self, obs: Tensor) -> Tensor:
        """V(s), ``(batch,)``; zeros without a critic (advantage "reward" or "baseline")."""
        if self.value_net is None:
            return obs.new_zeros(obs.shape[0])
        return self.value_net(obs).squeeze(-1)

    @property
    def needs_input(self) -> bool:
        """Whether :meth:`log_prob` needs the input x that produced y0 (``volume_hold="x0"``)."""
        return self.rule == "volume" and self.volume_hold == "x0"

    def log_prob(self, obs: Tensor, y0: Tensor, x: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(the rule's log-probability of y0, ℓ(y0)), each ``(batch,)``: one pass of F.

        density: log N(F⁻¹(y0); x0(s), σ_x² I) + ℓ(y0); volume: ℓ(y0) alone, or |J| = exp ℓ(y0)
        (``volume_objective="absdet"``). With ``volume_hold="x0"`` ℓ is taken at F(x) for the
        stored input ``x`` (a forward pass), −log|det J_F(x)|: it equals ℓ(y0) under the weights
        that acted, but y = F(x) moves with the weights.
        """
        if self.needs_input:
            if x is None:
                raise ConfigError("volume_hold='x0' needs the input x that produced y0")
            _, forward_logdet = self.net.forward_and_logdet(x)
            logabsdet = -forward_logdet
        else:
            x, logabsdet = self.net.inverse_and_logdet(y0)
        if self.rule == "volume":
            score = logabsdet.exp() if self.volume_objective == "absdet" else logabsdet
            return score, logabsdet
        x0 = self.embed(obs)
        z = (x - x0) / self.log_sigma.exp()
        gaussian = -0.5 * z**2 - self.log_sigma - 0.5 * math.log(2 * math.pi)
        return gaussian.sum(-1) + logabsdet, logabsdet

    def entropy(self, batch: int) -> Tensor:
        """Entropy of the Gaussian N(x0, σ_x² I), ``(batch,)``. The exact entropy of p(y0|s) adds
        E[log|det J_F(x)|], which would need a sample; the Gaussian part is what ``ent_coef``
        regularises (it keeps σ_x from collapsing)."""
        per_sample = self.log_sigma.sum() + 0.5 * self.n * (1.0 + math.log(2 * math.pi))
        return per_sample.expand(batch)

    def sample(self, obs: Tensor, deterministic: bool = False) -> Tensor:
        """y0 = F(x), x = x0(s) + σ_x ε (x = x0 when deterministic), ``(batch, n)``.

        Only the forward pass runs per env step (inside ``net.frozen()`` it reuses W = V⁻¹); the
        log-probabilities of a whole rollout are computed afterwards in one batch.
        """
        x0 = self.embed(obs)
        x = x0 if deterministic else x0 + self.log_sigma.exp() * torch.randn_like(x0)
        return self.net(x)

    def actor(self) -> Actor:
        """The acting snapshot (see :class:`Actor`), kept until a parameter changes: a
        version-counted write such as ``load_state_dict`` or ``.to()`` (keyed on
        :func:`parameter_key`, checked here, once per call), or :meth:`invalidate`. Raises
        SingularWeightError for ill-conditioned or non-finite F and NonFiniteError for non-finite
        lift weights or σ_x."""
        key = parameter_key(self)
        cached = self._actor
        if cached is not None and cached.key == key:
            return cached
        with torch.no_grad():
            forward = self.net.frozen_forward()
            sigma = self.log_sigma.detach().exp()
            lift = () if self.lift is None else tuple(self.lift.parameters())
            if not all(bool(torch.isfinite(t).all()) for t in (sigma, *lift)):
                raise NonFiniteError(
                    "the lift's weights or σ_x are not finite; lower the learning rate"
                )
        actor = Actor(key, _lean_embed(self), sigma, forward)
        self._actor = actor
        return actor

    def invalidate(self) -> None:
        """Drop the acting snapshots (needed after writes that bypass version counters:
        ``p.data[...] = ...``, fused optimizer steps — JacobianAgent.train calls it)."""
        self._actor = None
        self.net.invalidate()

    def evaluate_actions(
        self, obs: Tensor, y0: Tensor, x: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(values, log_prob, entropy) of stored pre-actions ``y0`` (and inputs ``x``, needed by
        ``volume_hold="x0"`` only) under the current weights, SB3's ``evaluate_actions`` with y0 in
        place of the env action."""
        log_prob, _ = self.log_prob(obs, y0, x)
        return self.predict_values(obs), log_prob, self.entropy(obs.shape[0])

    def to_env_actions(self, y0: Tensor) -> np.ndarray:
        """Env actions from pre-actions: argmax of the first k components (Discrete) or the first
        k components tanh-squashed into the Box bounds."""
        head = y0[:, : self.k]
        if self.discrete:
            return head.argmax(dim=-1).cpu().numpy() + self.action_start
        low, high = self.action_low, self.action_high
        squashed = low + (torch.tanh(head) + 1.0) * 0.5 * (high - low)
        actions = torch.where(self.action_bounded, squashed, head).cpu().numpy()
        return actions.astype(self.action_dtype)

"""The invertible-network policy shared by the Jacobian learners (docs/method.md §3).

The network sees the state through perceptual noise: x = x0(s) + σ_x ε, ε ~ N(0, I), and emits the
continuous pre-action y0 = F(x). Because F is invertible, y0 has the exact density

    log p(y0 | s) = log N(F⁻¹(y0); x0(s), σ_x² I) + ℓ(y0),   ℓ(y0) = log|det J_{F⁻¹}(y0)|,

which the two on-policy rules use (docs/method.md §4):

- ``rule="density"``: the log-probability is the whole expression (REINFORCE/PPO on this policy);
- ``rule="volume"`` (the seed, eq. 7 as a log): the "log-probability" is ℓ(y0) alone, y0 held fixed
  (∂y0/∂V ≡ 0). It ignores the Gaussian term, so the lift and σ_x get no gradient from it.
  Variants (docs/volume_rule.md): ``volume_objective="absdet"`` scores |J| = exp ℓ itself, whose
  gradient is seed eq. 11, |J|·∇ℓ; ``volume_hold="x0"`` holds the input x that produced y0 fixed
  instead of y0 and scores ℓ(F(x)) = −log|det J_F(x)|.

The env action is read off y0: ``argmax y0[:k]`` for Discrete(k), the first k components squashed
into the Box by :class:`~jacrl.policies.squash.BoxSquash` for Box(k) (tanh into finite bounds,
softplus onto a half-line, identity where unbounded). The reward depends on y0 only through the
action, so the gradient with respect to the density of y0 stays unbiased.

Two options shape the density per state (docs/method.md §7): ``conditioning="state"`` replaces F
by F_s, whose blocks get a shift and a log-scale from a conditioner network of the observation
(:mod:`jacrl.nn.conditioner`; F_s == F at initialisation), and ``state_dependent_sigma=True`` lets
the lift emit log σ(s) next to x0(s). For an off-policy, reparameterised learner with a Box action
space and n == k, :meth:`~InvertiblePolicy.rsample`, :meth:`~InvertiblePolicy.action_log_prob` and
:meth:`~InvertiblePolicy.mean_actions` work in env units: a = squash(F_s(x0(s) + σ(s) ε)) and

    log π(a|s) = log N(x; x0(s), σ(s)²) − log|det J_{F_s}(x)| − log|det squash′(y)|.

Acting runs from one snapshot of the weights (:meth:`InvertiblePolicy.actor`), rebuilt when the
policy's :attr:`~InvertiblePolicy.generation` changes. Every write of the weights bumps the
generation: an optimizer step (once the optimizer is attached with
:meth:`~InvertiblePolicy.attach_optimizer`), ``load_state_dict``, ``.to()`` and the other
``nn.Module`` conversions, and :meth:`~InvertiblePolicy.recondition`. A write the policy cannot see
(``p.data[...] = ...``, an optimizer that was not attached, a call on a submodule such as
``policy.net.load_state_dict``) must be followed by :meth:`~InvertiblePolicy.bump_generation`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal, get_args

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from jacrl.common.errors import ConfigError, NonFiniteError, check_choice
from jacrl.nn import InputShapeError, InvertibleMLP, SingularWeightError
from jacrl.nn.activations import ActivationName
from jacrl.nn.conditioner import Condition, StateConditioner
from jacrl.nn.mlp import FrozenForward, Parameterization
from jacrl.nn.validation import all_finite, check_batch
from jacrl.policies.squash import BoxSquash

#: What the on-policy rules score, see the module docstring.
Rule = Literal["density", "volume"]
#: How the observation becomes the input x0(s) of F: a learned tanh MLP or zero-padding.
Embed = Literal["mlp", "pad"]
#: The volume rule's score: ℓ itself or |J| = exp ℓ.
VolumeObjective = Literal["logdet", "absdet"]
#: What the volume rule holds fixed: the pre-action y0 or the input x that produced it.
VolumeHold = Literal["y0", "x0"]
#: The dtype of F and the density.
DType = Literal["float64", "float32"]
#: What :meth:`InvertiblePolicy.enforce_conditioning` does with a layer past ``max_cond``.
IllConditioned = Literal["repair", "raise"]
#: Whether F is one map for every state (``"none"``) or the state-conditioned F_s.
Conditioning = Literal["none", "state"]

RULES: tuple[Rule, ...] = get_args(Rule)
EMBEDS: tuple[Embed, ...] = get_args(Embed)
VOLUME_OBJECTIVES: tuple[VolumeObjective, ...] = get_args(VolumeObjective)
VOLUME_HOLDS: tuple[VolumeHold, ...] = get_args(VolumeHold)
ILL_CONDITIONED: tuple[IllConditioned, ...] = get_args(IllConditioned)
CONDITIONINGS: tuple[Conditioning, ...] = get_args(Conditioning)
#: The range of a state-dependent log σ(s), SB3 SAC's actor's: it keeps σ from collapsing to 0
#: (an infinite log-density) or exploding.
LOG_SIGMA_RANGE = (-20.0, 2.0)
DTYPES: dict[DType, torch.dtype] = {name: getattr(torch, name) for name in get_args(DType)}


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


def _torch_dtype(dtype: DType | torch.dtype) -> torch.dtype:
    """The torch dtype for a :data:`DType` name (or a torch dtype among them)."""
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ConfigError(f"dtype={dtype}: expected one of {tuple(DTYPES.values())}")
        return dtype
    check_choice("dtype", dtype, tuple(DTYPES))
    return DTYPES[dtype]


class Actor:
    """The policy's acting path from a snapshot of its weights: y0 = F_s(x0(s) + σ(s) ε).

    Built by :meth:`InvertiblePolicy.actor` once per weight :attr:`~InvertiblePolicy.generation`:
    σ = exp(log σ) and F's W_l = V_l⁻¹ are computed once, the lift and the conditioner run as
    plain ``linear``/``tanh`` calls on copies of their weights. No autograd, no per-call checks:
    the caller checks the pre-actions it stores. The operations are those of
    :meth:`InvertiblePolicy.sample` with F's forward pass x Wᵀ_l + b_l from the explicit W_l, in
    the same order and on the same random stream.
    """

    __slots__ = ("condition", "forward", "gaussian", "generation")

    def __init__(
        self,
        generation: int,
        gaussian: Callable[[Tensor], tuple[Tensor, Tensor]],
        condition: Callable[[Tensor], Condition] | None,
        forward: FrozenForward,
    ) -> None:
        self.generation, self.gaussian, self.condition = generation, gaussian, condition
        self.forward = forward

    def __call__(
        self, obs: Tensor, deterministic: bool = False, noise: Tensor | None = None
    ) -> Tensor:
        """Pre-actions y0, ``(batch, n)``, for normalised observations ``(batch, obs_dim)``.

        :param noise: the latent ε ``(batch, n)`` to use instead of a fresh draw (exploration
            noise held over several steps, as JacobianSAC's ``use_sde``).
        """
        x0, sigma = self.gaussian(obs)
        if not deterministic:
            x0 = x0 + sigma * (torch.randn_like(x0) if noise is None else noise)
        return self.forward(x0, None if self.condition is None else self.condition(obs))


def _lean_tanh_mlp(module: nn.Module) -> Callable[[Tensor], Tensor]:
    """``module`` as plain tensor calls: a :func:`tanh_mlp` (Linear, Tanh, …, Linear) unrolled
    into ``linear``/``tanh`` with copies of its weights, so the snapshot is one of the whole
    policy; any other module is called as it is."""
    children = list(module.children()) if isinstance(module, nn.Sequential) else []
    linears = [m for m in children[0::2] if isinstance(m, nn.Linear) and m.bias is not None]
    if (
        len(children) % 2 == 0
        or len(linears) != len(children[0::2])
        or not all(isinstance(m, nn.Tanh) for m in children[1::2])
    ):
        return module
    pairs = [(m.weight.detach().clone(), m.bias.detach().clone()) for m in linears]
    *hidden, (last_weight, last_bias) = pairs
    linear, tanh = nn.functional.linear, torch.tanh

    def run(obs: Tensor) -> Tensor:
        for weight, bias in hidden:
            obs = tanh(linear(obs, weight, bias))
        return linear(obs, last_weight, last_bias)

    return run


def _state_log_sigma(offset: Tensor, head: Tensor) -> Tensor:
    """log σ(s) = clamp(log σ + head(s)) into :data:`LOG_SIGMA_RANGE`."""
    return (offset + head).clamp(*LOG_SIGMA_RANGE)


def _gaussian_log_prob(z: Tensor, log_sigma: Tensor) -> Tensor:
    """Σ_i log N(x_i; x0_i, σ_i²) for standardised z = (x − x0)/σ, ``(batch,)``."""
    return (-0.5 * z**2 - log_sigma - 0.5 * math.log(2 * math.pi)).sum(-1)


def _bump_after_load(policy: nn.Module, incompatible_keys: Any) -> None:
    """``load_state_dict`` post-hook: the weights were (possibly partly) overwritten."""
    assert isinstance(policy, InvertiblePolicy)
    policy.bump_generation()


class InvertiblePolicy(nn.Module):
    """Lift x0(s), noise scale σ_x, invertible network F and (optionally) a value network.

    What a learner uses: :meth:`actor` and :meth:`to_env_actions` to act; :meth:`score_rollout`,
    :meth:`evaluate_actions`, :meth:`predict_values` and :attr:`has_critic` to score what it
    collected; :meth:`attach_optimizer` so its steps refresh the acting snapshot;
    :meth:`enforce_conditioning` after each update (and :meth:`check_conditioning` to name the
    cause of a non-finite batch).

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
    :param learn_sigma: learn a state-independent log σ_x per dimension.
    :param lift_hidden: hidden sizes of the lift.
    :param value_hidden: hidden sizes of the value network, or ``None`` for no critic.
    :param max_cond: bound on cond(V_l), enforced by :meth:`enforce_conditioning` and checked
        before acting on new weights.
    :param dtype: dtype of F and the density, ``"float64"`` or ``"float32"`` (or the torch
        dtype); float32 inverses lose accuracy as cond(V) grows (docs/method.md §6).
    :param volume_objective: the volume rule's score: ``"logdet"`` ℓ (docs/method.md §2) or
        ``"absdet"`` |J| = exp ℓ (seed eqs. 7 and 11 literally: ∇|J| = |J|·∇ℓ, so each sample's
        step is weighted by its own volume).
    :param volume_hold: what the volume rule holds fixed: ``"y0"`` (the seed, ∂y0/∂V ≡ 0) or
        ``"x0"`` (the seed's x0, i.e. the noisy input x = x0(s) + σ_x ε that produced y0; the
        score is ℓ at y = F(x), −log|det J_F(x)|, and y moves with the weights).
    :param conditioning: ``"none"`` (one F for every state) or ``"state"`` (F_s: per-state shifts
        and log-scales of F's blocks from a :class:`~jacrl.nn.conditioner.StateConditioner`,
        zero at initialisation; needs ``depth`` >= 1). Every pass of F — acting, scoring,
        :meth:`rsample` — uses F_s.
    :param state_dependent_sigma: ``False`` (a state-independent log σ_x per dimension) or
        ``True``: the lift also outputs a log σ head, log σ(s) = clamp(log σ_x + head(s)) in
        :data:`LOG_SIGMA_RANGE` (the head starts at zero, so σ(s) = σ_x at initialisation;
        needs ``embed="mlp"``).
    :param conditioner_hidden: hidden sizes of the conditioner (``conditioning="state"``).
    """

    net: InvertibleMLP
    squash: BoxSquash | None
    conditioner: StateConditioner | None

    def __init__(
        self,
        obs_dim: int,
        action_space: spaces.Discrete | spaces.Box,
        n: int,
        depth: int,
        rule: Rule,
        embed: Embed,
        parameterization: Parameterization,
        activation: ActivationName,
        sigma_x: float,
        learn_sigma: bool,
        lift_hidden: Sequence[int],
        value_hidden: Sequence[int] | None,
        max_cond: float,
        dtype: DType | torch.dtype,
        volume_objective: VolumeObjective = "logdet",
        volume_hold: VolumeHold = "y0",
        conditioning: Conditioning = "none",
        state_dependent_sigma: bool = False,
        conditioner_hidden: Sequence[int] = (64,),
    ) -> None:
        super().__init__()
        check_choice("rule", rule, RULES)
        check_choice("volume_objective", volume_objective, VOLUME_OBJECTIVES)
        check_choice("volume_hold", volume_hold, VOLUME_HOLDS)
        check_choice("embed", embed, EMBEDS)
        check_choice("conditioning", conditioning, CONDITIONINGS)
        if conditioning == "state" and depth < 1:
            raise ConfigError(
                "conditioning='state' needs depth >= 1: a depth-0 F has no blocks to condition"
            )
        if state_dependent_sigma and embed != "mlp":
            raise ConfigError(
                "state_dependent_sigma=True needs embed='mlp': the lift emits log σ(s), and "
                "embed='pad' has no lift"
            )
        torch_dtype = _torch_dtype(dtype)
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
        self.rule = rule
        self.volume_objective, self.volume_hold = volume_objective, volume_hold
        self.action_start = (
            int(action_space.start) if isinstance(action_space, spaces.Discrete) else 0
        )
        self.action_dtype = action_space.dtype
        self.conditioning, self.state_dependent_sigma = conditioning, state_dependent_sigma
        self.lift = None
        if embed == "mlp":
            self.lift = tanh_mlp(obs_dim, lift_hidden, 2 * n if state_dependent_sigma else n)
            head = self.lift[-1]
            assert isinstance(head, nn.Linear)
            if state_dependent_sigma:
                with torch.no_grad():  # the log σ head starts at 0: σ(s) = σ_x
                    head.weight[n:].zero_()
                    head.bias[n:].zero_()
        self.log_sigma = nn.Parameter(
            torch.full((n,), math.log(sigma_x), dtype=torch_dtype), requires_grad=learn_sigma
        )
        self.net = InvertibleMLP(
            n, depth, parameterization, activation, dtype=torch_dtype, max_cond=max_cond
        )
        self.conditioner = (
            StateConditioner(obs_dim, depth, n, conditioner_hidden, dtype=torch_dtype)
            if conditioning == "state"
            else None
        )
        self.value_net = None if value_hidden is None else tanh_mlp(obs_dim, value_hidden, 1)
        # the squash's bounds are derived from the space, so they are not saved
        self.squash = (
            BoxSquash.from_space(action_space, torch_dtype)
            if isinstance(action_space, spaces.Box)
            else None
        )
        self._generation = 0
        self._actor: Actor | None = None
        #: the generation whose weights :meth:`check_conditioning` last passed
        self._conditioning_checked: int | None = None
        self.register_load_state_dict_post_hook(_bump_after_load)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of F and the density (that of the parameters: it follows ``.to(dtype)``)."""
        return self.log_sigma.dtype

    # The weight generation ------------------------------------------------------------------
    @property
    def generation(self) -> int:
        """A counter of the writes of the weights; the acting snapshot and the conditioning
        check are kept for one generation. See the module docstring for what bumps it."""
        return self._generation

    def bump_generation(self) -> None:
        """Record that the weights changed. Called by the attached optimizers' steps,
        ``load_state_dict``, ``.to()`` and :meth:`recondition`; call it after any other write
        (``p.data[...] = ...``, an optimizer that is not attached, a call on a submodule)."""
        self._generation += 1

    def attach_optimizer(self, optimizer: torch.optim.Optimizer) -> RemovableHandle:
        """Make every ``optimizer.step()`` bump :attr:`generation` (a step post-hook), so the
        next :meth:`actor` acts on the new weights. Needed for every optimizer of these weights,
        fused ones included (they write without touching tensor version counters).

        :return: the hook's handle (``handle.remove()`` detaches the optimizer).
        :raises ConfigError: if the optimizer updates none of the policy's parameters.
        """
        own = {id(p) for p in self.parameters()}
        if not any(id(p) in own for group in optimizer.param_groups for p in group["params"]):
            raise ConfigError(
                "attach_optimizer: the optimizer updates none of the policy's weights"
            )
        return optimizer.register_step_post_hook(self._bump_after_step)

    def _bump_after_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.bump_generation()

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> InvertiblePolicy:
        # .to(), .double(), .cuda(), ... all end here: new values (or new tensors) for the weights
        applied = super()._apply(fn, recurse)
        self.bump_generation()
        return applied

    # Acting ---------------------------------------------------------------------------------
    def embed(self, obs: Tensor) -> Tensor:
        """x0(s): the lift of the normalised observations, ``(batch, n)`` in ``dtype``."""
        if self.lift is not None:
            out = self.lift(obs).to(self.dtype)
            # the log σ(s) head is dropped; without one the slice would be an identity op (and
            # an autograd node) on every pass
            return out[:, : self.n] if self.state_dependent_sigma else out
        return nn.functional.pad(obs.to(self.dtype), (0, self.n - self.obs_dim))

    def gaussian_params(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """(x0(s), log σ) of the Gaussian input x ~ N(x0(s), σ²): log σ is the state-independent
        ``(n,)`` parameter, or ``(batch, n)`` with ``state_dependent_sigma``."""
        if not self.state_dependent_sigma:
            return self.embed(obs), self.log_sigma
        assert self.lift is not None
        out = self.lift(obs).to(self.dtype)
        return out[:, : self.n], _state_log_sigma(self.log_sigma, out[:, self.n :])

    def condition(self, obs: Tensor) -> Condition | None:
        """F_s's (shift, log_scale) for the observations, or ``None`` (``conditioning="none"``)."""
        return None if self.conditioner is None else self.conditioner(obs)

    def sample(self, obs: Tensor, deterministic: bool = False) -> Tensor:
        """y0 = F_s(x), x = x0(s) + σ ε (x = x0 when deterministic), ``(batch, n)``: the
        differentiable, uncached definition of what :meth:`actor` computes from its snapshot."""
        x0, log_sigma = self.gaussian_params(obs)
        x = x0 if deterministic else x0 + log_sigma.exp() * torch.randn_like(x0)
        return self.net(x, self.condition(obs))

    def actor(self) -> Actor:
        """The acting snapshot (see :class:`Actor`) of the current :attr:`generation`, built on
        the first call of each generation: one inverse per layer, and the conditioning check
        unless :meth:`check_conditioning` already passed this generation. Raises
        SingularWeightError for ill-conditioned or non-finite F and NonFiniteError for non-finite
        lift or conditioner weights or σ_x."""
        generation = self._generation
        cached = self._actor
        if cached is not None and cached.generation == generation:
            return cached
        if self._conditioning_checked != generation:
            self.check_conditioning()
        with torch.no_grad():
            forward = self.net.frozen_forward()
            others = [self.log_sigma]
            for module in (self.lift, self.conditioner):
                others += [] if module is None else list(module.parameters())
            if not all_finite(others):
                raise NonFiniteError(
                    "the lift's or the conditioner's weights or σ_x are not finite; lower the "
                    "learning rate"
                )
            actor = Actor(generation, self._lean_gaussian(), self._lean_condition(), forward)
        self._actor = actor
        return actor

    def _lean_gaussian(self) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
        """obs ↦ (x0(s), σ(s)) from copies of the current weights: :meth:`gaussian_params` for
        the snapshot, with σ = exp(log σ) computed once when it does not depend on the state."""
        dtype, n = self.dtype, self.n
        log_sigma = self.log_sigma.detach().clone()
        sigma = log_sigma.exp()
        if self.lift is None:
            pad = (0, n - self.obs_dim)
            return lambda obs: (nn.functional.pad(obs.to(dtype), pad), sigma)
        lift = _lean_tanh_mlp(self.lift)
        if not self.state_dependent_sigma:
            return lambda obs: (lift(obs).to(dtype), sigma)

        def gaussian(obs: Tensor) -> tuple[Tensor, Tensor]:
            out = lift(obs).to(dtype)
            return out[:, :n], _state_log_sigma(log_sigma, out[:, n:]).exp()

        return gaussian

    def _lean_condition(self) -> Callable[[Tensor], Condition] | None:
        """obs ↦ F_s's condition from copies of the conditioner's weights (``None`` without)."""
        conditioner = self.conditioner
        if conditioner is None:
            return None
        dtype, run = self.dtype, _lean_tanh_mlp(conditioner.net)
        return lambda obs: conditioner.to_condition(run(obs.to(dtype)))

    def to_env_actions(self, y0: Tensor) -> np.ndarray:
        """Env actions from pre-actions, always inside the action space: argmax of the first k
        components (Discrete) or the first k components squashed into the Box
        (:class:`~jacrl.policies.squash.BoxSquash`)."""
        head = y0[:, : self.k]
        if self.squash is None:
            return head.argmax(dim=-1).cpu().numpy() + self.action_start
        actions, _ = self.squash(head)
        return actions.cpu().numpy().astype(self.action_dtype)

    # Scoring --------------------------------------------------------------------------------
    @property
    def needs_input(self) -> bool:
        """Whether :meth:`log_prob` needs the input x that produced y0 (``volume_hold="x0"``),
        i.e. whether :meth:`score_rollout` returns it for the learner to store."""
        return self.rule == "volume" and self.volume_hold == "x0"

    @property
    def has_critic(self) -> bool:
        """Whether there is a value network (else :meth:`predict_values` is zero)."""
        return self.value_net is not None

    def predict_values(self, obs: Tensor) -> Tensor:
        """V(s), ``(batch,)``; zeros without a critic (advantage "reward" or "baseline")."""
        if self.value_net is None:
            return obs.new_zeros(obs.shape[0])
        return self.value_net(obs).squeeze(-1)

    def log_prob(self, obs: Tensor, y0: Tensor, x: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(the rule's log-probability of y0, ℓ(y0)), each ``(batch,)``: one pass of F.

        density: log N(F⁻¹(y0); x0(s), σ_x² I) + ℓ(y0); volume: ℓ(y0) alone, or |J| = exp ℓ(y0)
        (``volume_objective="absdet"``). With ``volume_hold="x0"`` ℓ is taken at F(x) for the
        stored input ``x`` (a forward pass), −log|det J_F(x)|: it equals ℓ(y0) under the weights
        that acted, but y = F(x) moves with the weights.
        """
        condition = self.condition(obs)
        if self.needs_input:
            if x is None:
                raise ConfigError("volume_hold='x0' needs the input x that produced y0")
            _, forward_logdet = self.net.forward_and_logdet(x, condition)
            logabsdet = -forward_logdet
        else:
            x, logabsdet = self.net.inverse_and_logdet(y0, condition)
        if self.rule == "volume":
            score = logabsdet.exp() if self.volume_objective == "absdet" else logabsdet
            return score, logabsdet
        x0, log_sigma = self.gaussian_params(obs)
        return _gaussian_log_prob((x - x0) / log_sigma.exp(), log_sigma) + logabsdet, logabsdet

    @torch.no_grad()
    def score_rollout(self, obs: Tensor, y0: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """(log-probability, ℓ(y0), x) of pre-actions just collected, under the weights that
        acted, without gradient: what an on-policy learner stores as the "old" log-probability.
        ``x`` = F⁻¹(y0) is returned for ``volume_hold="x0"`` only (:attr:`needs_input`): the
        learner stores it and passes it back to :meth:`evaluate_actions`; otherwise ``None``."""
        x = self.net.inverse(y0, self.condition(obs)) if self.needs_input else None
        log_prob, logabsdet = self.log_prob(obs, y0, x)
        return log_prob, logabsdet, x

    def entropy(self, obs: Tensor) -> Tensor:
        """Entropy of the Gaussian N(x0, σ² I), ``(batch,)`` for observations ``(batch,
        obs_dim)`` (they matter only with ``state_dependent_sigma``). The exact entropy of
        p(y0|s) adds E[log|det J_F(x)|], which would need a sample; the Gaussian part is what
        ``ent_coef`` regularises (it keeps σ from collapsing)."""
        constant = 0.5 * self.n * (1.0 + math.log(2 * math.pi))
        if self.state_dependent_sigma:
            return self.gaussian_params(obs)[1].sum(-1) + constant
        return (self.log_sigma.sum() + constant).expand(obs.shape[0])

    def evaluate_actions(
        self, obs: Tensor, y0: Tensor, x: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(values, log_prob, entropy) of stored pre-actions ``y0`` (and inputs ``x``, needed by
        ``volume_hold="x0"`` only) under the current weights, SB3's ``evaluate_actions`` with y0 in
        place of the env action."""
        log_prob, _ = self.log_prob(obs, y0, x)
        return self.predict_values(obs), log_prob, self.entropy(obs)

    # Reparameterised sampling (off-policy learners; Box actions, n == k) --------------------
    def _box_squash(self, verb: str) -> BoxSquash:
        """The squash, after checking that ``verb`` applies: a density of the k-dim env action
        needs a Box and n == k (with n > k it would be a marginal of the n-dim density)."""
        if self.squash is None or self.n != self.k:
            raise ConfigError(
                f"{verb} needs a Box action space and width n == the action size k (got "
                f"{'a Discrete space' if self.squash is None else f'n={self.n}, k={self.k}'}): "
                "log π(a|s) is a density of the k-dim action"
            )
        return self.squash

    def rsample(self, obs: Tensor, noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(actions ``(batch, k)`` in env units, log π(a|s) ``(batch,)``) by the
        reparameterisation trick, differentiable in the weights: x = x0(s) + σ(s) ε,
        y = F_s(x), a = squash(y), and

            log π(a|s) = log N(x; x0(s), σ(s)²) − log|det J_{F_s}(x)| − log|det squash′(y)|.

        :param noise: ε ``(batch, n)``; default a fresh standard-normal draw (common random
            numbers, or a Jacobian of the sampling map, pass their own).
        """
        squash = self._box_squash("rsample")
        x0, log_sigma = self.gaussian_params(obs)
        if noise is None:
            noise = torch.randn_like(x0)
        elif check_batch(noise, self.n, self.dtype, "noise").shape[0] != x0.shape[0]:
            raise InputShapeError(f"noise has {noise.shape[0]} rows for {x0.shape[0]} observations")
        y, forward_logdet = self.net.forward_and_logdet(
            x0 + log_sigma.exp() * noise, self.condition(obs)
        )
        actions, squash_logdet = squash(y)
        return actions, _gaussian_log_prob(noise, log_sigma) - forward_logdet - squash_logdet

    def action_log_prob(self, obs: Tensor, actions: Tensor) -> Tensor:
        """log π(a|s), ``(batch,)``, of given env actions ``(batch, k)``, differentiable in the
        weights: y = squash⁻¹(a), x = F_s⁻¹(y) with ℓ = log|det J_{F_s⁻¹}(y)|, and
        log π = log N(x; x0(s), σ(s)²) + ℓ + log|det (squash⁻¹)′(a)|. Raises
        :class:`~jacrl.policies.squash.OutsideBoxError` for actions not strictly inside the Box
        (the density is 0 there)."""
        squash = self._box_squash("action_log_prob")
        y, squash_logdet = squash.inverse(actions.to(self.dtype))
        x, logabsdet = self.net.inverse_and_logdet(y, self.condition(obs))
        x0, log_sigma = self.gaussian_params(obs)
        gaussian = _gaussian_log_prob((x - x0) / log_sigma.exp(), log_sigma)
        return gaussian + logabsdet + squash_logdet

    def mean_actions(self, obs: Tensor) -> Tensor:
        """The deterministic action squash(F_s(x0(s))), ``(batch, k)`` in env units
        (differentiable in the weights)."""
        squash = self._box_squash("mean_actions")
        x0, _ = self.gaussian_params(obs)
        return squash(self.net(x0, self.condition(obs)))[0]

    # Conditioning ---------------------------------------------------------------------------
    def check_conditioning(self) -> Tensor:
        """cond(V_l) of every layer, ``(depth,)`` (one SVD each); raises SingularWeightError
        naming a layer past ``max_cond`` or with non-finite weights. A pass is remembered for
        the current :attr:`generation`, so :meth:`actor` does not repeat it."""
        conds = self.net.check_conditioning()
        self._conditioning_checked = self._generation
        return conds

    def recondition(self) -> list[int]:
        """Project every layer past ``max_cond`` back to cond = ``max_cond`` / 2
        (:meth:`jacrl.nn.InvertibleMLP.recondition`); bumps :attr:`generation` if it changed
        any. Returns the indices of the layers it changed."""
        repaired = self.net.recondition()
        if repaired:
            self.bump_generation()
        return repaired

    def enforce_conditioning(self, ill_conditioned: IllConditioned) -> tuple[Tensor, list[int]]:
        """Keep every cond(V_l) <= ``max_cond`` after an update: (condition numbers, repaired
        layers). With ``"repair"`` a layer past the bound is projected back (:meth:`recondition`);
        with ``"raise"``, or for non-finite weights (which no projection repairs), it raises
        SingularWeightError naming the layer. One SVD per layer when nothing needs repair."""
        check_choice("ill_conditioned", ill_conditioned, ILL_CONDITIONED)
        try:
            return self.check_conditioning(), []
        except SingularWeightError:
            if ill_conditioned == "raise":
                raise
            repaired = self.recondition()
            if not repaired:
                raise
        return self.check_conditioning(), repaired

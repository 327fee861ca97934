"""JacobianSAC: soft actor-critic on the invertible policy (docs/method.md §7).

The actor is the same :class:`~jacrl.policies.invertible.InvertiblePolicy` the on-policy
JacobianAgent trains: a = squash(F_s(x)), x = x0(s) + σ(s) ε, with the exact log π(a|s) (Gaussian
term, log-det of F_s from one pass, squash correction). Everything around it is SB3's SAC: twin
Q-critics with Polyak-averaged targets, a replay buffer, the automatic entropy coefficient, SB3's
hyperparameter names, defaults and ``train/*`` keys. Two things are specific to the invertible
policy:

- **The entropy is that of the env action.** log π(a|s) is a density of the k numbers the env
  receives only when F is square in them: the width must equal the action size (n == k). A wider
  F would have n − k coordinates the action ignores, whose entropy the max-entropy objective
  would reward although they change nothing, so wider F is refused.
- **A mass-covering actor update** (``actor_objective="forward_kl"``, docs/method.md §7). SAC's
  actor loss E_{a~π}[α log π(a|s) − Q(s, a)] is, up to a constant, α·KL(π ‖ π*) to the
  Boltzmann target π*(a|s) ∝ exp(Q(s, a)/α): a reverse KL, which is mode-seeking — where π puts
  no mass it pays nothing, so a policy able to represent several modes is still free to settle
  on one. The forward KL(π* ‖ π) is mass-covering (π pays log π → −∞ wherever π* has mass) and
  is minimised by maximising E_{π*}[log π(a|s)], here estimated by self-normalised importance
  sampling with proposals a_j uniform on the action box:
  loss = −Σ_j w_j log π(a_j|s), w = softmax_j(Q(s, a_j)/α − log q(a_j)), log q constant, or
  (``forward_kl_estimator="resampled"``) −log π(a_J|s) of one a_J drawn with probabilities w,
  which never scores the proposals π* gives no weight (near the bounds an untrained F's log π
  can be −10²⁵). It needs the exact log-density of *given* actions, which the invertible policy has
  (``policy.action_log_prob``: one inverse pass and the log-det sum). With it ``ent_coef`` is the
  temperature α of π*, not the weight of an entropy bonus; ``ent_coef="auto"`` still tunes it so
  that the policy's entropy E[−log π] tracks ``target_entropy``. The uniform proposal suits small
  action spaces: its hit rate on a peak of π* falls exponentially with the action dimension.

**Exploration held over steps** (``use_sde``). SB3's gSDE makes the exploration noise a function
of the state, θ·features(s) with θ redrawn every ``sde_sample_freq`` steps, so a rollout pushes
the same way for a stretch where noise drawn afresh every step averages out (MountainCar-
Continuous needs a push sustained over tens of steps to climb out of the valley). The invertible
policy has that without new parameters: hold its latent ε fixed, and a = squash(F_s(x0(s) +
σ(s) ε)) is a deterministic function of the state until ε is redrawn. Only the collection
changes: the updates score actions with the per-step density, which is the marginal of the held
noise too (SB3's SAC with gSDE trains the gSDE distribution instead, whose scale depends on the
features).

Observations are stored in the replay buffer normalised, as ``BaseAgent._step_env`` returns them
(the on-policy agent stores them the same way). With ``normalize_obs=True`` each transition keeps
the statistics of its collection time, unlike SB3 with ``VecNormalize`` (raw storage, normalised
at sampling); the default is ``normalize_obs=False``, SB3 SAC's (no normalisation), which is what
the zoo's SAC presets for Pendulum and MountainCarContinuous use.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv
from torch import Tensor
from torch.nn import functional

from jacrl.agents.base import BaseAgent, NonFinite
from jacrl.agents.conditioning import count_reconditions
from jacrl.agents.registry import AGENTS
from jacrl.agents.sac.buffer import ReplayBuffer
from jacrl.agents.sac.critic import ContinuousCritic, frozen
from jacrl.common.checkpoint import optimizer_state, restore_optimizer
from jacrl.common.errors import (
    ConfigError,
    JacrlError,
    NonFiniteError,
    UnsupportedSpaceError,
    check_choice,
)
from jacrl.common.schedules import ScheduleLike, as_schedule
from jacrl.common.validation import (
    check_env_first,
    entropy_coefficient,
    entropy_target,
    merge_policy_kwargs,
    non_negative_int,
    number,
    positive_int,
    schedule,
    unit_interval,
    whole_number,
)
from jacrl.nn.activations import ActivationName
from jacrl.nn.mlp import Parameterization
from jacrl.policies.invertible import (
    ILL_CONDITIONED,
    Conditioning,
    DType,
    IllConditioned,
    InvertiblePolicy,
)
from jacrl.policies.settings import check_policy_settings

#: The actor's update: SAC's reparameterised reverse KL, or the mass-covering forward KL.
ActorObjective = Literal["reverse_kl", "forward_kl"]
ACTOR_OBJECTIVES: tuple[ActorObjective, ...] = get_args(ActorObjective)
#: How the forward-KL loss uses its weighted proposals: all of them, or one drawn by weight.
ForwardKLEstimator = Literal["weighted", "resampled"]
FORWARD_KL_ESTIMATORS: tuple[ForwardKLEstimator, ...] = get_args(ForwardKLEstimator)
#: The settings ``policy_kwargs`` may hold (SB3's SAC takes ``net_arch`` there too).
POLICY_SETTINGS = (
    "net_arch",
    "width",
    "depth",
    "parameterization",
    "activation",
    "conditioning",
    "conditioner_hidden",
    "state_dependent_sigma",
    "sigma_x",
    "lift_hidden",
    "max_cond",
    "dtype",
)
#: default fraction of each side of the action box the forward-KL proposal leaves out: the exact
#: log π of an action on the boundary is -inf (the squash reaches it only at |y| = inf)
PROPOSAL_MARGIN = 1e-6
#: gradient steps between two records of jacobian/logdet_mean and jacobian/sigma
DIAGNOSTICS_EVERY = 100


class JacobianSAC(BaseAgent):
    """Soft actor-critic whose actor is the invertible policy; Box action spaces only.

    Hyperparameter names and defaults are SB3's SAC where they mean the same thing.

    :param env: see :class:`~jacrl.agents.base.BaseAgent`; its action space must be a 1-D Box.
    :param learning_rate: Adam step size of actor, critics and entropy coefficient (number,
        ``"lin_<x>"`` or a ``LinearSchedule``).
    :param buffer_size: replay buffer size (transitions, over all envs); at least ``batch_size``.
    :param learning_starts: env steps of uniformly random actions before the first update.
    :param batch_size: minibatch size of each gradient step.
    :param tau: Polyak coefficient of the target critics, in (0, 1].
    :param gamma: discount factor.
    :param train_freq: vectorised env steps between two updates.
    :param gradient_steps: gradient steps per update; -1: as many as transitions collected.
    :param ent_coef: α, the weight of the entropy (reverse KL) or the temperature of
        π* ∝ exp(Q/α) (forward KL): a number, or ``"auto"`` / ``"auto_<x>"`` to learn it (from 1
        or x) so that E[−log π] tracks ``target_entropy`` (Haarnoja et al. 2018b, as SB3).
    :param target_update_interval: gradient steps between two target updates (counted over the
        whole run; SB3 counts within each ``train`` call).
    :param target_entropy: the entropy ``ent_coef="auto"`` aims at: ``"auto"`` is −dim(A).
    :param use_sde: explore with the latent noise ε held fixed between resamples instead of drawn
        afresh every step: the rollout's actions are then a deterministic function of the state,
        squash(F_s(x0(s) + σ(s) ε)), for a stretch of steps — SB3's generalised state-dependent
        exploration (gSDE) in the invertible policy's own terms (see the module docstring).
    :param sde_sample_freq: with ``use_sde``, redraw ε every this many steps; -1 (SB3's default):
        only at the start of each collection of ``train_freq`` steps.
    :param actor_objective: ``"reverse_kl"`` (SAC's mode-seeking update on reparameterised
        samples) or ``"forward_kl"`` (mass-covering, see the module docstring; needs a bounded
        action Box and ``ent_coef`` > 0).
    :param n_action_samples: uniform proposals per state of ``"forward_kl"`` (at least 2).
    :param forward_kl_estimator: how ``"forward_kl"`` turns the weighted proposals into a loss:
        ``"weighted"``, −Σ_j w_j log π(a_j|s) over all of them; or ``"resampled"``, −log π(a|s)
        of one proposal per state drawn with probabilities w (sampling-importance-resampling:
        the same expected loss, one log π per state instead of ``n_action_samples``, and the
        proposals π* gives no weight are never scored; docs/method.md §7).
    :param proposal_margin: fraction of each side of the action box the ``"forward_kl"``
        proposals leave out, in (0, 0.5): the target is π* on the box shrunk by it. Beyond a
        tiny margin it keeps the proposals away from the bounds, where atanh of the action is
        large and an ``asinh`` F's inverse pass overflows (docs/method.md §6, §7).
    :param net_arch: hidden sizes of each Q-network (SB3's default [256, 256]).
    :param width: n, the width of F: must equal the action size k (None: k), see the module.
    :param depth: blocks of F; 0 is no F (a tanh-squashed Gaussian, the actor of SB3's SAC up to
        its hidden activation: the ablation).
    :param parameterization: ``"inverse"`` (Yan's V = W⁻¹) or ``"lu"``.
    :param activation: F's invertible activation (``jacrl.nn.ACTIVATIONS``).
    :param conditioning: ``"none"`` (one F for every state) or ``"state"`` (F_s: per-state shifts
        and log-scales of every block, docs/method.md §7).
    :param conditioner_hidden: hidden sizes of F_s's conditioner (``conditioning="state"``).
    :param state_dependent_sigma: σ(s) from the lift (SB3 SAC's actor) instead of one learned σ.
    :param sigma_x: initial noise scale σ.
    :param lift_hidden: hidden sizes of the lift x0(s) (SB3's SAC actor: [256, 256]).
    :param max_cond: largest cond(V_l) allowed, enforced at the end of every ``train`` call
        (after its ``gradient_steps`` updates, before the next action is drawn).
    :param ill_conditioned: ``"repair"`` (project a layer past ``max_cond`` back, counted in
        ``jacobian/reconditions``) or ``"raise"`` (``SingularWeightError``).
    :param dtype: ``"float64"`` (default) or ``"float32"`` for F and the density.
    :param policy_kwargs: the network settings as one dict, as SB3 users pass them
        (``policy_kwargs=dict(net_arch=[64, 64])``, the zoo's notation): any of the names in
        :data:`POLICY_SETTINGS`. A setting given both ways (a flat argument away from its default
        and a ``policy_kwargs`` entry) is refused; the agent keeps and saves the flat form.
    :param n_envs: parallel env copies (needs an env id for more than one).
    :param normalize_obs: running observation normalisation; off by default, as SB3 SAC (see the
        module docstring).
    :param nonfinite: NaN/inf policy for observations and rewards, see ``BaseAgent``.
    :param tensorboard_log: see ``BaseAgent``.
    :param seed: see ``BaseAgent``.
    :param device: see ``BaseAgent``.
    :param verbose: see ``BaseAgent``.
    :param observation_space: see ``BaseAgent`` (predict-only agents).
    :param action_space: see ``BaseAgent`` (predict-only agents).
    """

    policy: InvertiblePolicy
    action_space: spaces.Box

    def __init__(
        self,
        env: gym.Env | VecEnv | str | None,
        learning_rate: ScheduleLike = 3e-4,
        buffer_size: int = 1_000_000,
        learning_starts: int = 100,
        batch_size: int = 256,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int = 1,
        gradient_steps: int = 1,
        ent_coef: float | str = "auto",
        target_update_interval: int = 1,
        target_entropy: float | str = "auto",
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        actor_objective: ActorObjective = "reverse_kl",
        n_action_samples: int = 32,
        forward_kl_estimator: ForwardKLEstimator = "weighted",
        proposal_margin: float = PROPOSAL_MARGIN,
        net_arch: Sequence[int] = (256, 256),
        width: int | None = None,
        depth: int = 3,
        parameterization: Parameterization = "inverse",
        activation: ActivationName = "smooth_leaky_relu",
        conditioning: Conditioning = "none",
        conditioner_hidden: Sequence[int] = (64,),
        state_dependent_sigma: bool = True,
        sigma_x: float = 1.0,
        lift_hidden: Sequence[int] = (256, 256),
        max_cond: float = 1e6,
        ill_conditioned: IllConditioned = "repair",
        dtype: DType = "float64",
        policy_kwargs: Mapping[str, Any] | None = None,
        n_envs: int = 1,
        normalize_obs: bool = False,
        nonfinite: NonFinite = "raise",
        tensorboard_log: str | os.PathLike[str] | None = None,
        seed: int | None = None,
        device: torch.device | str = "auto",
        verbose: int = 0,
        observation_space: spaces.Space | None = None,
        action_space: spaces.Space | None = None,
    ) -> None:
        check_env_first(type(self).__name__, env)
        # policy_kwargs (SB3's habit) and the flat names address the same settings; the flat
        # attributes are the canonical, saved form
        settings = merge_policy_kwargs(
            type(self),
            POLICY_SETTINGS,
            policy_kwargs,
            net_arch=net_arch,
            width=width,
            depth=depth,
            parameterization=parameterization,
            activation=activation,
            conditioning=conditioning,
            conditioner_hidden=conditioner_hidden,
            state_dependent_sigma=state_dependent_sigma,
            sigma_x=sigma_x,
            lift_hidden=lift_hidden,
            max_cond=max_cond,
            dtype=dtype,
        )
        # Every hyperparameter is checked here, in type and range, in the form that is saved
        check_choice("actor_objective", actor_objective, ACTOR_OBJECTIVES)
        check_choice("forward_kl_estimator", forward_kl_estimator, FORWARD_KL_ESTIMATORS)
        check_choice("ill_conditioned", ill_conditioned, ILL_CONDITIONED)
        settings = check_policy_settings(settings)
        learning_rate = schedule("learning_rate", learning_rate)
        batch_size = positive_int("batch_size", batch_size)
        buffer_size = positive_int("buffer_size", buffer_size)
        if buffer_size < batch_size:
            raise ConfigError(
                f"buffer_size={buffer_size}: the replay buffer must hold at least one batch "
                f"(batch_size={batch_size})"
            )
        learning_starts = non_negative_int("learning_starts", learning_starts)
        tau = number("tau", tau, low=0.0, high=1.0, low_open=True)
        gamma = unit_interval("gamma", gamma)
        train_freq = positive_int("train_freq", train_freq)
        gradient_steps = whole_number(
            "gradient_steps", gradient_steps, minimum=-1
        )  # -1: as many as transitions collected
        target_update_interval = positive_int("target_update_interval", target_update_interval)
        if not isinstance(use_sde, bool):
            raise ConfigError(f"use_sde={use_sde!r}: expected True or False")
        sde_sample_freq = whole_number("sde_sample_freq", sde_sample_freq, minimum=-1)
        if sde_sample_freq == 0:
            raise ConfigError(
                "sde_sample_freq=0: expected a positive number of steps between two draws of "
                "the exploration noise, or -1 (once per collection of train_freq steps)"
            )
        if sde_sample_freq != -1 and not use_sde:
            raise ConfigError(
                f"sde_sample_freq={sde_sample_freq} acts only with use_sde=True (noise held "
                "between draws); without it every step draws its own noise"
            )
        n_action_samples = whole_number("n_action_samples", n_action_samples, minimum=2)
        proposal_margin = number(
            "proposal_margin", proposal_margin, low=0.0, high=0.5, low_open=True, high_open=True
        )
        learned_ent_coef, ent_coef_init = entropy_coefficient(ent_coef)
        if actor_objective == "forward_kl" and not (learned_ent_coef or ent_coef_init > 0):
            raise ConfigError(
                "actor_objective='forward_kl' needs ent_coef > 0 (or 'auto'): ent_coef is the "
                "temperature α of the target π* ∝ exp(Q/α), which is a point mass at α = 0"
            )
        super().__init__(
            env,
            n_envs=n_envs,
            normalize_obs=normalize_obs,
            nonfinite=nonfinite,
            tensorboard_log=tensorboard_log,
            seed=seed,
            device=device,
            verbose=verbose,
            observation_space=observation_space,
            action_space=action_space,
        )
        k = int(self.action_space.shape[0])
        width = settings["width"]
        if width is not None and width != k:
            raise ConfigError(
                f"width={width}: JacobianSAC needs width == the action size k={k}. Its entropy "
                "must be that of the action the env receives; a wider F has coordinates the "
                "action ignores, whose entropy the learner could inflate for free"
            )
        low, high = self.action_space.low, self.action_space.high
        if actor_objective == "forward_kl" and not (np.isfinite(low) & np.isfinite(high)).all():
            raise ConfigError(
                "actor_objective='forward_kl' draws its proposals uniformly in the action box, "
                f"so every bound must be finite; the action space is {self.action_space}"
            )
        self.learning_rate, self.buffer_size = learning_rate, buffer_size
        self.learning_starts, self.batch_size = learning_starts, batch_size
        self.tau, self.gamma = tau, gamma
        self.train_freq, self.gradient_steps = train_freq, gradient_steps
        self.ent_coef, self.target_update_interval = ent_coef, target_update_interval
        self.target_entropy = target_entropy
        self.use_sde, self.sde_sample_freq = use_sde, sde_sample_freq
        self.actor_objective, self.n_action_samples = actor_objective, n_action_samples
        self.forward_kl_estimator, self.proposal_margin = forward_kl_estimator, proposal_margin
        self.net_arch: tuple[int, ...] = settings["net_arch"]
        self.width: int | None = width
        self.depth: int = settings["depth"]
        self.parameterization: Parameterization = settings["parameterization"]
        self.activation: ActivationName = settings["activation"]
        self.conditioning: Conditioning = settings["conditioning"]
        self.conditioner_hidden: tuple[int, ...] = settings["conditioner_hidden"]
        self.state_dependent_sigma: bool = settings["state_dependent_sigma"]
        self.sigma_x: float = settings["sigma_x"]
        self.lift_hidden: tuple[int, ...] = settings["lift_hidden"]
        self.max_cond: float = settings["max_cond"]
        self.ill_conditioned, self.dtype = ill_conditioned, settings["dtype"]
        #: always ``None`` once built: ``policy_kwargs`` is merged into the flat settings above,
        #: the one form that is saved, so save/load round-trips
        self.policy_kwargs: dict[str, Any] | None = None
        self._lr_schedule = as_schedule("learning_rate", learning_rate)
        self._target_entropy = entropy_target(target_entropy, k)
        #: gradient steps done (SB3's ``_n_updates``) and layers re-conditioned, over the run
        self.n_updates = 0
        self.reconditions = 0

        obs_dim = int(self.observation_space.shape[0])
        # Actor: the shared invertible policy, square in the action (n == k)
        self.policy = InvertiblePolicy(
            obs_dim,
            self.action_space,
            n=k,
            depth=self.depth,
            rule="density",
            embed="mlp",
            parameterization=self.parameterization,
            activation=self.activation,
            sigma_x=self.sigma_x,
            learn_sigma=True,
            lift_hidden=self.lift_hidden,
            value_hidden=None,
            max_cond=self.max_cond,
            dtype=self.dtype,
            conditioning=self.conditioning,
            state_dependent_sigma=self.state_dependent_sigma,
            conditioner_hidden=self.conditioner_hidden,
        ).to(self.device)
        lr = self._lr_schedule(1.0)
        self.actor_optimizer = torch.optim.Adam(self.policy.parameters(), lr=lr, fused=True)
        self.policy.attach_optimizer(self.actor_optimizer)
        # Critics: twin Q-networks and their Polyak-averaged targets
        self.critic = ContinuousCritic(obs_dim, self.action_space, self.net_arch).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=lr, fused=True)
        # Entropy coefficient: log α is learned (SB3 learns the log, softlearning issue #37)
        self.log_ent_coef = torch.full(
            (1,), float(np.log(ent_coef_init)) if ent_coef_init > 0 else -np.inf, device=self.device
        ).requires_grad_(learned_ent_coef)
        self.ent_coef_optimizer = (
            torch.optim.Adam([self.log_ent_coef], lr=lr) if learned_ent_coef else None
        )
        self.replay_buffer = ReplayBuffer(buffer_size, self.n_envs, obs_dim, k)
        self._action_low = torch.as_tensor(low, dtype=self.policy.dtype, device=self.device)
        self._action_width = torch.as_tensor(high, dtype=self.policy.dtype, device=self.device)
        self._action_width -= self._action_low

    def check_spaces(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        """A flat Box of observations (``BaseAgent``) and a 1-D Box of actions.

        :raises UnsupportedSpaceError: naming the agents that accept the space.
        """
        if not isinstance(action_space, spaces.Box):
            fitting = [entry.name for entry in AGENTS.values() if entry.supports(action_space)]
            raise UnsupportedSpaceError(
                f"JacobianSAC (jacobian-sac) needs a Box action space, got {action_space}; "
                f"agents that accept it: {', '.join(fitting)}"
            )
        super().check_spaces(observation_space, action_space)

    # ----------------------------------------------------------------------------------------
    # Saving: the critics and α are part of the agent (SB3 saves them with the policy)

    def get_parameters(self) -> dict[str, Tensor]:
        params = super().get_parameters()
        for prefix, module in (("critic", self.critic), ("critic_target", self.critic_target)):
            params.update(
                {f"{prefix}.{k}": v.detach().clone() for k, v in module.state_dict().items()}
            )
        params["log_ent_coef"] = self.log_ent_coef.detach().clone()
        return params

    def set_parameters(self, params: Mapping[str, Tensor], exact_match: bool = True) -> None:
        super().set_parameters(params, exact_match)
        for prefix, module in (("critic", self.critic), ("critic_target", self.critic_target)):
            start = prefix + "."
            state = {k[len(start) :]: v for k, v in params.items() if k.startswith(start)}
            try:
                module.load_state_dict(state, strict=exact_match)
            except RuntimeError as exc:
                raise JacrlError(f"set_parameters: the {prefix} weights do not fit: {exc}") from exc
        if "log_ent_coef" in params:
            with torch.no_grad():
                self.log_ent_coef.copy_(params["log_ent_coef"])
        elif exact_match:
            raise JacrlError("set_parameters: 'log_ent_coef' is missing")

    def _optimizers(self) -> dict[str, torch.optim.Adam]:
        """The optimizers by checkpoint prefix (the entropy coefficient's only when learned)."""
        optimizers = {
            "actor_optimizer": self.actor_optimizer,
            "critic_optimizer": self.critic_optimizer,
        }
        if self.ent_coef_optimizer is not None:
            optimizers["ent_coef_optimizer"] = self.ent_coef_optimizer
        return optimizers

    def _training_state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        tensors, extra = super()._training_state()
        for prefix, optimizer in self._optimizers().items():
            optimizer_tensors, extra[prefix] = optimizer_state(optimizer, prefix)
            tensors.update(optimizer_tensors)
        buffer_tensors, extra["replay_buffer"] = self.replay_buffer.state()
        tensors.update(buffer_tensors)
        extra.update(
            n_updates=self.n_updates,
            reconditions=self.reconditions,
            # warm-up actions come from the action space's own generator (SB3's sample())
            action_space_rng=self.action_space.np_random.bit_generator.state,
        )
        return tensors, extra

    def _load_training_state(self, tensors: dict[str, Tensor], extra: dict[str, Any]) -> None:
        super()._load_training_state(tensors, extra)
        for prefix, optimizer in self._optimizers().items():
            restore_optimizer(optimizer, tensors, extra[prefix], prefix)
        self.replay_buffer.load_state(tensors, extra["replay_buffer"])
        self.n_updates, self.reconditions = extra["n_updates"], extra["reconditions"]
        self.action_space.np_random.bit_generator.state = extra["action_space_rng"]

    # ----------------------------------------------------------------------------------------
    # Acting and collecting

    def _predict(self, obs: Tensor, deterministic: bool) -> np.ndarray:
        with torch.inference_mode():
            y0 = self.policy.actor()(obs.to(self.device), deterministic)
        return self._env_actions(y0)

    def _env_actions(self, y0: Tensor) -> np.ndarray:
        """Env actions from the policy's pre-actions, refusing NaN before it reaches the env."""
        if not bool(torch.isfinite(y0).all()):
            raise NonFiniteError(
                f"the pre-action y0 is not finite at env step {self.num_timesteps}: the policy's "
                "weights overflow; lower learning_rate or max_cond"
            )
        return self.policy.to_env_actions(y0)

    def collect_rollouts(self, callback: BaseCallback) -> bool:
        """``train_freq`` vectorised steps into the replay buffer (SB3's ``collect_rollouts``):
        uniformly random actions before ``learning_starts``, the policy's samples after (with
        ``use_sde``, from a latent ε drawn at the first policy step and every
        ``sde_sample_freq`` steps, as SB3 resets its gSDE noise)."""
        assert self._last_obs is not None and self.env is not None
        actor = self.policy.actor()  # the weights are fixed until the next train()
        noise: Tensor | None = None  # the held ε (use_sde), drawn when first needed
        for step_index in range(self.train_freq):
            if self.num_timesteps < self.learning_starts:
                actions = np.stack([self.action_space.sample() for _ in range(self.n_envs)])
            else:
                if self.use_sde and (
                    noise is None
                    or (self.sde_sample_freq > 0 and step_index % self.sde_sample_freq == 0)
                ):
                    noise = torch.randn(
                        self.n_envs, self.policy.n, dtype=self.policy.dtype, device=self.device
                    )
                with torch.inference_mode():
                    y0 = actor(torch.as_tensor(self._last_obs, device=self.device), noise=noise)
                actions = self._env_actions(y0)
            step = self._step_env(actions, callback)
            if step is None:
                return False
            # the env reset itself after an episode end: store the final observation instead
            next_obs = step.obs.copy()
            for i in np.flatnonzero(step.dones):
                next_obs[i] = self.normalize(step.infos[i]["terminal_observation"][None])[0]
            timeouts = [info.get("TimeLimit.truncated", False) for info in step.infos]
            self.replay_buffer.add(
                self._last_obs, next_obs, actions, step.rewards, step.dones, np.asarray(timeouts)
            )
            self._last_obs, self._last_episode_starts = step.obs, step.dones
        return True

    # ----------------------------------------------------------------------------------------
    # Training

    def train(self) -> None:
        """``gradient_steps`` SAC updates from the replay buffer (SB3's ``SAC.train``)."""
        gradient_steps = (
            self.train_freq * self.n_envs if self.gradient_steps == -1 else self.gradient_steps
        )
        if self.num_timesteps <= self.learning_starts or gradient_steps == 0:
            return
        policy, critic = self.policy, self.critic
        learning_rate = self._lr_schedule(self._progress_remaining)
        for optimizer in self._optimizers().values():
            for group in optimizer.param_groups:
                group["lr"] = learning_rate
        reverse_kl = self.actor_objective == "reverse_kl"

        actor_losses, critic_losses, ent_coefs, ent_coef_losses = [], [], [], []
        updates_before = self.n_updates
        for _ in range(gradient_steps):
            batch = self.replay_buffer.sample(self.batch_size, self.device)

            # Entropy coefficient
            # a ~ π(·|s) by the reparameterisation trick, with its exact log π(a|s); the
            # forward-KL update needs it only for α's loss, so without a graph
            with torch.set_grad_enabled(reverse_kl):
                actions_pi, log_prob = policy.rsample(batch.observations)
            ent_coef = self.log_ent_coef.detach().exp()
            if self.ent_coef_optimizer is not None:
                ent_coef_loss = -(
                    self.log_ent_coef * (log_prob.detach() + self._target_entropy).float()
                ).mean()
                self.ent_coef_optimizer.zero_grad()
                ent_coef_loss.backward()
                self.ent_coef_optimizer.step()
                ent_coef_losses.append(ent_coef_loss.item())
            ent_coefs.append(ent_coef.item())

            # Critic loss
            with torch.no_grad():
                next_actions, next_log_prob = policy.rsample(batch.next_observations)
                next_q = self.critic_target.min_q(batch.next_observations, next_actions)
                next_q = next_q - ent_coef * next_log_prob.float()
                target_q = batch.rewards + (1.0 - batch.dones) * self.gamma * next_q
            current_q = critic(batch.observations, batch.actions)
            critic_loss = 0.5 * sum(functional.mse_loss(q, target_q) for q in current_q)
            assert isinstance(critic_loss, Tensor)
            self._check_finite("critic", critic_loss)
            self.critic_optimizer.zero_grad()
            critic_loss.backward()
            self.critic_optimizer.step()
            critic_losses.append(critic_loss.item())

            # Actor loss
            if reverse_kl:
                # the actor's gradient needs ∂Q/∂a only: the critic's own weight gradients
                # (which SB3 computes and discards) are not formed
                with frozen(critic):
                    min_q_pi = critic.min_q(batch.observations, actions_pi)
                actor_loss = (ent_coef * log_prob - min_q_pi).mean()
            else:
                actor_loss = self._forward_kl_loss(batch.observations, ent_coef)
            self._check_finite("actor", actor_loss)
            self.actor_optimizer.zero_grad()
            actor_loss.backward()
            self.actor_optimizer.step()
            actor_losses.append(actor_loss.item())

            # Target update
            self.n_updates += 1
            if self.n_updates % self.target_update_interval == 0:
                self.critic_target.polyak_update(critic, self.tau)

        # Conditioning: once per train() call, before the next actions are drawn (one SVD per
        # layer; with gradient_steps > 1, a check per step would cost as many)
        conds, repaired = policy.enforce_conditioning(self.ill_conditioned)
        count_reconditions(self, repaired)

        logger = self.logger
        if updates_before == 0 or self.n_updates % DIAGNOSTICS_EVERY < gradient_steps:
            # Diagnostics: ℓ = log|det J_{F_s⁻¹}| at the deterministic pre-actions F_s(x0(s))
            # (drawing none: logging leaves the random stream alone) and σ(s), on the last batch.
            # A forward and an inverse pass cost about a fifth of an update: not every update.
            with torch.no_grad():
                obs = batch.observations
                _, log_sigma = policy.gaussian_params(obs)
                y0 = policy.sample(obs, deterministic=True)
                _, logabsdet, _ = policy.score_rollout(obs, y0)
            logger.record("jacobian/logdet_mean", float(logabsdet.mean()))
            logger.record("jacobian/sigma", float(log_sigma.exp().mean()))
        logger.record("train/n_updates", self.n_updates, exclude="tensorboard")
        logger.record("train/learning_rate", learning_rate)
        logger.record("train/ent_coef", float(np.mean(ent_coefs)))
        logger.record("train/actor_loss", float(np.mean(actor_losses)))
        logger.record("train/critic_loss", float(np.mean(critic_losses)))
        if ent_coef_losses:
            logger.record("train/ent_coef_loss", float(np.mean(ent_coef_losses)))
        logger.record("train/entropy", float(-log_prob.detach().mean()))
        logger.record("jacobian/cond_max", float(conds.max()) if conds.numel() else 1.0)
        logger.record("jacobian/reconditions", self.reconditions)

    def _forward_kl_loss(self, obs: Tensor, ent_coef: Tensor) -> Tensor:
        """The self-normalised importance estimate of the forward KL(π* ‖ π) up to a constant,
        averaged over the batch: proposals a_j uniform in the action box shrunk by
        ``proposal_margin``, w = softmax_j(min Q(s, a_j)/α), and −Σ_j w_j log π(a_j|s)
        (``"weighted"``) or −log π(a_J|s) with J drawn from w (``"resampled"``, the same
        expectation)."""
        batch, m, k = obs.shape[0], self.n_action_samples, self._action_low.shape[0]
        repeated = obs.repeat_interleave(m, dim=0)
        u = torch.rand(batch * m, k, dtype=self.policy.dtype).to(self.device)
        u = self.proposal_margin + (1.0 - 2.0 * self.proposal_margin) * u
        actions = self._action_low + u * self._action_width
        with torch.no_grad():
            q = self.critic.min_q(repeated, actions).view(batch, m)
            weights = torch.softmax(q / ent_coef, dim=1)
        if self.forward_kl_estimator == "resampled":
            if not bool(torch.isfinite(weights).all()):  # multinomial would fail obscurely
                raise NonFiniteError(
                    f"the critic's Q of the forward-KL proposals is not finite at env step "
                    f"{self.num_timesteps}; lower learning_rate, or check the rewards"
                )
            chosen = torch.multinomial(weights, 1).squeeze(1) + m * torch.arange(
                batch, device=self.device
            )
            return -self.policy.action_log_prob(obs, actions[chosen]).mean()
        log_pi = self.policy.action_log_prob(repeated, actions).view(batch, m)
        return -(weights * log_pi).sum(dim=1).mean()

    def _check_finite(self, which: str, loss: Tensor) -> None:
        if not bool(torch.isfinite(loss)):
            raise NonFiniteError(
                f"the {which} loss is {loss.item()} at env step {self.num_timesteps}; lower "
                "learning_rate or max_cond, or check the rewards"
            )

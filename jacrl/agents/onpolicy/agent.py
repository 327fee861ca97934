"""JacobianAgent: Yan's reward-driven Jacobian rule as an on-policy Gymnasium agent.

``collect_rollouts`` samples y0 = F(x0(s) + σ_x ε) and stores y0; ``train`` is SB3 PPO's
update (docs/method.md §4): REINFORCE or a PPO clipped surrogate on the log-probability of the
stored y0 under the chosen rule (``density``: the exact log p(y0|s); ``volume``: the seed's
ℓ(y0) = log|det J_{F⁻¹}(y0)|), with the advantage from the raw reward (the seed), a running-mean
baseline, or GAE from a value network. Everything about the policy (acting, its density, its
conditioning guard) goes through :class:`~jacrl.policies.invertible.InvertiblePolicy`'s methods.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NoReturn, get_args

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import explained_variance
from stable_baselines3.common.vec_env import VecEnv

from jacrl.agents.base import BaseAgent, NonFinite
from jacrl.agents.conditioning import count_reconditions
from jacrl.agents.onpolicy.buffer import ADVANTAGES, Advantage, RolloutBuffer
from jacrl.common.checkpoint import optimizer_state, restore_optimizer
from jacrl.common.errors import ConfigError, NonFiniteError, check_choice
from jacrl.common.schedules import ScheduleLike, as_schedule
from jacrl.common.validation import (
    check_env_first,
    merge_policy_kwargs,
    non_negative_float,
    number,
    optional_positive_float,
    positive_float,
    positive_int,
    schedule,
    unit_interval,
)
from jacrl.nn.activations import ActivationName
from jacrl.nn.mlp import Parameterization
from jacrl.policies.invertible import (
    ILL_CONDITIONED,
    RULES,
    VOLUME_HOLDS,
    VOLUME_OBJECTIVES,
    Conditioning,
    DType,
    Embed,
    IllConditioned,
    InvertiblePolicy,
    Rule,
    VolumeHold,
    VolumeObjective,
    action_size,
)
from jacrl.policies.settings import check_policy_settings

#: How ``train`` turns advantages into a step: PPO's clipped surrogate or one REINFORCE step.
Update = Literal["ppo", "reinforce"]
#: ``advantage_weighting``: advantages as they are, or the positive weights N·softmax(A/τ).
AdvantageWeighting = Literal["none", "softmax"]
UPDATES: tuple[Update, ...] = get_args(Update)
WEIGHTINGS: tuple[AdvantageWeighting, ...] = get_args(AdvantageWeighting)
#: weight of the newest rollout in the running-mean baseline of ``advantage="baseline"``
BASELINE_RATE = 0.1
#: The settings of the policy network, which ``policy_kwargs`` may give instead of the flat names.
POLICY_SETTINGS = (
    "embed",
    "width",
    "depth",
    "parameterization",
    "activation",
    "sigma_x",
    "learn_sigma",
    "lift_hidden",
    "value_hidden",
    "max_cond",
    "dtype",
    "conditioning",
    "conditioner_hidden",
)


def _refuse_meaningless(
    rule: Rule,
    update: Update,
    volume_objective: VolumeObjective,
    volume_hold: VolumeHold,
    target_kl: float | None,
    advantage_weighting: AdvantageWeighting,
    weighting_temperature: float,
) -> None:
    """Refuse options that would be accepted and do nothing (a value at its default is not
    "given", so it passes)."""
    if rule == "density" and (volume_objective != "logdet" or volume_hold != "y0"):
        raise ConfigError(
            f"volume_objective={volume_objective!r}, volume_hold={volume_hold!r} choose the volume "
            "rule's score; rule='density' scores the whole density and ignores them. Pass "
            "rule='volume', or leave them at their defaults ('logdet', 'y0')"
        )
    if volume_objective == "absdet" and update != "reinforce":
        raise ConfigError(
            "volume_objective='absdet' needs update='reinforce': a PPO ratio of |J| is the "
            "ratio of exp ℓ, i.e. the same update as 'logdet'"
        )
    if target_kl is not None and update == "reinforce":
        raise ConfigError(
            f"target_kl={target_kl} with update='reinforce': the single REINFORCE step is taken at "
            "ratio 1 (approximate KL 0), so the stop could never act; pass target_kl=None, or "
            "update='ppo'"
        )
    if weighting_temperature != 1.0 and advantage_weighting != "softmax":
        raise ConfigError(
            f"weighting_temperature={weighting_temperature} is the temperature of "
            f"advantage_weighting='softmax', and advantage_weighting={advantage_weighting!r}; "
            "pass advantage_weighting='softmax', or leave the temperature at 1.0"
        )


def _floats(values: list[torch.Tensor]) -> list[float]:
    """0-d tensors as Python floats, in one host sync (the values ``.item()`` gives)."""
    return torch.stack(values).tolist() if values else []


class JacobianAgent(BaseAgent):
    """An invertible network y = F(x) trained by the reward-driven Jacobian rule.

    Hyperparameter names and defaults follow SB3's PPO where they mean the same thing.

    :param env: see :class:`~jacrl.agents.base.BaseAgent`.
    :param rule: ``"density"`` (exact REINFORCE/PPO gradient of the invertible policy) or
        ``"volume"`` (the seed: grow ℓ(y0) = log|det J_{F⁻¹}(y0)| on positive advantage; biased
        and blind to the state, so it does not learn: docs/volume_rule.md). With
        ``update="ppo"`` the volume ratio is exp(ℓ_new − ℓ_old).
    :param advantage: ``"gae"`` (value net, GAE(λ); centred and scaled per minibatch, as SB3's
        PPO does), ``"baseline"`` (discounted return minus a running mean of returns over
        rollouts; scaled per minibatch but not centred, which would replace the running mean by
        the minibatch's) or ``"reward"`` (raw reward r_t, the seed; never normalised — on
        CartPole every reward is +1, so it carries no ranking).
    :param update: ``"ppo"`` (clipped surrogate, ``n_epochs`` of minibatches, optional
        ``target_kl`` stop) or ``"reinforce"`` (one gradient step on −A·log p per rollout).
    :param embed: ``"mlp"`` (learned lift x0 = g(s)) or ``"pad"`` (zero-padded observation, the
        seed's fixed embedding; needs ``width`` >= observation size).
    :param width: n, the width of F; default max(observation size, action size k).
    :param depth: blocks of F; 0 means no F (a Gaussian policy on the lift: the ablation).
    :param parameterization: ``"inverse"`` (Yan's V = W⁻¹) or ``"lu"`` (invertible by
        construction).
    :param activation: F's invertible activation: ``"asinh"``, ``"smooth_leaky_relu"`` or
        ``"leaky_relu"`` (its piecewise-constant log σ′ gives the volume rule the same gradient
        for every input, docs/method.md §5). ``None`` picks by rule: ``"asinh"`` for
        ``density``, whose Gaussian term keeps F⁻¹(y0) near the lift; ``"smooth_leaky_relu"`` for
        ``volume``, whose score ℓ(y0) alone is unbounded: under asinh its log cosh(u) terms grow
        with |u|, the rule drives the inverse path's pre-activations apart until ``sinh``
        overflows, while linear tails cap log (σ⁻¹)′ at −log α (docs/method.md §6).
    :param sigma_x: initial perceptual noise scale σ_x.
    :param learn_sigma: learn a state-independent log σ_x per dimension.
    :param n_envs: parallel env copies (needs an env id for more than one).
    :param n_steps: steps per env per rollout.
    :param batch_size: PPO minibatch size.
    :param n_epochs: PPO passes over each rollout.
    :param gamma: discount factor.
    :param gae_lambda: GAE λ.
    :param clip_range: PPO ratio clip ε (number, ``"lin_<x>"`` or a ``LinearSchedule``).
    :param ent_coef: weight of the Gaussian entropy bonus (see ``InvertiblePolicy.entropy``).
    :param vf_coef: weight of the value loss.
    :param max_grad_norm: global gradient-norm clip.
    :param learning_rate: Adam step size (number, ``"lin_<x>"`` or a ``LinearSchedule``).
    :param target_kl: SB3 PPO's early stop: before each minibatch's step, its approximate KL
        (mean of (r − 1) − log r over the minibatch, r the ratio) is compared with 1.5 × this;
        past it, that step is not taken and the update ends. The ratio is of the full
        n-dimensional density of y0 (docs/method.md §4). ``None``: no limit.
    :param normalize_obs: running observation normalisation (saved with the agent).
    :param lift_hidden: hidden sizes of the lift (``embed="mlp"``).
    :param value_hidden: hidden sizes of the value net (``advantage="gae"``).
    :param max_cond: largest cond(V_l) allowed; checked after every update and at every rollout,
        so the agent never acts on a garbage inverse.
    :param ill_conditioned: what an update that drives some cond(V_l) past ``max_cond`` does:
        ``"repair"`` (default) projects that layer back to cond = max_cond/2 by raising its small
        singular values (``InvertiblePolicy.enforce_conditioning``), counted in
        ``jacobian/reconditions`` and warned about once; ``"raise"`` stops with
        ``SingularWeightError``. Weights that arrive ill-conditioned (``load``,
        ``set_parameters``) are always refused, never repaired. Under
        ``parameterization="inverse"`` the volume rule's log|det V| gradient V⁻ᵀ grows as
        1/s_min, so negative advantages can collapse the smallest singular value
        (docs/method.md §6).
    :param dtype: ``"float64"`` (default; float32 inverses lose accuracy as cond(V) grows) or
        ``"float32"`` for F and the density.
    :param volume_objective: volume rule only (docs/volume_rule.md): ``"logdet"`` (default; ℓ)
        or ``"absdet"`` (the seed's |J| itself, eq. 11: ∇|J| = |J|·∇ℓ; REINFORCE only, since a
        ratio of |J| is the same as a ratio of exp ℓ).
    :param volume_hold: volume rule only: ``"y0"`` (default, the seed's ∂y0/∂V ≡ 0) or ``"x0"``
        (hold the input x that produced y0 and grow ℓ(F(x)) = −log|det J_F(x)|: make F contract
        around x, so a bigger neighbourhood of x maps near y0 — the seed's words, read literally).
    :param conditioning: ``"none"`` (default; one F for every state) or ``"state"``: F_s, whose
        blocks get per-state shifts and log-scales from a conditioner network of the
        (normalised) observation, zero at initialisation (docs/method.md §7); needs ``depth`` >= 1.
    :param conditioner_hidden: hidden sizes of the conditioner (``conditioning="state"``).
    :param advantage_weighting: ``"none"`` (default) or ``"softmax"``: replace each minibatch's
        advantages by positive weights w = N·softmax(A/τ) (mean 1), reward-weighted averaging in
        the style of reward-weighted regression (Peters & Schaal 2007) — one reading of the seed's
        "strengthen the mapping in proportion to the reward". (Dividing by Σ|r| only rescales the
        step, which Adam undoes, so it is not offered.)
    :param weighting_temperature: τ of ``advantage_weighting="softmax"``, in units of the
        (normalised, unless ``advantage="reward"``) advantage.
    :param policy_kwargs: the policy network's settings as one dict, as SB3 users pass them
        (``policy_kwargs=dict(depth=2, lift_hidden=[32, 32])``): any of ``embed``, ``width``,
        ``depth``, ``parameterization``, ``activation``, ``sigma_x``, ``learn_sigma``,
        ``lift_hidden``, ``value_hidden``, ``max_cond``, ``dtype``, ``conditioning``,
        ``conditioner_hidden``. The flat names stay (presets, ``--hp depth=0`` and the compare
        variants address one setting by one key); a setting given two ways (a flat argument
        away from its default and a different ``policy_kwargs`` entry) is refused; a flat
        argument left at its default yields to ``policy_kwargs``. The agent keeps and
        saves the flat form, so ``agent.policy_kwargs`` is ``None`` once built. There is no
        ``policy`` argument: the policy is always the invertible one.
    :param nonfinite: NaN/inf policy for observations and rewards, see ``BaseAgent``.
    :param tensorboard_log: see ``BaseAgent``.
    :param seed: see ``BaseAgent``.
    :param device: see ``BaseAgent``.
    :param verbose: see ``BaseAgent``.
    :param observation_space: see ``BaseAgent`` (predict-only agents).
    :param action_space: see ``BaseAgent`` (predict-only agents).
    """

    policy: InvertiblePolicy

    def __init__(
        self,
        env: gym.Env | VecEnv | str | None,
        rule: Rule = "density",
        advantage: Advantage = "gae",
        update: Update = "ppo",
        embed: Embed = "mlp",
        width: int | None = None,
        depth: int = 3,
        parameterization: Parameterization = "inverse",
        activation: ActivationName | None = None,
        sigma_x: float = 1.0,
        learn_sigma: bool = True,
        n_envs: int = 1,
        n_steps: int = 2048,
        batch_size: int = 64,
        n_epochs: int = 10,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        clip_range: ScheduleLike = 0.2,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        learning_rate: ScheduleLike = 3e-4,
        target_kl: float | None = None,
        normalize_obs: bool = True,
        lift_hidden: Sequence[int] = (64, 64),
        value_hidden: Sequence[int] = (64, 64),
        max_cond: float = 1e6,
        ill_conditioned: IllConditioned = "repair",
        dtype: DType = "float64",
        volume_objective: VolumeObjective = "logdet",
        volume_hold: VolumeHold = "y0",
        conditioning: Conditioning = "none",
        conditioner_hidden: Sequence[int] = (64,),
        advantage_weighting: AdvantageWeighting = "none",
        weighting_temperature: float = 1.0,
        policy_kwargs: Mapping[str, Any] | None = None,
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
            embed=embed,
            width=width,
            depth=depth,
            parameterization=parameterization,
            activation=activation,
            sigma_x=sigma_x,
            learn_sigma=learn_sigma,
            lift_hidden=lift_hidden,
            value_hidden=value_hidden,
            max_cond=max_cond,
            dtype=dtype,
            conditioning=conditioning,
            conditioner_hidden=conditioner_hidden,
        )
        # Every hyperparameter is checked here, in type and range, and kept in the form that is
        # saved (the policy checks its own options again when it is built).
        check_choice("rule", rule, RULES)
        check_choice("advantage", advantage, ADVANTAGES)
        check_choice("update", update, UPDATES)
        check_choice("advantage_weighting", advantage_weighting, WEIGHTINGS)
        check_choice("ill_conditioned", ill_conditioned, ILL_CONDITIONED)
        check_choice("volume_objective", volume_objective, VOLUME_OBJECTIVES)
        check_choice("volume_hold", volume_hold, VOLUME_HOLDS)
        if settings["activation"] is None:  # the rule's default: the one that learned best
            settings["activation"] = "asinh" if rule == "density" else "smooth_leaky_relu"
        settings = check_policy_settings(settings)
        n_steps = positive_int("n_steps", n_steps)
        batch_size = positive_int("batch_size", batch_size)
        n_epochs = positive_int("n_epochs", n_epochs)
        gamma = unit_interval("gamma", gamma)
        gae_lambda = unit_interval("gae_lambda", gae_lambda)
        clip_range = schedule("clip_range", clip_range)
        ent_coef = number("ent_coef", ent_coef)
        vf_coef = non_negative_float("vf_coef", vf_coef)
        max_grad_norm = positive_float(
            "max_grad_norm", max_grad_norm, hint="; for no clipping, a large number such as 1e10"
        )
        learning_rate = schedule("learning_rate", learning_rate)
        target_kl = optional_positive_float("target_kl", target_kl)
        weighting_temperature = positive_float("weighting_temperature", weighting_temperature)
        _refuse_meaningless(
            rule, update, volume_objective, volume_hold, target_kl, advantage_weighting,
            weighting_temperature,
        )  # fmt: skip
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
        self.rule, self.advantage, self.update = rule, advantage, update
        self.embed: Embed = settings["embed"]
        self.width: int | None = settings["width"]
        self.depth: int = settings["depth"]
        self.parameterization: Parameterization = settings["parameterization"]
        self.activation: ActivationName = settings["activation"]
        self.sigma_x: float = settings["sigma_x"]
        self.learn_sigma: bool = settings["learn_sigma"]
        self.n_steps, self.batch_size, self.n_epochs = n_steps, batch_size, n_epochs
        self.gamma, self.gae_lambda, self.clip_range = gamma, gae_lambda, clip_range
        self.ent_coef, self.vf_coef, self.max_grad_norm = ent_coef, vf_coef, max_grad_norm
        self.learning_rate, self.target_kl = learning_rate, target_kl
        self.lift_hidden: tuple[int, ...] = settings["lift_hidden"]
        self.value_hidden: tuple[int, ...] = settings["value_hidden"]
        self.max_cond: float = settings["max_cond"]
        self.ill_conditioned = ill_conditioned
        self.dtype: DType = settings["dtype"]
        #: always ``None`` once built: ``policy_kwargs`` is merged into the flat settings above
        #: (``agent.depth``, ...), the one form that is saved, so save/load round-trips
        self.policy_kwargs: dict[str, Any] | None = None
        #: layers projected back under max_cond so far (``ill_conditioned="repair"``)
        self.reconditions = 0
        self.volume_objective, self.volume_hold = volume_objective, volume_hold
        self.conditioning: Conditioning = settings["conditioning"]
        self.conditioner_hidden: tuple[int, ...] = settings["conditioner_hidden"]
        self.advantage_weighting, self.weighting_temperature = (
            advantage_weighting,
            weighting_temperature,
        )
        self._lr_schedule = as_schedule("learning_rate", learning_rate)
        self._clip_schedule = as_schedule("clip_range", clip_range)

        obs_dim = int(self.observation_space.shape[0])
        self.n = (
            self.width if self.width is not None else max(obs_dim, action_size(self.action_space))  # type: ignore[arg-type]
        )
        self.policy = InvertiblePolicy(
            obs_dim,
            self.action_space,  # type: ignore[arg-type]
            n=self.n,
            depth=self.depth,
            rule=rule,
            embed=self.embed,
            parameterization=self.parameterization,
            activation=self.activation,
            sigma_x=self.sigma_x,
            learn_sigma=self.learn_sigma,
            lift_hidden=self.lift_hidden,
            value_hidden=self.value_hidden if advantage == "gae" else None,
            max_cond=self.max_cond,
            dtype=self.dtype,
            volume_objective=volume_objective,
            volume_hold=volume_hold,
            conditioning=self.conditioning,
            conditioner_hidden=self.conditioner_hidden,
        ).to(self.device)
        self._trained_parameters = [p for p in self.policy.parameters() if p.requires_grad]
        # fused: one kernel per dtype group instead of ~8 ops per parameter tensor (the update
        # is dominated by per-op overhead at these sizes). Deterministic run to run; it rounds
        # differently from the single-tensor loop. Attached, so each step renews the policy's
        # acting snapshot.
        self.optimizer = torch.optim.Adam(
            self._trained_parameters, lr=self._lr_schedule(1.0), eps=1e-5, fused=True
        )
        self.policy.attach_optimizer(self.optimizer)
        self.rollout_buffer = RolloutBuffer(
            n_steps,
            self.n_envs,
            obs_dim,
            self.n,
            dtype=np.dtype(self.dtype).type,
            store_inputs=self.policy.needs_input,
        )
        #: running mean of discounted returns, the baseline of ``advantage="baseline"``
        self.return_baseline: float | None = None
        #: epochs of updates run so far (SB3 PPO's ``_n_updates``, logged as ``train/n_updates``)
        self._n_updates = 0
        self._last_values = np.zeros(self.n_envs)

    # ----------------------------------------------------------------------------------------
    def _training_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors, extra = super()._training_state()
        optimizer_tensors, optimizer_extra = optimizer_state(self.optimizer)
        extra.update(
            optimizer=optimizer_extra,
            return_baseline=self.return_baseline,
            reconditions=self.reconditions,
            n_updates=self._n_updates,
        )
        return {**tensors, **optimizer_tensors}, extra

    def _load_training_state(self, tensors: dict[str, torch.Tensor], extra: dict[str, Any]) -> None:
        super()._load_training_state(tensors, extra)
        restore_optimizer(self.optimizer, tensors, extra["optimizer"])
        self.return_baseline = extra["return_baseline"]
        self.reconditions = extra.get("reconditions", 0)
        self._n_updates = extra.get("n_updates", 0)

    def _predict(self, obs: torch.Tensor, deterministic: bool) -> np.ndarray:
        # the acting snapshot is kept across calls until the weights change (no inverse or SVD
        # per call: InvertiblePolicy.generation); one finiteness check per call, so no NaN
        # reaches the caller as an action
        with torch.inference_mode():
            y0 = self.policy.actor()(obs.to(self.device), deterministic)
            if not bool(torch.isfinite(y0).all()):
                raise NonFiniteError(
                    "predict: the pre-action y0 is not finite; the policy's weights overflow"
                )
        return self.policy.to_env_actions(y0)

    def collect_rollouts(self, callback: BaseCallback) -> bool:
        """Fill the rollout buffer with ``n_steps`` steps of every env (SB3's order of calls).

        The weights are fixed during a rollout, so the policy's acting snapshot (W_l = V_l⁻¹,
        σ_x, conditioning and finiteness of the weights checked) is fetched once; every step is
        then a few plain tensor operations. The stored pre-actions are checked once, at the end.
        """
        assert self._last_obs is not None
        buffer, policy, device = self.rollout_buffer, self.policy, self.device
        buffer.reset()
        act, to_env_actions = policy.actor(), policy.to_env_actions
        while not buffer.full:
            with torch.inference_mode():
                y0 = act(torch.as_tensor(self._last_obs, device=device))
            step = self._step_env(to_env_actions(y0), callback)
            if step is None:
                return False
            buffer.add(
                self._last_obs,
                y0.cpu().numpy(),
                step.rewards,
                self._last_episode_starts,
                step.truncated_obs,
            )
            self._last_obs, self._last_episode_starts = step.obs, step.dones
        bad = ~np.isfinite(buffer.y0).all(axis=(1, 2))
        if bad.any():
            policy.check_conditioning()  # names the layer if F's weights are the cause
            index = int(np.argmax(bad))
            raise NonFiniteError(
                f"the pre-action y0 overflowed to NaN/inf at step {index} of the rollout ending at "
                f"env step {self.num_timesteps}, in {policy.dtype}; use float64, or lower "
                "learning_rate or max_cond"
            )
        self._score_rollout()
        mean_return = buffer.compute_advantages(
            self.advantage,
            self._last_values,
            self._last_episode_starts,
            self.gamma,
            self.gae_lambda,
            self.return_baseline,
        )
        if self.return_baseline is None:
            self.return_baseline = mean_return
        else:
            self.return_baseline += BASELINE_RATE * (mean_return - self.return_baseline)
        return True

    @torch.no_grad()
    def _score_rollout(self) -> None:
        """Old log-probabilities, ℓ(y0) and values of the whole rollout in one batch, under the
        weights it acted with (cheaper than per step, and the first PPO ratio is exactly 1)."""
        assert self._last_obs is not None
        buffer, policy, device = self.rollout_buffer, self.policy, self.device
        shape = (buffer.n_steps, buffer.n_envs)
        obs = torch.as_tensor(buffer.obs, device=device).flatten(0, 1)
        y0 = torch.as_tensor(buffer.y0, device=device).flatten(0, 1)
        log_probs, logabsdet, x = policy.score_rollout(obs, y0)
        if x is not None:  # the inputs that produced y0 under these weights, held fixed in train
            assert buffer.x is not None  # allocated for a policy that needs_input
            buffer.x[:] = x.reshape(*shape, -1).cpu().numpy()
        buffer.log_probs[:] = log_probs.reshape(shape).cpu().numpy()
        buffer.logabsdet[:] = logabsdet.reshape(shape).cpu().numpy()
        if not policy.has_critic:
            self._last_values = np.zeros(buffer.n_envs)
            return
        extra = [self._last_obs, *(final[None] for _, _, final in buffer.truncations)]
        all_obs = torch.cat([obs, *(torch.as_tensor(o, device=device) for o in extra)])
        values = policy.predict_values(all_obs).double().cpu().numpy()
        buffer.values[:] = values[: obs.shape[0]].reshape(shape)
        self._last_values = values[obs.shape[0] : obs.shape[0] + buffer.n_envs]
        # bootstrap value if the episode was truncated, not terminated (SB3 does the same)
        final_values = values[obs.shape[0] + buffer.n_envs :]
        for (t, env, _), value in zip(buffer.truncations, final_values, strict=True):
            buffer.rewards[t, env] += self.gamma * value

    def train(self) -> None:
        """One update from the rollout: SB3's PPO loop (``stable_baselines3/ppo/ppo.py``) on the
        log-probability of y0, including where it stops for ``target_kl`` and what it logs."""
        policy, optimizer = self.policy, self.optimizer
        learning_rate = self._lr_schedule(self._progress_remaining)
        clip_range = self._clip_schedule(self._progress_remaining)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate
        rollout = self.rollout_buffer.tensors(self.device)
        buffer_size = rollout.obs.shape[0]
        # REINFORCE: a single step on the whole rollout
        n_epochs, batch_size = (
            (self.n_epochs, self.batch_size) if self.update == "ppo" else (1, buffer_size)
        )

        pg_losses, value_losses, entropy_losses, clip_fractions, grad_norms = ([] for _ in range(5))
        approx_kls: list[torch.Tensor] = []
        continue_training = True
        for _epoch in range(n_epochs):
            approx_kls = []  # SB3 logs the last epoch's mean
            b_inds = torch.randperm(buffer_size, device=self.device)
            for start in range(0, buffer_size, batch_size):
                mb_inds = b_inds[start : start + batch_size]
                values, log_prob, entropy = policy.evaluate_actions(
                    rollout.obs[mb_inds],
                    rollout.y0[mb_inds],
                    None if rollout.x is None else rollout.x[mb_inds],
                )
                logratio = log_prob - rollout.log_probs[mb_inds]
                ratio = logratio.exp()
                advantages = self._minibatch_advantages(rollout.advantages[mb_inds])

                # Policy loss
                if self.update == "ppo":
                    pg_loss1 = -advantages * ratio
                    pg_loss2 = -advantages * torch.clamp(ratio, 1 - clip_range, 1 + clip_range)
                    pg_loss = torch.max(pg_loss1, pg_loss2).mean()
                else:
                    pg_loss = -(advantages * log_prob).mean()
                # Value loss
                if policy.has_critic:
                    v_loss = 0.5 * ((values - rollout.returns[mb_inds]) ** 2).mean()
                else:
                    v_loss = torch.zeros((), device=self.device)
                # Entropy loss
                entropy_loss = -entropy.mean()
                loss = pg_loss + self.ent_coef * entropy_loss + self.vf_coef * v_loss

                # The diagnostics stay tensors until the update ends (one host sync per list
                # then, instead of several per minibatch); the same values as .item() each.
                pg_losses.append(pg_loss.detach())
                value_losses.append(v_loss.detach())
                entropy_losses.append(entropy_loss.detach())
                # http://joschu.net/blog/kl-approx.html (on detached tensors: no graph, and no
                # no_grad block per minibatch)
                ratio_value = ratio.detach()
                approx_kl = ((ratio_value - 1) - logratio.detach()).mean()
                clip_fractions.append(((ratio_value - 1.0).abs() > clip_range).double().mean())
                approx_kls.append(approx_kl)
                # SB3's early stop: measured before the step, and this minibatch is not applied
                if self.target_kl is not None and approx_kl.item() > 1.5 * self.target_kl:
                    continue_training = False
                    break

                optimizer.zero_grad()
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    self._trained_parameters, self.max_grad_norm
                )
                # One sync for both checks, before the step: a non-finite loss gives a
                # non-finite gradient or not, so both are tested (the loss first, as it is the
                # cause to name); neither step nor clipping has touched the weights yet.
                if not bool(torch.isfinite(loss) & torch.isfinite(grad_norm)):
                    self._refuse_nonfinite_step(loss, pg_loss, v_loss)
                optimizer.step()
                grad_norms.append(grad_norm)
            self._n_updates += 1
            if not continue_training:
                break

        # Conditioning: repair or fail loudly rather than act through a near-singular V (one SVD
        # per layer per update, more only when repairing; the next rollout's acting snapshot
        # reuses this check)
        conds, repaired = policy.enforce_conditioning(self.ill_conditioned)
        count_reconditions(self, repaired)

        self._record_train_logs(
            rollout.logabsdet,
            conds,
            learning_rate=learning_rate,
            clip_range=clip_range,
            loss=loss.item(),
            policy_gradient_loss=_floats(pg_losses),
            value_loss=_floats(value_losses),
            entropy_loss=_floats(entropy_losses),
            approx_kl=_floats(approx_kls),
            clip_fraction=_floats(clip_fractions),
            grad_norm=_floats(grad_norms),
        )

    def _refuse_nonfinite_step(
        self, loss: torch.Tensor, pg_loss: torch.Tensor, v_loss: torch.Tensor
    ) -> NoReturn:
        """Raise NonFiniteError for a minibatch whose loss or gradient norm is not finite."""
        if not bool(torch.isfinite(loss)):
            raise NonFiniteError(
                f"the loss is {loss.item()} at env step {self.num_timesteps} (policy "
                f"{pg_loss.item()}, value {v_loss.item()}); lower learning_rate or "
                "max_cond, or check the rewards"
            )
        raise NonFiniteError(
            f"non-finite gradient norm at env step {self.num_timesteps}; lower "
            "learning_rate or max_cond"
        )

    def _minibatch_advantages(self, advantages: torch.Tensor) -> torch.Tensor:
        """What a minibatch's advantages become in the loss.

        ``gae``: centred and scaled per minibatch, as SB3's PPO does. ``baseline``: scaled only:
        centring would subtract the minibatch mean and so erase the running-mean baseline the
        advantage was formed with. ``reward``: as they are (the seed's raw reward). Then
        ``advantage_weighting="softmax"`` turns them into the weights N·softmax(A/τ).
        """
        if len(advantages) > 1:
            if self.advantage == "gae":
                advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
            elif self.advantage == "baseline":
                advantages = advantages / (advantages.std() + 1e-8)
        if self.advantage_weighting == "softmax":
            advantages = len(advantages) * torch.softmax(
                advantages / self.weighting_temperature, dim=0
            )
        return advantages

    def _record_train_logs(
        self,
        logabsdet: torch.Tensor,
        cond: torch.Tensor,
        learning_rate: float,
        clip_range: float,
        loss: float,
        **means: Any,
    ) -> None:
        """SB3 PPO's ``train/*`` keys with PPO's meanings, plus ``jacobian/*`` (log|det
        J_{F⁻¹}(y0)| of the rollout, conditioning, σ_x).

        As in PPO: ``train/approx_kl`` is the mean over the last epoch's minibatches, ``train/loss``
        the last minibatch's total loss, ``train/n_updates`` the epochs run so far (stdout only),
        ``train/explained_variance`` that of the critic's values for the returns (only with a
        critic, ``advantage="gae"``), ``train/std`` the mean noise scale σ_x (PPO's is the action
        Gaussian's; here the Gaussian is on x, before F).
        """
        logger = self.logger
        for name in (
            "policy_gradient_loss",
            "value_loss",
            "entropy_loss",
            "approx_kl",
            "clip_fraction",
        ):
            logger.record(f"train/{name}", float(np.mean(means[name])))
        logger.record("train/loss", loss)
        if self.policy.has_critic:
            buffer = self.rollout_buffer
            logger.record(
                "train/explained_variance",
                float(explained_variance(buffer.values.flatten(), buffer.returns.flatten())),
            )
        sigma = float(self.policy.log_sigma.detach().exp().mean())
        logger.record("train/std", sigma)
        logger.record("train/learning_rate", learning_rate)
        logger.record("train/clip_range", clip_range)
        logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        logger.record("jacobian/cond_max", float(cond.max()) if cond.numel() else 1.0)
        logger.record("jacobian/reconditions", self.reconditions)
        logger.record("jacobian/logdet_mean", float(logabsdet.mean()))
        logger.record(
            "jacobian/logdet_std", float(logabsdet.std()) if logabsdet.numel() > 1 else 0.0
        )
        if means["grad_norm"]:
            logger.record("jacobian/grad_norm", float(np.mean(means["grad_norm"])))
        logger.record("jacobian/sigma_x", sigma)
        logger.record(
            "jacobian/logdet_hist",
            logabsdet.detach().cpu().float(),
            exclude=("stdout", "log", "json", "csv"),
        )

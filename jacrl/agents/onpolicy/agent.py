"""JacobianAgent: Yan's reward-driven Jacobian rule as an on-policy Gymnasium agent.

``collect_rollouts`` samples y0 = F(x0(s) + σ_x ε) and stores y0; ``train`` is a CleanRL-style
update (design.md §3): REINFORCE or a PPO clipped surrogate on the log-probability of the stored
y0 under the chosen rule (``density``: the exact log p(y0|s); ``volume``: the seed's
ℓ(y0) = log|det J_{F⁻¹}(y0)|), with the advantage from the raw reward (the seed), a running-mean
baseline, or GAE from a value network.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from jacrl.agents.base import BaseAgent
from jacrl.agents.onpolicy.buffer import ADVANTAGES, RolloutBuffer
from jacrl.common.checkpoint import optimizer_state, restore_optimizer
from jacrl.common.errors import ConfigError, NonFiniteError
from jacrl.common.schedules import ScheduleLike, as_schedule
from jacrl.nn import SingularWeightError
from jacrl.policies.invertible import InvertiblePolicy, action_size

UPDATES = ("ppo", "reinforce")
WEIGHTINGS = ("none", "softmax")
ILL_CONDITIONED = ("repair", "raise")
DTYPES = {"float64": torch.float64, "float32": torch.float32}
#: weight of the newest rollout in the running-mean baseline of ``advantage="baseline"``
BASELINE_RATE = 0.1


class JacobianAgent(BaseAgent):
    """An invertible network y = F(x) trained by the reward-driven Jacobian rule.

    Hyperparameter names and defaults follow SB3's PPO where they mean the same thing.

    :param env: see :class:`~jacrl.agents.base.BaseAgent`.
    :param rule: ``"density"`` (exact REINFORCE/PPO gradient of the invertible policy) or
        ``"volume"`` (the seed: grow ℓ(y0) = log|det J_{F⁻¹}(y0)| on positive advantage; biased
        and blind to the state, so it does not learn: docs/volume_rule.md). With
        ``update="ppo"`` the volume ratio is exp(ℓ_new − ℓ_old).
    :param advantage: ``"gae"`` (value net, GAE(λ)), ``"baseline"`` (discounted return minus a
        running mean) or ``"reward"`` (raw reward r_t, the seed; never normalised — on CartPole
        every reward is +1, so it carries no ranking). Advantages of the first two are
        normalised per minibatch, as SB3's PPO does.
    :param update: ``"ppo"`` (clipped surrogate, ``n_epochs`` of minibatches, optional
        ``target_kl`` stop) or ``"reinforce"`` (one gradient step on −A·log p per rollout).
    :param embed: ``"mlp"`` (learned lift x0 = g(s)) or ``"pad"`` (zero-padded observation, the
        seed's fixed embedding; needs ``width`` >= observation size).
    :param width: n, the width of F; default max(observation size, action size k).
    :param depth: blocks of F; 0 means no F (a Gaussian policy on the lift: the ablation).
    :param parameterization: ``"inverse"`` (Yan's V = W⁻¹) or ``"lu"`` (invertible by
        construction).
    :param activation: F's invertible activation: ``"asinh"``, ``"smooth_leaky_relu"`` or
        ``"leaky_relu"`` (design §3b: its piecewise-constant log σ′ gives the volume rule the same
        gradient for every input). ``None`` picks by rule: ``"asinh"`` for ``density``, whose
        Gaussian term keeps F⁻¹(y0) near the lift; ``"smooth_leaky_relu"`` for ``volume``, whose
        score ℓ(y0) alone is unbounded: under asinh its log cosh(u) terms grow with |u|, the rule
        drives the inverse path's pre-activations apart until ``sinh`` overflows (the 10⁶-step
        soak failed at 1.4·10⁵ steps), while linear tails cap log (σ⁻¹)′ at −log α.
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
    :param target_kl: skip the rest of an update once a minibatch's approximate KL exceeds
        1.5 × this (SB3's threshold; that minibatch's step is kept, as in CleanRL). The ratio is
        of the full n-dimensional density of y0, so it clips often (design §3b); on CartPole
        0.02 turned late collapses into stable 500s (agents/jacobian.yml).
    :param normalize_obs: running observation normalisation (saved with the agent).
    :param lift_hidden: hidden sizes of the lift (``embed="mlp"``).
    :param value_hidden: hidden sizes of the value net (``advantage="gae"``).
    :param max_cond: largest cond(V_l) allowed; checked after every update and at every rollout,
        so the agent never acts on a garbage inverse.
    :param ill_conditioned: what an update that drives some cond(V_l) past ``max_cond`` does:
        ``"repair"`` (default) projects that layer back to cond = max_cond/2 by raising its small
        singular values (``InvertibleMLP.recondition``), counted in ``jacobian/reconditions`` and
        warned about once; ``"raise"`` stops with ``SingularWeightError``. Weights that arrive
        ill-conditioned (``load``, ``set_parameters``) are always refused, never repaired. The
        density rule never needed a repair in 10⁶-step soaks; the volume rule with
        ``parameterization="inverse"`` does (its log|det V| gradient V⁻ᵀ grows as 1/s_min, so
        negative advantages collapse the smallest singular value).
    :param dtype: ``"float64"`` (default; float32 inverses lose accuracy as cond(V) grows) or
        ``"float32"`` for F and the density.
    :param volume_objective: volume rule only (docs/volume_rule.md): ``"logdet"`` (default; ℓ)
        or ``"absdet"`` (the seed's |J| itself, eq. 11: ∇|J| = |J|·∇ℓ; REINFORCE only, since a
        ratio of |J| is the same as a ratio of exp ℓ).
    :param volume_hold: volume rule only: ``"y0"`` (default, the seed's ∂y0/∂V ≡ 0) or ``"x0"``
        (hold the input x that produced y0 and grow ℓ(F(x)) = −log|det J_F(x)|: make F contract
        around x, so a bigger neighbourhood of x maps near y0 — the seed's words, read literally).
    :param advantage_weighting: ``"none"`` (default) or ``"softmax"``: replace each minibatch's
        advantages by positive weights w = N·softmax(A/τ) (mean 1), reward-weighted averaging in
        the style of reward-weighted regression (Peters & Schaal 2007) — one reading of the seed's
        "strengthen the mapping in proportion to the reward". (Dividing by Σ|r| only rescales the
        step, which Adam undoes, so it is not offered.)
    :param weighting_temperature: τ of ``advantage_weighting="softmax"``, in units of the
        (normalised, unless ``advantage="reward"``) advantage.
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
        rule: str = "density",
        advantage: str = "gae",
        update: str = "ppo",
        embed: str = "mlp",
        width: int | None = None,
        depth: int = 3,
        parameterization: str = "inverse",
        activation: str | None = None,
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
        ill_conditioned: str = "repair",
        dtype: str = "float64",
        volume_objective: str = "logdet",
        volume_hold: str = "y0",
        advantage_weighting: str = "none",
        weighting_temperature: float = 1.0,
        nonfinite: str = "raise",
        tensorboard_log: str | os.PathLike[str] | None = None,
        seed: int | None = None,
        device: torch.device | str = "auto",
        verbose: int = 0,
        observation_space: spaces.Space | None = None,
        action_space: spaces.Space | None = None,
    ) -> None:
        for name, value, accepted in (
            ("advantage", advantage, ADVANTAGES),
            ("update", update, UPDATES),
            ("dtype", dtype, tuple(DTYPES)),
            ("advantage_weighting", advantage_weighting, WEIGHTINGS),
            ("ill_conditioned", ill_conditioned, ILL_CONDITIONED),
        ):
            if value not in accepted:
                raise ConfigError(f"{name}={value!r}: expected one of {accepted}")
        if volume_objective == "absdet" and update != "reinforce":
            raise ConfigError(
                "volume_objective='absdet' needs update='reinforce': a PPO ratio of |J| is the "
                "ratio of exp ℓ, i.e. the same update as 'logdet'"
            )
        if not weighting_temperature > 0:
            raise ConfigError(f"weighting_temperature={weighting_temperature}: must be positive")
        if n_steps < 1 or batch_size < 1 or n_epochs < 1:
            raise ConfigError("n_steps, batch_size and n_epochs must be positive")
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
        self.rule, self.advantage, self.update, self.embed = rule, advantage, update, embed
        self.width, self.depth, self.parameterization = width, depth, parameterization
        if activation is None:
            activation = "asinh" if rule == "density" else "smooth_leaky_relu"
        self.activation, self.sigma_x, self.learn_sigma = activation, sigma_x, learn_sigma
        self.n_steps, self.batch_size, self.n_epochs = n_steps, batch_size, n_epochs
        self.gamma, self.gae_lambda, self.clip_range = gamma, gae_lambda, clip_range
        self.ent_coef, self.vf_coef, self.max_grad_norm = ent_coef, vf_coef, max_grad_norm
        self.learning_rate, self.target_kl = learning_rate, target_kl
        self.lift_hidden, self.value_hidden = tuple(lift_hidden), tuple(value_hidden)
        self.max_cond, self.ill_conditioned, self.dtype = max_cond, ill_conditioned, dtype
        #: layers projected back under max_cond so far (``ill_conditioned="repair"``)
        self.reconditions = 0
        self.volume_objective, self.volume_hold = volume_objective, volume_hold
        self.advantage_weighting, self.weighting_temperature = (
            advantage_weighting,
            weighting_temperature,
        )
        self._lr_schedule = as_schedule("learning_rate", learning_rate)
        self._clip_schedule = as_schedule("clip_range", clip_range)

        obs_dim = int(self.observation_space.shape[0])
        self.n = width if width is not None else max(obs_dim, action_size(self.action_space))  # type: ignore[arg-type]
        self.policy = InvertiblePolicy(
            obs_dim,
            self.action_space,  # type: ignore[arg-type]
            n=self.n,
            depth=depth,
            rule=rule,
            embed=embed,
            parameterization=parameterization,
            activation=activation,
            sigma_x=sigma_x,
            learn_sigma=learn_sigma,
            lift_hidden=self.lift_hidden,
            value_hidden=self.value_hidden if advantage == "gae" else None,
            max_cond=max_cond,
            dtype=DTYPES[dtype],
            volume_objective=volume_objective,
            volume_hold=volume_hold,
        ).to(self.device)
        self._trained_parameters = [p for p in self.policy.parameters() if p.requires_grad]
        # fused: one kernel per dtype group instead of ~8 ops per parameter tensor (the update
        # is dominated by per-op overhead at these sizes). Deterministic run to run; it rounds
        # differently from the single-tensor loop, and it writes the parameters without bumping
        # their version counters, so train() invalidates the acting snapshots itself.
        self.optimizer = torch.optim.Adam(
            self._trained_parameters, lr=self._lr_schedule(1.0), eps=1e-5, fused=True
        )
        self.rollout_buffer = RolloutBuffer(
            n_steps, self.n_envs, obs_dim, self.n, dtype=np.dtype(dtype).type
        )
        #: running mean of discounted returns, the baseline of ``advantage="baseline"``
        self.return_baseline: float | None = None
        self._last_values = np.zeros(self.n_envs)

    # ----------------------------------------------------------------------------------------
    def _training_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors, extra = super()._training_state()
        optimizer_tensors, optimizer_extra = optimizer_state(self.optimizer)
        extra.update(
            optimizer=optimizer_extra,
            return_baseline=self.return_baseline,
            reconditions=self.reconditions,
        )
        return {**tensors, **optimizer_tensors}, extra

    def _load_training_state(self, tensors: dict[str, torch.Tensor], extra: dict[str, Any]) -> None:
        super()._load_training_state(tensors, extra)
        restore_optimizer(self.optimizer, tensors, extra["optimizer"])
        self.return_baseline = extra["return_baseline"]
        self.reconditions = extra.get("reconditions", 0)

    def _predict(self, obs: torch.Tensor, deterministic: bool) -> np.ndarray:
        # the acting snapshot is kept across calls until the weights change (no inverse or SVD
        # per call); one finiteness check per call, so no NaN reaches the caller as an action
        with torch.inference_mode():
            y0 = self.policy.actor()(obs.to(self.device), deterministic)
            if not bool(torch.isfinite(y0).all()):
                raise NonFiniteError(
                    "predict: the pre-action y0 is not finite; the policy's weights overflow"
                )
        return self.policy.to_env_actions(y0)

    def set_parameters(self, params: Mapping[str, torch.Tensor], exact_match: bool = True) -> None:
        super().set_parameters(params, exact_match)
        self.policy.invalidate()

    def collect_rollouts(self, callback: BaseCallback) -> bool:
        """Fill the rollout buffer with ``n_steps`` steps of every env (SB3's order of calls).

        The weights are fixed during a rollout, so the policy's acting snapshot (W_l = V_l⁻¹,
        σ_x, conditioning and finiteness of the weights checked) is taken once; every step is then
        a few plain tensor operations. The stored pre-actions are checked once, at the end.
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
            policy.net.check_conditioning()  # names the layer if F's weights are the cause
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
        x = None
        if policy.needs_input:
            # the inputs that produced y0 under the weights that acted, held fixed in train
            x = policy.net.inverse(y0)
            buffer.x[:] = x.reshape(*shape, -1).cpu().numpy()
        log_probs, logabsdet = policy.log_prob(obs, y0, x)
        buffer.log_probs[:] = log_probs.reshape(shape).cpu().numpy()
        buffer.logabsdet[:] = logabsdet.reshape(shape).cpu().numpy()
        if policy.value_net is None:
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
        """One update from the rollout: CleanRL's PPO loop, on the log-probability of y0."""
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
        normalize_advantage = self.advantage != "reward"

        pg_losses, value_losses, entropy_losses, clip_fractions, approx_kls, grad_norms = (
            [] for _ in range(6)
        )
        continue_training = True
        for _epoch in range(n_epochs):
            b_inds = torch.randperm(buffer_size, device=self.device)
            for start in range(0, buffer_size, batch_size):
                mb_inds = b_inds[start : start + batch_size]
                values, log_prob, entropy = policy.evaluate_actions(
                    rollout.obs[mb_inds],
                    rollout.y0[mb_inds],
                    rollout.x[mb_inds] if policy.needs_input else None,
                )
                logratio = log_prob - rollout.log_probs[mb_inds]
                ratio = logratio.exp()
                with torch.no_grad():
                    # http://joschu.net/blog/kl-approx.html
                    approx_kl = ((ratio - 1) - logratio).mean().item()
                    clip_fractions.append(((ratio - 1.0).abs() > clip_range).double().mean().item())
                approx_kls.append(approx_kl)

                advantages = rollout.advantages[mb_inds]
                if normalize_advantage and len(mb_inds) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
                if self.advantage_weighting == "softmax":
                    advantages = len(mb_inds) * torch.softmax(
                        advantages / self.weighting_temperature, dim=0
                    )

                # Policy loss
                if self.update == "ppo":
                    pg_loss1 = -advantages * ratio
                    pg_loss2 = -advantages * torch.clamp(ratio, 1 - clip_range, 1 + clip_range)
                    pg_loss = torch.max(pg_loss1, pg_loss2).mean()
                else:
                    pg_loss = -(advantages * log_prob).mean()

                # Value loss
                if policy.value_net is not None:
                    v_loss = 0.5 * ((values - rollout.returns[mb_inds]) ** 2).mean()
                else:
                    v_loss = torch.zeros((), device=self.device)

                # Entropy loss
                entropy_loss = -entropy.mean()

                loss = pg_loss + self.ent_coef * entropy_loss + self.vf_coef * v_loss
                if not torch.isfinite(loss):
                    raise NonFiniteError(
                        f"the loss is {loss.item()} at env step {self.num_timesteps} (policy "
                        f"{pg_loss.item()}, value {v_loss.item()}); lower learning_rate or "
                        "max_cond, or check the rewards"
                    )
                optimizer.zero_grad()
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    self._trained_parameters, self.max_grad_norm
                )
                if not torch.isfinite(grad_norm):
                    raise NonFiniteError(
                        f"non-finite gradient norm at env step {self.num_timesteps}; lower "
                        "learning_rate or max_cond"
                    )
                optimizer.step()
                pg_losses.append(pg_loss.item())
                value_losses.append(v_loss.item())
                entropy_losses.append(entropy_loss.item())
                grad_norms.append(grad_norm.item())

                if self.target_kl is not None and approx_kl > 1.5 * self.target_kl:
                    continue_training = False
                    break
            if not continue_training:
                break
        policy.invalidate()  # fused Adam's writes are invisible to the version-keyed caches

        # Conditioning: repair or fail loudly rather than act through a near-singular V (one SVD
        # per layer per update, more only when repairing; the next rollout's acting snapshot
        # reuses this check)
        try:
            conds = policy.net.check_conditioning()
        except SingularWeightError:
            if self.ill_conditioned == "raise" or not self._recondition():
                raise  # or non-finite weights, which no projection repairs
            conds = policy.net.check_conditioning()

        self._record_train_logs(
            rollout.logabsdet,
            conds,
            learning_rate=learning_rate,
            clip_range=clip_range,
            policy_loss=pg_losses,
            value_loss=value_losses,
            entropy_loss=entropy_losses,
            approx_kl=approx_kls,
            clip_fraction=clip_fractions,
            grad_norm=grad_norms,
        )

    def _recondition(self) -> bool:
        """Project layers past ``max_cond`` back under it; count them, warn the first time;
        return whether any was repaired."""
        repaired = self.policy.net.recondition()
        if not repaired:
            return False
        if not self.reconditions:
            warnings.warn(
                f"env step {self.num_timesteps}: the update drove cond(V) of layer(s) {repaired} "
                f"past max_cond={self.max_cond:g}; projected back to max_cond/2 "
                "(ill_conditioned='repair'; 'raise' stops instead). Later repairs are counted in "
                "jacobian/reconditions.",
                stacklevel=2,
            )
        self.reconditions += len(repaired)
        return True

    def _record_train_logs(
        self,
        logabsdet: torch.Tensor,
        cond: torch.Tensor,
        learning_rate: float,
        clip_range: float,
        **means: Any,
    ) -> None:
        """SB3's ``train/*`` keys plus ``jacobian/*`` (log|det J_{F⁻¹}(y0)| of the rollout)."""
        logger = self.logger
        for name in ("policy_loss", "value_loss", "entropy_loss", "approx_kl", "clip_fraction"):
            logger.record(f"train/{name}", float(np.mean(means[name])))
        logger.record("train/learning_rate", learning_rate)
        logger.record("train/clip_range", clip_range)
        logger.record("train/n_updates", len(means["policy_loss"]), exclude="tensorboard")
        logger.record("jacobian/cond_max", float(cond.max()) if cond.numel() else 1.0)
        logger.record("jacobian/reconditions", self.reconditions)
        logger.record("jacobian/logdet_mean", float(logabsdet.mean()))
        logger.record(
            "jacobian/logdet_std", float(logabsdet.std()) if logabsdet.numel() > 1 else 0.0
        )
        logger.record("jacobian/grad_norm", float(np.mean(means["grad_norm"])))
        logger.record("jacobian/sigma_x", float(self.policy.log_sigma.detach().exp().mean()))
        logger.record(
            "jacobian/logdet_hist",
            logabsdet.detach().cpu().float(),
            exclude=("stdout", "log", "json", "csv"),
        )

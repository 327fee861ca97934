"""Rollout storage and the three advantage estimators of the Jacobian agent.

Like SB3's ``RolloutBuffer``, arrays are ``(n_steps, n_envs, ...)``; unlike it, the stored "action"
is the continuous pre-action y0 (n-dimensional, float64), because both learning rules score y0,
not the env action read off it.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, get_args

import numpy as np
import torch
from torch import Tensor

from jacrl.common.errors import check_choice

#: The advantage estimators of :meth:`RolloutBuffer.compute_advantages`.
Advantage = Literal["gae", "baseline", "reward"]
ADVANTAGES: tuple[Advantage, ...] = get_args(Advantage)


class RolloutBatch(NamedTuple):
    """A flattened rollout as tensors, indexed by ``mb_inds`` in ``train``."""

    obs: Tensor
    y0: Tensor
    log_probs: Tensor
    advantages: Tensor
    returns: Tensor
    logabsdet: Tensor
    #: the stored inputs x (``store_inputs`` only)
    x: Tensor | None


class RolloutBuffer:
    """One rollout of ``n_steps`` vectorised steps.

    :param n_steps: steps per env per rollout.
    :param n_envs: parallel envs.
    :param obs_dim: flat observation size.
    :param n: width of the invertible network (size of y0).
    :param dtype: the invertible network's dtype: y0 and x are stored in it, so scoring them
        needs no cast (and a float32 network gets exactly the pre-actions it produced).
    :param store_inputs: also keep the inputs x that produced y0 (``volume_hold="x0"`` scores
        them; see ``InvertiblePolicy.needs_input``).
    """

    def __init__(
        self,
        n_steps: int,
        n_envs: int,
        obs_dim: int,
        n: int,
        dtype: type = np.float64,
        store_inputs: bool = False,
    ) -> None:
        self.n_steps, self.n_envs = n_steps, n_envs
        self.obs = np.zeros((n_steps, n_envs, obs_dim), dtype=np.float32)
        self.y0: np.ndarray = np.zeros((n_steps, n_envs, n), dtype=dtype)
        #: the inputs x = F⁻¹(y0) under the weights that acted (``store_inputs`` only)
        self.x: np.ndarray | None = (
            np.zeros((n_steps, n_envs, n), dtype=dtype) if store_inputs else None
        )
        self.rewards = np.zeros((n_steps, n_envs), dtype=np.float64)
        self.episode_starts = np.zeros((n_steps, n_envs), dtype=np.float64)
        self.values = np.zeros((n_steps, n_envs), dtype=np.float64)
        self.log_probs = np.zeros((n_steps, n_envs), dtype=np.float64)
        self.logabsdet = np.zeros((n_steps, n_envs), dtype=np.float64)
        self.advantages = np.zeros((n_steps, n_envs), dtype=np.float64)
        self.returns = np.zeros((n_steps, n_envs), dtype=np.float64)
        self.reset()

    def reset(self) -> None:
        """Start a new rollout."""
        self.pos = 0
        self.truncations: list[tuple[int, int, np.ndarray]] = []

    def add(
        self,
        obs: np.ndarray,
        y0: np.ndarray,
        reward: np.ndarray,
        episode_start: np.ndarray,
        truncated_obs: dict[int, np.ndarray],
    ) -> None:
        """Store one vectorised step.

        :param episode_start: whether ``obs`` is the first observation of its episode.
        :param truncated_obs: env index -> final observation, for episodes this step truncated
            (time limit), whose value the agent bootstraps into the reward once the rollout
            is scored.
        """
        t = self.pos
        self.obs[t], self.y0[t], self.rewards[t], self.episode_starts[t] = (
            obs,
            y0,
            reward,
            episode_start,
        )
        self.truncations += [(t, env, final) for env, final in truncated_obs.items()]
        self.pos += 1

    @property
    def full(self) -> bool:
        return self.pos == self.n_steps

    def compute_advantages(
        self,
        advantage: Advantage,
        last_values: np.ndarray,
        dones: np.ndarray,
        gamma: float,
        gae_lambda: float,
        baseline: float | None,
    ) -> float:
        """Fill ``advantages`` and ``returns`` (the value target) for ``advantage``:

        - ``"gae"``: GAE(λ) (Schulman et al. 2016) from the critic, bootstrapped from
          ``last_values`` where the rollout cuts an episode;
        - ``"baseline"``: discounted return-to-go G_t within the rollout (no critic, so a cut
          episode is not bootstrapped) minus ``baseline``, a running mean of G (the mean of this
          rollout's G when ``baseline`` is None);
        - ``"reward"``: the raw reward r_t (the seed's signal; no critic, no discounting).

        :param dones: whether each env's last step ended its episode.
        :return: the mean discounted return of this rollout (to update the running baseline).
        """
        check_choice("advantage", advantage, ADVANTAGES)
        if advantage == "reward":
            self.advantages[:] = self.returns[:] = self.rewards
            return float(self.rewards.mean())
        values = self.values if advantage == "gae" else np.zeros_like(self.values)
        next_values = last_values if advantage == "gae" else np.zeros_like(last_values)
        lam = gae_lambda if advantage == "gae" else 1.0
        next_non_terminal = 1.0 - dones.astype(np.float64)
        lastgaelam = np.zeros(self.n_envs)
        for t in reversed(range(self.n_steps)):
            if t < self.n_steps - 1:
                next_non_terminal = 1.0 - self.episode_starts[t + 1]
                next_values = values[t + 1]
            delta = self.rewards[t] + gamma * next_values * next_non_terminal - values[t]
            lastgaelam = delta + gamma * lam * next_non_terminal * lastgaelam
            self.advantages[t] = lastgaelam
        self.returns[:] = self.advantages + values
        if advantage == "baseline":
            self.advantages -= self.returns.mean() if baseline is None else baseline
        return float(self.returns.mean())

    def tensors(self, device: torch.device) -> RolloutBatch:
        """The rollout flattened to ``(n_steps * n_envs, ...)`` tensors on ``device``."""

        def flat(array: np.ndarray) -> Tensor:
            return torch.as_tensor(array.reshape(self.n_steps * self.n_envs, *array.shape[2:])).to(
                device
            )

        return RolloutBatch(
            obs=flat(self.obs),
            y0=flat(self.y0),
            log_probs=flat(self.log_probs),
            advantages=flat(self.advantages),
            returns=flat(self.returns).float(),
            logabsdet=flat(self.logabsdet),
            x=None if self.x is None else flat(self.x),
        )

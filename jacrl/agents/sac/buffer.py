"""The replay buffer of :class:`~jacrl.agents.sac.JacobianSAC` (SB3's ``ReplayBuffer``, reduced).

Arrays are ``(buffer_size // n_envs, n_envs, ...)`` NumPy arrays written in a ring, as in SB3, and
sampled uniformly with NumPy's global generator (so a checkpoint of the RNG states and of the
buffer decides every later batch). Two differences from SB3:

- the stored action is the env action itself (env units, inside the Box), not a rescaling to
  [-1, 1]: the learner scores stored and proposed actions with the exact log π(a|s) of the env
  action (docs/method.md §7), and the critic rescales its own input;
- the buffer is saved without pickle: :meth:`ReplayBuffer.state` returns the filled part as
  tensors plus ``pos``/``full`` as JSON, for ``BaseAgent``'s training checkpoints.

Time limits are handled as SB3's ``handle_timeout_termination=True``: a transition whose episode
was *truncated* keeps ``done = 0`` in the sampled batch, so its target bootstraps from the true
final observation (stored as ``next_obs``); only a real termination stops the bootstrap.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from jacrl.common.errors import CheckpointError, ConfigError

#: the arrays a checkpoint stores, by name
FIELDS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


class ReplayBatch(NamedTuple):
    """A sampled batch as tensors (SB3's ``ReplayBufferSamples``)."""

    observations: Tensor  #: (batch, obs_dim), normalised as the agent stored them
    actions: Tensor  #: (batch, k), env units
    next_observations: Tensor  #: (batch, obs_dim)
    dones: Tensor  #: (batch,), 1 only for a termination (a truncation bootstraps)
    rewards: Tensor  #: (batch,)


class ReplayBuffer:
    """A ring of the last ``buffer_size`` transitions, summed over the ``n_envs`` copies.

    :param buffer_size: transitions kept in all (each env gets ``buffer_size // n_envs`` slots,
        at least one, as in SB3).
    :param n_envs: parallel envs written at each :meth:`add`.
    :param obs_dim: flat observation size.
    :param action_dim: k, the size of the Box action.
    """

    def __init__(self, buffer_size: int, n_envs: int, obs_dim: int, action_dim: int) -> None:
        if buffer_size < 1 or n_envs < 1:
            raise ConfigError(f"buffer_size={buffer_size}, n_envs={n_envs}: both must be >= 1")
        self.buffer_size = max(buffer_size // n_envs, 1)
        self.n_envs, self.obs_dim, self.action_dim = n_envs, obs_dim, action_dim
        shape = (self.buffer_size, n_envs)
        self.observations = np.zeros((*shape, obs_dim), dtype=np.float32)
        self.next_observations = np.zeros((*shape, obs_dim), dtype=np.float32)
        self.actions = np.zeros((*shape, action_dim), dtype=np.float32)
        self.rewards = np.zeros(shape, dtype=np.float32)
        self.dones = np.zeros(shape, dtype=np.float32)
        self.timeouts = np.zeros(shape, dtype=np.float32)
        self.pos = 0
        self.full = False

    def size(self) -> int:
        """Vectorised steps stored (multiply by ``n_envs`` for transitions)."""
        return self.buffer_size if self.full else self.pos

    def add(
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        dones: np.ndarray,
        timeouts: np.ndarray,
    ) -> None:
        """Store one vectorised step (arrays with a leading ``n_envs`` axis; copied).

        :param next_obs: the observation after ``actions``: for an env whose episode ended this
            step, its final observation, not the first one of the next episode.
        :param dones: the episode ended (terminated or truncated).
        :param timeouts: the episode was truncated (a time limit): bootstrapped, see the module.
        """
        self.observations[self.pos] = obs
        self.next_observations[self.pos] = next_obs
        self.actions[self.pos] = np.asarray(actions).reshape(self.n_envs, self.action_dim)
        self.rewards[self.pos] = rewards
        self.dones[self.pos] = dones
        self.timeouts[self.pos] = timeouts
        self.pos += 1
        if self.pos == self.buffer_size:
            self.full, self.pos = True, 0

    def sample(self, batch_size: int, device: torch.device) -> ReplayBatch:
        """``batch_size`` transitions drawn uniformly with replacement (SB3's draw: a slot, then
        an env, both from NumPy's global generator)."""
        batch_inds = np.random.randint(0, self.size(), size=batch_size)  # noqa: NPY002
        env_inds = np.random.randint(0, self.n_envs, size=batch_size)  # noqa: NPY002

        def tensor(array: np.ndarray) -> Tensor:
            return torch.as_tensor(array[batch_inds, env_inds], device=device)

        not_timeout = 1.0 - self.timeouts[batch_inds, env_inds]
        return ReplayBatch(
            observations=tensor(self.observations),
            actions=tensor(self.actions),
            next_observations=tensor(self.next_observations),
            dones=torch.as_tensor(self.dones[batch_inds, env_inds] * not_timeout, device=device),
            rewards=tensor(self.rewards),
        )

    # Checkpoints (no pickle) -----------------------------------------------------------------
    def state(self, prefix: str = "replay_buffer") -> tuple[dict[str, Tensor], dict[str, Any]]:
        """The filled part as ``{prefix.<field>: Tensor}`` plus ``pos``/``full`` as JSON."""
        filled = self.size()
        tensors = {
            f"{prefix}.{name}": torch.from_numpy(getattr(self, name)[:filled].copy())
            for name in FIELDS
        }
        return tensors, {"pos": self.pos, "full": self.full}

    def load_state(
        self, tensors: dict[str, Tensor], extra: dict[str, Any], prefix: str = "replay_buffer"
    ) -> None:
        """Inverse of :meth:`state`.

        :raises CheckpointError: when the saved arrays do not fit this buffer.
        """
        pos, full = int(extra["pos"]), bool(extra["full"])
        filled = self.buffer_size if full else pos
        for name in FIELDS:
            array = getattr(self, name)
            saved = tensors.get(f"{prefix}.{name}")
            expected = (filled, *array.shape[1:])
            if saved is None or tuple(saved.shape) != expected:
                got = None if saved is None else tuple(saved.shape)
                raise CheckpointError(
                    f"the checkpoint's replay buffer field {name!r} has shape {got}, this buffer "
                    f"expects {expected}; resume with the same buffer_size and n_envs"
                )
            array[:filled] = saved.numpy()
        self.pos, self.full = pos, full

"""Episodes in progress at a checkpoint, restored by replay, so checkpointing is invisible.

An env's internal state cannot be saved without pickle, so a checkpoint stores how each env's
current episode *began* — the seed of its reset, or, for an auto-reset without a seed, the state
of the env's generator (``env.unwrapped.np_random``) just before it — and the actions taken since.
A resumed run resets each env the same way and replays those actions; an env that is
deterministic given its seed and actions (Gymnasium's are: their randomness comes from
``np_random``) is then exactly where it was, and the run continues as if never stopped. The
observation the replay ends on is compared with the one the agent saw, bit for bit; an env that
does not reproduce it is refused (:class:`~jacrl.common.errors.CheckpointError`), never resumed
in another state.

:class:`RecordedEpisodes` is the wrapper that keeps the record (outermost, so every reset and step
the ``VecEnv`` makes passes through it, and a replay passes through every wrapper below it:
``Monitor`` counts the replayed steps into the episode's return, ``TimeLimit`` into its length).
The cost is one stored action per env step of the episodes in progress.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from jacrl.common.errors import CheckpointError

PREFIX = "episodes"  # the checkpoint's tensor names: episodes.<env index>.actions, ...


class ActionLog:
    """The actions of one episode in a growing array (amortised O(1) appends, one array rather
    than an object per step, so long episodes stay cheap)."""

    def __init__(self) -> None:
        self._buffer: np.ndarray | None = None
        self._size = 0

    def clear(self) -> None:
        self._size = 0

    def append(self, action: Any) -> None:
        action = np.asarray(action)
        if self._size == 0 and (
            self._buffer is None
            or self._buffer.shape[1:] != action.shape
            or self._buffer.dtype != action.dtype
        ):
            self._buffer = np.empty((64, *action.shape), action.dtype)
        assert self._buffer is not None
        if self._size == len(self._buffer):
            self._buffer = np.concatenate([self._buffer, np.empty_like(self._buffer)])
        self._buffer[self._size] = action
        self._size += 1

    def __len__(self) -> int:
        return self._size

    def array(self, shape: tuple[int, ...]) -> np.ndarray:
        """The actions so far, ``(steps, *shape)`` (``shape`` for an empty log)."""
        if self._buffer is None:
            return np.zeros((0, *shape))
        return self._buffer[: self._size].copy()


class RecordedEpisodes(gym.Wrapper):
    """Record how the current episode began and the actions taken since (see the module)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._start: dict[str, Any] | None = None
        self._actions = ActionLog()
        self._last_obs: np.ndarray | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        rng = None if seed is not None else self.unwrapped.np_random.bit_generator.state
        obs, info = self.env.reset(seed=seed, options=options)
        self._start = {"seed": seed, "rng": rng, "options": deepcopy(options)}
        self._actions.clear()
        self._last_obs = np.array(obs, copy=True)
        return obs, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._actions.append(action)
        self._last_obs = np.array(obs, copy=True)
        return obs, reward, terminated, truncated, info

    def episode_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Tensors (the actions, the last observation) and JSON (how the episode began)."""
        if self._start is None or self._last_obs is None:
            raise CheckpointError("the env has not been reset: there is no episode to record")
        tensors = {
            "actions": torch.as_tensor(self._actions.array(self.action_space.shape or ())),
            "last_obs": torch.as_tensor(self._last_obs),
        }
        return tensors, {**self._start, "steps": len(self._actions)}

    def restore_episode(self, tensors: dict[str, torch.Tensor], extra: dict[str, Any]) -> None:
        """Reset as the recorded episode began and replay its actions.

        :raises CheckpointError: when the replay does not end on the recorded observation.
        """
        if extra["seed"] is None:
            self.unwrapped.np_random.bit_generator.state = extra["rng"]
        self.reset(seed=extra["seed"], options=extra["options"])
        actions = tensors["actions"].numpy()
        for step, action in enumerate(actions):
            _, _, terminated, truncated, _ = self.step(action)
            if (terminated or truncated) and step < len(actions) - 1:
                raise CheckpointError(
                    f"replaying the episode in progress, {self.unwrapped} ended after "
                    f"{step + 1} of {len(actions)} recorded actions: the env is not "
                    "deterministic given its seed and actions, so the run cannot resume"
                )
        expected = tensors["last_obs"].numpy()
        if self._last_obs is None or not np.array_equal(self._last_obs, expected):
            raise CheckpointError(
                f"replaying the episode in progress ({len(actions)} actions) on {self.unwrapped} "
                f"ended on the observation {self._last_obs}, not the recorded {expected}: the env "
                "is not deterministic given its seed and actions, so the run cannot resume "
                "exactly; start it again without the checkpoint"
            )


def recorded(env: gym.Env) -> gym.Env:
    """``env`` inside :class:`RecordedEpisodes` (unless it already is)."""
    return env if isinstance(env, RecordedEpisodes) else RecordedEpisodes(env)


def replayable(venv: VecEnv | None) -> bool:
    """Whether every env of ``venv`` records its episodes (a ``DummyVecEnv`` jacrl built)."""
    return isinstance(venv, DummyVecEnv) and all(
        isinstance(env, RecordedEpisodes) for env in venv.envs
    )


def save_episodes(
    venv: VecEnv, last_obs: np.ndarray, episode_starts: np.ndarray
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """What :func:`restore_episodes` needs: each env's record, and the agent's last observation
    (normalised, as it acts on it) and episode-start flags."""
    assert isinstance(venv, DummyVecEnv)
    tensors = {
        f"{PREFIX}.last_obs": torch.as_tensor(np.array(last_obs, copy=True)),
        f"{PREFIX}.episode_starts": torch.as_tensor(np.array(episode_starts, copy=True)),
    }
    records = []
    for index, env in enumerate(venv.envs):
        assert isinstance(env, RecordedEpisodes)
        env_tensors, record = env.episode_state()
        tensors.update({f"{PREFIX}.{index}.{k}": v for k, v in env_tensors.items()})
        records.append(record)
    return tensors, {"envs": records}


def restore_episodes(
    venv: VecEnv, tensors: dict[str, torch.Tensor], extra: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """Bring every env back into its recorded episode; returns the agent's last observation and
    episode-start flags.

    :raises CheckpointError: for another number of envs, or an env the replay cannot restore.
    """
    assert isinstance(venv, DummyVecEnv)
    records = extra["envs"]
    if len(records) != venv.num_envs:
        raise CheckpointError(
            f"the checkpoint records {len(records)} envs, the agent has {venv.num_envs}"
        )
    for index, (env, record) in enumerate(zip(venv.envs, records, strict=True)):
        assert isinstance(env, RecordedEpisodes)
        start = f"{PREFIX}.{index}."
        env.restore_episode(
            {k[len(start) :]: v for k, v in tensors.items() if k.startswith(start)}, record
        )
    return (
        tensors[f"{PREFIX}.last_obs"].numpy().copy(),
        tensors[f"{PREFIX}.episode_starts"].numpy().copy(),
    )

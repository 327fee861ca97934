"""Every form of env a jacrl agent accepts, turned into one monitored SB3 ``VecEnv``.

A user arrives with an env id, a ``gymnasium.Env``, an SB3 ``VecEnv`` or one of Gymnasium's own
vector envs (``gym.make_vec``, ``SyncVectorEnv``, ``AsyncVectorEnv``). jacrl steps SB3's
``VecEnv`` (same-step autoreset, ``terminal_observation`` in ``info``, as its rollout code and SB3's
callbacks expect), so the other forms are converted here, and the forms that would give a silent
wrong answer are refused with what to pass instead:

- ``VecNormalize``: jacrl agents normalise observations themselves (``normalize_obs=True``, saved
  with the agent); a ``VecNormalize`` on top would normalise them twice, go unsaved, and not be
  synced by ``EvalCallback``;
- a Gymnasium vector env under a vector wrapper: the wrapper acts on the batch, and cannot be
  carried into the envs SB3 steps.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import TypeAlias

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec
from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv
from stable_baselines3.common.env_util import is_wrapped, make_vec_env
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import (
    DummyVecEnv,
    VecEnv,
    VecMonitor,
    VecNormalize,
    is_vecenv_wrapped,
)

from jacrl.common.episode_replay import RecordedEpisodes, recorded
from jacrl.common.errors import ConfigError
from jacrl.envs.registration import check_env_id

__all__ = ["AnyEnv", "as_vec_env"]

#: What a jacrl agent's ``env`` argument may be.
AnyEnv: TypeAlias = "gym.Env | gym.vector.VectorEnv | VecEnv | str"

#: what the refusals below say a user can pass instead
ACCEPTED = (
    "pass an env id with n_envs (JacobianAgent('CartPole-v1', n_envs=8)), a gymnasium.Env, or an "
    "SB3 VecEnv (stable_baselines3.common.env_util.make_vec_env)"
)
#: keys ``gym.make_vec`` adds to a vector env's spec; the rest are the single env's arguments
VECTOR_SPEC_KEYS = ("num_envs", "vectorization_mode", "vector_kwargs", "wrappers")


def as_vec_env(env: AnyEnv, n_envs: int, seed: int | None) -> VecEnv:
    """Turn ``env`` into an SB3 ``VecEnv`` whose episodes reach ``info["episode"]``.

    :param n_envs: copies built for an env id; a vector env brings its own count, and a single
        env instance cannot be copied (``n_envs`` must be 1).
    :param seed: seeds the copies built from an env id (copy ``i`` gets ``seed + i``).
    :raises ConfigError: for ``VecNormalize``, an unknown env id, ``n_envs > 1`` with an env
        instance, a Gymnasium vector env that cannot be rebuilt, or anything else.
    """
    if isinstance(env, VecEnv):
        return _monitored_vec_env(env)
    if isinstance(env, gym.vector.VectorEnv):
        return DummyVecEnv(_single_env_fns(env))
    if isinstance(env, str):
        check_env_id(env)
        return make_vec_env(env, n_envs=n_envs, seed=seed, wrapper_class=RecordedEpisodes)
    if isinstance(env, gym.Env):
        if n_envs != 1:
            raise ConfigError(
                f"n_envs={n_envs} needs an env id (or a VecEnv): one env instance cannot be copied"
            )
        monitored = _monitored(lambda: env)
        return DummyVecEnv([lambda: monitored])
    raise ConfigError(
        f"env must be a gymnasium.Env, an env id string or a VecEnv, got {env!r}; " + ACCEPTED
    )


def _monitored(make: Callable[[], gym.Env]) -> gym.Env:
    """``make()`` inside a ``Monitor``, unless a ``Monitor`` is already somewhere in its wrappers
    (SB3's ``is_wrapped``: an outer ``TimeLimit`` or ``FlattenObservation`` may hide it), and
    outermost a :class:`~jacrl.common.episode_replay.RecordedEpisodes`, so a checkpoint can
    restore the episode in progress."""
    env = make()
    return recorded(env if is_wrapped(env, Monitor) else Monitor(env))


def _monitored_vec_env(env: VecEnv) -> VecEnv:
    """Refuse ``VecNormalize``; add a ``VecMonitor`` when no env reports its episodes."""
    if is_vecenv_wrapped(env, VecNormalize):
        raise ConfigError(
            "VecNormalize is not supported: jacrl agents normalise observations by themselves "
            "(normalize_obs=True, the default; the statistics are saved with the agent and used by "
            "predict, so EvalCallback needs no sync) and a VecNormalize on top would normalise "
            "them twice; rewards are not normalised (advantages are, per minibatch). Pass the "
            "VecEnv without VecNormalize"
        )
    if is_vecenv_wrapped(env, VecMonitor) or any(env.env_is_wrapped(Monitor)):
        return env
    return VecMonitor(env)


def _single_env_fns(env: gym.vector.VectorEnv) -> list[Callable[[], gym.Env]]:
    """Functions that give the single envs of a Gymnasium vector env, each monitored.

    Gymnasium's vector envs autoreset on the *next* step (the step after an episode ends returns
    the first observation and ignores the action), where SB3 and jacrl's rollouts reset in the same
    step, so the vector env itself is not stepped. A ``SyncVectorEnv``'s envs are taken over as
    they are (wrappers included; the vector env should not be stepped afterwards); one made by
    ``gym.make_vec`` in another mode (its own implementation, as
    ``gym.make_vec("CartPole-v1", num_envs=8)``, or ``"async"``) has its envs rebuilt in this
    process from its spec, with its ``wrappers``; another ``AsyncVectorEnv``'s are rebuilt from
    the functions it keeps.
    """
    if env.unwrapped is not env:
        raise ConfigError(
            f"{env} is a Gymnasium vector env under a vector wrapper, which cannot be carried "
            "into the envs jacrl steps; wrap the single envs instead "
            "(gym.make_vec(..., wrappers=[...])) or " + ACCEPTED
        )
    fns: Sequence[Callable[[], gym.Env]]
    if isinstance(env, SyncVectorEnv):
        fns = [functools.partial(_same, e) for e in env.envs]
    elif env.spec is not None and "vectorization_mode" in env.spec.kwargs:
        # rebuilt from the spec rather than from env_fns: gymnasium 1.0's make_vec writes the
        # vector kwargs into the spec its env functions read, so they cannot be called again
        kwargs = {k: v for k, v in env.spec.kwargs.items() if k not in VECTOR_SPEC_KEYS}
        # a vector entry point takes the time limit as an argument, a single env as a wrapper
        limit = kwargs.pop("max_episode_steps", env.spec.max_episode_steps)
        single = dataclasses.replace(env.spec, kwargs=kwargs, max_episode_steps=limit)
        wrappers = tuple(env.spec.kwargs.get("wrappers") or ())
        fns = [functools.partial(_make_wrapped, single, wrappers)] * env.num_envs
    elif isinstance(env, AsyncVectorEnv):
        fns = env.env_fns
    else:
        raise ConfigError(
            f"{env} is a Gymnasium vector env without env functions or a spec to rebuild its envs "
            "from; " + ACCEPTED
        )
    return [functools.partial(_monitored, fn) for fn in fns]


def _same(env: gym.Env) -> gym.Env:
    return env


def _make_wrapped(spec: EnvSpec, wrappers: Sequence[Callable[[gym.Env], gym.Env]]) -> gym.Env:
    env = gym.make(spec)
    for wrapper in wrappers:
        env = wrapper(env)
    return env

"""Stable-Baselines3 baselines (PPO, A2C, DQN) built from jacrl's presets.

They receive exactly the rewards the Jacobian agent receives, log the same TensorBoard keys (SB3's
own), and save to the same run-folder layout, so ``jacrl compare`` can lay them side by side.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch.nn as nn
from gymnasium import spaces
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from jacrl.common.errors import ConfigError, UnsupportedSpaceError

SB3_ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C, "dqn": DQN}

# policy_kwargs may name an activation as a string in YAML ("tanh"); SB3 wants the class.
_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
}


def _policy_kwargs(raw: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    kwargs = dict(raw)
    name = kwargs.get("activation_fn")
    if isinstance(name, str):
        key = name.lower().removeprefix("nn.")
        if key not in _ACTIVATIONS:
            raise ConfigError(
                f"policy_kwargs.activation_fn={name!r} is unknown; accepted: {sorted(_ACTIVATIONS)}"
            )
        kwargs["activation_fn"] = _ACTIVATIONS[key]
    return kwargs


def make_sb3_agent(
    algo: str,
    env: VecEnv,
    hp: Mapping[str, Any] | None = None,
    seed: int | None = None,
    verbose: int = 0,
    device: str = "auto",
) -> BaseAlgorithm:
    """Build an SB3 ``algo`` ("ppo", "a2c" or "dqn") on ``env`` with preset hyperparameters.

    :param hp: constructor keyword arguments (already resolved: schedules as callables); ``policy``
        defaults to ``"MlpPolicy"``; ``policy_kwargs.activation_fn`` may be a name.
    :raises ConfigError: for an unknown algorithm or hyperparameter.
    :raises UnsupportedSpaceError: DQN on a non-Discrete action space.
    """
    if algo not in SB3_ALGORITHMS:
        raise ConfigError(f"unknown SB3 algorithm '{algo}'; accepted: {sorted(SB3_ALGORITHMS)}")
    if algo == "dqn" and not isinstance(env.action_space, spaces.Discrete):
        raise UnsupportedSpaceError(
            f"DQN needs a Discrete action space, the env has {env.action_space}; "
            "use ppo or a2c for continuous actions"
        )
    kwargs = dict(hp or {})
    policy = kwargs.pop("policy", "MlpPolicy")
    kwargs["policy_kwargs"] = _policy_kwargs(kwargs.get("policy_kwargs"))
    cls = SB3_ALGORITHMS[algo]
    try:
        return cls(policy, env, seed=seed, verbose=verbose, device=device, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"{cls.__name__} rejected a hyperparameter: {exc}") from exc

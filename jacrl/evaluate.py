"""Evaluate a saved agent, whichever kind it is (``jacrl eval``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from jacrl.agents.sb3 import SB3_ALGORITHMS
from jacrl.common.errors import ConfigError


def load_agent(model_path: Path, agent: str | None = None) -> Any:
    """Load ``model_path``; the agent type comes from ``agent`` or the run's ``config.yaml``.

    :raises ConfigError: when the type cannot be told or is unknown.
    """
    if agent is None:
        config = model_path.parent / "config.yaml"
        if not config.is_file():
            raise ConfigError(
                f"cannot tell which agent saved {model_path}: no config.yaml beside it; "
                "pass --agent (jacobian, backprop, ppo, a2c or dqn)"
            )
        agent = str(yaml.safe_load(config.read_text())["agent"])
    if agent in SB3_ALGORITHMS:
        return SB3_ALGORITHMS[agent].load(model_path)
    if agent == "jacobian":
        from jacrl.agents import JacobianAgent

        return JacobianAgent.load(model_path)
    if agent == "backprop":
        from jacrl.agents.backprop import BackpropAgent

        return BackpropAgent.load(model_path)
    raise ConfigError(f"unknown agent '{agent}'; accepted: jacobian, backprop, ppo, a2c, dqn")


def evaluate_saved(
    model_path: Path,
    env_id: str,
    episodes: int = 10,
    agent: str | None = None,
    seed: int = 0,
    deterministic: bool = True,
) -> tuple[float, float]:
    """Mean and standard deviation of the episode return of a saved agent on ``env_id``.

    SB3 agents trained with ``normalize`` are evaluated through their saved ``vecnormalize.pkl``.
    """
    if not model_path.is_file():
        raise ConfigError(f"model file {model_path} does not exist")
    if episodes <= 0:
        raise ConfigError(f"--episodes must be a positive number, got {episodes}")
    model = load_agent(model_path, agent)
    env: VecEnv = make_vec_env(env_id, n_envs=1, seed=seed)
    stats = model_path.parent / "vecnormalize.pkl"
    if stats.is_file():
        env = VecNormalize.load(str(stats), env)
        env.training = False
        env.norm_reward = False
    returns, _ = evaluate_policy(
        model,
        env,
        n_eval_episodes=episodes,
        deterministic=deterministic,
        return_episode_rewards=True,
    )
    return float(np.mean(returns)), float(np.std(returns))

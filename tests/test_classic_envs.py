"""Every classic-control and Box2D env trains out of the box: ``jacrl train --agent jacobian
--env ID`` with no flag but a small ``--steps``, i.e. with the env's preset as it stands (the
zoo's PPO rollout and update, agents/jacobian.yml on top), then reloads and acts.

``--steps 1`` still runs one whole rollout and one update, as in SB3. The LunarLander presets'
rollout is 16 envs x 1024 steps, too long for the default suite: there the default suite trains
with a shrunk rollout (``--hp n_envs=2 --hp n_steps=64``) and the unchanged preset runs in the
slow suite. Box2D comes with ``pip install 'jacrl[box2d]'`` (and the dev extra).
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from jacrl.agents import JacobianAgent
from jacrl.cli import main
from jacrl.presets import load_preset
from jacrl.train import MODEL_FILE, run_dir_for

CLASSIC = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1")
BOX2D = ("LunarLander-v3", "LunarLanderContinuous-v3")


def _train_and_act(env_id: str, root: Path, *flags: str) -> None:
    command = ["train", "--agent", "jacobian", "--env", env_id, "--steps", "1"]
    assert main([*command, "--log-root", str(root), "--no-progress", *flags]) == 0
    model = JacobianAgent.load(run_dir_for(root, env_id, "jacobian", 0) / MODEL_FILE)
    env = gym.make(env_id)
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        action, _ = model.predict(obs, deterministic=False)
        assert env.action_space.contains(action)
        obs, reward, *_ = env.step(action)
        assert np.isfinite(reward)


@pytest.mark.parametrize("env_id", CLASSIC)
def test_classic_env_trains_with_its_preset(env_id: str, tmp_path: Path) -> None:
    _train_and_act(env_id, tmp_path)


@pytest.mark.parametrize("env_id", BOX2D)
def test_box2d_env_trains_with_a_shrunk_rollout(env_id: str, tmp_path: Path) -> None:
    assert (
        load_preset("jacobian", env_id)["n_envs"] * load_preset("jacobian", env_id)["n_steps"]
        == 16 * 1024
    )  # why the default suite shrinks it
    _train_and_act(env_id, tmp_path, "--hp", "n_envs=2", "--hp", "n_steps=64")


@pytest.mark.slow
@pytest.mark.parametrize("env_id", BOX2D)
def test_box2d_env_trains_with_its_preset(env_id: str, tmp_path: Path) -> None:
    _train_and_act(env_id, tmp_path)

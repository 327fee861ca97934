"""BackpropAgent: the supervised upper bound learns digits, both engines agree, API round trips."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.logger import configure

import jacrl.envs  # noqa: F401  (registers the jacrl/ ids)
from jacrl.agents.backprop import BackpropAgent
from jacrl.common.errors import ConfigError, JacrlError, UnsupportedSpaceError

DIGITS = "jacrl/DigitsBandit-v0"
TRAIN_SIZE = 1437  # digits training split (80 % of 1797)


def held_out_accuracy(agent: BackpropAgent) -> float:
    """Answer every held-out example once (split="test", one-step episodes)."""
    env = gym.make(DIGITS, split="test")
    n = len(env.unwrapped)  # type: ignore[arg-type]
    obs, _ = env.reset(seed=0)
    correct = 0
    for _ in range(n):
        action, _ = agent.predict(obs, deterministic=True)
        correct += env.step(action)[4]["correct"]
        obs, _ = env.reset()
    return correct / n


def test_digits_held_out_accuracy_after_1_5_20_passes(capsys: pytest.CaptureFixture[str]) -> None:
    start = time.perf_counter()
    agent = BackpropAgent(DIGITS, seed=0)
    accuracies, done = {}, 0
    for passes in (1, 5, 20):
        agent.learn((passes - done) * TRAIN_SIZE, reset_num_timesteps=done == 0)
        done = passes
        accuracies[passes] = held_out_accuracy(agent)
    elapsed = time.perf_counter() - start
    with capsys.disabled():
        print(f"\nBackpropAgent digits held-out accuracy by passes {accuracies} ({elapsed:.1f} s)")
    assert accuracies[20] >= 0.9
    assert elapsed < 60


def test_numpy_and_torch_engines_follow_the_same_trajectory() -> None:
    agents = [BackpropAgent(DIGITS, engine=e, seed=3).learn(320) for e in ("numpy", "torch")]
    params = [a.get_parameters() for a in agents]
    for name in params[0]:
        torch.testing.assert_close(params[0][name], params[1][name], rtol=1e-4, atol=1e-5)
    obs = gym.make(DIGITS, split="test").unwrapped.X[:50]  # type: ignore[attr-defined]
    np.testing.assert_array_equal(agents[0].predict(obs)[0], agents[1].predict(obs)[0])


@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_save_load_round_trip(tmp_path: Path, engine: str) -> None:
    agent = BackpropAgent(DIGITS, engine=engine, hidden=(16, 8), seed=1).learn(200)
    path = agent.save(tmp_path / "backprop")
    obs = gym.make(DIGITS, split="test").unwrapped.X[:40]  # type: ignore[attr-defined]
    predict_only = BackpropAgent.load(path)
    assert predict_only.engine == engine and predict_only.hidden == (16, 8)
    np.testing.assert_array_equal(predict_only.predict(obs)[0], agent.predict(obs)[0])
    # loaded weights reach the numpy engine too (its arrays are views of the torch parameters)
    resumed = BackpropAgent.load(path, env=DIGITS).learn(64, reset_num_timesteps=False)
    assert resumed.num_timesteps == agent.num_timesteps + 64


def test_logs_the_keys_that_overlay_with_the_other_agents(tmp_path: Path) -> None:
    agent = BackpropAgent(DIGITS, n_envs=2, batch_size=32, seed=0, tensorboard_log=tmp_path)
    assert agent.n_steps == 16
    agent.learn(64)
    assert list(tmp_path.glob("BackpropAgent_1/events.out.tfevents.*"))
    agent.set_logger(configure(str(tmp_path / "csv"), ["csv"]))
    agent.learn(320)
    with open(tmp_path / "csv" / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert {"rollout/ep_rew_mean", "train/loss", "train/accuracy"} <= set(rows[-1])
    reward, accuracy = float(rows[-1]["rollout/ep_rew_mean"]), float(rows[-1]["train/accuracy"])
    assert -1.0 <= reward <= 1.0 and 0.0 <= accuracy <= 1.0


def test_refuses_envs_without_labels_or_classes() -> None:
    with pytest.raises(JacrlError, match=r"info\['label'\].*DigitsBandit"):
        BackpropAgent("CartPole-v1")
    with pytest.raises(UnsupportedSpaceError, match="Discrete"):
        BackpropAgent("jacrl/Reach-v0")
    with pytest.raises(ConfigError, match="engine"):
        BackpropAgent(DIGITS, engine="jax")

"""BaseAgent's SB3-compatible API, exercised through JacobianAgent (its first subclass)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure
from stable_baselines3.common.monitor import Monitor

from jacrl.agents import JacobianAgent
from jacrl.common.errors import JacrlError, NonFiniteError, UnsupportedSpaceError

TINY = dict(n_steps=32, batch_size=32, n_epochs=1, lift_hidden=(8,), value_hidden=(8,))


class SpaceEnv(gym.Env):
    """A do-nothing env with the given spaces; optionally emits NaN observations/rewards."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        nan_obs_at: int | None = None,
        inf_reward_at: int | None = None,
    ) -> None:
        self.observation_space, self.action_space = observation_space, action_space
        self.nan_obs_at, self.inf_reward_at, self.t = nan_obs_at, inf_reward_at, 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        self.t += 1
        obs = np.ones(self.observation_space.shape, dtype=np.float32)
        reward = 1.0
        if self.t == self.nan_obs_at:
            obs[0] = np.nan
        if self.t == self.inf_reward_at:
            reward = np.inf
        return obs, reward, False, self.t >= 10, {}


def box(*shape: int) -> spaces.Box:
    return spaces.Box(-1.0, 1.0, shape=shape, dtype=np.float32)


@pytest.mark.parametrize(
    ("observation_space", "action_space"),
    [
        (spaces.Dict({"a": box(2)}), spaces.Discrete(2)),
        (spaces.Tuple((box(2),)), spaces.Discrete(2)),
        (box(4, 4), spaces.Discrete(2)),  # image-shaped Box without a flatten
        (spaces.Discrete(3), spaces.Discrete(2)),
        (box(2), spaces.MultiDiscrete([2, 2])),
        (box(2), spaces.MultiBinary(2)),
        (box(2), box(2, 2)),
    ],
)
def test_unsupported_spaces_are_refused_with_what_is_supported(observation_space, action_space):
    with pytest.raises(UnsupportedSpaceError, match="supported: observations a 1-D Box"):
        JacobianAgent(SpaceEnv(observation_space, action_space))


def test_unknown_env_id_points_to_jacrl_envs():
    with pytest.raises(JacrlError, match="jacrl envs"):
        JacobianAgent("NoSuchEnv-v9")


def test_env_instance_cannot_be_copied_into_several_envs():
    with pytest.raises(JacrlError, match="env id"):
        JacobianAgent(gym.make("CartPole-v1"), n_envs=2)


def test_env_forms_id_instance_and_vecenv():
    for env in ("CartPole-v1", gym.make("CartPole-v1"), make_vec_env("CartPole-v1", n_envs=2)):
        agent = JacobianAgent(env, **TINY)
        assert agent.get_env() is not None
        agent.learn(64)
        assert agent.num_timesteps >= 64


@pytest.mark.parametrize("budget", [0, -5])
def test_non_positive_budget_is_an_error(budget):
    with pytest.raises(JacrlError, match="must be positive"):
        JacobianAgent("CartPole-v1", **TINY).learn(budget)


def test_predict_validates_observations():
    agent = JacobianAgent("CartPole-v1", **TINY)
    with pytest.raises(JacrlError, match=r"shape \(3,\)"):
        agent.predict(np.zeros(3))
    with pytest.raises(NonFiniteError, match="NaN or inf"):
        agent.predict(np.array([0.0, np.nan, 0.0, 0.0]))
    with pytest.raises(JacrlError, match="not numeric"):
        agent.predict(np.array(["a", "b", "c", "d"]))
    action, state = agent.predict(np.zeros(4, dtype=np.float32), deterministic=True)
    assert np.shape(action) == () and state is None
    actions, _ = agent.predict(np.zeros((5, 4)))
    assert actions.shape == (5,)


def test_nonfinite_observation_raises_with_env_step_by_default():
    env = SpaceEnv(box(3), spaces.Discrete(2), nan_obs_at=5)
    with pytest.raises(NonFiniteError, match="observation at env step 5"):
        JacobianAgent(env, **TINY).learn(64)


@pytest.mark.parametrize("mode", ["skip", "clip"])
def test_nonfinite_skip_and_clip_keep_training_finite(mode):
    env = SpaceEnv(box(3), spaces.Discrete(2), nan_obs_at=5, inf_reward_at=7)
    agent = JacobianAgent(env, nonfinite=mode, **TINY).learn(64)
    assert all(torch.isfinite(v).all() for v in agent.get_parameters().values())
    rewards = agent.rollout_buffer.rewards  # the last rollout: steps 33..64, all finite
    assert np.isfinite(rewards).all()
    step = one_step(SpaceEnv(box(3), spaces.Discrete(2), nan_obs_at=1, inf_reward_at=1), mode)
    assert step.rewards[0] == (10.0 if mode == "clip" else 0.0)
    assert step.obs[0, 0] == 0.0 and np.isfinite(step.obs).all()


def one_step(env: gym.Env, mode: str):
    """One env step through BaseAgent._step_env with the given ``nonfinite`` mode."""
    agent = JacobianAgent(env, nonfinite=mode, **TINY)
    agent.get_env().reset()
    callback = CallbackList([])
    callback.init_callback(agent)
    step = agent._step_env(np.zeros(1, dtype=np.int64), callback)
    assert step is not None
    return step


def test_nonfinite_reward_raises_by_default():
    env = SpaceEnv(box(3), spaces.Discrete(2), inf_reward_at=3)
    with pytest.raises(NonFiniteError, match="reward at env step 3"):
        JacobianAgent(env, **TINY).learn(64)


def test_evaluate_policy_and_sb3_callbacks(tmp_path):
    agent = JacobianAgent("CartPole-v1", seed=0, **TINY)
    eval_env = Monitor(gym.make("CartPole-v1"))
    callbacks = [
        EvalCallback(eval_env, eval_freq=64, n_eval_episodes=2, log_path=str(tmp_path / "eval")),
        CheckpointCallback(save_freq=64, save_path=str(tmp_path / "ckpt")),
    ]
    agent.learn(128, callback=callbacks, progress_bar=True)
    assert (tmp_path / "eval" / "evaluations.npz").is_file()
    checkpoints = sorted((tmp_path / "ckpt").glob("*.zip"))
    assert len(checkpoints) == 2
    JacobianAgent.load(checkpoints[-1], env="CartPole-v1")
    mean, std = evaluate_policy(agent, agent.get_env(), n_eval_episodes=2, deterministic=True)
    assert mean > 0 and np.isfinite(std)


def test_callback_can_stop_training():
    calls = []

    def stop_after_ten(locals_, globals_):
        calls.append(1)
        return len(calls) < 10

    agent = JacobianAgent("CartPole-v1", **TINY).learn(1000, callback=stop_after_ten)
    assert agent.num_timesteps == 10


def test_logger_in_an_exact_folder_and_reset_num_timesteps(tmp_path):
    agent = JacobianAgent("CartPole-v1", **TINY)
    agent.set_logger(configure(str(tmp_path / "exact"), ["tensorboard"]))
    agent.learn(64).learn(64, reset_num_timesteps=False)
    assert agent.num_timesteps == 128
    assert list((tmp_path / "exact").glob("events.out.tfevents.*"))


def test_same_seed_gives_identical_weights():
    def train(seed: int) -> dict[str, torch.Tensor]:
        return JacobianAgent("CartPole-v1", seed=seed, n_envs=2, **TINY).learn(128).get_parameters()

    first, second, other = train(3), train(3), train(4)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_observation_normaliser_is_updated_and_used():
    agent = JacobianAgent("CartPole-v1", **TINY).learn(128)
    assert agent.obs_rms.count > 128
    off = JacobianAgent("CartPole-v1", normalize_obs=False, **TINY).learn(64)
    assert np.array_equal(off.normalize(np.full((1, 4), 3.0)), np.full((1, 4), 3.0, np.float32))

"""Every registered jacrl/ env passes Gymnasium's and SB3's checkers and vectorises; the bandit's
label bookkeeping and the reaching dynamics do what their docstrings say."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from test_datasets import write_fake_mnist

import jacrl.envs  # registers the jacrl/ ids
from jacrl.common.errors import JacrlError, NonFiniteError
from jacrl.envs import ClassificationBandit, Reach, list_registered
from jacrl.envs.classification_bandit import MNIST_DIR_ENV
from jacrl.envs.datasets import load_digits_split

ENV_IDS = [spec["id"] for spec in list_registered() if spec["id"].startswith("jacrl/")]


@pytest.fixture(scope="module", autouse=True)
def fake_mnist_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """jacrl/MNISTBandit-v0 reads $JACRL_MNIST_DIR: point it at small MNIST-shaped files."""
    folder = write_fake_mnist(tmp_path_factory.mktemp("mnist"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(MNIST_DIR_ENV, str(folder))
        yield folder


def test_the_shipped_ids_are_registered() -> None:
    assert {"jacrl/DigitsBandit-v0", "jacrl/MNISTBandit-v0", "jacrl/Reach-v0"} <= set(ENV_IDS)
    assert jacrl.envs.__name__ == "jacrl.envs"


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_check_env(env_id: str) -> None:
    gym_check_env(gym.make(env_id).unwrapped)
    gym_check_env(gym.make(env_id, render_mode="rgb_array").unwrapped, skip_render_check=False)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_rgb_array_render(env_id: str) -> None:
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    env.step(env.action_space.sample())
    frame = env.render()
    assert isinstance(frame, np.ndarray) and frame.dtype == np.uint8
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.min() < frame.max()
    env = gym.make(env_id)
    env.reset(seed=0)
    assert env.render() is None


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_check_env_without_warnings(env_id: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_check_env(gym.make(env_id), warn=True)


def _make(env_id: str) -> gym.Env:
    return gym.make(env_id)


@pytest.mark.parametrize("vector_cls", [gym.vector.SyncVectorEnv, gym.vector.AsyncVectorEnv])
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_vector_envs(env_id: str, vector_cls: type[gym.vector.VectorEnv]) -> None:
    envs = vector_cls([partial(_make, env_id) for _ in range(2)])
    try:
        obs, infos = envs.reset(seed=0)
        assert obs.shape == (2, *envs.single_observation_space.shape)
        envs.action_space.seed(0)
        for _ in range(6):
            obs, rewards, _, _, infos = envs.step(envs.action_space.sample())
            assert envs.single_observation_space.contains(obs[0])
            assert np.all(np.isfinite(rewards)) and rewards.shape == (2,)
        if "Bandit" in env_id:
            assert "label" in infos
    finally:
        envs.close()


def test_bandit_labels_pair_with_the_observation_that_was_answered() -> None:
    env = ClassificationBandit(episode_length=3)
    X, y = env.X, env.y
    obs, info = env.reset(seed=1)
    assert np.array_equal(obs, X[info["index"]]) and info["label"] == y[info["index"]]
    for t in range(3):
        shown = obs
        # the label of the shown example is not known before answering (only reset's info has
        # it), so the test looks it up
        row = int(np.flatnonzero((shown == X).all(axis=1))[0])
        answer = (int(y[row]) + t % 2) % 10  # right, wrong, right
        obs, reward, terminated, truncated, info = env.step(answer)
        # step's info describes the example just answered, not the observation returned
        assert np.array_equal(shown, X[info["index"]]) and info["label"] == y[info["index"]]
        assert reward == (1.0 if t % 2 == 0 else -1.0) and info["correct"] == (t % 2 == 0)
        assert terminated == (t == 2) and not truncated
        if not terminated:
            assert not np.array_equal(obs, shown)
    assert np.array_equal(obs, shown)  # the terminal observation is the answered example
    with pytest.raises(gym.error.ResetNeeded):
        env.step(0)


def test_bandit_train_passes_are_shuffled_permutations_and_seeded() -> None:
    env = ClassificationBandit()
    n = len(env)
    first = [env.reset(seed=3)[1]["index"]] + [env.reset()[1]["index"] for _ in range(n - 1)]
    second = [env.reset()[1]["index"] for _ in range(n)]
    assert sorted(first) == list(range(n)) and sorted(second) == list(range(n))
    assert first != second and first != sorted(first)
    assert env.reset(seed=3)[1]["index"] == first[0]


def test_bandit_test_split_visits_the_held_out_set_once_in_order() -> None:
    env = gym.make("jacrl/DigitsBandit-v0", split="test")
    split = load_digits_split()
    n = len(env.unwrapped)
    assert n == len(split.y_test)
    rewards = []
    obs, info = env.reset(seed=0)
    for i in range(n):
        assert info["index"] == i and np.array_equal(obs, split.X_test[i])
        obs, reward, *_ = env.step(0)
        rewards.append(reward)
        obs, info = env.reset()
    accuracy = (np.mean(rewards) + 1) / 2
    assert accuracy == pytest.approx(np.mean(split.y_test == 0))
    assert info["index"] == 0  # the next pass starts over


def test_bandit_on_arrays_and_its_errors() -> None:
    X = np.array([[0.0, 2.0], [1.0, -1.0], [3.0, 0.5]])
    y = np.array([2, 0, 2])
    env = ClassificationBandit(dataset="arrays", X=X, y=y, reward_correct=5.0, reward_wrong=0.0)
    assert env.action_space == gym.spaces.Discrete(3)
    assert env.observation_space.low.min() == -1.0 and env.observation_space.high.max() == 3.0
    _, info = env.reset(seed=0)
    assert env.step(info["label"])[1] == 5.0
    env.reset()
    with pytest.raises(JacrlError, match=r"action must be a class in 0\.\.2"):
        env.step(3)
    with pytest.raises(JacrlError, match=r"by keyword: ClassificationBandit\(X=X, y=y\)"):
        ClassificationBandit(X, y)  # type: ignore[arg-type]
    with pytest.raises(JacrlError, match="X and y go together"):
        ClassificationBandit(X=X)
    with pytest.raises(JacrlError, match="dataset='digits' does not take"):
        ClassificationBandit(dataset="digits", X=X, y=y)
    with pytest.raises(JacrlError, match="no held-out part unless"):
        ClassificationBandit(X=X, y=y, split="test")
    with pytest.raises(JacrlError, match="MNIST's train/test split is fixed"):
        ClassificationBandit(dataset="mnist", test_fraction=0.5)
    with pytest.raises(JacrlError, match="integer class labels"):
        ClassificationBandit(dataset="arrays", X=X, y=np.array([0.5, 1, 2]))
    with pytest.raises(JacrlError, match="unknown dataset 'cifar'"):
        ClassificationBandit(dataset="cifar")  # type: ignore[arg-type]
    with pytest.raises(JacrlError, match="episode_length"):
        ClassificationBandit(episode_length=0)


def test_bandit_infers_arrays_from_x_and_y() -> None:
    """``ClassificationBandit(X=X, y=y)`` is the arrays bandit, the same stream as with
    ``dataset="arrays"`` spelt out."""
    X = np.arange(12.0).reshape(6, 2)
    y = np.array([0, 1, 2, 0, 1, 2])
    inferred = ClassificationBandit(X=X, y=y, episode_length=6)
    explicit = ClassificationBandit("arrays", X=X, y=y, episode_length=6)
    assert len(inferred) == 6 and inferred.action_space == gym.spaces.Discrete(3)
    rows = []
    for env in (inferred, explicit):
        _, info = env.reset(seed=3)
        rows.append([info["index"]] + [env.step(0)[4]["index"] for _ in range(6)])
    assert rows[0] == rows[1] and sorted(rows[0][1:]) == list(range(6))  # one shuffled pass


def test_bandit_holds_out_a_stratified_split_of_arrays() -> None:
    """With ``test_fraction`` the arrays split as digits do: the two envs' rows partition the data,
    every class keeps its share on both sides, and ``split_seed`` fixes which rows are held out."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = np.repeat(np.arange(4), 10)

    def bandit(split: str, seed: int = 0) -> ClassificationBandit:
        return ClassificationBandit(X=X, y=y, test_fraction=0.25, split_seed=seed, split=split)

    train, test = bandit("train"), bandit("test")
    assert len(train) == 30 and len(test) == 10
    both = {tuple(r) for r in np.vstack([train.X, test.X])}
    assert both == {tuple(r) for r in X.astype(np.float32)}  # disjoint, and nothing lost
    assert set(np.bincount(test.y, minlength=4)) <= {2, 3}  # 2.5 of each class, rounded
    assert not np.array_equal(bandit("test", seed=1).X, test.X)
    assert test.observation_space == train.observation_space  # bounds from both parts
    assert train.observation_space.low.min() == np.float32(X.min())
    with pytest.raises(JacrlError, match="stratified by class"):
        ClassificationBandit(X=X[:5], y=np.array([0, 0, 0, 0, 1]), test_fraction=0.4)


def test_mnist_bandit_needs_a_folder(fake_mnist_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = ClassificationBandit(dataset="mnist", mnist_dir=fake_mnist_dir, split="test")
    assert len(env) == 20 and env.observation_space.shape == (784,)
    monkeypatch.delenv(MNIST_DIR_ENV)
    with pytest.raises(JacrlError, match=f"mnist_dir=.*{MNIST_DIR_ENV}"):
        gym.make("jacrl/MNISTBandit-v0")


def test_reach_dynamics_reward_and_goal() -> None:
    env = Reach(n=3, step_size=0.1, goal_radius=0.05)
    obs, info = env.reset(seed=0)
    assert obs.shape == (3,) and info["distance"] == pytest.approx(np.linalg.norm(obs), rel=1e-6)
    action = np.array([2.0, -0.5, 0.0])  # the first component is clipped to 1
    expected = np.clip(obs.astype(np.float64) - 0.1 * np.array([1.0, -0.5, 0.0]), -2, 2)
    obs, reward, *_ = env.step(action)
    np.testing.assert_allclose(obs, expected, atol=1e-6)
    assert reward == pytest.approx(-np.linalg.norm(expected), rel=1e-6)
    for _ in range(100):  # the straight-line policy reaches any goal within 20 steps
        obs, reward, terminated, _, info = env.step(np.clip(obs / 0.1, -1, 1))
        if terminated:
            break
    assert terminated and info["is_success"] and -reward < 0.05
    with pytest.raises(NonFiniteError):
        env.step(np.array([np.nan, 0.0, 0.0]))


def test_reach_truncates_at_the_spec_limit() -> None:
    env = gym.make("jacrl/Reach4D-v0")
    env.reset(seed=0)
    steps, truncated = 0, False
    while not truncated:
        _, _, terminated, truncated, _ = env.step(np.zeros(4, dtype=np.float32))
        steps += 1
        assert not terminated
    assert steps == 50

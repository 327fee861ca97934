"""What an SB3 or Gymnasium user writes out of habit works on jacrl agents, or is refused with
what to write instead: env forms (VecNormalize, Monitor, Gymnasium's vector envs), SB3's
``save`` / ``load`` / ``set_env`` signatures, the exported errors, and the device choice."""

from __future__ import annotations

import importlib
import inspect
import io
import pkgutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv
from stable_baselines3.common.env_util import is_wrapped, make_vec_env
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor, VecNormalize

import jacrl
import jacrl.common.errors
from jacrl.agents import JacobianAgent
from jacrl.agents.base import agent_device
from jacrl.common.errors import ConfigError, JacrlError, UnsupportedSpaceError

TINY = dict(n_steps=32, batch_size=32, n_epochs=1, lift_hidden=(8,), value_hidden=(8,))


def same_weights(a: JacobianAgent, b: JacobianAgent) -> bool:
    pa, pb = a.get_parameters(), b.get_parameters()
    return pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)


# ------------------------------------------------------------------------------------------------
# Env forms


@pytest.mark.parametrize(
    "wrap",
    [lambda venv: VecNormalize(venv), lambda venv: VecMonitor(VecNormalize(venv))],
    ids=["VecNormalize", "VecNormalize-under-VecMonitor"],
)
def test_vecnormalize_is_refused_saying_the_agent_normalises(wrap) -> None:
    env = wrap(DummyVecEnv([lambda: gym.make("CartPole-v1")] * 2))
    with pytest.raises(ConfigError, match=r"normalise observations by themselves.*normalize_obs"):
        JacobianAgent(env, **TINY)
    agent = JacobianAgent("CartPole-v1", n_envs=2, **TINY)
    with pytest.raises(ConfigError, match="VecNormalize is not supported"):
        agent.set_env(env)


def test_a_monitor_under_other_wrappers_is_found_and_not_doubled() -> None:
    env = gym.wrappers.TimeAwareObservation(Monitor(gym.make("CartPole-v1")))
    agent = JacobianAgent(env, **{**TINY, "seed": 0})
    chain, monitors = agent.get_env().envs[0], 0
    while isinstance(chain, gym.Wrapper):
        monitors += isinstance(chain, Monitor)
        chain = chain.env
    assert monitors == 1, agent.get_env().envs[0]  # no second Monitor on top
    agent.learn(512)  # CartPole's episodes last 500 steps at most: at least one ends
    assert agent.ep_info_buffer, "the inner Monitor's episodes reach rollout/ep_rew_mean"


def test_a_vecenv_without_monitor_gets_episode_statistics() -> None:
    bare = DummyVecEnv([lambda: gym.make("CartPole-v1")] * 2)
    agent = JacobianAgent(bare, **TINY).learn(128)
    assert agent.ep_info_buffer, "no episode statistics from a VecEnv without Monitor"
    monitored = make_vec_env("CartPole-v1", n_envs=2)
    assert JacobianAgent(monitored, **TINY).get_env() is monitored  # used as given


@pytest.mark.parametrize(
    "make",
    [
        lambda: gym.make_vec("CartPole-v1", num_envs=2),  # CartPole's own vector implementation
        lambda: gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync"),
        lambda: gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="async"),
        lambda: SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 2),
        lambda: AsyncVectorEnv([lambda: gym.make("CartPole-v1")] * 2),
    ],
    ids=["make_vec", "make_vec-sync", "make_vec-async", "SyncVectorEnv", "AsyncVectorEnv"],
)
def test_gymnasium_vector_envs_train_like_the_env_id(make) -> None:
    """A Gymnasium vector env of CartPole is the same training as ``"CartPole-v1", n_envs=2``:
    same number of envs, same seeds, so bit-identical weights."""
    vector_env = make()
    agent = JacobianAgent(vector_env, seed=0, **TINY)
    assert agent.n_envs == 2 and agent.get_env().num_envs == 2
    agent.learn(128)
    vector_env.close()
    reference = JacobianAgent("CartPole-v1", n_envs=2, seed=0, **TINY).learn(128)
    assert same_weights(agent, reference)
    assert agent.ep_info_buffer


def test_gymnasium_vector_env_keeps_the_single_env_arguments() -> None:
    agent = JacobianAgent(
        gym.make_vec("CartPole-v1", num_envs=2, max_episode_steps=7, sutton_barto_reward=True),
        **TINY,
    )
    env = agent.get_env().envs[0]
    assert env.spec.max_episode_steps == 7 and env.unwrapped._sutton_barto_reward


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_gymnasium_vector_env_keeps_the_single_env_wrappers(mode: str) -> None:
    vector_env = gym.make_vec(
        "CartPole-v1",
        num_envs=2,
        vectorization_mode=mode,
        wrappers=[gym.wrappers.TimeAwareObservation],
    )
    agent = JacobianAgent(vector_env, **TINY)
    assert agent.observation_space.shape == (5,)  # CartPole's 4 and the time
    assert all(is_wrapped(env, gym.wrappers.TimeAwareObservation) for env in agent.get_env().envs)
    agent.learn(64)
    vector_env.close()


def test_a_wrapped_gymnasium_vector_env_is_refused_with_what_to_pass() -> None:
    wrapped = gym.wrappers.vector.NormalizeObservation(
        gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync")
    )
    with pytest.raises(ConfigError, match=r"vector wrapper.*env id with n_envs"):
        JacobianAgent(wrapped, **TINY)


# ------------------------------------------------------------------------------------------------
# save / load / set_env with SB3's signatures


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    agent = JacobianAgent("CartPole-v1", seed=0, **TINY).learn(64)
    return agent.save(tmp_path_factory.mktemp("saved") / "agent")


def test_load_takes_sb3s_keywords(saved: Path, capsys: pytest.CaptureFixture[str]) -> None:
    agent = JacobianAgent.load(
        saved,
        env="CartPole-v1",
        device="cpu",
        custom_objects={"learning_rate": 1e-3, "n_epochs": 2},
        print_system_info=True,
        force_reset=True,
        verbose=0,
    )
    assert agent.learning_rate == 1e-3 and agent.n_epochs == 2
    assert agent.optimizer.param_groups[0]["lr"] == 1e-3
    printed = capsys.readouterr().out
    assert "== CURRENT SYSTEM INFO ==" in printed and "== SAVED MODEL SYSTEM INFO ==" in printed
    assert printed.count(f"- jacrl: {jacrl.__version__}") == 2
    assert printed.count(f"- PyTorch: {torch.__version__}") == 2
    agent.learn(64)


def test_load_validates_custom_objects_and_keywords(saved: Path) -> None:
    with pytest.raises(ConfigError, match=r"\['lr_schedule'\] are not hyperparameters"):
        JacobianAgent.load(saved, custom_objects={"lr_schedule": lambda _: 0.0})
    with pytest.raises(ConfigError, match=r"update='sgd': expected one of"):
        JacobianAgent.load(saved, custom_objects={"update": "sgd"})
    with pytest.raises(ConfigError, match=r"load got \['polcy_kwargs'\]"):
        JacobianAgent.load(saved, polcy_kwargs={})


def test_save_and_load_take_file_objects(saved: Path, tmp_path: Path) -> None:
    agent = JacobianAgent.load(saved)
    buffer = io.BytesIO()
    assert agent.save(buffer) is None
    buffer.seek(0)
    assert same_weights(JacobianAgent.load(buffer), agent)
    with open(tmp_path / "agent.zip", "wb") as file:
        agent.save(file)
    with open(tmp_path / "agent.zip", "rb") as file:
        assert same_weights(JacobianAgent.load(file), agent)


def test_save_exclude_and_include(saved: Path, tmp_path: Path) -> None:
    agent = JacobianAgent.load(saved, custom_objects={"learning_rate": 1e-3})
    path = agent.save(tmp_path / "agent.zip", exclude=["learning_rate", "tensorboard_log"])
    default = inspect.signature(JacobianAgent).parameters["learning_rate"].default
    assert JacobianAgent.load(path).learning_rate == default != 1e-3
    assert JacobianAgent.load(agent.save(tmp_path / "b.zip", include=["gamma"])).gamma == 0.99
    with pytest.raises(ConfigError, match="exclude='policy' is not a hyperparameter"):
        agent.save(tmp_path / "c.zip", exclude=["policy"])
    with pytest.raises(ConfigError, match=r"include='env'.*without pickle"):
        agent.save(tmp_path / "c.zip", include=["env"])


def test_set_env_on_a_loaded_agent(saved: Path) -> None:
    agent = JacobianAgent.load(saved)  # predict-only: no env
    with pytest.raises(JacrlError, match="has no env"):
        agent.learn(64)
    agent.set_env(gym.make("CartPole-v1"))
    agent.learn(64)
    last_obs = agent._last_obs
    agent.set_env(make_vec_env("CartPole-v1", n_envs=1), force_reset=False)
    assert agent._last_obs is last_obs
    agent.set_env("CartPole-v1")
    assert agent._last_obs is None  # force_reset=True: the next learn resets
    with pytest.raises(JacrlError, match=r"the env has 2 envs.*n_envs=1"):
        agent.set_env(make_vec_env("CartPole-v1", n_envs=2))
    with pytest.raises(UnsupportedSpaceError, match="observation space"):
        agent.set_env(gym.make("Acrobot-v1"))


# ------------------------------------------------------------------------------------------------
# Errors


def test_every_error_is_exported_from_jacrl_and_defined_in_one_module() -> None:
    """Every exception class jacrl defines lives in jacrl.common.errors, subclasses JacrlError
    (so one ``except`` catches every refusal) and is importable from ``jacrl``; ``jacrl.nn`` and
    ``jacrl.envs`` re-export theirs as the same classes."""
    defined: dict[str, type] = {}
    for module in pkgutil.walk_packages(jacrl.__path__, "jacrl."):
        for name, obj in vars(importlib.import_module(module.name)).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, Exception)
                and obj.__module__.startswith("jacrl.")
            ):
                defined[name] = obj
    assert {cls.__module__ for cls in defined.values()} == {"jacrl.common.errors"}
    for name in ("CheckpointError", "ConfigError", "DatasetError", "InputShapeError"):
        assert name in defined
    for name, cls in defined.items():
        assert issubclass(cls, JacrlError) and issubclass(cls, ValueError)
        assert getattr(jacrl, name) is cls and name in jacrl.__all__
    assert jacrl.nn.SingularWeightError is jacrl.SingularWeightError
    assert jacrl.nn.InputShapeError is jacrl.InputShapeError
    assert jacrl.envs.DatasetError is jacrl.DatasetError


# ------------------------------------------------------------------------------------------------
# Device


def test_auto_device_is_the_cpu_even_where_cuda_is_available(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # what SB3's "auto" asks
    agent = JacobianAgent("CartPole-v1", device="auto", **TINY)
    assert agent.device == torch.device("cpu")
    assert all(p.device.type == "cpu" for p in agent.policy.parameters())


@pytest.mark.skipif(torch.cuda.is_available(), reason="the fallback is for machines without CUDA")
def test_an_unavailable_gpu_falls_back_to_the_cpu_with_a_warning() -> None:
    with pytest.warns(UserWarning, match="not available here; JacobianAgent runs on the CPU"):
        assert agent_device("cuda", "JacobianAgent") == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
def test_an_explicit_gpu_is_used_with_sb3s_warning(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="run JacobianAgent on the GPU"):
        agent = JacobianAgent("CartPole-v1", seed=0, device="cuda", **TINY)
    assert all(p.device.type == "cuda" for p in agent.policy.parameters())
    agent.learn(64)
    obs = np.zeros((3, 4), dtype=np.float32)
    actions, _ = agent.predict(obs, deterministic=True)
    assert isinstance(actions, np.ndarray) and actions.shape == (3,)
    on_cpu = JacobianAgent.load(agent.save(tmp_path / "gpu.zip"), device="cpu")
    assert np.array_equal(on_cpu.predict(obs, deterministic=True)[0], actions)

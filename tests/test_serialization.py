"""Saved agents: zip of meta.json + weights.pt, atomic, no pickle, clear errors."""

from __future__ import annotations

import json
import zipfile

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.utils import LinearSchedule

from jacrl.agents import JacobianAgent
from jacrl.common.errors import CheckpointError
from jacrl.common.serialization import (
    FORMAT_VERSION,
    META_MEMBER,
    WEIGHTS_MEMBER,
    SavedAgent,
    describe_space,
    read_agent,
    space_from_description,
    write_agent,
)

TINY = dict(n_steps=32, batch_size=32, n_epochs=1, lift_hidden=(8,), value_hidden=(8,))


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[JacobianAgent, object]:
    agent = JacobianAgent(
        "CartPole-v1", seed=0, learning_rate=LinearSchedule(1e-3, 0.0, 1.0), **TINY
    ).learn(64)
    path = agent.save(tmp_path_factory.mktemp("saved") / "agent")
    return agent, path


def rewrite(source, target, meta_update=None, drop=None) -> None:
    """Copy a saved zip, editing meta.json or dropping a member."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for name in src.namelist():
            if name == drop:
                continue
            data = src.read(name)
            if name == META_MEMBER and meta_update:
                data = json.dumps({**json.loads(data), **meta_update}).encode()
            dst.writestr(name, data)


def test_save_adds_zip_and_holds_only_json_and_tensors(saved):
    _, path = saved
    assert path.suffix == ".zip"
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == [META_MEMBER, WEIGHTS_MEMBER]
        meta = json.loads(archive.read(META_MEMBER))
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["class"] == "JacobianAgent"
    assert meta["num_timesteps"] == 64
    assert meta["hyperparameters"]["lift_hidden"] == [8]
    assert meta["hyperparameters"]["learning_rate"] == {"LinearSchedule": [1e-3, 0.0, 1.0]}
    assert meta["observation_space"]["type"] == "Box"
    assert meta["action_space"] == {"type": "Discrete", "n": 2, "start": 0}


@pytest.mark.parametrize("with_env", [False, True])
def test_load_predicts_identical_actions(saved, with_env):
    agent, path = saved
    loaded = JacobianAgent.load(path, env="CartPole-v1" if with_env else None)
    assert loaded.num_timesteps == agent.num_timesteps
    assert isinstance(loaded.learning_rate, LinearSchedule)
    obs = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    expected, _ = agent.predict(obs, deterministic=True)
    actual, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_array_equal(actual, expected)
    for key, value in agent.get_parameters().items():
        assert torch.equal(loaded.get_parameters()[key], value), key
    if with_env:
        loaded.learn(32)


def test_box_spaces_round_trip_including_infinite_bounds():
    space = spaces.Box(np.array([-np.inf, 0.0]), np.array([np.inf, 1.0]), dtype=np.float64)
    described = describe_space(space)
    json.dumps(described, allow_nan=False)
    assert space_from_description(described) == space


def test_truncated_file(saved, tmp_path):
    _, path = saved
    broken = tmp_path / "truncated.zip"
    broken.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        JacobianAgent.load(broken)


def test_corrupt_bytes(tmp_path):
    broken = tmp_path / "corrupt.zip"
    broken.write_bytes(b"this is not a zip file at all" * 10)
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        JacobianAgent.load(broken)


def test_corrupt_weights_member(saved, tmp_path):
    _, path = saved
    broken = tmp_path / "weights.zip"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(broken, "w") as dst:
        dst.writestr(META_MEMBER, src.read(META_MEMBER))
        dst.writestr(WEIGHTS_MEMBER, b"garbage")
    with pytest.raises(CheckpointError, match=r"weights\.pt cannot be read"):
        JacobianAgent.load(broken)


def test_missing_member(saved, tmp_path):
    _, path = saved
    broken = tmp_path / "missing.zip"
    rewrite(path, broken, drop=WEIGHTS_MEMBER)
    with pytest.raises(CheckpointError, match=r"lacks \['weights.pt'\]"):
        JacobianAgent.load(broken)


def test_newer_format_version(saved, tmp_path):
    _, path = saved
    newer = tmp_path / "newer.zip"
    rewrite(path, newer, meta_update={"format_version": FORMAT_VERSION + 1})
    with pytest.raises(CheckpointError, match="newer than"):
        JacobianAgent.load(newer)


def test_wrong_class(saved, tmp_path):
    _, path = saved
    other = tmp_path / "other.zip"
    rewrite(path, other, meta_update={"class": "BackpropAgent"})
    with pytest.raises(CheckpointError, match="holds a BackpropAgent"):
        JacobianAgent.load(other)


def test_mismatched_spaces(saved):
    _, path = saved
    with pytest.raises(CheckpointError, match="observation space"):
        JacobianAgent.load(path, env=gym.make("Acrobot-v1"))


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no saved agent"):
        JacobianAgent.load(tmp_path / "nothing.zip")


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path):
    saved_agent = SavedAgent(
        cls="X",
        hyperparameters={},
        observation_space=describe_space(spaces.Discrete(2)),
        action_space=describe_space(spaces.Discrete(2)),
        num_timesteps=0,
        tensors={"w": torch.arange(3.0)},
    )
    target = tmp_path / "a.zip"
    write_agent(target, saved_agent, "0")
    first = target.read_bytes()
    with pytest.raises(TypeError):  # a failed save keeps the old file and cleans up
        write_agent(target, SavedAgent(**{**vars(saved_agent), "hyperparameters": {1j: 1}}), "0")
    assert target.read_bytes() == first
    assert [p.name for p in tmp_path.iterdir()] == ["a.zip"]
    assert torch.equal(read_agent(target, "X").tensors["w"], torch.arange(3.0))


KILL_SCRIPT = """
import os, signal, sys
from stable_baselines3.common.callbacks import BaseCallback
from jacrl.agents import JacobianAgent

class KillAt(BaseCallback):
    def _on_step(self):
        if self.model.num_timesteps >= int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)
        return True

agent = JacobianAgent("CartPole-v1", seed=0, n_envs=2, **{TINY})
agent.learn(256, callback=KillAt(), checkpoint_every=64, checkpoint_path=sys.argv[1])
"""


def test_resume_after_sigkill_gives_bit_identical_weights(tmp_path):
    """Uninterrupted run vs a run SIGKILLed mid-way and rerun with the same call."""
    import subprocess
    import sys

    def run(path):
        agent = JacobianAgent("CartPole-v1", seed=0, n_envs=2, **TINY)
        agent.learn(256, checkpoint_every=64, checkpoint_path=path)
        return agent.get_parameters()

    reference = run(tmp_path / "reference.zip")
    checkpoint = tmp_path / "killed.zip"
    script = KILL_SCRIPT.replace("{TINY}", repr(TINY))
    killed = subprocess.run([sys.executable, "-c", script, str(checkpoint), "150"], check=False)
    assert killed.returncode == -9
    assert read_agent(checkpoint, "JacobianAgent").num_timesteps == 128
    resumed = run(checkpoint)
    assert reference.keys() == resumed.keys()
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)


def test_checkpoint_of_another_run_is_refused(tmp_path):
    path = tmp_path / "ckpt.zip"
    JacobianAgent("CartPole-v1", seed=0, **TINY).learn(
        64, checkpoint_every=32, checkpoint_path=path
    )
    with pytest.raises(CheckpointError, match="another run"):
        JacobianAgent("CartPole-v1", seed=0, **TINY).learn(
            128, checkpoint_every=32, checkpoint_path=path
        )
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        saved = JacobianAgent("CartPole-v1", **TINY).save(tmp_path / "plain.zip")
        JacobianAgent("CartPole-v1", **TINY).learn(64, checkpoint_every=32, checkpoint_path=saved)


def test_load_predicts_identical_stochastic_actions_after_the_original_cached_its_actor(saved):
    agent, path = saved
    obs = np.random.default_rng(1).normal(size=(64, 4)).astype(np.float32)
    agent.predict(obs)  # the original now holds an acting snapshot; the loaded one builds its own
    loaded = JacobianAgent.load(path)
    torch.manual_seed(3)
    expected, _ = agent.predict(obs)
    torch.manual_seed(3)
    actual, _ = loaded.predict(obs)
    np.testing.assert_array_equal(actual, expected)

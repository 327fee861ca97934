"""Presets from rl-baselines3-zoo itself: the vendored files are the zoo's, every env the zoo
tuned gets its entry (or a refusal that says why), the Jacobian agent starts from the zoo's PPO
entry with every zoo key either carried or dropped for a stated reason, and the zoo entries of
the classic envs build their agents."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
import yaml

from jacrl.agents.registry import get_agent
from jacrl.agents.sb3 import checked_hyperparameters
from jacrl.common.errors import ConfigError
from jacrl.common.resources import data_dir
from jacrl.presets import (
    PPO_KEYS_FOR_JACOBIAN,
    PPO_KEYS_NOT_FOR_JACOBIAN,
    REFUSED_KEYS,
    jacobian_from_zoo_ppo,
    load_preset,
    preset_path,
    vecnormalize_kwargs,
    zoo_entry,
)
from jacrl.train import resolve_config

ZOO = data_dir("agents") / "zoo"
ALGOS = ("ppo", "a2c", "dqn", "sac", "td3")
CLASSIC = (
    *("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1"),
    *("LunarLander-v3", "LunarLanderContinuous-v3"),
)


def _zoo(algo: str) -> dict[str, Any]:
    return yaml.safe_load((ZOO / f"{algo}.yml").read_text())


def _envs(algo: str) -> list[str]:
    return [key for key in _zoo(algo) if key not in ("default", "atari")]


def test_vendored_files_are_the_zoo_release_byte_for_byte() -> None:
    source = yaml.safe_load((ZOO / "SOURCE.yml").read_text())
    assert source["package"] == "rl_zoo3"
    assert set(source["sha256"]) == {f"{a}.yml" for a in ALGOS} | {"LICENSE"}
    for name, digest in source["sha256"].items():
        assert hashlib.sha256((ZOO / name).read_bytes()).hexdigest() == digest, name


@pytest.mark.parametrize("algo", ALGOS)
def test_every_env_the_zoo_tuned_gets_its_entry_or_a_reason(algo: str) -> None:
    """jacrl's own file overrides nothing for the SB3 agents, so the preset is the zoo's entry."""
    assert yaml.safe_load(preset_path(algo).read_text()) is None  # comments only
    for env_id in _envs(algo):
        entry = _zoo(algo)[env_id]
        refused = [key for key in REFUSED_KEYS if key in entry]
        if refused:
            with pytest.raises(ConfigError, match=f"sets {refused[0]}="):
                load_preset(algo, env_id)
        else:
            assert load_preset(algo, env_id) == entry, env_id


@pytest.mark.parametrize("algo", ALGOS)
def test_every_zoo_entry_passes_the_baselines_hyperparameter_checks(algo: str) -> None:
    """jacrl checks the SB3 baselines' values as its own agents' (jacrl.agents.sb3); every
    entry the zoo tuned must pass, or the checks would refuse a tuned preset."""
    box = gym.spaces.Box(-1.0, 1.0, (2,))
    entries = [env for env in _envs(algo) if not any(k in _zoo(algo)[env] for k in REFUSED_KEYS)]
    assert entries  # every zoo file has tuned entries jacrl accepts
    for env_id in entries:
        _, hp = resolve_config(algo, env_id, steps=1000)
        assert checked_hyperparameters(algo, hp, box).keys() == hp.keys(), env_id


def test_every_zoo_ppo_key_is_carried_or_dropped_for_the_jacobian_agent() -> None:
    for env_id in _envs("ppo"):
        entry = zoo_entry("ppo", env_id)
        if any(key in entry for key in REFUSED_KEYS):
            with pytest.raises(ConfigError, match="sets "):
                load_preset("jacobian", env_id)
            continue
        assert set(entry) <= set(PPO_KEYS_FOR_JACOBIAN) | set(PPO_KEYS_NOT_FOR_JACOBIAN)
        jacobian = load_preset("jacobian", env_id)
        own = yaml.safe_load(preset_path("jacobian").read_text())
        overridden = set(own["default"]) | set(own.get(env_id) or {})
        for key in set(PPO_KEYS_FOR_JACOBIAN) & set(entry) - overridden:
            assert jacobian[key] == entry[key], (env_id, key)
        assert not set(PPO_KEYS_NOT_FOR_JACOBIAN) & set(jacobian)


def test_jacobian_on_an_env_without_its_own_entry_runs_zoo_ppos_rollout() -> None:
    jacobian, ppo = load_preset("jacobian", "Acrobot-v1"), load_preset("ppo", "Acrobot-v1")
    for key in ("n_envs", "n_steps", "n_epochs", "gamma", "gae_lambda", "n_timesteps"):
        assert jacobian[key] == ppo[key]
    assert jacobian["n_envs"] == 16 and jacobian["rule"] == "density"


def test_a_new_zoo_ppo_key_is_refused_not_dropped() -> None:
    with pytest.raises(ConfigError, match=r"'sde_warmup'.*neither carries"):
        jacobian_from_zoo_ppo({"n_steps": 8, "sde_warmup": 3}, "X-v0")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("env_wrapper", ["stable_baselines3.common.atari_wrappers.AtariWrapper"]),
        ("frame_stack", 4),
        ("replay_buffer_class", "HerReplayBuffer"),
    ],
)
def test_user_preset_with_a_key_jacrl_cannot_honour_is_refused(
    tmp_path: Path, key: str, value: Any
) -> None:
    path = tmp_path / "preset.yml"
    path.write_text(yaml.safe_dump({"CartPole-v1": {"n_steps": 32, key: value}}))
    with pytest.raises(ConfigError, match=f"sets {key}=.*: jacrl does not"):
        load_preset("ppo", "CartPole-v1", path)


def test_zoo_normalize_keywords_are_parsed_as_literals() -> None:
    assert vecnormalize_kwargs(True) == {} and vecnormalize_kwargs(False) is None
    assert vecnormalize_kwargs("{'norm_obs': False, 'norm_reward': True}") == {
        "norm_obs": False,
        "norm_reward": True,
    }
    with pytest.raises(ConfigError, match="VecNormalize takes no"):
        vecnormalize_kwargs({"norm_rewards": True})
    with pytest.raises(ConfigError, match="not a literal"):
        vecnormalize_kwargs("dict(norm_obs=__import__('os'))")
    with pytest.raises(ConfigError, match="expected true, false"):
        vecnormalize_kwargs(3)


def _cases() -> list[tuple[str, str]]:
    return [(algo, env) for algo in ALGOS for env in CLASSIC if env in _envs(algo)]


@pytest.mark.parametrize(("algo", "env_id"), _cases())
def test_zoo_entry_of_a_classic_env_builds_its_agent(algo: str, env_id: str) -> None:
    """Everything the entry says reaches the agent: the run keys (n_envs, normalize) and the
    constructor's (schedules, policy_kwargs, action noise)."""
    run, hp = resolve_config(algo, env_id, steps=None)
    model, norm = get_agent(algo).make(
        env_id, hp, n_envs=run["n_envs"], normalize=run["normalize"], seed=0
    )
    assert model.n_envs == run["n_envs"]
    assert (norm is not None) == bool(run["normalize"])
    assert model.action_space == gym.make(env_id).action_space
    if "n_steps" in hp:
        assert model.n_steps == hp["n_steps"]

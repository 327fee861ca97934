"""The agent registry: one table that train, eval, compare and the CLI all dispatch through."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.vec_env import DummyVecEnv

from jacrl.agents.registry import AGENTS, AgentEntry, check_agent_fits_env, get_agent
from jacrl.cli import main
from jacrl.common.errors import ConfigError, UnsupportedSpaceError
from jacrl.compare.variants import SUPERVISED, VARIANTS
from jacrl.presets import load_preset
from jacrl.train import resolve_config, train

# jacobian-sac is registered by import path; its own tests exercise its class
BUILT_HERE = [name for name in AGENTS if name != "jacobian-sac"]
ACTION_SPACES = {
    "Discrete": spaces.Discrete(3),
    "Box": spaces.Box(-1.0, 1.0, (2,), dtype=np.float32),
    "MultiDiscrete": spaces.MultiDiscrete([2, 3]),
    "MultiBinary": spaces.MultiBinary(3),
}
OBSERVATIONS = spaces.Box(-1.0, 1.0, (4,), dtype=np.float32)


class _SpacesOnly(gym.Env[np.ndarray, np.ndarray]):
    """An env that only has spaces: enough for an SB3 constructor to check them."""

    def __init__(self, action_space: spaces.Space) -> None:
        self.observation_space = OBSERVATIONS
        self.action_space = action_space


def _class_accepts(entry: AgentEntry, action_space: spaces.Space) -> bool:
    """Whether the agent's own class takes this action space (its check, not the registry's)."""
    try:
        if entry.family == "sb3":
            venv = DummyVecEnv([lambda: _SpacesOnly(action_space)])
            small = {"buffer_size": 64} if entry.learning == "off-policy" else {}
            entry.cls("MlpPolicy", venv, **small)
        else:
            entry.cls(None, observation_space=OBSERVATIONS, action_space=action_space)
    except (AssertionError, UnsupportedSpaceError):  # SB3 asserts; jacrl raises
        return False
    return True


@pytest.mark.parametrize("name", BUILT_HERE)
def test_each_entry_states_the_action_spaces_its_class_accepts(name: str) -> None:
    entry = AGENTS[name]
    claimed = {kind for kind, space in ACTION_SPACES.items() if entry.supports(space)}
    accepted = {kind for kind, space in ACTION_SPACES.items() if _class_accepts(entry, space)}
    assert claimed == accepted
    assert claimed == set(entry.action_spaces)


def test_unknown_agent_names_every_accepted_one() -> None:
    with pytest.raises(ConfigError) as info:
        get_agent("sacc")
    assert str(info.value) == (
        "unknown agent 'sacc'; accepted: jacobian, jacobian-sac, ppo, a2c, dqn, sac, td3, backprop"
    )


def test_an_agent_on_the_wrong_action_space_is_told_which_agents_fit() -> None:
    with pytest.raises(UnsupportedSpaceError) as info:
        check_agent_fits_env("jacobian-sac", "CartPole-v1")
    assert str(info.value) == (
        "jacobian-sac needs a Box action space; for Discrete(2) (CartPole-v1) use one of: "
        "jacobian, ppo, a2c, dqn, backprop"
    )
    with pytest.raises(UnsupportedSpaceError, match=r"dqn needs a Discrete action space; .*"
                       r"use one of: jacobian, jacobian-sac, ppo, a2c, sac, td3$"):  # fmt: skip
        check_agent_fits_env("dqn", "Pendulum-v1")
    assert check_agent_fits_env("td3", "Pendulum-v1") is AGENTS["td3"]


def test_train_refuses_an_unfitting_agent_before_writing_anything(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedSpaceError, match="jacobian-sac needs a Box"):
        train("jacobian-sac", "CartPole-v1", steps=10, log_root=tmp_path)
    with pytest.raises(UnsupportedSpaceError, match="sac needs a Box"):
        train("sac", "CartPole-v1", steps=10, log_root=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_agent_whose_module_is_missing_fails_when_used_not_when_listed() -> None:
    ghost = AgentEntry("ghost", "jacrl.agents.no_such_module:Ghost", "jacrl", "on-policy",
                       ("Box",), "not written yet")  # fmt: skip
    assert ghost.supports(ACTION_SPACES["Box"])  # the table works without the class
    with pytest.raises(
        ConfigError, match=r"'ghost' is registered as jacrl\.agents\.no_such_module"
    ):
        _ = ghost.cls


@pytest.mark.parametrize("name", BUILT_HERE)
def test_every_built_agent_has_a_preset_file(name: str) -> None:
    entry = AGENTS[name]
    assert entry.preset_file.is_file()
    assert isinstance(load_preset(name, "NoEnvNamedThis-v0"), dict)


def test_compare_and_the_cli_accept_exactly_the_registry() -> None:
    assert [name for name, (base, hp) in VARIANTS.items() if not hp] == list(AGENTS)
    assert {base for base, _ in VARIANTS.values()} <= set(AGENTS)
    assert SUPERVISED == "backprop"
    with pytest.raises(SystemExit):
        main(["train", "--agent", "sacc", "--env", "Pendulum-v1"])


@pytest.mark.parametrize("name", [name for name, (_, hp) in VARIANTS.items() if hp])
def test_every_named_variant_builds_with_its_base_agent(name: str) -> None:
    """A variant's overrides are hyperparameters its base agent accepts: a typo or a key of
    another agent fails here, at construction, not in the middle of a grid."""
    base, overrides = VARIANTS[name]
    env_id = "CartPole-v1" if base == "jacobian" else "Pendulum-v1"
    run, hp = resolve_config(base, env_id, 64, overrides)
    model, _ = get_agent(base).make(
        env_id, hp, n_envs=run["n_envs"], normalize=run["normalize"], seed=0
    )
    if hasattr(model, "hyperparameters"):  # jacrl's agents report the settings they took
        taken = model.hyperparameters()
        assert {key: taken[key] for key in overrides} == overrides
    else:  # SB3's keep them as attributes
        assert {key: getattr(model, key) for key in overrides} == overrides


def test_only_jacrl_agents_checkpoint(tmp_path: Path) -> None:
    assert [n for n, e in AGENTS.items() if e.checkpoints] == [
        "jacobian",
        "jacobian-sac",
        "backprop",
    ]
    with pytest.raises(ConfigError, match=r"a jacrl agent \(jacobian, jacobian-sac, backprop\)"):
        train("td3", "Pendulum-v1", steps=10, log_root=tmp_path, checkpoint_every=5)

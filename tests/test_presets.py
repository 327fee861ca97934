from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise
from stable_baselines3.common.utils import LinearSchedule

from jacrl.agents.sb3 import checked_hyperparameters, constructor_kwargs, parse_kwargs_text
from jacrl.common.errors import ConfigError
from jacrl.presets import load_preset, parse_overrides, resolve_schedules
from jacrl.train import resolve_config


def test_shipped_ppo_preset_has_the_zoo_cartpole_values() -> None:
    hp = load_preset("ppo", "CartPole-v1")
    assert hp["n_envs"] == 8
    assert hp["n_steps"] == 32
    assert hp["learning_rate"] == "lin_0.001"


def test_env_the_zoo_did_not_tune_gets_the_zoos_default_entry() -> None:
    assert load_preset("ppo", "NoEnvNamedThis-v0") == {"n_timesteps": 1e6, "policy": "MlpPolicy"}


def test_missing_agent_file_means_no_preset() -> None:
    assert load_preset("no-such-agent", "CartPole-v1") == {}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("CartPole-v1: [1, 2\n", "not valid YAML"),
        ("- just\n- a list\n", "must map env ids"),
        ("CartPole-v1: 3\n", "must be a mapping"),
    ],
)
def test_malformed_preset_names_the_file(tmp_path: Path, text: str, match: str) -> None:
    file = tmp_path / "bad.yml"
    file.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        load_preset("ppo", "CartPole-v1", path=file)
    assert str(file) in str(info.value)


def test_overrides_are_parsed_as_yaml() -> None:
    assert parse_overrides(["n_steps=64", "learning_rate=1e-3", "net=[64, 64]"]) == {
        "n_steps": 64,
        "learning_rate": 1e-3,
        "net": [64, 64],
    }


@pytest.mark.parametrize("bad", ["n_steps", "=3"])
def test_malformed_override_is_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides([bad])


def test_lin_schedule_decays_to_zero() -> None:
    resolved = resolve_schedules({"learning_rate": "lin_0.001", "gamma": 0.98})
    schedule = resolved["learning_rate"]
    assert isinstance(schedule, LinearSchedule)
    assert schedule(1.0) == pytest.approx(1e-3)
    assert schedule(0.5) == pytest.approx(5e-4)
    assert schedule(0.0) == pytest.approx(0.0)
    assert resolved["gamma"] == 0.98
    with pytest.raises(ConfigError, match="lin_"):
        resolve_schedules({"learning_rate": "lin_fast"})


def test_run_keys_are_split_from_agent_hyperparameters() -> None:
    run, hp = resolve_config("ppo", "CartPole-v1", steps=None)
    assert run == {"n_envs": 8, "n_timesteps": 100_000, "normalize": False}
    assert "n_envs" not in hp and hp["n_steps"] == 32


@pytest.mark.parametrize("steps", [0, -5])
def test_non_positive_budget_is_refused(steps: int) -> None:
    with pytest.raises(ConfigError, match="positive whole number"):
        resolve_config("ppo", "CartPole-v1", steps=steps)


def test_unknown_agent_is_refused() -> None:
    with pytest.raises(ConfigError, match="accepted"):
        resolve_config("no-such-agent", "CartPole-v1", steps=10)


BOX1 = spaces.Box(-2.0, 2.0, (1,), dtype=np.float32)


def test_zoo_td3_noise_keys_become_sb3_action_noise() -> None:
    kwargs = constructor_kwargs(load_preset("td3", "Pendulum-v1"), BOX1)
    assert "noise_type" not in kwargs and "noise_std" not in kwargs
    noise = kwargs["action_noise"]
    assert type(noise) is NormalActionNoise
    assert noise._mu.tolist() == [0.0] and noise._sigma.tolist() == [0.1]
    assert kwargs["policy_kwargs"] == {"net_arch": [400, 300]}  # the zoo's string, parsed
    assert (kwargs["learning_starts"], kwargs["train_freq"], kwargs["gradient_steps"]) == (
        10000,
        1,
        1,
    )

    car = constructor_kwargs(load_preset("td3", "MountainCarContinuous-v0"), BOX1)
    assert type(car["action_noise"]) is OrnsteinUhlenbeckActionNoise
    assert car["action_noise"]._sigma.tolist() == [0.5]
    two = constructor_kwargs(
        {"noise_type": "normal", "noise_std": [0.1, 0.3]}, spaces.Box(-1, 1, (2,))
    )
    assert two["action_noise"]._sigma.tolist() == [0.1, 0.3]


def test_zoo_sac_keys_reach_the_sb3_constructor() -> None:
    kwargs = constructor_kwargs(load_preset("sac", "MountainCarContinuous-v0"), BOX1)
    assert kwargs["policy_kwargs"] == {
        "log_std_init": -3.67,
        "net_arch": [64, 64],
        "use_expln": True,
    }
    assert kwargs["use_sde"] is True and kwargs["ent_coef"] == 0.1
    assert (kwargs["train_freq"], kwargs["gradient_steps"], kwargs["learning_starts"]) == (
        32,
        32,
        0,
    )
    lunar = constructor_kwargs(load_preset("sac", "LunarLanderContinuous-v3"), BOX1)
    assert isinstance(lunar["learning_rate"], LinearSchedule)
    assert lunar["learning_rate"](1.0) == pytest.approx(7.3e-4)
    # an env the zoo does not name gets the zoo's default entry: SB3's defaults, 1e6 steps
    assert load_preset("sac", "InvertedPendulum-v5") == {"n_timesteps": 1e6, "policy": "MlpPolicy"}


def test_zoo_policy_kwargs_strings_are_parsed_not_evaluated() -> None:
    text = "dict(net_arch=dict(pi=[64], vf=[32]), activation_fn=nn.LeakyReLU, ortho_init=False)"
    assert constructor_kwargs({"policy_kwargs": text}, BOX1)["policy_kwargs"] == {
        "net_arch": {"pi": [64], "vf": [32]},
        "activation_fn": torch.nn.LeakyReLU,
        "ortho_init": False,
    }
    assert parse_kwargs_text("{'log_std_init': -2, 'squash_output': True}", "x") == {
        "log_std_init": -2,
        "squash_output": True,
    }
    for code in ['dict(net_arch=__import__("os").getcwd())', "dict(a=2**10)", "dict(a=nn.ReLU)"]:
        with pytest.raises(ConfigError, match="is not a literal"):
            parse_kwargs_text(code, "policy_kwargs")
    with pytest.raises(ConfigError, match="must be a dict"):
        parse_kwargs_text("[64, 64]", "policy_kwargs")
    with pytest.raises(ConfigError, match="not an activation jacrl knows"):
        constructor_kwargs({"policy_kwargs": {"activation_fn": "nn.Swish"}}, BOX1)


def test_train_freq_as_a_yaml_list_becomes_the_tuple_sb3_expects() -> None:
    assert constructor_kwargs({"train_freq": [1, "episode"]}, BOX1)["train_freq"] == (1, "episode")


@pytest.mark.parametrize(
    ("hp", "match"),
    [
        ({"noise_type": "pink", "noise_std": 0.1}, "expected one of"),
        ({"noise_type": "normal"}, "needs noise_std"),
        ({"noise_std": 0.1}, "expected one of"),  # std without a type
        ({"noise_type": "normal", "noise_std": -0.1}, "non-negative"),
        ({"noise_type": "normal", "noise_std": [0.1, 0.2, 0.3]}, "one per action dimension"),
    ],
)
def test_malformed_noise_keys_are_refused(hp: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        constructor_kwargs(hp, BOX1)


def test_action_noise_on_discrete_actions_is_refused() -> None:
    with pytest.raises(ConfigError, match="Box action space"):
        constructor_kwargs({"noise_type": "normal", "noise_std": 0.1}, spaces.Discrete(2))


def test_sb3_checks_return_the_values_sb3_needs() -> None:
    hp = checked_hyperparameters(
        "sac", {"buffer_size": 1e5, "train_freq": [4, "episode"], "ent_coef": "auto_0.1"}, BOX1
    )
    assert hp == {"buffer_size": 100_000, "train_freq": (4, "episode"), "ent_coef": "auto_0.1"}
    assert type(hp["buffer_size"]) is int

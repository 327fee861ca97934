from __future__ import annotations

from pathlib import Path

import pytest
from stable_baselines3.common.utils import LinearSchedule

from jacrl.common.errors import ConfigError
from jacrl.presets import load_preset, parse_overrides, resolve_schedules
from jacrl.train import resolve_config


def test_shipped_ppo_preset_has_the_zoo_cartpole_values() -> None:
    hp = load_preset("ppo", "CartPole-v1")
    assert hp["n_envs"] == 8
    assert hp["n_steps"] == 32
    assert hp["learning_rate"] == "lin_0.001"


def test_unknown_env_falls_back_to_default_entry() -> None:
    assert load_preset("ppo", "Acrobot-v1") == {"n_envs": 1}


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
        resolve_config("sac", "CartPole-v1", steps=10)

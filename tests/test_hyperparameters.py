"""Hyperparameters are checked when the agent is built, and whatever is accepted can be saved
(issue #12 item 8), and ``policy_kwargs`` is the SB3 way to give the policy's settings (issue #13
item 6). The refusals themselves are rows of the bad-input catalogue (tests/test_bad_input.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from stable_baselines3.common.utils import LinearSchedule

from jacrl.agents import JacobianAgent, JacobianSAC
from jacrl.agents.backprop import BackpropAgent
from jacrl.common.errors import ConfigError

TINY: dict[str, Any] = dict(
    n_steps=8, batch_size=8, n_epochs=1, lift_hidden=(8,), value_hidden=(8,)
)
#: accepted values of every JacobianAgent hyperparameter other than its default (with the extra
#: arguments a value needs to mean something): each must survive save/load unchanged
ACCEPTED: dict[str, list[tuple[Any, dict[str, Any]]]] = {
    "rule": [("volume", {})],
    "advantage": [("baseline", {}), ("reward", {})],
    "update": [("reinforce", {})],
    "embed": [("pad", {"width": 4})],
    "width": [(6, {}), (np.int64(5), {}), (7.0, {})],
    "depth": [(0, {}), (1, {})],
    "parameterization": [("lu", {})],
    "activation": [("asinh", {}), ("smooth_leaky_relu", {}), ("leaky_relu", {})],
    "sigma_x": [(0.5, {}), (np.float32(2.0), {})],
    "learn_sigma": [(False, {}), (np.bool_(False), {})],
    "n_steps": [(16, {})],
    "batch_size": [(4, {}), (16.0, {})],
    "n_epochs": [(2, {})],
    "gamma": [(0.9, {}), (1, {}), (0, {})],
    "gae_lambda": [(0.8, {}), (1.0, {})],
    "clip_range": [(0.1, {}), ("lin_0.3", {}), (LinearSchedule(0.3, 0.1, 0.5), {})],
    "ent_coef": [(0.01, {}), (-0.01, {})],
    "vf_coef": [(0.0, {}), (1.0, {})],
    "max_grad_norm": [(1e10, {}), (10, {})],
    "learning_rate": [(1e-3, {}), ("lin_1e-3", {}), (LinearSchedule(1e-3, 0.0, 1.0), {})],
    "target_kl": [(0.05, {}), (0.01, {})],
    "normalize_obs": [(False, {})],
    "lift_hidden": [((16, 8), {}), ([], {}), (np.array([4, 4]), {})],
    "value_hidden": [([16], {})],
    "max_cond": [(1e3, {}), (1e8, {})],
    "ill_conditioned": [("raise", {})],
    "dtype": [("float32", {})],
    "volume_objective": [("absdet", {"rule": "volume", "update": "reinforce"})],
    "volume_hold": [("x0", {"rule": "volume"})],
    "conditioning": [("state", {})],
    "conditioner_hidden": [([16], {"conditioning": "state"})],
    "advantage_weighting": [("softmax", {})],
    "weighting_temperature": [(0.5, {"advantage_weighting": "softmax"})],
    "policy_kwargs": [({"depth": 2, "width": 6}, {})],
    "nonfinite": [("skip", {}), ("clip", {})],
}


def cartpole(**kwargs: Any) -> JacobianAgent:
    return JacobianAgent("CartPole-v1", seed=0, **{**TINY, **kwargs})


def test_every_hyperparameter_has_accepted_values_to_round_trip() -> None:
    """A new hyperparameter must be added to ACCEPTED, so its values are saved-and-loaded too."""
    assert set(JacobianAgent.hyperparameter_names()) == {*ACCEPTED, "n_envs"}


@pytest.mark.parametrize(
    ("name", "value", "extra"),
    [(name, value, extra) for name, rows in ACCEPTED.items() for value, extra in rows],
    ids=[f"{name}-{i}" for name, rows in ACCEPTED.items() for i in range(len(rows))],
)
def test_every_accepted_value_survives_save_and_load(
    name: str, value: Any, extra: dict[str, Any], tmp_path: Path
) -> None:
    agent = cartpole(**{**extra, name: value})
    path = agent.save(tmp_path / "agent.zip")
    loaded = JacobianAgent.load(path, env="CartPole-v1")
    assert loaded.hyperparameters() == agent.hyperparameters()
    for key, tensor in agent.get_parameters().items():
        torch.testing.assert_close(loaded.get_parameters()[key], tensor, rtol=0, atol=0)


def test_values_are_kept_in_the_form_that_is_saved() -> None:
    """numpy numbers, whole floats and lists are stored as plain ints, floats and tuples."""
    agent = cartpole(width=np.int64(6), batch_size=16.0, gamma=1, lift_hidden=np.array([4, 4]))
    assert (type(agent.width), type(agent.batch_size), type(agent.gamma)) == (int, int, float)
    assert agent.lift_hidden == (4, 4) and all(type(w) is int for w in agent.lift_hidden)


def test_a_budget_may_be_a_whole_float_as_sb3_users_write_it() -> None:
    assert cartpole().learn(1.6e1).num_timesteps == 16


def test_policy_kwargs_and_the_flat_names_build_the_same_agent(tmp_path: Path) -> None:
    """SB3's policy_kwargs and the flat names give the same weights (same seed) and the same
    saved hyperparameters; the flat form is what is kept, so a resumed or reloaded run matches."""
    settings = dict(depth=2, width=6, sigma_x=0.5, parameterization="lu")
    flat = cartpole(**settings)
    nested = cartpole(policy_kwargs=settings)
    assert nested.hyperparameters() == flat.hyperparameters()
    assert nested.policy_kwargs is None and nested.depth == 2
    for key, tensor in flat.get_parameters().items():
        torch.testing.assert_close(nested.get_parameters()[key], tensor, rtol=0, atol=0)
    loaded = JacobianAgent.load(nested.save(tmp_path / "a.zip"))
    assert loaded.hyperparameters() == flat.hyperparameters()


def test_policy_kwargs_may_repeat_a_flat_setting_with_the_same_value() -> None:
    assert cartpole(depth=2, policy_kwargs={"depth": 2}).depth == 2


def test_every_policy_setting_of_both_learners_is_checked_by_the_shared_table() -> None:
    """A setting an agent accepts but the table lacks would fail with a bare KeyError; both
    learners' refusal of a bad value comes from the same check (same message)."""
    from jacrl.agents.onpolicy.agent import POLICY_SETTINGS as ONPOLICY
    from jacrl.agents.sac.agent import POLICY_SETTINGS as OFFPOLICY
    from jacrl.policies.settings import CHECKS, check_policy_settings

    assert set(ONPOLICY) | set(OFFPOLICY) <= set(CHECKS)
    assert check_policy_settings({"lift_hidden": [8, 8], "max_cond": 10})["lift_hidden"] == (8, 8)
    with pytest.raises(ConfigError, match=r"max_cond=1\b") as onpolicy:
        cartpole(max_cond=1)
    with pytest.raises(ConfigError) as offpolicy:
        JacobianSAC("Pendulum-v1", max_cond=1)
    assert str(onpolicy.value) == str(offpolicy.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [("hidden", [16, 8]), ("activation", "relu"), ("learning_rate", "lin_0.05"),
     ("batch_size", 16.0), ("engine", "torch")],
)  # fmt: skip
def test_backprop_agent_values_survive_save_and_load(name: str, value: Any, tmp_path: Path) -> None:
    agent = BackpropAgent("jacrl/DigitsBandit-v0", seed=0, **{name: value})
    loaded = BackpropAgent.load(agent.save(tmp_path / "b.zip"))
    assert loaded.hyperparameters() == agent.hyperparameters()

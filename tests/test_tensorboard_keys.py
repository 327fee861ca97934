"""JacobianAgent's TensorBoard keys overlay with SB3 PPO's: every ``train/*`` tag PPO writes is
written by JacobianAgent too, with PPO's meaning (issue #13 item 5)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from stable_baselines3 import PPO

from jacrl.agents import JacobianAgent

#: PPO's train/* tags that JacobianAgent cannot have, with the reason (none today: every quantity
#: PPO logs exists for the invertible policy too; ``train/std`` is σ_x, the Gaussian's scale on x)
NO_JACRL_MEANING: dict[str, str] = {}
SMALL = dict(n_steps=32, batch_size=16, n_epochs=2)


def train_tags(tags: set[str]) -> set[str]:
    return {tag for tag in tags if tag.startswith("train/")}


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_every_ppo_train_tag_is_logged_by_jacobian_agent(
    env_id: str, tmp_path: Path, scalar_tags: Callable[[Path], set[str]]
) -> None:
    PPO("MlpPolicy", env_id, seed=0, tensorboard_log=str(tmp_path / "ppo"), **SMALL).learn(64)
    JacobianAgent(env_id, seed=0, tensorboard_log=str(tmp_path / "jacrl"), **SMALL).learn(64)
    (ppo_run,) = (tmp_path / "ppo").iterdir()
    (jacrl_run,) = (tmp_path / "jacrl").iterdir()
    ppo, jacrl = train_tags(scalar_tags(ppo_run)), train_tags(scalar_tags(jacrl_run))
    assert "train/policy_gradient_loss" in ppo  # the comparison is against PPO's own keys
    missing = ppo - jacrl - set(NO_JACRL_MEANING)
    assert not missing, f"PPO logs {sorted(missing)}, JacobianAgent does not"
    assert "train/policy_loss" not in jacrl  # A2C's key, not PPO's


def test_n_updates_counts_epochs_as_ppo_does() -> None:
    """``train/n_updates`` (stdout only) is PPO's ``_n_updates``: epochs run so far, summed
    over the updates (not the minibatches of the last update)."""
    ppo = PPO("MlpPolicy", "CartPole-v1", seed=0, **SMALL).learn(96)
    agent = JacobianAgent("CartPole-v1", seed=0, **SMALL).learn(96)
    assert agent._n_updates == ppo._n_updates == 3 * SMALL["n_epochs"]


def test_target_kl_stops_before_the_step_as_ppo_does() -> None:
    """SB3's early stop: the first minibatch of an update is at ratio 1 (KL 0) and is taken; with
    a tiny target_kl the second minibatch is measured past it and the update ends without its
    step. So each update takes one optimizer step (CleanRL's rule would have taken two), and the
    epoch still counts in n_updates, as in PPO."""
    agent = JacobianAgent("CartPole-v1", seed=0, target_kl=1e-12, **SMALL)
    steps = []
    agent.optimizer.register_step_post_hook(lambda *args: steps.append(agent.num_timesteps))
    agent.learn(96)
    assert steps == [32, 64, 96]
    assert agent._n_updates == 3

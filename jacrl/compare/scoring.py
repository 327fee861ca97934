"""What an env's evaluation returns mean: plain returns, or held-out accuracy for a bandit.

A ``ClassificationBandit`` pays ``reward_correct`` for a right answer and ``reward_wrong`` for a
wrong one, so its mean reward per step is an affine function of accuracy; reporting accuracy makes
the Jacobian learner directly comparable with the supervised baseline. The rewards are read from
the env itself, so a bandit registered with other rewards (say 1/0) is converted correctly.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from jacrl.compare.policy_metrics import PolicyMetrics, policy_metrics_for
from jacrl.envs.registration import check_env_id
from jacrl.train import eval_env_kwargs, held_out_episodes


@dataclass(frozen=True)
class Bandit:
    """What scoring a classification bandit needs from it.

    :param held_out_episodes: episodes that visit each held-out example once, the evaluation
        size that makes "held-out accuracy" mean the whole held-out set, not a sample of it.
    """

    reward_wrong: float
    reward_correct: float
    n_classes: int
    held_out_episodes: int


@dataclass(frozen=True)
class EnvScoring:
    """How one env's evaluations are turned into the numbers a report shows.

    :param threshold: the env's ``reward_threshold`` in return units (``None`` if it has none).
    :param bandit: set for a classification bandit, whose scores are then accuracies.
    :param policy_metrics: set for a multimodal task: what the report shows beside the return
        (:mod:`jacrl.compare.policy_metrics`).
    """

    env_id: str
    threshold: float | None
    bandit: Bandit | None = None
    policy_metrics: PolicyMetrics | None = None

    @property
    def is_accuracy(self) -> bool:
        return self.bandit is not None

    @property
    def label(self) -> str:
        """The quantity with its unit, for axis labels and table headers."""
        if self.is_accuracy:
            return "held-out accuracy (fraction correct)"
        return "evaluation return (deterministic, per episode)"

    @property
    def chance(self) -> float | None:
        """Accuracy of guessing uniformly at random (bandits only), the floor to beat."""
        return None if self.bandit is None else 1.0 / self.bandit.n_classes

    def eval_episodes(self, default: int) -> int:
        """Episodes per evaluation: the whole held-out set for a bandit, else ``default``."""
        return default if self.bandit is None else self.bandit.held_out_episodes

    def score(self, returns: np.ndarray, lengths: np.ndarray | float) -> np.ndarray:
        """Episode returns → shown scores.

        For a bandit, accuracy = (return / length − r_wrong) / (r_correct − r_wrong): the mean
        reward per step is r_wrong + accuracy · (r_correct − r_wrong).
        """
        returns = np.asarray(returns, dtype=float)
        if self.bandit is None:
            return returns
        wrong, correct = self.bandit.reward_wrong, self.bandit.reward_correct
        return (returns / np.asarray(lengths, dtype=float) - wrong) / (correct - wrong)

    def threshold_score(self, length: float) -> float | None:
        """The reward threshold on the score scale, for episodes of ``length`` steps."""
        if self.threshold is None:
            return None
        return float(self.score(np.array(self.threshold), length))


def env_scoring(env_id: str, threshold: float | None = None) -> EnvScoring:
    """Build the env to read its threshold and, for a classification bandit, its settings.

    :param threshold: a return to use instead of the env's ``reward_threshold`` (Pendulum-v1,
        for one, has none).
    """
    from jacrl.envs.classification_bandit import ClassificationBandit

    registered = check_env_id(env_id).reward_threshold
    threshold = registered if threshold is None else threshold
    env = gym.make(env_id)
    try:
        if not isinstance(env.unwrapped, ClassificationBandit):
            return EnvScoring(env_id, threshold, policy_metrics=policy_metrics_for(env.unwrapped))
    finally:
        env.close()
    held_out = gym.make(env_id, **eval_env_kwargs(env_id))  # the split train() evaluates on
    try:
        bandit = held_out.unwrapped
        assert isinstance(bandit, ClassificationBandit)
        episodes = held_out_episodes(bandit)  # what train() evaluates on by default
        info = Bandit(bandit.reward_wrong, bandit.reward_correct, bandit.n_classes, episodes)
    finally:
        held_out.close()
    return EnvScoring(env_id, threshold, info)

"""The classification bandit's three splits: validation rows are carved out of the training rows
(stratified, seeded), never overlap the test rows, and the registered envs are unchanged without
``validation_fraction``; ``jacrl.train`` evaluates a spec holding a validation share on it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import jacrl.envs  # noqa: F401  (registers the jacrl/ ids)
from jacrl.common.errors import JacrlError
from jacrl.compare.scoring import env_scoring
from jacrl.envs import ClassificationBandit
from jacrl.envs.datasets import load_digits_split
from jacrl.train import default_eval_episodes, eval_env_kwargs
from jacrl.tune.validation import VALIDATION_FRACTION, holding_out_validation, validation_kwargs

DIGITS = "jacrl/DigitsBandit-v0"


def _rows(env: ClassificationBandit) -> set[tuple[float, ...]]:
    return {tuple(row) for row in env.X}


def test_digits_validation_is_carved_from_the_training_rows() -> None:
    """train' + validation = the training split exactly (as a multiset of rows: the digits hold
    duplicate images), the test split is untouched — so no row is in two splits — and each class
    keeps its share."""
    split = load_digits_split()
    parts = {
        name: ClassificationBandit(split=name, validation_fraction=0.2)
        for name in ("train", "validation", "test")
    }
    train, validation, test = parts["train"], parts["validation"], parts["test"]
    assert len(train) + len(validation) == len(split.y_train) == 1437
    assert len(validation) == 288 and len(test) == len(split.y_test) == 360
    assert np.array_equal(test.X, split.X_test) and np.array_equal(test.y, split.y_test)
    stacked = np.vstack([train.X, validation.X])
    labels = np.concatenate([train.y, validation.y])
    order_a, order_b = np.lexsort(stacked.T), np.lexsort(split.X_train.T)
    assert np.array_equal(stacked[order_a], split.X_train[order_b])  # nothing lost or added
    assert np.array_equal(labels[order_a], split.y_train[order_b])
    shares = np.bincount(validation.y, minlength=10) / np.bincount(split.y_train, minlength=10)
    assert np.all(np.abs(shares - 0.2) < 0.02)  # stratified
    assert all(env.observation_space == train.observation_space for env in parts.values())


def test_validation_of_arrays_partitions_the_training_rows_exactly() -> None:
    """With distinct rows, train', validation and test partition the data set; ``split_seed``
    fixes which rows; arrays without a test split can still hold out a validation share."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    y = np.repeat(np.arange(4), 20)

    def bandit(split: str, seed: int = 0, test: float | None = 0.25) -> ClassificationBandit:
        return ClassificationBandit(
            X=X, y=y, test_fraction=test, split_seed=seed, split=split, validation_fraction=0.25
        )

    train, validation, test = bandit("train"), bandit("validation"), bandit("test")
    assert (len(train), len(validation), len(test)) == (45, 15, 20)
    parts = [_rows(train), _rows(validation), _rows(test)]
    assert sum(len(p) for p in parts) == len(set().union(*parts)) == 80  # disjoint
    assert set().union(*parts) == {tuple(r) for r in X.astype(np.float32)}  # and complete
    plain_train = ClassificationBandit(X=X, y=y, test_fraction=0.25, split="train")
    assert _rows(train) | _rows(validation) == _rows(plain_train)
    assert _rows(test) == _rows(ClassificationBandit(X=X, y=y, test_fraction=0.25, split="test"))
    assert _rows(bandit("validation", seed=1)) != _rows(validation)
    no_test = bandit("validation", test=None)
    assert len(no_test) == 20 and _rows(no_test) | _rows(bandit("train", test=None)) == {
        tuple(r) for r in X.astype(np.float32)
    }


def test_validation_walks_its_rows_in_order_and_envs_share_them() -> None:
    env = ClassificationBandit(split="validation", validation_fraction=0.2)
    _, info = env.reset(seed=5)
    seen = [info["index"]]
    for _ in range(len(env) - 1):
        env.step(0)
        seen.append(env.reset()[1]["index"])
    assert seen == list(range(len(env)))
    again = ClassificationBandit(split="validation", validation_fraction=0.2)
    assert again.X is env.X  # carved once, shared by every env of a batch


def test_registered_envs_are_unchanged_without_validation_fraction() -> None:
    split = load_digits_split()
    train = gym.make(DIGITS).unwrapped
    assert isinstance(train, ClassificationBandit)
    assert np.array_equal(train.X, split.X_train) and len(train) == 1437
    assert eval_env_kwargs(DIGITS) == {"split": "test"}
    assert default_eval_episodes(DIGITS) == 360


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": "validation"}, "split='validation' needs validation_fraction"),
        ({"split": "valid"}, "split must be one of"),
        ({"validation_fraction": 1.0}, r"validation_fraction must be None or a share in \(0, 1\)"),
        ({"validation_fraction": True}, "validation_fraction must be None or a share"),
        ({"split": "test", "validation_fraction": -0.1}, "validation_fraction must be None"),
    ],
)
def test_bad_split_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(JacrlError, match=message):
        ClassificationBandit(**kwargs)  # type: ignore[arg-type]


def test_too_few_rows_to_carve_a_stratified_validation_split() -> None:
    X, y = np.arange(12.0).reshape(6, 2), np.array([0, 0, 0, 0, 0, 1])
    with pytest.raises(JacrlError, match=r"validation_fraction=0\.2 of the training rows"):
        ClassificationBandit(X=X, y=y, validation_fraction=0.2)


def test_a_trial_registers_the_validation_share_and_is_evaluated_on_it() -> None:
    """Inside :func:`holding_out_validation` the id trains without the validation rows and
    :mod:`jacrl.train` evaluates on them (288 episodes, not the test split's 360); outside, the
    registered spec is back."""
    held_out = validation_kwargs(DIGITS)
    assert held_out == {"validation_fraction": VALIDATION_FRACTION}
    assert validation_kwargs("CartPole-v1") == {}
    with holding_out_validation(DIGITS, held_out):
        assert len(gym.make(DIGITS).unwrapped) == 1149  # type: ignore[arg-type]
        assert eval_env_kwargs(DIGITS) == {"split": "validation"}
        assert default_eval_episodes(DIGITS) == 288
        assert env_scoring(DIGITS).eval_episodes(10) == 288  # compare scores the same split
    assert gym.spec(DIGITS).kwargs == {"dataset": "digits"}
    assert default_eval_episodes(DIGITS) == 360
    assert env_scoring(DIGITS).eval_episodes(10) == 360

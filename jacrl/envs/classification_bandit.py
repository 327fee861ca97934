"""A contextual bandit made of a labelled data set: the reward says right or wrong, never which."""

from __future__ import annotations

import math
import os
from functools import lru_cache
from typing import Any, Literal, get_args

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from jacrl.common.errors import JacrlError
from jacrl.envs.datasets import (
    DatasetError,
    DatasetSplit,
    load_digits_split,
    load_mnist,
    split_arrays,
)

__all__ = ["MNIST_DIR_ENV", "ClassificationBandit"]

MNIST_DIR_ENV = "JACRL_MNIST_DIR"
"""Environment variable naming the MNIST folder when ``mnist_dir`` is not given."""

DatasetName = Literal["digits", "mnist", "arrays"]
Split = Literal["train", "validation", "test"]
#: share of the digits held out when ``test_fraction`` is not given
DIGITS_TEST_FRACTION = 0.2


def _resolve_mnist_dir(mnist_dir: str | os.PathLike[str] | None) -> str | os.PathLike[str]:
    if mnist_dir is not None:
        return mnist_dir
    from_env = os.environ.get(MNIST_DIR_ENV)
    if not from_env:
        raise DatasetError(
            f"dataset='mnist' needs the folder of the IDX files: pass mnist_dir=... "
            f"(gym.make('jacrl/MNISTBandit-v0', mnist_dir=...)) or set {MNIST_DIR_ENV}"
        )
    return from_env


def _arrays(
    X: np.ndarray, y: np.ndarray, split: str, test_fraction: float | None, split_seed: int
) -> DatasetSplit:
    X_arr = np.asarray(X, dtype=np.float32)
    y_arr = np.asarray(y)
    if X_arr.ndim != 2 or y_arr.ndim != 1 or len(X_arr) != len(y_arr) or len(y_arr) == 0:
        raise DatasetError(
            f"X must be (n, d) and y (n,) with n > 0, got {X_arr.shape} and {y_arr.shape}"
        )
    if not np.issubdtype(y_arr.dtype, np.integer) or y_arr.min() < 0:
        raise DatasetError("y must hold integer class labels 0..n_classes-1")
    if not np.all(np.isfinite(X_arr)):
        raise DatasetError("X must be finite")
    y_arr = y_arr.astype(np.int64)
    if test_fraction is not None:
        return split_arrays(X_arr, y_arr, test_fraction, split_seed)
    if split == "test":
        raise DatasetError(
            "your arrays have no held-out part unless you choose one: pass test_fraction (and "
            "split_seed) to both envs, ClassificationBandit(X=X, y=y, test_fraction=0.2) and "
            "ClassificationBandit(X=X, y=y, test_fraction=0.2, split='test')"
        )
    return DatasetSplit(X_arr, y_arr, X_arr[:0], y_arr[:0])


def _load(
    dataset: DatasetName | None,
    X: np.ndarray | None,
    y: np.ndarray | None,
    mnist_dir: str | os.PathLike[str] | None,
    split: str,
    test_fraction: float | None,
    split_seed: int,
) -> DatasetSplit:
    if dataset is not None and not isinstance(dataset, str):
        raise DatasetError(
            "the first argument of ClassificationBandit is the data set's name ('digits', "
            f"'mnist' or 'arrays'), got a {type(dataset).__name__}; pass your own data by "
            "keyword: ClassificationBandit(X=X, y=y)"
        )
    if (X is None) != (y is None):
        raise DatasetError("X and y go together: pass both (your own data set) or neither")
    if dataset is None:
        dataset = "digits" if X is None else "arrays"
    if dataset == "arrays":
        if X is None or y is None:
            raise DatasetError("dataset='arrays' needs X (n, d) and y (n,)")
        return _arrays(X, y, split, test_fraction, split_seed)
    if X is not None:
        raise DatasetError(
            f"X and y are your own data set, which dataset={dataset!r} does not take: leave "
            "dataset out (or pass dataset='arrays'), or drop X and y"
        )
    if dataset == "digits":
        fraction = DIGITS_TEST_FRACTION if test_fraction is None else test_fraction
        return load_digits_split(fraction, split_seed)
    if dataset == "mnist":
        if test_fraction is not None:
            raise DatasetError(
                "MNIST's train/test split is fixed (60000/10000 images): leave test_fraction out"
            )
        return load_mnist(_resolve_mnist_dir(mnist_dir))
    raise DatasetError(f"unknown dataset {dataset!r}; accepted: 'digits', 'mnist', 'arrays'")


class _SameArrays:
    """A :class:`DatasetSplit` as a cache key by identity: the loaders cache their splits, so
    every env of a vectorised batch carves the same validation rows out of the same arrays once
    (and shares them), while a caller's own arrays are never hashed by value."""

    def __init__(self, data: DatasetSplit) -> None:
        self.data = data

    def __hash__(self) -> int:
        return hash(tuple(id(a) for a in self.data))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _SameArrays) and all(
            a is b for a, b in zip(self.data, other.data, strict=True)
        )


@lru_cache(maxsize=4)
def _carve_validation(key: _SameArrays, fraction: float, seed: int) -> DatasetSplit:
    """The training part of ``key.data`` split (stratified, ``seed``) into what is still trained
    on (``X_train``, ``y_train``) and the validation rows (``X_test``, ``y_test``)."""
    data = key.data
    try:
        carved = split_arrays(data.X_train, data.y_train, fraction, seed)
    except DatasetError as exc:
        raise DatasetError(f"validation_fraction={fraction} of the training rows: {exc}") from exc
    for array in carved:
        array.setflags(write=False)
    return carved


def _select(
    data: DatasetSplit, split: Split, validation_fraction: float | None, split_seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``split``: the test rows as loaded; with ``validation_fraction``, the training
    rows less the validation ones (``"train"``) or the validation ones."""
    if validation_fraction is not None and (
        isinstance(validation_fraction, bool)
        or not isinstance(validation_fraction, int | float)
        or not 0.0 < validation_fraction < 1.0
    ):
        raise DatasetError(
            f"validation_fraction must be None or a share in (0, 1), got {validation_fraction!r}"
        )
    if split == "test":
        return data.X_test, data.y_test
    if validation_fraction is None:
        if split == "validation":
            raise DatasetError(
                "split='validation' needs validation_fraction, the share of the training split "
                "held out for validation; pass the same value to the training env too "
                "(split='train', validation_fraction=...), so it leaves those rows out"
            )
        return data.X_train, data.y_train
    carved = _carve_validation(_SameArrays(data), float(validation_fraction), split_seed)
    return (carved.X_train, carved.y_train) if split == "train" else (carved.X_test, carved.y_test)


class ClassificationBandit(gym.Env[np.ndarray, np.int64]):
    """
    ## Description

    A contextual bandit built from a labelled data set, as in bsuite's MNIST bandit: each step
    shows one example, the agent names a class and hears only whether it was right. This is the
    setting King-Yin Yan's rule is made for: the reward is known, the error is not. The true
    label is still reported in ``info`` so that a supervised learner (``BackpropAgent``) can run
    on the very same stream as an upper bound.

    Examples are drawn without replacement: the training split is reshuffled (with
    ``self.np_random``) at the start of every pass; ``split="test"`` walks the held-out set in a
    fixed order, so ``len(env.unwrapped)`` one-step episodes after ``reset(seed=...)`` visit every
    held-out example exactly once (held-out accuracy = (mean reward + 1) / 2 for ±1 rewards).
    ``split="validation"`` walks the validation rows the same way.

    **Three splits.** The test rows are held out of the data set (``test_fraction``); with
    ``validation_fraction``, that share of the *training* rows is held out too, as a validation
    split, and ``split="train"`` then leaves it out. Hyperparameters are chosen on the validation
    split (``jacrl tune`` does), so the test split stays unseen until the final evaluation
    (``jacrl train``, ``jacrl compare``). Without ``validation_fraction`` (the registered specs)
    the training split is every row not held out for testing, as before there was a validation
    split.

    ## Action Space

    ``Discrete(n_classes)``: the predicted class (10 for digits and MNIST).

    ## Observation Space

    ``Box(low, high, (d,), float32)``: the example's features. digits: d = 64, MNIST: d = 784,
    both scaled to [0, 1] (not standardised; see :mod:`jacrl.envs.datasets`). For
    ``dataset="arrays"`` the bounds are the minimum and maximum of ``X``.

    ## Rewards

    ``reward_correct`` (+1) if the action equals the label, else ``reward_wrong`` (-1).

    ## Starting State

    The first example of the episode, the next one of the current pass.

    ## Episode End

    The episode terminates after ``episode_length`` answers (1 by default: one-step episodes).
    The observation returned by the terminating step is the example just answered again: no new
    example is drawn, so none is skipped.

    ## Information: which label is where

    - ``reset`` → ``info["label"]``, ``info["index"]``: label and data-set row of the
      observation it returns (the example to answer first).
    - ``step`` → ``info["label"]``, ``info["index"]``, ``info["correct"]``: label and row of the
      example the action *answered*, i.e. of the observation passed in the previous call, not of
      the observation this step returns. A supervised learner therefore trains on
      ``(obs_t, step_info_t["label"])``, the same pair whether the episode goes on or ends, and
      whether or not a vector env resets in between.

    ## Arguments

    ``gym.make("jacrl/DigitsBandit-v0", split="test")`` and:

    - ``dataset``: ``"digits"`` (sklearn, the default), ``"mnist"`` (IDX files in ``mnist_dir``
      or ``$JACRL_MNIST_DIR``), or ``"arrays"``: your own ``X`` (n, d) and integer labels ``y``
      (n,), which ``ClassificationBandit(X=X, y=y)`` implies.
    - ``reward_correct``, ``reward_wrong``: the two rewards.
    - ``episode_length``: answers per episode (default 1).
    - ``split``: ``"train"`` (shuffled passes), ``"validation"`` or ``"test"`` (held-out rows,
      fixed order).
    - ``test_fraction``, ``split_seed``: the held-out share and the seed of the stratified
      train/test split. digits: 0.2 unless given; arrays: no held-out part unless given (then
      build the ``split="test"`` env with the same two values); MNIST's split is fixed.
    - ``validation_fraction``: the share of the training rows held out as the validation split
      (stratified, seeded with ``split_seed``; it never overlaps the test split); ``None`` (the
      default) holds none out. Give the ``"train"`` and ``"validation"`` envs the same value.
    - ``render_mode``: ``None`` or ``"rgb_array"`` (the example shown, as a grey image).

    ## Version History

    - v0: initial version.
    """

    # a plain dict, as gymnasium's own envs declare it (Env annotates it as an instance attribute)
    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}  # noqa: RUF012

    def __init__(
        self,
        dataset: DatasetName | None = None,
        X: np.ndarray | None = None,
        y: np.ndarray | None = None,
        mnist_dir: str | os.PathLike[str] | None = None,
        reward_correct: float = 1.0,
        reward_wrong: float = -1.0,
        episode_length: int = 1,
        split: Split = "train",
        test_fraction: float | None = None,
        split_seed: int = 0,
        render_mode: str | None = None,
        validation_fraction: float | None = None,
    ) -> None:
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise JacrlError(f"render_mode={render_mode!r}: expected None or 'rgb_array'")
        self.render_mode = render_mode
        if split not in get_args(Split):
            raise JacrlError(f"split must be one of {get_args(Split)}, got {split!r}")
        if int(episode_length) != episode_length or episode_length < 1:
            raise JacrlError(f"episode_length must be a positive integer, got {episode_length!r}")
        data = _load(dataset, X, y, mnist_dir, split, test_fraction, split_seed)
        self.split: Split = split
        self.X, self.y = _select(data, split, validation_fraction, split_seed)
        self.n_classes = int(max(data.y_train.max(), data.y_test.max(initial=0))) + 1
        self.reward_correct = float(reward_correct)
        self.reward_wrong = float(reward_wrong)
        self.episode_length = int(episode_length)

        all_X = (data.X_train, data.X_test)
        low = min(float(a.min()) for a in all_X if a.size)
        high = max(float(a.max()) for a in all_X if a.size)
        self._feature_range = (low, high)
        self.observation_space = spaces.Box(low, high, shape=(self.X.shape[1],), dtype=np.float32)
        self.action_space = spaces.Discrete(self.n_classes)

        self._order: np.ndarray | None = None  # the current pass over the split
        self._pos = 0  # next position in _order
        self._current: int | None = None  # row shown and not yet answered
        self._t = 0  # answers given in this episode
        self._shown = 0  # row of the last observation returned, for render()

    def __len__(self) -> int:
        """Number of examples in the split (one pass)."""
        return len(self.y)

    def _new_pass(self) -> None:
        n = len(self.y)
        self._order = self.np_random.permutation(n) if self.split == "train" else np.arange(n)
        self._pos = 0

    def _draw(self) -> int:
        if self._order is None or self._pos == len(self._order):
            self._new_pass()
        assert self._order is not None
        row = int(self._order[self._pos])
        self._pos += 1
        return row

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Show the next example; a ``seed`` restarts the stream (new shuffle, or test row 0)."""
        super().reset(seed=seed)
        if seed is not None:
            self._order = None
        self._t = 0
        self._current = self._shown = self._draw()
        return self.X[self._current].copy(), {
            "label": int(self.y[self._current]),
            "index": self._current,
        }

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._current is None:
            raise gym.error.ResetNeeded("call reset() before step() and after the episode ends")
        choice = int(action)
        if not 0 <= choice < self.n_classes:
            raise JacrlError(f"action must be a class in 0..{self.n_classes - 1}, got {action!r}")
        answered = self._current
        label = int(self.y[answered])
        correct = choice == label
        reward = self.reward_correct if correct else self.reward_wrong
        self._t += 1
        terminated = self._t >= self.episode_length
        if terminated:
            self._current = None
            obs = self.X[answered].copy()
        else:
            self._current = self._shown = self._draw()
            obs = self.X[self._current].copy()
        info = {"label": label, "index": answered, "correct": correct}
        return obs, reward, terminated, False, info

    def render(self) -> np.ndarray | None:
        """The example last shown as a grey image (square feature vectors as a square, others as
        a strip), each feature 4×4 pixels, for ``render_mode="rgb_array"`` (video recorders)."""
        if self.render_mode is None:
            return None
        features = self.X[self._shown]
        side = math.isqrt(features.size)
        image = features.reshape(side, side) if side * side == features.size else features[None]
        low, high = self._feature_range
        grey = np.uint8(255) - (255 * (image - low) / max(high - low, 1e-12)).astype(np.uint8)
        return np.repeat(np.repeat(grey, 4, axis=0), 4, axis=1)[..., None].repeat(3, axis=2)

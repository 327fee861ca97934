"""Tuning never sees the test split: a trial on a classification bandit trains on the training
rows less a validation share, and is scored on that share.

The split is the env's own (``ClassificationBandit(validation_fraction=...)``, carved from the
training rows with the env's ``split_seed``, so it never overlaps the test split). A trial's
process registers its env id again with ``validation_fraction`` added to the spec's kwargs
(:func:`holding_out_validation`); :func:`jacrl.train.train` then builds the training envs without
the validation rows and evaluates on ``split="validation"`` — what it does for any spec that holds
a validation share out — so the trial's value, and the pruner's intermediate values, are
validation accuracies. ``jacrl train`` and ``jacrl compare`` use the registered spec as it is and
report test accuracy. The trial's ``config.yaml`` records the kwargs it ran with.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator

VALIDATION_FRACTION = 0.2
"""Share of a bandit's training rows a trial holds out (digits: 288 of 1437 images)."""


def validation_kwargs(env_id: str) -> dict[str, Any]:
    """The spec kwargs a trial on ``env_id`` adds: ``validation_fraction`` for a classification
    bandit whose spec does not set one already, else none."""
    from jacrl.envs.classification_bandit import ClassificationBandit

    spec = gym.spec(env_id)
    entry_point = spec.entry_point
    target = entry_point if callable(entry_point) else load_env_creator(str(entry_point))
    is_bandit = isinstance(target, type) and issubclass(target, ClassificationBandit)
    if not is_bandit or spec.kwargs.get("validation_fraction") is not None:
        return {}
    return {"validation_fraction": VALIDATION_FRACTION}


@contextlib.contextmanager
def holding_out_validation(env_id: str, kwargs: Mapping[str, Any]) -> Iterator[None]:
    """Within the block, ``gym.make(env_id)`` adds ``kwargs`` (from :func:`validation_kwargs`) to
    the spec's; the registered spec is put back on the way out (a Ray worker may run another
    task after this one)."""
    if not kwargs:
        yield
        return
    registered = gym.spec(env_id)
    gym.registry[env_id] = dataclasses.replace(registered, kwargs={**registered.kwargs, **kwargs})
    try:
        yield
    finally:
        gym.registry[env_id] = registered

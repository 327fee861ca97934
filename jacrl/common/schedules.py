"""Hyperparameters that may change over training (learning rate, clip range), SB3-style.

A schedule maps ``progress_remaining`` (1 at the start of ``learn``, 0 at the end) to a value, as in
Stable-Baselines3. jacrl accepts a number (constant), the zoo's string ``"lin_<x>"`` (linear from x
to 0) or SB3's :class:`~stable_baselines3.common.utils.LinearSchedule`, because those three can be
written to a saved agent's ``meta.json`` and read back; an arbitrary callable could not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stable_baselines3.common.utils import LinearSchedule

from jacrl.common.errors import ConfigError

ScheduleLike = float | str | LinearSchedule


def as_schedule(name: str, value: ScheduleLike) -> Callable[[float], float]:
    """The schedule ``value`` stands for.

    :param name: the hyperparameter's name, for the error message.
    :raises ConfigError: for anything but a number, ``"lin_<x>"`` or a ``LinearSchedule``.
    """
    if isinstance(value, LinearSchedule):
        return value
    if isinstance(value, str) and value.startswith("lin_"):
        try:
            return LinearSchedule(float(value[4:]), 0.0, 1.0)
        except ValueError:
            pass
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        constant = float(value)
        return lambda _progress_remaining: constant
    raise ConfigError(
        f"{name}={value!r}: expected a number, 'lin_<x>' (linear decay from x to 0) or a "
        "stable_baselines3 LinearSchedule"
    )


def schedule_to_json(value: ScheduleLike) -> Any:
    """A JSON form of ``value`` that :func:`schedule_from_json` turns back into it."""
    if isinstance(value, LinearSchedule):
        return {"LinearSchedule": [value.start, value.end, value.end_fraction]}
    return value


def schedule_from_json(value: Any) -> Any:
    """Inverse of :func:`schedule_to_json`; other values pass through unchanged."""
    if isinstance(value, dict) and set(value) == {"LinearSchedule"}:
        return LinearSchedule(*value["LinearSchedule"])
    return value

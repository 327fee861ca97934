"""Checks for hyperparameters: type and range at construction, in one vocabulary.

Every check takes the argument's name and value and returns the value in the canonical form the
agent stores and saves (a Python ``int``, ``float``, ``bool`` or tuple of ints), or raises
:class:`~jacrl.common.errors.ConfigError` naming the argument, the value and what is accepted.
So a value is refused when the agent is built — not after a rollout, and not when the trained
agent is saved — and whatever is accepted can be written to ``meta.json`` and read back.

Why non-finite numbers are refused everywhere: JSON (RFC 8259) has no ``inf`` or ``NaN``, so a
saved agent, a run's ``config.yaml`` fingerprint and ``result.json`` could not hold one, and every
reader would need a private encoding. Where ``inf`` would mean "no limit" (``max_grad_norm``), a
large number says the same: the message names one.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.utils import LinearSchedule

from jacrl.common.errors import ConfigError
from jacrl.common.schedules import ScheduleLike


def _refuse(name: str, value: object, expected: str) -> ConfigError:
    got = "" if isinstance(value, int | float) else f" (a {type(value).__name__})"
    return ConfigError(f"{name}={value!r}{got}: expected {expected}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def number(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    hint: str = "",
) -> float:
    """A finite real number within the given bounds (closed unless ``*_open``), as a float.

    :param hint: a sentence appended to the message (e.g. what to write for "no limit").
    """
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    if low is not None and high is not None:
        expected = (
            f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        )
    else:
        expected = " ".join(["a finite number", *parts])
    expected += hint
    if not _is_number(value):
        raise _refuse(name, value, expected)
    result = float(value)  # type: ignore[arg-type]
    if not math.isfinite(result):
        raise _refuse(name, value, expected + " (JSON, where agents are saved, has no inf or NaN)")
    too_low = low is not None and (result <= low if low_open else result < low)
    too_high = high is not None and (result >= high if high_open else result > high)
    if too_low or too_high:
        raise _refuse(name, value, expected)
    return result


def positive_float(name: str, value: object, hint: str = "") -> float:
    """A finite number > 0."""
    return number(name, value, low=0.0, low_open=True, hint=hint)


def non_negative_float(name: str, value: object) -> float:
    """A finite number >= 0."""
    return number(name, value, low=0.0)


def unit_interval(name: str, value: object) -> float:
    """A number in [0, 1] (a discount factor, GAE's λ)."""
    return number(name, value, low=0.0, high=1.0)


def whole_number(name: str, value: object, minimum: int = 1) -> int:
    """A whole number >= ``minimum``, as an int; a float with a whole value (``1e5``, as YAML
    and SB3 users write budgets) is accepted, ``1.5`` or ``True`` are not."""
    expected = "a positive whole number" if minimum == 1 else f"a whole number >= {minimum}"
    if not _is_number(value):
        raise _refuse(name, value, expected)
    number_value = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number_value) or number_value != int(number_value):
        raise _refuse(name, value, expected)
    result = int(number_value)
    if result < minimum:
        raise _refuse(name, value, expected)
    return result


def positive_int(name: str, value: object) -> int:
    """A whole number >= 1."""
    return whole_number(name, value, 1)


def non_negative_int(name: str, value: object) -> int:
    """A whole number >= 0."""
    return whole_number(name, value, 0)


def optional_positive_int(name: str, value: object) -> int | None:
    """``None`` or a whole number >= 1."""
    return None if value is None else positive_int(name, value)


def optional_positive_float(name: str, value: object) -> float | None:
    """``None`` or a finite number > 0."""
    return None if value is None else positive_float(name, value)


def boolean(name: str, value: object) -> bool:
    """``True`` or ``False`` (not 0/1 or a string: ``--hp learn_sigma=no`` must not mean True)."""
    if not isinstance(value, bool | np.bool_):
        raise _refuse(name, value, "True or False")
    return bool(value)


def layer_sizes(name: str, value: object) -> tuple[int, ...]:
    """A sequence of positive whole numbers (hidden-layer widths), as a tuple of ints."""
    if isinstance(value, str) or not isinstance(value, Sequence | np.ndarray):
        raise _refuse(name, value, "a list of positive whole numbers (hidden-layer widths)")
    try:
        return tuple(positive_int(f"{name}[{i}]", width) for i, width in enumerate(value))
    except ConfigError as error:
        raise ConfigError(f"{name}={value!r}: {error}") from None


def schedule(name: str, value: object, hint: str = "") -> ScheduleLike:
    """A positive finite constant, ``"lin_<x>"`` with x positive and finite, or an SB3
    ``LinearSchedule`` whose start is positive and end non-negative (a learning rate or clip
    range: a linear decay may end at 0, but never goes below it)."""
    if isinstance(value, LinearSchedule):
        positive_float(f"{name}.start", value.start)
        non_negative_float(f"{name}.end", value.end)
        unit_interval(f"{name}.end_fraction", value.end_fraction)
        return value
    if isinstance(value, str):
        start: Any = None
        if value.startswith("lin_"):
            try:
                start = float(value[4:])
            except ValueError:
                start = None
        if start is None or not (math.isfinite(start) and start > 0):
            raise _refuse(
                name,
                value,
                "a positive number, 'lin_<x>' with x > 0 (linear decay from x to 0) or a "
                "stable_baselines3 LinearSchedule",
            )
        return value
    return positive_float(name, value, hint)


def entropy_coefficient(value: object) -> tuple[bool, float]:
    """SAC's ``ent_coef`` as (learned?, initial value): a number >= 0 (fixed), ``"auto"``
    (learned from 1.0) or ``"auto_<x>"`` (learned from x > 0), as SB3 reads it."""
    expected = "a number >= 0, 'auto' or 'auto_<x>' with x > 0 (SB3's ent_coef)"
    if isinstance(value, str):
        initial = 1.0 if value == "auto" else math.nan
        if value.startswith("auto_"):
            try:
                initial = float(value[len("auto_") :])
            except ValueError:
                initial = math.nan
        if not (initial > 0 and math.isfinite(initial)):
            raise _refuse("ent_coef", value, expected)
        return True, initial
    if not _is_number(value) or not (math.isfinite(float(value)) and float(value) >= 0):  # type: ignore[arg-type]
        raise _refuse("ent_coef", value, expected)
    return False, float(value)  # type: ignore[arg-type]


def entropy_target(value: object, action_dim: int) -> float:
    """SAC's ``target_entropy``: ``"auto"`` is −dim(A) (SB3's default), else a finite number."""
    if value == "auto":
        return -float(action_dim)
    if not _is_number(value) or not math.isfinite(float(value)):  # type: ignore[arg-type]
        raise _refuse("target_entropy", value, "'auto' (minus the action size) or a finite number")
    return float(value)  # type: ignore[arg-type]


def check_names(
    owner: str, given: Sequence[str], accepted: Sequence[str], what: str = "hyperparameter"
) -> None:
    """Refuse keyword names ``owner`` does not take, listing those it does (``--hp key=value``
    overrides, ``policy_kwargs``).

    :param what: what the names are, for the message.
    """
    unknown = [name for name in given if name not in accepted]
    if unknown:
        raise ConfigError(
            f"{owner} has no {what} {', '.join(map(repr, unknown))}; accepted: "
            f"{', '.join(accepted)}"
        )


#: SB3's policy names: what an SB3 user passes first (``PPO("MlpPolicy", env)``).
SB3_POLICY_NAMES = ("MlpPolicy", "CnnPolicy", "MultiInputPolicy")


def check_env_first(owner: str, env: object) -> None:
    """Refuse SB3's ``Agent("MlpPolicy", env)`` order with a message, instead of reading the
    policy name as an env id."""
    if (isinstance(env, str) and env in SB3_POLICY_NAMES) or isinstance(env, type):
        raise ConfigError(
            f"{owner} takes the env first: {owner}(env, ...); its policy is always the invertible "
            f"policy, configured with policy_kwargs (got {env!r} where the env goes)"
        )


def _same_setting(a: object, b: object) -> bool:
    """Equal, with a list and a tuple of the same numbers counting as equal."""
    sequences = (list, tuple)
    if isinstance(a, sequences) and isinstance(b, sequences):
        return tuple(a) == tuple(b)
    return a == b


def merge_policy_kwargs(
    owner: type, names: Sequence[str], policy_kwargs: object, **flat: Any
) -> dict[str, Any]:
    """The policy settings ``names`` from the flat arguments ``flat``, updated by
    ``policy_kwargs`` (SB3's way to pass them).

    A flat argument still at its default (read from ``owner.__init__``'s signature) yields to a
    ``policy_kwargs`` entry; one away from its default and also in ``policy_kwargs`` is refused,
    as is a key that is not a policy setting.

    :raises ConfigError: for a ``policy_kwargs`` that is not a mapping, an unknown key, or a
        setting given both ways.
    """
    if policy_kwargs is None:
        return dict(flat)
    if not isinstance(policy_kwargs, Mapping):
        raise _refuse(
            "policy_kwargs", policy_kwargs, f"a dict of policy settings ({', '.join(names)})"
        )
    check_names(f"{owner.__name__}'s policy_kwargs", list(policy_kwargs), names, "setting")
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(owner.__init__).parameters.items()  # type: ignore[misc]
    }
    both = [
        name
        for name in policy_kwargs
        if not _same_setting(flat[name], defaults[name])
        and not _same_setting(flat[name], policy_kwargs[name])
    ]
    if both:
        given = ", ".join(
            f"{name}={flat[name]!r} and policy_kwargs[{name!r}]={policy_kwargs[name]!r}"
            for name in both
        )
        raise ConfigError(f"{owner.__name__} got {given}: give each setting one way")
    return {**flat, **policy_kwargs}

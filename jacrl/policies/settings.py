"""The invertible policy's settings, checked in one place for every agent that builds one.

``JacobianAgent`` and ``JacobianSAC`` take the same policy settings (flat arguments or SB3's
``policy_kwargs``, merged by :func:`jacrl.common.validation.merge_policy_kwargs`); each agent
names the ones it accepts, and this table checks each in type and range and returns it in the
form that is saved, so the two learners cannot drift in what they accept or how they say no.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from jacrl.common.errors import check_choice
from jacrl.common.validation import (
    boolean,
    layer_sizes,
    non_negative_int,
    number,
    optional_positive_int,
    positive_float,
)
from jacrl.nn.activations import ACTIVATIONS
from jacrl.nn.mlp import PARAMETERIZATIONS
from jacrl.policies.invertible import CONDITIONINGS, DTYPES, EMBEDS

Check = Callable[[str, Any], Any]


def _one_of(accepted: tuple[object, ...]) -> Check:
    def check(name: str, value: object) -> object:
        check_choice(name, value, accepted)
        return value

    return check


def _condition_number_cap(name: str, value: object) -> float:
    return number(name, value, low=1.0, low_open=True)


#: every policy setting an agent may accept, with its check
CHECKS: dict[str, Check] = {
    "embed": _one_of(EMBEDS),
    "width": optional_positive_int,
    "depth": non_negative_int,
    "parameterization": _one_of(tuple(PARAMETERIZATIONS)),
    "activation": _one_of(tuple(ACTIVATIONS)),
    "conditioning": _one_of(CONDITIONINGS),
    "conditioner_hidden": layer_sizes,
    "sigma_x": positive_float,
    "learn_sigma": boolean,
    "state_dependent_sigma": boolean,
    "lift_hidden": layer_sizes,
    "value_hidden": layer_sizes,
    "net_arch": layer_sizes,  # JacobianSAC's critics, given with the policy's as in SB3
    "max_cond": _condition_number_cap,
    "dtype": _one_of(tuple(DTYPES)),
}


def check_policy_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Each setting checked and normalised (layer sizes as tuples, numbers as floats).

    :raises ConfigError: naming the first setting out of type or range and what is accepted.
    """
    return {name: CHECKS[name](name, value) for name, value in settings.items()}

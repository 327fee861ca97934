"""Plain (not invertible) torch activations by name, for the baselines' MLPs.

Presets and overrides name an activation as text: SB3's ``policy_kwargs.activation_fn`` (written
``tanh``, ``nn.ReLU`` or ``th.nn.LeakyReLU``, as rl-baselines3-zoo writes it) and the supervised
classifier's hidden activation. Both read this one table. The invertible activations of the
Jacobian learners, which also need an inverse and a log-derivative, are
:mod:`jacrl.nn.activations`.
"""

from __future__ import annotations

import torch.nn as nn

from jacrl.common.errors import ConfigError

TORCH_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
}
"""Snake-case name → torch module class."""

_BY_CLASS_NAME = {cls.__name__.lower(): cls for cls in TORCH_ACTIVATIONS.values()}


def torch_activation(name: str, option: str = "activation") -> type[nn.Module]:
    """The module class named ``name``: a key of :data:`TORCH_ACTIVATIONS` or the class's own
    name, with or without a module prefix (``leaky_relu``, ``LeakyReLU``, ``nn.LeakyReLU``).

    :param option: the option being read, for the error message.
    :raises ConfigError: for a name that is neither.
    """
    key = name.rpartition(".")[2]
    found = TORCH_ACTIVATIONS.get(key) or _BY_CLASS_NAME.get(key.lower())
    if found is None:
        raise ConfigError(
            f"{option}={name!r} is not an activation jacrl knows; accepted: "
            f"{', '.join(TORCH_ACTIVATIONS)} (or their torch.nn class names)"
        )
    return found

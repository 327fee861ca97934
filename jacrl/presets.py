"""Hyperparameter presets, rl-baselines3-zoo style.

Each agent has a YAML file ``agents/<agent>.yml`` mapping an env id to its hyperparameters, with an
optional ``default`` entry used for envs the file does not name. The keys are the agent's
constructor arguments (SB3 names, so ``n_steps`` means the same for every agent) plus three that the
training run itself consumes:

- ``n_envs``: how many copies of the env to step in parallel,
- ``n_timesteps``: the budget used when ``jacrl train`` gets no ``--steps``,
- ``normalize``: wrap SB3 agents' envs in ``VecNormalize`` (jacrl agents normalise internally).

Values written ``lin_<x>`` (the zoo's notation) become a schedule that decays linearly from ``x``
to 0 over training.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from jacrl.common.errors import ConfigError
from jacrl.common.resources import data_dir
from jacrl.common.schedules import as_schedule

RUN_KEYS = ("n_envs", "n_timesteps", "normalize")


def preset_path(agent: str) -> Path:
    """The shipped preset file of ``agent`` (``agents/<agent>.yml``)."""
    return data_dir("agents") / f"{agent}.yml"


def load_preset(agent: str, env_id: str, path: str | Path | None = None) -> dict[str, Any]:
    """Return the hyperparameters for ``agent`` on ``env_id``.

    :param agent: agent name; selects ``agents/<agent>.yml`` unless ``path`` is given.
    :param env_id: the env's entry in the file, else its ``default`` entry, else ``{}``.
    :param path: a user's own preset file in the same format.
    :raises ConfigError: for unreadable YAML or an entry that is not a mapping.
    """
    file = Path(path) if path is not None else preset_path(agent)
    if not file.is_file():
        if path is not None:
            raise ConfigError(f"preset file {file} does not exist")
        return {}
    try:
        content = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"preset file {file} is not valid YAML: {exc}") from exc
    if not isinstance(content, Mapping):
        raise ConfigError(
            f"preset file {file} must map env ids to hyperparameter mappings, "
            f"got a {type(content).__name__}"
        )
    entry = content.get(env_id, content.get("default", {}))
    if entry is None:
        entry = {}
    if not isinstance(entry, Mapping):
        raise ConfigError(
            f"preset file {file}: the entry for '{env_id}' must be a mapping of "
            f"hyperparameter names to values, got {entry!r}"
        )
    return {key: _number_or_value(value) for key, value in entry.items()}


def _number_or_value(value: Any) -> Any:
    """Read ``"1e-3"`` and ``"1e5"`` as numbers: YAML 1.1 (PyYAML) keeps them as strings."""
    if isinstance(value, str):
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
    return value


def parse_overrides(pairs: Iterable[str]) -> dict[str, Any]:
    """Parse ``--hp key=value`` strings; values are read as YAML (``64``, ``1e-3``, ``[64, 64]``).

    :raises ConfigError: for an item without ``=`` or with an empty key.
    """
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--hp expects key=value (e.g. n_steps=64), got '{pair}'")
        try:
            overrides[key.strip()] = _number_or_value(yaml.safe_load(raw))
        except yaml.YAMLError as exc:
            raise ConfigError(f"--hp {pair}: the value is not valid YAML: {exc}") from exc
    return overrides


def resolve_schedules(hp: Mapping[str, Any]) -> dict[str, Any]:
    """Turn the zoo's ``lin_<x>`` strings into SB3 schedules, for SB3's constructors.

    jacrl's own agents take the strings as they are (they store them in ``meta.json``).

    :raises ConfigError: for ``lin_`` followed by something that is not a number.
    """
    return {
        key: as_schedule(key, value)
        if isinstance(value, str) and value.startswith("lin_")
        else value
        for key, value in hp.items()
    }

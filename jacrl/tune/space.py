"""Search spaces for ``jacrl tune``: what Optuna samples for each agent, and how a file says it.

A search space maps a hyperparameter (a preset key, the agent's constructor argument) to a
*dimension* — a float range, an integer range or a list of choices — or to a fixed value. Keys may
be dotted (``policy_kwargs.net_arch``) to sample one entry of a mapping argument; the sampled entry
is merged into the preset's mapping, so the rest of it (``log_std_init``, say) is kept.

The built-in spaces (:data:`SPACES`) follow rl-baselines3-zoo's ``hyperparams_opt.py`` in spirit:
log-uniform learning rates and entropy coefficients, ``gamma`` and ``gae_lambda`` sampled as
``1 - x`` on a log scale (the interesting values crowd near 1), powers of two for rollout and
minibatch sizes, and a few network sizes. Where jacrl differs it says so in the space's comment.

A user file (``--space FILE``, YAML, read with ``safe_load``) replaces the built-in space whole::

    learning_rate: {low: 1.0e-4, high: 3.0e-3, log: true}   # float range
    gamma: {low: 0.95, high: 0.9999, one_minus: true}        # 1 - gamma log-uniform
    depth: {low: 1, high: 4}                                 # integers (both ends whole)
    n_steps: {choices: [64, 128, 256]}
    lift_hidden: {choices: [[32, 32], [64, 64]]}             # choices may be lists or mappings
    width: 8                                                 # fixed, not sampled

Every key is checked against the agent's constructor at once: a misspelt name is an error, not a
hyperparameter silently ignored for a whole study.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from jacrl.common.errors import ConfigError


class Suggester(Protocol):
    """The part of ``optuna.Trial`` a space samples through (kept structural so this module does
    not import Optuna, an optional dependency)."""

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int: ...

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


@dataclass(frozen=True)
class FloatRange:
    """A float in ``[low, high]``, log-uniform with ``log``.

    With ``one_minus`` the sampled quantity is ``1 - value`` (log-uniform in ``[1 - high, 1 -
    low]``, named ``one_minus_<key>`` in the study), as the zoo samples discount factors.
    """

    low: float
    high: float
    log: bool = False
    one_minus: bool = False

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ConfigError(f"a float range needs low < high, got [{self.low}, {self.high}]")
        if self.log and self.low <= 0:
            raise ConfigError(f"a log range needs low > 0, got low={self.low}")
        if self.one_minus and not self.high < 1:
            raise ConfigError(f"a one_minus range needs high < 1, got high={self.high}")

    def sample(self, trial: Suggester, key: str) -> float:
        if self.one_minus:
            gap = trial.suggest_float(f"one_minus_{key}", 1 - self.high, 1 - self.low, log=True)
            return 1.0 - gap
        return trial.suggest_float(key, self.low, self.high, log=self.log)


@dataclass(frozen=True)
class IntRange:
    """An integer in ``[low, high]``, log-uniform with ``log``."""

    low: int
    high: int
    log: bool = False

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ConfigError(f"an integer range needs low < high, got [{self.low}, {self.high}]")
        if self.log and self.low <= 0:
            raise ConfigError(f"a log range needs low > 0, got low={self.low}")

    def sample(self, trial: Suggester, key: str) -> int:
        return trial.suggest_int(key, self.low, self.high, log=self.log)


@dataclass(frozen=True)
class Choice:
    """One of ``choices``. Optuna stores only scalars, so list or mapping choices are stored
    under their JSON text and decoded back here."""

    choices: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.choices:
            raise ConfigError("choices must not be empty")

    def sample(self, trial: Suggester, key: str) -> Any:
        scalars = (v is None or isinstance(v, bool | int | float | str) for v in self.choices)
        if all(scalars):
            return trial.suggest_categorical(key, list(self.choices))
        labels = [json.dumps(value, allow_nan=False) for value in self.choices]
        return self.choices[labels.index(trial.suggest_categorical(key, labels))]


Dimension = FloatRange | IntRange | Choice
SearchSpace = dict[str, Any]
"""Key (possibly dotted) → a :data:`Dimension`, or any other value, which is fixed."""

_POW2_ROLLOUTS = (32, 64, 128, 256, 512, 1024, 2048)
_GAMMA = FloatRange(0.97, 0.9999, one_minus=True)
_GAE_LAMBDA = FloatRange(0.9, 0.9999, one_minus=True)
_LEARNING_RATE = FloatRange(1e-5, 2e-3, log=True)
_ENT_COEF = FloatRange(1e-8, 0.1, log=True)
_MAX_GRAD_NORM = FloatRange(0.3, 2.0)
_ACTIVATION = Choice(("tanh", "relu"))
_OFF_POLICY_NET = Choice(([64, 64], [256, 256], [400, 300]))
_OFF_POLICY: SearchSpace = {
    "gamma": _GAMMA,
    "learning_rate": _LEARNING_RATE,
    "batch_size": Choice((32, 64, 128, 256, 512, 1024, 2048)),
    "train_freq": IntRange(1, 10),
    # the zoo ties gradient steps to train_freq (one update per env step); SB3's -1 says that
    "gradient_steps": -1,
    "tau": FloatRange(0.001, 0.08, log=True),
    "policy_kwargs.net_arch": _OFF_POLICY_NET,
}

SPACES: dict[str, SearchSpace] = {
    # The density-rule PPO learner: PPO's rollout/update knobs as the zoo samples them for PPO,
    # plus the invertible policy's own: the initial noise σ_x, the width and depth of F, the lift
    # x0(s), and target_kl, SB3's KL stop (None, no stop, is what the presets use: on CartPole,
    # seeds 0-2 at 5e4 steps, 0.02 gave a final return of 263.5 ± 205.3 and none 438.1 ± 107.2;
    # agents/jacobian.yml).
    "jacobian": {
        "learning_rate": _LEARNING_RATE,
        "n_steps": Choice(_POW2_ROLLOUTS),
        "batch_size": Choice((16, 32, 64, 128, 256)),
        "n_epochs": Choice((1, 5, 10, 20)),
        "clip_range": Choice((0.1, 0.2, 0.3, 0.4)),
        "gamma": _GAMMA,
        "gae_lambda": _GAE_LAMBDA,
        "max_grad_norm": _MAX_GRAD_NORM,
        "sigma_x": FloatRange(0.1, 2.0, log=True),
        "width": Choice((8, 16, 32)),
        "depth": IntRange(1, 4),
        "lift_hidden": Choice(([32, 32], [64, 64], [128, 128])),
        "target_kl": Choice((None, 0.01, 0.02, 0.05)),
    },
    "ppo": {
        "learning_rate": _LEARNING_RATE,
        "n_steps": Choice((*_POW2_ROLLOUTS, 4096)),
        "batch_size": Choice((8, 16, 32, 64, 128, 256, 512, 1024)),
        "n_epochs": Choice((1, 5, 10, 20)),
        "clip_range": Choice((0.1, 0.2, 0.3, 0.4)),
        "gamma": _GAMMA,
        "gae_lambda": _GAE_LAMBDA,
        "ent_coef": _ENT_COEF,
        "max_grad_norm": _MAX_GRAD_NORM,
        "policy_kwargs.net_arch": Choice(([64], [64, 64], [256, 256])),
        "policy_kwargs.activation_fn": _ACTIVATION,
    },
    "a2c": {
        "learning_rate": _LEARNING_RATE,
        "n_steps": Choice(_POW2_ROLLOUTS),
        "gamma": _GAMMA,
        "gae_lambda": _GAE_LAMBDA,
        "ent_coef": _ENT_COEF,
        "max_grad_norm": _MAX_GRAD_NORM,
        "policy_kwargs.net_arch": Choice(([64, 64], [256, 256])),
        "policy_kwargs.activation_fn": _ACTIVATION,
    },
    "dqn": {
        "gamma": _GAMMA,
        "learning_rate": _LEARNING_RATE,
        "batch_size": Choice((16, 32, 64, 128, 256, 512, 1024, 2048)),
        "train_freq": IntRange(1, 10),
        # the zoo samples a subsampling factor and derives gradient_steps from it; sampling
        # gradient_steps directly spans the same update-to-data ratios
        "gradient_steps": IntRange(1, 8),
        "exploration_fraction": FloatRange(0.0, 0.5),
        "exploration_final_eps": FloatRange(0.0, 0.2),
        "target_update_interval": IntRange(1, 20000, log=True),
        "policy_kwargs.net_arch": _OFF_POLICY_NET,
    },
    "sac": dict(_OFF_POLICY),
    # the zoo's noise_type also offers "none"; noise_std 0 is that case
    "td3": {
        **_OFF_POLICY,
        "noise_type": Choice(("normal", "ornstein-uhlenbeck")),
        "noise_std": FloatRange(0.0, 0.5),
    },
}
"""The built-in search space of each agent that has one."""

_NOT_TUNABLE = frozenset(
    {"self", "env", "policy", "seed", "device", "verbose", "tensorboard_log", "_init_setup_model"}
    | {"observation_space", "action_space", "n_timesteps", "stats_window_size", "n_envs"}
)
_ZOO_KEYS = ("noise_type", "noise_std", "normalize")
"""Zoo preset keys that are not constructor arguments but that jacrl turns into them (or, for
``normalize``, into the VecNormalize wrapper): accepted in an SB3 agent's space."""


def tunable_keys(agent: str) -> tuple[str, ...]:
    """The top-level keys a search space of ``agent`` may name: its constructor's arguments
    (less the env, seed and logging plumbing), plus, for SB3 agents, the zoo's ``noise_type``,
    ``noise_std`` and ``normalize``.

    ``n_envs`` and ``n_timesteps`` are not tunable: the budget is ``--steps`` for every trial,
    and ``n_envs`` would change what a "step" costs between trials.

    :raises ConfigError: for an unknown agent.
    """
    from jacrl.agents.registry import get_agent

    entry = get_agent(agent)
    names = [
        name
        for name, param in inspect.signature(entry.cls.__init__).parameters.items()
        if name not in _NOT_TUNABLE and param.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    if entry.family == "sb3":
        names.extend(_ZOO_KEYS)
    return tuple(names)


def check_space(space: Mapping[str, Any], agent: str, source: str) -> None:
    """Refuse a space naming a key ``agent`` does not take.

    :param source: where the space came from, for the message.
    :raises ConfigError: naming the unknown key and listing the accepted ones.
    """
    accepted = tunable_keys(agent)
    for key in space:
        if key.partition(".")[0] not in accepted:
            raise ConfigError(
                f"{source}: unknown parameter '{key}' for agent '{agent}'; accepted: "
                f"{', '.join(accepted)} (a dotted key such as policy_kwargs.net_arch samples one "
                "entry of a mapping argument)"
            )


def builtin_space(agent: str) -> SearchSpace:
    """The built-in space of ``agent``.

    :raises ConfigError: for an agent without one (then pass a space file).
    """
    if agent not in SPACES:
        raise ConfigError(
            f"agent '{agent}' has no built-in search space (built in: {', '.join(SPACES)}); "
            "pass --space FILE with one (see jacrl/tune/space.py for the format)"
        )
    return dict(SPACES[agent])


_RANGE_KEYS = frozenset({"low", "high", "log", "one_minus"})


def _number(value: Any, what: str) -> int | float:
    """A YAML number; ``"1e-4"`` too, which YAML 1.1 (PyYAML) reads as a string."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    raise ConfigError(f"{what} must be a number, got {value!r}")


def _dimension(key: str, spec: Any, source: str) -> Any:
    """A file entry → a :data:`Dimension`, or the fixed value it is."""
    if not isinstance(spec, Mapping) or not ({"choices"} | _RANGE_KEYS) & set(spec):
        return spec
    where = f"{source}: '{key}'"
    if "choices" in spec:
        if set(spec) != {"choices"} or not isinstance(spec["choices"], list):
            raise ConfigError(f"{where}: write choices alone, as a list: {{choices: [a, b]}}")
        return Choice(tuple(spec["choices"]))
    unknown = set(spec) - _RANGE_KEYS
    if unknown or not {"low", "high"} <= set(spec):
        raise ConfigError(
            f"{where}: a range is {{low: L, high: H}} with optional log: true or one_minus: true; "
            f"got keys {sorted(spec)}"
        )
    low, high = _number(spec["low"], f"{where} low"), _number(spec["high"], f"{where} high")
    flags = {name: spec.get(name, False) for name in ("log", "one_minus")}
    if any(not isinstance(flag, bool) for flag in flags.values()):
        raise ConfigError(f"{where}: log and one_minus must be true or false, got {flags}")
    try:
        if isinstance(low, int) and isinstance(high, int) and not flags["one_minus"]:
            return IntRange(low, high, log=flags["log"])
        return FloatRange(float(low), float(high), **flags)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def load_space(path: str | Path, agent: str) -> SearchSpace:
    """Read a user's search-space file (format in the module docstring) and check it for ``agent``.

    :raises ConfigError: for a missing or malformed file, a malformed entry, or an unknown key.
    """
    file = Path(path)
    try:
        content = yaml.safe_load(file.read_text())
    except OSError as exc:
        raise ConfigError(f"search space file {file} cannot be read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"search space file {file} is not valid YAML: {exc}") from exc
    if not isinstance(content, Mapping) or not content:
        raise ConfigError(
            f"search space file {file} must map hyperparameter names to ranges, choices or "
            f"fixed values, got {content!r}"
        )
    space = {str(key): _dimension(str(key), spec, str(file)) for key, spec in content.items()}
    check_space(space, agent, f"search space file {file}")
    return space


def sample(trial: Suggester, space: Mapping[str, Any]) -> dict[str, Any]:
    """Draw one point of ``space`` through ``trial``; dotted keys become nested mappings."""
    drawn: dict[str, Any] = {}
    for key, spec in space.items():
        value = spec.sample(trial, key) if isinstance(spec, Dimension) else spec
        *parents, leaf = key.split(".")
        node = drawn
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return drawn


def merge(base: Mapping[str, Any], drawn: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` (a preset entry) with ``drawn`` on top, mapping values merged key by key.

    A preset's mapping may be the zoo's ``"dict(...)"`` text; it is parsed (never evaluated) by
    :func:`jacrl.agents.sb3.parse_kwargs_text` so a sampled ``policy_kwargs.net_arch`` keeps the
    preset's other policy settings.
    """
    merged = dict(base)
    for key, value in drawn.items():
        under = merged.get(key)
        if isinstance(value, Mapping) and under is not None:
            if isinstance(under, str):
                from jacrl.agents.sb3 import parse_kwargs_text

                under = parse_kwargs_text(under, key)
            if isinstance(under, Mapping):
                value = merge(under, value)
        merged[key] = dict(value) if isinstance(value, Mapping) else value
    return merged


def describe(space: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-able description of ``space``, stored with the study so a resumed run can check it
    samples the same space."""
    return {
        key: {type(spec).__name__: jsonable(vars(spec))}
        if isinstance(spec, Dimension)
        else jsonable(spec)
        for key, spec in space.items()
    }


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON values (tuples become lists), as Optuna stores attributes."""
    return json.loads(json.dumps(value, default=list, allow_nan=False))

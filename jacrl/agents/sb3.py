"""Stable-Baselines3 baselines (PPO, A2C, DQN, SAC, TD3) built from jacrl's presets.

They receive exactly the rewards the Jacobian agents receive, log the same TensorBoard keys (SB3's
own), and save to the same run-folder layout, so ``jacrl compare`` can lay them side by side.
The presets are rl-baselines3-zoo's, in its notation, which :func:`constructor_kwargs` turns into
SB3 constructor arguments the way the zoo does — but without ``eval``: the zoo's
``policy_kwargs: "dict(net_arch=[64, 64])"`` strings are parsed as literals, and its
``noise_type``/``noise_std`` pair becomes the action-noise object it names.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any, Literal, get_args

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.noise import (
    ActionNoise,
    NormalActionNoise,
    OrnsteinUhlenbeckActionNoise,
)
from stable_baselines3.common.vec_env import VecEnv

from jacrl.agents.registry import get_agent
from jacrl.common.errors import ConfigError
from jacrl.common.torch_activations import torch_activation
from jacrl.common.validation import (
    boolean,
    entropy_coefficient,
    entropy_target,
    non_negative_float,
    non_negative_int,
    number,
    optional_positive_float,
    positive_float,
    positive_int,
    schedule,
    unit_interval,
    whole_number,
)
from jacrl.presets import resolve_schedules

NoiseType = Literal["normal", "ornstein-uhlenbeck"]
"""The zoo's ``noise_type`` values: Gaussian, or Ornstein-Uhlenbeck (temporally correlated)."""


def parse_kwargs_text(text: str, option: str) -> dict[str, Any]:
    """Read a zoo keyword string such as ``"dict(log_std_init=-3, net_arch=[400, 300])"``.

    The zoo ``eval``s these; jacrl reads files without executing code from them, so only
    literals are accepted — numbers, strings, booleans, ``None``, lists, tuples, ``{...}`` and
    ``dict(...)`` — plus a name (``nn.ReLU``) as the value of ``activation_fn``.

    :param option: the option being read, for error messages.
    :raises ConfigError: for anything else (a call, an arithmetic expression, a bare name).
    """
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ConfigError(f"{option}={text!r} is not a dict(...) expression: {exc.msg}") from None
    value = _literal(tree.body, option, text)
    if not isinstance(value, dict):
        raise ConfigError(f"{option}={text!r} must be a dict(...) or {{...}}, not {value!r}")
    return value


def _literal(node: ast.expr, option: str, text: str, name_ok: bool = False) -> Any:
    """The value of one literal node; see :func:`parse_kwargs_text` for what is allowed."""
    match node:
        case ast.Constant(value=value) if value is None or isinstance(
            value, bool | int | float | str
        ):
            return value
        case ast.UnaryOp(op=ast.USub() | ast.UAdd() as sign, operand=ast.Constant(value=number)):
            if isinstance(number, int | float) and not isinstance(number, bool):
                return -number if isinstance(sign, ast.USub) else number
        case ast.List(elts=items):
            return [_literal(item, option, text) for item in items]
        case ast.Tuple(elts=items):
            return tuple(_literal(item, option, text) for item in items)
        case ast.Dict(keys=keys, values=values):
            names = [k.value if isinstance(k, ast.Constant) else None for k in keys]
            if all(isinstance(name, str) for name in names):
                return _mapping(zip(names, values, strict=True), option, text)
        case ast.Call(func=ast.Name(id="dict"), args=[], keywords=keywords):
            if all(kw.arg is not None for kw in keywords):
                return _mapping(((kw.arg, kw.value) for kw in keywords), option, text)
        case ast.Name() | ast.Attribute() if name_ok:
            return ast.unparse(node)
    raise ConfigError(
        f"{option}={text!r}: {ast.unparse(node)!r} is not a literal; accepted: numbers, "
        "strings, booleans, None, lists, tuples, dict(...) and {...}, and a name such as nn.ReLU "
        "as activation_fn (the file is read, not executed)"
    )


def _mapping(items: Iterable[tuple[Any, ast.expr]], option: str, text: str) -> dict[str, Any]:
    """The entries of ``{...}`` or ``dict(...)``; ``activation_fn`` alone may be a name."""
    return {
        key: _literal(value, option, text, name_ok=key == "activation_fn") for key, value in items
    }


def _policy_kwargs(raw: Mapping[str, Any] | str | None) -> dict[str, Any] | None:
    """``policy_kwargs`` as SB3 takes it: a zoo string parsed, ``activation_fn`` a class."""
    if raw is None:
        return None
    kwargs = parse_kwargs_text(raw, "policy_kwargs") if isinstance(raw, str) else dict(raw)
    name = kwargs.get("activation_fn")
    if isinstance(name, str):
        kwargs["activation_fn"] = torch_activation(name, "policy_kwargs.activation_fn")
    return kwargs


def _action_noise(noise_type: Any, noise_std: Any, action_space: spaces.Space) -> ActionNoise:
    """The zoo's ``noise_type``/``noise_std``: zero-mean noise of that std on every action.

    SB3 adds it to the actions scaled to [-1, 1], so the std is a fraction of the half-range.
    """
    if noise_type not in get_args(NoiseType):
        raise ConfigError(f"noise_type={noise_type!r}: expected one of {get_args(NoiseType)}")
    if noise_std is None:
        raise ConfigError(f"noise_type={noise_type!r} needs noise_std (the noise's std)")
    if not isinstance(action_space, spaces.Box):
        raise ConfigError(f"action noise needs a Box action space, the env has {action_space}")
    shape = action_space.shape
    try:
        sigma = np.broadcast_to(np.asarray(noise_std, dtype=float), shape).copy()
    except ValueError:
        raise ConfigError(
            f"noise_std={noise_std!r}: expected a number or one per action dimension {shape}"
        ) from None
    if not np.all(np.isfinite(sigma)) or np.any(sigma < 0):
        raise ConfigError(f"noise_std={noise_std!r} must be finite and non-negative")
    if noise_type == "normal":
        return NormalActionNoise(mean=np.zeros(shape), sigma=sigma)
    return OrnsteinUhlenbeckActionNoise(mean=np.zeros(shape), sigma=sigma)


def _train_freq(name: str, value: object) -> object:
    """SB3's ``train_freq``: a positive number of steps, or ``[n, "step" | "episode"]``."""
    if isinstance(value, list | tuple):
        if len(value) != 2 or value[1] not in ("step", "episode"):
            raise ConfigError(
                f"{name}={value!r}: expected a positive whole number of steps or "
                "[n, 'step' | 'episode']"
            )
        return (positive_int(f"{name}[0]", value[0]), value[1])
    return positive_int(name, value)


def _optional_schedule(name: str, value: object) -> object:
    return None if value is None else schedule(name, value)


#: Checks of the SB3 constructor arguments that jacrl's own agents share (same names, same
#: meaning, same checks), so a baseline refuses at construction what a Jacobian agent refuses.
#: SB3 checks few of them itself: A2C with gamma=-1 or DQN with exploration_fraction=3 train,
#: TD3 with tau="abc" fails at its first gradient step. ``ent_coef`` and ``target_entropy``
#: depend on the algorithm (:func:`checked_hyperparameters`).
_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "learning_rate": schedule,
    "gamma": unit_interval,
    "n_steps": positive_int,
    "batch_size": positive_int,
    "n_epochs": positive_int,
    "gae_lambda": unit_interval,
    "clip_range": schedule,
    "clip_range_vf": _optional_schedule,
    "normalize_advantage": boolean,
    "vf_coef": non_negative_float,
    "max_grad_norm": positive_float,
    "target_kl": optional_positive_float,
    "use_sde": boolean,
    "sde_sample_freq": partial(whole_number, minimum=-1),  # -1: once per rollout
    "use_sde_at_warmup": boolean,
    "rms_prop_eps": positive_float,
    "use_rms_prop": boolean,
    "buffer_size": positive_int,
    "learning_starts": non_negative_int,
    "tau": partial(number, low=0.0, high=1.0, low_open=True),
    "train_freq": _train_freq,
    "gradient_steps": partial(whole_number, minimum=-1),  # -1: as many as steps collected
    "target_update_interval": positive_int,
    "exploration_fraction": unit_interval,
    "exploration_initial_eps": unit_interval,
    "exploration_final_eps": unit_interval,
    "policy_delay": positive_int,
    "target_policy_noise": non_negative_float,
    "target_noise_clip": non_negative_float,
    "stats_window_size": positive_int,
}


def checked_hyperparameters(
    algo: str, hp: Mapping[str, Any], action_space: spaces.Space
) -> dict[str, Any]:
    """``hp`` (zoo notation) with every value :data:`_CHECKS` knows checked and in its canonical
    form (a whole float such as ``100000.0`` as the int SB3 needs), and SAC's ``ent_coef`` (a
    number >= 0, ``"auto"``, ``"auto_<x>"``) and ``target_entropy`` checked; the other keys
    pass unchanged (SB3 names an unknown one).

    :raises ConfigError: naming the first value refused and what is accepted.
    """
    checked = dict(hp)
    for key, value in hp.items():
        if key in _CHECKS:
            checked[key] = _CHECKS[key](key, value)
        elif key == "ent_coef":
            if algo == "sac":
                entropy_coefficient(value)
            else:
                checked[key] = number(key, value)
        elif key == "target_entropy" and algo == "sac":
            entropy_target(value, int(np.prod(action_space.shape or (1,))))
    return checked


def constructor_kwargs(hp: Mapping[str, Any], action_space: spaces.Space) -> dict[str, Any]:
    """Preset hyperparameters (zoo notation) → keyword arguments of an SB3 constructor.

    - ``lin_<x>`` values become linear schedules (:func:`jacrl.presets.resolve_schedules`);
    - ``policy_kwargs`` may be the zoo's ``"dict(...)"`` string, ``activation_fn`` a name;
    - ``noise_type`` + ``noise_std`` become ``action_noise`` (TD3, SAC);
    - ``train_freq: [1, "episode"]`` (a YAML list) becomes the tuple SB3 expects.

    ``policy`` is left in; :func:`make_sb3_agent` defaults it to ``"MlpPolicy"``.

    :raises ConfigError: for a malformed value of any of these.
    """
    kwargs = resolve_schedules(hp)
    if "policy_kwargs" in kwargs:
        kwargs["policy_kwargs"] = _policy_kwargs(kwargs["policy_kwargs"])
    if "noise_type" in kwargs or "noise_std" in kwargs:
        if "action_noise" in kwargs:
            raise ConfigError("give either action_noise or noise_type/noise_std, not both")
        kwargs["action_noise"] = _action_noise(
            kwargs.pop("noise_type", None), kwargs.pop("noise_std", None), action_space
        )
    if isinstance(kwargs.get("train_freq"), list):
        kwargs["train_freq"] = tuple(kwargs["train_freq"])
    return kwargs


def make_sb3_agent(
    algo: str,
    env: VecEnv,
    hp: Mapping[str, Any] | None = None,
    seed: int | None = None,
    verbose: int = 0,
    device: str = "auto",
) -> BaseAlgorithm:
    """Build the SB3 agent registered as ``algo`` on ``env`` with preset hyperparameters.

    :param algo: an ``"sb3"`` entry of :data:`jacrl.agents.registry.AGENTS` (``ppo``, ``sac``…).
    :param hp: preset hyperparameters in zoo notation (see :func:`constructor_kwargs`).
    :raises ConfigError: for an unknown or non-SB3 agent, a value
        :func:`checked_hyperparameters` refuses, or a hyperparameter SB3 rejects.
    :raises UnsupportedSpaceError: for an action space the algorithm cannot act in.
    """
    entry = get_agent(algo)
    if entry.family != "sb3":
        raise ConfigError(f"agent '{algo}' is not a Stable-Baselines3 algorithm")
    entry.check_action_space(env.action_space, "the given env")
    checked = checked_hyperparameters(algo, hp or {}, env.action_space)
    kwargs = constructor_kwargs(checked, env.action_space)
    policy = kwargs.pop("policy", "MlpPolicy")
    cls = entry.cls
    try:
        return cls(policy, env, seed=seed, verbose=verbose, device=device, **kwargs)
    except (TypeError, ValueError, AssertionError) as exc:
        # SB3's own checks are asserts and ValueErrors (e.g. PPO's n_steps * n_envs > 1)
        raise ConfigError(f"{cls.__name__} rejected a hyperparameter: {exc}") from exc

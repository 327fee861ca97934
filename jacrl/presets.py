"""Hyperparameter presets: rl-baselines3-zoo's tuned ones, with what jacrl adds or overrides on top.

**Where an agent's hyperparameters for an env come from**, lowest layer first:

1. *The zoo.* ``agents/zoo/<algo>.yml`` are rl-baselines3-zoo's own tuned files (``ppo``, ``a2c``,
   ``dqn``, ``sac``, ``td3``), byte for byte as the ``rl_zoo3`` package ships them
   (``agents/zoo/SOURCE.yml`` names the version and each file's SHA-256;
   ``scripts/update_zoo_presets.py`` refreshes them). The env's entry is used as the zoo uses it:
   the env's own entry, else the ``atari`` entry for an Atari env, else ``default``. The
   Jacobian agent starts from the zoo's **PPO** entry for the env (same rollout and update,
   so "jacobian vs ppo" is on equal terms everywhere), translated by
   :func:`jacobian_from_zoo_ppo`: each zoo key is carried over, or dropped for a stated reason
   (:data:`PPO_KEYS_NOT_FOR_JACOBIAN`), or refused.
2. *jacrl's own file*, ``agents/<agent>.yml``: its ``default`` entry (what jacrl adds for every
   env), then the env's entry; each entry says why it differs from the zoo.

``--preset FILE`` replaces both layers: the file alone decides (its ``default`` entry, with the
env's entry on top), so a preset written by ``jacrl tune`` trains exactly as tuned.

**Why the zoo's files are vendored, not installed.** ``rl_zoo3`` as a dependency would bring ~30
packages into the core (``huggingface_hub``, ``moviepy`` with an ffmpeg binary, ``sb3_contrib``,
``pytablewriter``, ``shimmy``, Optuna…) and pin Stable-Baselines3 to its own release. As an
optional extra it would make the same ``jacrl train`` command train with different
hyperparameters depending on what is installed. Its tuned hyperparameters are five data files;
jacrl ships them unchanged (MIT licence, ``agents/zoo/LICENSE``), so every install has every env
the zoo tuned, with the same numbers.

**Keys.** An entry's keys are the agent's constructor arguments (SB3 names, so ``n_steps`` means the
same for every agent) plus the zoo's keys, each honoured or refused, never dropped in silence:

- ``n_envs``, ``n_timesteps`` (the budget when ``jacrl train`` gets no ``--steps``) and
  ``normalize`` (SB3 agents' ``VecNormalize``: ``true``, or its keyword arguments such as the
  zoo's ``"{'norm_obs': False, 'norm_reward': True}"``) are the training run's own
  (:data:`RUN_KEYS`);
- ``lin_<x>`` values become a schedule decaying linearly from ``x`` to 0 (SB3 agents here, jacrl
  agents in their constructor); ``policy_kwargs`` strings are parsed as literals, never evaluated
  (:func:`jacrl.agents.sb3.parse_kwargs_text`); ``noise_type``/``noise_std`` become SB3 action
  noise; ``policy`` names the SB3 policy class;
- :data:`REFUSED_KEYS` (``env_wrapper``, ``frame_stack``, …) raise a :class:`ConfigError` saying
  why, when an entry that has them is loaded.
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

ZOO_SOURCES = {
    "ppo": "ppo",
    "a2c": "a2c",
    "dqn": "dqn",
    "sac": "sac",
    "td3": "td3",
    "jacobian": "ppo",
}
"""Agent → the zoo file its presets start from."""

REFUSED_KEYS: dict[str, str] = {
    "env_wrapper": "jacrl does not wrap envs in classes a preset file names (that would import "
    "and run code the file chooses); wrap the env yourself and pass it to the agent",
    "vec_env_wrapper": "jacrl does not wrap vectorised envs in classes a preset file names",
    "callback": "jacrl does not build callbacks a preset file names; pass callback= to learn",
    "frame_stack": "jacrl does not stack observations (the zoo stacks frames of image "
    "observations: Atari, CarRacing)",
    "replay_buffer_class": "jacrl does not build replay buffers a preset file names (the zoo "
    "names HerReplayBuffer for goal-conditioned envs)",
    "replay_buffer_kwargs": "it belongs to replay_buffer_class, which jacrl does not build",
}
"""Zoo keys jacrl refuses, with the reason the error gives."""

PPO_KEYS_FOR_JACOBIAN = (
    *("n_envs", "n_timesteps", "n_steps", "batch_size", "n_epochs", "gamma", "gae_lambda"),
    *("clip_range", "ent_coef", "vf_coef", "max_grad_norm", "learning_rate", "target_kl"),
)
"""Zoo PPO keys the Jacobian agent takes with the same meaning: the rollout and the update."""

PPO_KEYS_NOT_FOR_JACOBIAN: dict[str, str] = {
    "policy": "the Jacobian agent's policy is the invertible network (MlpPolicy names SB3's)",
    "policy_kwargs": "SB3's network settings (net_arch, activation_fn, log_std_init, "
    "ortho_init) have no counterpart; the invertible policy's are width, depth, lift_hidden, "
    "value_hidden and sigma_x",
    "use_sde": "the Jacobian agent has no state-dependent exploration: its noise is sigma_x in "
    "x-space",
    "sde_sample_freq": "it belongs to use_sde, which the Jacobian agent does not have",
    "normalize": "the Jacobian agent normalises observations itself (normalize_obs=True); it "
    "does not normalise rewards as VecNormalize does — a difference from zoo PPO that remains",
}
"""Zoo PPO keys the Jacobian agent does not take, and why."""


def preset_path(agent: str) -> Path:
    """The shipped preset file of ``agent`` (``agents/<agent>.yml``)."""
    return data_dir("agents") / f"{agent}.yml"


def zoo_path(algo: str) -> Path:
    """The vendored rl-baselines3-zoo file of ``algo`` (``agents/zoo/<algo>.yml``)."""
    return data_dir("agents") / "zoo" / f"{algo}.yml"


def _read(file: Path) -> Mapping[str, Any]:
    """A preset file's content: env id → entry.

    :raises ConfigError: for unreadable YAML or content that is not a mapping.
    """
    try:
        content = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"preset file {file} is not valid YAML: {exc}") from exc
    if not isinstance(content, Mapping):
        raise ConfigError(
            f"preset file {file} must map env ids to hyperparameter mappings, "
            f"got a {type(content).__name__}"
        )
    return content


def _mapping(value: Any, file: Path, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"preset file {file}: the entry for '{key}' must be a mapping of "
            f"hyperparameter names to values, got {value!r}"
        )
    return {name: _number_or_value(v) for name, v in value.items()}


def _layered(file: Path, env_id: str) -> dict[str, Any]:
    """A jacrl preset file's ``default`` entry with the env's own entry on top."""
    content = _read(file)
    return {
        **_mapping(content.get("default"), file, "default"),
        **_mapping(content.get(env_id), file, env_id),
    }


def _is_atari(env_id: str) -> bool:
    """The zoo's test: the env's entry point is ALE's ``AtariEnv``."""
    import gymnasium as gym

    try:
        return "AtariEnv" in str(gym.spec(env_id).entry_point)
    except gym.error.Error:
        return False


def zoo_entry(algo: str, env_id: str) -> dict[str, Any]:
    """The zoo's hyperparameters of ``algo`` for ``env_id``, chosen as the zoo chooses: the
    env's entry, else ``atari`` for an Atari env, else ``default``."""
    file = zoo_path(algo)
    content = _read(file)
    key = env_id
    if key not in content:
        key = "atari" if "atari" in content and _is_atari(env_id) else "default"
    return _mapping(content.get(key), file, key)


def jacobian_from_zoo_ppo(entry: Mapping[str, Any], env_id: str) -> dict[str, Any]:
    """The Jacobian agent's share of zoo PPO's ``entry``: :data:`PPO_KEYS_FOR_JACOBIAN`.

    :raises ConfigError: for a zoo key in neither table (a new zoo key must be judged, not
        dropped).
    """
    for key in entry:
        if key not in PPO_KEYS_FOR_JACOBIAN and key not in PPO_KEYS_NOT_FOR_JACOBIAN:
            raise ConfigError(
                f"rl-baselines3-zoo's PPO entry for {env_id} has '{key}', which jacrl.presets "
                "neither carries over to the Jacobian agent nor drops for a stated reason; add "
                "it to one of PPO_KEYS_FOR_JACOBIAN / PPO_KEYS_NOT_FOR_JACOBIAN"
            )
    return {key: value for key, value in entry.items() if key in PPO_KEYS_FOR_JACOBIAN}


def check_refused(entry: Mapping[str, Any], source: str) -> None:
    """Refuse the keys of :data:`REFUSED_KEYS`, saying why.

    :raises ConfigError: naming the key, where it came from, and the reason.
    """
    for key, why in REFUSED_KEYS.items():
        if key in entry:
            raise ConfigError(f"{source} sets {key}={entry[key]!r}: {why}")


def load_preset(agent: str, env_id: str, path: str | Path | None = None) -> dict[str, Any]:
    """Return the hyperparameters for ``agent`` on ``env_id`` (the layers in the module
    docstring).

    :param agent: agent name.
    :param path: a user's own preset file, instead of the zoo and ``agents/<agent>.yml``.
    :raises ConfigError: for a missing ``path``, unreadable YAML, an entry that is not a mapping,
        or a zoo key jacrl refuses.
    """
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"preset file {file} does not exist")
        entry = _layered(file, env_id)
        check_refused(entry, f"preset file {file} ({env_id})")
        return entry
    base: dict[str, Any] = {}
    algo = ZOO_SOURCES.get(agent)
    if algo is not None:
        base = zoo_entry(algo, env_id)
        check_refused(base, f"rl-baselines3-zoo's {algo.upper()} entry for {env_id}")
        if agent == "jacobian":
            base = jacobian_from_zoo_ppo(base, env_id)
    own = preset_path(agent)
    return {**base, **(_layered(own, env_id) if own.is_file() else {})}


def vecnormalize_kwargs(normalize: Any) -> dict[str, Any] | None:
    """The ``normalize`` run key as ``VecNormalize`` keyword arguments (``None``: no wrapper).

    The zoo writes ``true``/``false`` or a keyword string such as ``"{'norm_obs': False,
    'norm_reward': True}"``; the string is parsed as a literal, never evaluated.

    :raises ConfigError: for anything else, or a keyword ``VecNormalize`` does not take.
    """
    import inspect

    from stable_baselines3.common.vec_env import VecNormalize

    if normalize is None or normalize is False:
        return None
    if normalize is True:
        return {}
    if isinstance(normalize, str):
        from jacrl.agents.sb3 import parse_kwargs_text

        normalize = parse_kwargs_text(normalize, "normalize")
    if not isinstance(normalize, Mapping):
        raise ConfigError(
            f"normalize={normalize!r}: expected true, false, or VecNormalize's keyword arguments "
            "(e.g. {'norm_obs': False, 'norm_reward': True})"
        )
    accepted = set(inspect.signature(VecNormalize.__init__).parameters) - {"self", "venv"}
    unknown = sorted(set(normalize) - accepted)
    if unknown:
        raise ConfigError(
            f"normalize={dict(normalize)!r}: VecNormalize takes no {unknown}; accepted: "
            f"{', '.join(sorted(accepted))}"
        )
    return dict(normalize)


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

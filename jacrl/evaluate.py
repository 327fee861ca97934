"""Evaluate a saved agent, whichever kind it is (``jacrl eval``), running no code from its files.

- **jacrl agents** load without pickle (``meta.json`` + ``weights.pt`` read with
  ``torch.load(weights_only=True)``, :mod:`jacrl.common.serialization`).
- **SB3 agents**: SB3's ``load`` unpickles (with cloudpickle) every ``:serialized:`` entry of the
  zip's ``data`` — the spaces, the schedules, the policy class, the last observation — and so
  would run whatever code a crafted file names. :func:`load_sb3` reads ``data`` as JSON first and
  hands SB3 a ``custom_objects`` replacement for *every* such entry, taken from a fresh agent
  built on the evaluation env with the run's hyperparameters (its ``config.yaml``, else the
  preset), so SB3 unpickles nothing; the weights (``*.pth``) are read with
  ``torch.load(weights_only=True)``, which cannot run code either. A serialized entry no fresh
  agent has is refused, naming ``--trust-pickle``.
- **Normalisation statistics** are read from ``vecnormalize.npz`` (arrays,
  :mod:`jacrl.common.normalization_stats`); a ``vecnormalize.pkl`` (SB3's pickle) is refused.

``trust_pickle=True`` (``jacrl eval --trust-pickle``) uses SB3's own loaders instead, for files a
user trusts (an SB3 model saved elsewhere, with a custom policy class).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from jacrl.agents.registry import AGENTS, AgentEntry, get_agent
from jacrl.common.errors import CheckpointError, ConfigError
from jacrl.common.normalization_stats import load_statistics
from jacrl.envs.registration import check_env_id
from jacrl.presets import RUN_KEYS, load_preset
from jacrl.train import CONFIG_FILE, PICKLED_VECNORMALIZE_FILE, VECNORMALIZE_FILE, read_config

SB3_DATA = "data"  # the JSON member of an SB3 zip
JACRL_META = "meta.json"  # the JSON member of a jacrl zip
#: entries of SB3's data that are runtime settings: never taken from the file
SB3_RUNTIME = {"tensorboard_log": None, "verbose": 0}


def _zip_members(model_path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(model_path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"{model_path} is not a saved agent (a readable zip): {exc}") from exc


def saved_agent(model_path: Path, agent: str | None = None) -> tuple[AgentEntry, dict[str, Any]]:
    """The registry entry of the agent that saved ``model_path`` and its run's configuration
    (``config.yaml`` beside it, or ``{}``): ``agent``, or the one ``config.yaml`` names.

    :raises ConfigError: when the agent cannot be told, is unknown, contradicts
        ``config.yaml``, or ``config.yaml`` is malformed.
    :raises CheckpointError: for a file that another family of agents saved.
    """
    config: dict[str, Any] = {}
    if (model_path.parent / CONFIG_FILE).exists():
        config = read_config(model_path.parent)
        named = config.get("agent")
        if not isinstance(named, str):
            raise ConfigError(
                f"{model_path.parent / CONFIG_FILE} names no agent (agent: {named!r}); pass "
                f"--agent (one of: {', '.join(AGENTS)})"
            )
        if agent is not None and agent != named:
            raise ConfigError(
                f"--agent {agent}, but {model_path.parent / CONFIG_FILE} says {model_path} was "
                f"saved by {named}; drop --agent, or pass the right one"
            )
        agent = named
    elif agent is None:
        raise ConfigError(
            f"cannot tell which agent saved {model_path}: no {CONFIG_FILE} beside it; "
            f"pass --agent (one of: {', '.join(AGENTS)})"
        )
    entry = get_agent(agent)
    members = _zip_members(model_path)
    family = "jacrl" if JACRL_META in members else "sb3" if SB3_DATA in members else None
    if family is None:
        raise CheckpointError(
            f"{model_path} holds neither {JACRL_META} (a jacrl agent) nor {SB3_DATA} (an SB3 "
            "agent): it is not a saved agent"
        )
    if family != entry.family:
        others = ", ".join(name for name, e in AGENTS.items() if e.family == family)
        raise CheckpointError(
            f"{model_path} was saved by {'a jacrl agent' if family == 'jacrl' else 'SB3'}, not "
            f"by agent '{entry.name}'; pass one of: {others}"
        )
    return entry, config


def _space_text(space: spaces.Space) -> dict[str, Any]:
    """What SB3's ``data`` records of a space in plain text: type, shape, dtype (and n)."""
    described: dict[str, Any] = {
        "type": type(space).__name__,
        "shape": list(space.shape or ()),
        "dtype": str(space.dtype),
    }
    if isinstance(space, spaces.Discrete):
        described["n"] = str(int(space.n))
    return described


def _saved_space_text(entry: Mapping[str, Any]) -> dict[str, Any]:
    described: dict[str, Any] = {
        "type": str(entry.get(":type:", "")).rsplit(".", 1)[-1].rstrip("'>"),
        "shape": list(entry.get("_shape") or ()),
        "dtype": entry.get("dtype"),
    }
    if "n" in entry:
        described["n"] = str(entry["n"])
    return described


def _check_sb3_spaces(model_path: Path, data: Mapping[str, Any], env: VecEnv) -> None:
    for what, space in (("observation", env.observation_space), ("action", env.action_space)):
        saved = data.get(f"{what}_space")
        if not isinstance(saved, Mapping):
            raise CheckpointError(f"{model_path}: {SB3_DATA} has no {what}_space")
        if _saved_space_text(saved) != _space_text(space):
            raise CheckpointError(
                f"{model_path} was saved for another env: its {what} space is "
                f"{_saved_space_text(saved)}, the env's is {_space_text(space)}"
            )


def _check_weights(model_path: Path, members: list[str]) -> None:
    """Read every ``.pth`` member as SB3 will, with ``weights_only=True``, naming a bad one."""
    with zipfile.ZipFile(model_path) as archive:
        for name in (m for m in members if m.endswith(".pth")):
            try:
                torch.load(io.BytesIO(archive.read(name)), weights_only=True, map_location="cpu")
            except Exception as exc:  # torch raises many types for a stream it refuses
                raise CheckpointError(
                    f"{model_path}: {name} cannot be read as plain weights (it may hold code, "
                    f"which is not run): {str(exc).splitlines()[0]}"
                ) from exc


def load_sb3(entry: AgentEntry, model_path: Path, env: VecEnv, hp: Mapping[str, Any]) -> Any:
    """Load an SB3 model without unpickling anything (see the module docstring).

    :param hp: the run's hyperparameters (zoo notation), to build the fresh agent whose objects
        replace the file's serialized entries.
    :raises CheckpointError: for a file saved for another env, a serialized entry that cannot be
        rebuilt, weights that are not plain tensors or do not fit the network.
    """
    from jacrl.agents.sb3 import make_sb3_agent

    members = _zip_members(model_path)
    with zipfile.ZipFile(model_path) as archive:
        try:
            data = json.loads(archive.read(SB3_DATA))
        except (ValueError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{model_path}: {SB3_DATA} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{model_path}: {SB3_DATA} is not a JSON mapping")
    _check_sb3_spaces(model_path, data, env)
    _check_weights(model_path, members)
    serialized = [k for k, v in data.items() if isinstance(v, dict) and ":serialized:" in v]
    fresh = make_sb3_agent(entry.name, env, hp, device="cpu")
    unknown = [key for key in serialized if not hasattr(fresh, key)]
    if unknown:
        raise CheckpointError(
            f"{model_path}: {SB3_DATA} holds pickled entries {unknown} that jacrl cannot rebuild "
            f"from the env and the hyperparameters ({unknown[0]!r} would be unpickled, running "
            "any code it names); pass --trust-pickle (trust_pickle=True) only if you trust the file"
        )
    custom = {key: getattr(fresh, key) for key in serialized}
    custom.update(SB3_RUNTIME)
    try:
        return entry.cls.load(model_path, device="cpu", custom_objects=custom)
    except (RuntimeError, ValueError, KeyError, TypeError, AssertionError) as exc:
        raise CheckpointError(
            f"{model_path}: the saved weights do not fit the {entry.name} network these "
            f"hyperparameters build ({str(exc).splitlines()[0]}); was it trained with other "
            f"hyperparameters? Evaluate it from its run folder (with its {CONFIG_FILE})"
        ) from exc


def _hyperparameters(entry: AgentEntry, config: Mapping[str, Any], env_id: str) -> dict[str, Any]:
    """The run's hyperparameters: ``config.yaml``'s, else the preset's for ``env_id``."""
    hp = config.get("hyperparameters")
    if isinstance(hp, dict):
        return hp
    preset = load_preset(entry.name, env_id)
    return {k: v for k, v in preset.items() if k not in RUN_KEYS}


def _normalization(model_path: Path, env: VecEnv, trust_pickle: bool) -> VecEnv | VecNormalize:
    """``env`` with the run's normalisation statistics, if it has any."""
    stats = model_path.parent / VECNORMALIZE_FILE
    if stats.is_file():
        return load_statistics(stats, env)
    pickled = model_path.parent / PICKLED_VECNORMALIZE_FILE
    if not pickled.is_file():
        return env
    if not trust_pickle:
        raise CheckpointError(
            f"{pickled} is a pickle (SB3's VecNormalize.save): loading it would run any code it "
            f"names. jacrl saves the statistics as {VECNORMALIZE_FILE} (retrain with this jacrl), "
            "or pass --trust-pickle (trust_pickle=True) if you trust the file"
        )
    norm = VecNormalize.load(str(pickled), env)
    norm.training = False
    norm.norm_reward = False
    return norm


def load_saved(
    model_path: Path,
    env_id: str,
    agent: str | None = None,
    seed: int = 0,
    trust_pickle: bool = False,
) -> tuple[Any, VecEnv, AgentEntry]:
    """A saved agent, one ``VecEnv`` of ``env_id`` to run it in, and its registry entry.

    The env is seeded with ``seed`` and, for an SB3 agent trained with ``normalize``, wrapped in
    its saved statistics, so ``model.predict`` takes the env's observations as they come (a
    jacrl agent normalises them itself).

    :param trust_pickle: load with SB3's own loaders (which unpickle) instead of refusing a file
        that cannot be read without running code from it.
    :param model_path: a saved ``model.zip``, or the run folder holding one.
    :raises ConfigError: for an unknown env, a missing file, or an agent that cannot be told.
    :raises UnsupportedSpaceError: for an env whose action space the agent cannot act in.
    :raises CheckpointError: for a model saved for another env or agent, or an unsafe file.
    """
    model_path = Path(model_path)
    check_env_id(env_id)
    if model_path.is_dir() and (model_path / "model.zip").is_file():
        model_path = model_path / "model.zip"  # a run folder, as `jacrl train` prints it
    if not model_path.is_file():
        raise ConfigError(
            f"model file {model_path} does not exist; pass a saved model.zip or the run folder "
            "that holds it"
        )
    entry, config = saved_agent(model_path, agent)
    env: VecEnv = make_vec_env(env_id, n_envs=1, seed=seed)
    entry.check_action_space(env.action_space, env_id)
    if entry.family == "jacrl" or trust_pickle:
        model = entry.load(model_path)
    else:
        model = load_sb3(entry, model_path, env, _hyperparameters(entry, config, env_id))
    for what, space in (("observation", env.observation_space), ("action", env.action_space)):
        if getattr(model, f"{what}_space") != space:
            raise CheckpointError(
                f"{model_path} was saved for another env: its {what} space is "
                f"{getattr(model, f'{what}_space')}, {env_id}'s is {space}"
            )
    if entry.family == "sb3":
        env = _normalization(model_path, env, trust_pickle)
    return model, env, entry


def evaluate_saved(
    model_path: Path,
    env_id: str,
    episodes: int = 10,
    agent: str | None = None,
    seed: int = 0,
    deterministic: bool = True,
    trust_pickle: bool = False,
) -> tuple[float, float]:
    """Mean and standard deviation of the episode return of a saved agent on ``env_id``.

    SB3 agents trained with ``normalize`` are evaluated through their saved statistics.

    :param trust_pickle: see :func:`load_saved`.
    :raises ConfigError: for an unknown env, a non-positive episode count, or an agent that
        cannot be told.
    :raises UnsupportedSpaceError: for an env whose action space the agent cannot act in.
    :raises CheckpointError: for a model saved for another env or agent, or an unsafe file.
    """
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes <= 0:
        raise ConfigError(f"--episodes must be a positive number, got {episodes}")
    model, env, _ = load_saved(model_path, env_id, agent, seed, trust_pickle)
    returns, _ = evaluate_policy(
        model,
        env,
        n_eval_episodes=episodes,
        deterministic=deterministic,
        return_episode_rewards=True,
    )
    return float(np.mean(returns)), float(np.std(returns))

"""Every agent ``jacrl train``, ``jacrl eval`` and ``jacrl compare`` know, in one table.

An entry says where the agent's class lives (imported on first use, so listing the agents stays
cheap and an agent whose module is not installed fails only when it is used), which action spaces
it can act in, whether it learns on-policy, off-policy or from labels, and how it is built and
reloaded. Adding an agent is one entry in :data:`AGENTS`; its presets are ``agents/<name>.yml``.

Two families are built differently:

- ``"jacrl"``: jacrl's own agents (:class:`~jacrl.agents.base.BaseAgent` subclasses), built from
  the env id; they normalise observations themselves and can write checkpoints;
- ``"sb3"``: Stable-Baselines3 algorithms, built on a ``VecEnv`` by
  :func:`jacrl.agents.sb3.make_sb3_agent` (optionally inside ``VecNormalize``).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
from gymnasium import spaces

from jacrl.common.errors import ConfigError, UnsupportedSpaceError
from jacrl.common.validation import check_names
from jacrl.presets import preset_path

Family = Literal["jacrl", "sb3"]
Learning = Literal["on-policy", "off-policy", "supervised"]
ActionSpaceKind = Literal["Discrete", "Box", "MultiDiscrete", "MultiBinary"]

_SPACE_CLASSES: dict[ActionSpaceKind, type[spaces.Space]] = {
    "Discrete": spaces.Discrete,
    "Box": spaces.Box,
    "MultiDiscrete": spaces.MultiDiscrete,
    "MultiBinary": spaces.MultiBinary,
}
_SB3_SPACES: tuple[ActionSpaceKind, ...] = ("Discrete", "Box", "MultiDiscrete", "MultiBinary")
#: constructor arguments of a jacrl agent that :meth:`AgentEntry.make` passes itself
_MADE_HERE = ("env", "n_envs", "seed", "observation_space", "action_space")


@dataclass(frozen=True)
class AgentEntry:
    """One agent of the table.

    :param name: what ``--agent`` / ``--agents`` accept, and the preset file's stem.
    :param target: ``"module:Class"`` of the agent class (an SB3 ``BaseAlgorithm`` for ``"sb3"``).
    :param family: how it is built, see the module docstring.
    :param learning: on-policy, off-policy (replay buffer) or supervised (needs labels).
    :param action_spaces: the kinds of action space it acts in; finer limits (a 1-D Box, say)
        are the agent's own ``check_spaces``.
    :param summary: one line for ``--help``.
    """

    name: str
    target: str
    family: Family
    learning: Learning
    action_spaces: tuple[ActionSpaceKind, ...]
    summary: str

    @property
    def cls(self) -> Any:
        """The agent class, imported now.

        :raises ConfigError: if its module is not importable (not installed, or not written yet).
        """
        module_name, _, attr = self.target.partition(":")
        try:
            return getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(
                f"agent '{self.name}' is registered as {module_name}.{attr}, which cannot be "
                f"imported ({exc}); the other agents: "
                f"{', '.join(n for n in AGENTS if n != self.name)}"
            ) from exc

    @property
    def preset_file(self) -> Path:
        """``agents/<name>.yml`` (it may not exist: then the class's defaults apply)."""
        return preset_path(self.name)

    @property
    def checkpoints(self) -> bool:
        """Whether ``learn`` can write resumable checkpoints (jacrl's agents; SB3's cannot)."""
        return self.family == "jacrl"

    def supports(self, action_space: spaces.Space) -> bool:
        return isinstance(action_space, tuple(_SPACE_CLASSES[k] for k in self.action_spaces))

    def check_action_space(self, action_space: spaces.Space, env_id: str) -> None:
        """Refuse an env whose action space this agent cannot act in, naming those that can.

        :raises UnsupportedSpaceError: e.g. "jacobian-sac needs a Box action space; for
            Discrete(2) (CartPole-v1) use one of: jacobian, ppo, a2c, dqn, backprop".
        """
        if self.supports(action_space):
            return
        fitting = [entry.name for entry in AGENTS.values() if entry.supports(action_space)]
        raise UnsupportedSpaceError(
            f"{self.name} needs a {' or '.join(self.action_spaces)} action space; for "
            f"{action_space} ({env_id}) use one of: {', '.join(fitting) or 'none of them'}"
        )

    def make(
        self,
        env_id: str,
        hp: Mapping[str, Any],
        *,
        n_envs: int,
        normalize: bool | str | Mapping[str, Any],
        seed: int,
    ) -> tuple[Any, Any]:
        """Build the agent on ``n_envs`` copies of ``env_id`` with hyperparameters ``hp``.

        :param normalize: wrap an SB3 agent's envs in ``VecNormalize``: ``True``, or its keyword
            arguments (:func:`jacrl.presets.vecnormalize_kwargs`); jacrl's agents normalise
            observations themselves and ignore it.
        :returns: the agent, and the ``VecNormalize`` wrapper when there is one (else ``None``).
        """
        if self.family == "jacrl":
            # an unknown --hp key: a message listing the accepted ones, not a TypeError
            accepted = [k for k in inspect.signature(self.cls).parameters if k not in _MADE_HERE]
            check_names(self.cls.__name__, list(hp), accepted)
            return self.cls(env_id, n_envs=n_envs, seed=seed, **hp), None
        from stable_baselines3.common.env_util import make_vec_env
        from stable_baselines3.common.vec_env import VecNormalize

        from jacrl.agents.sb3 import make_sb3_agent
        from jacrl.presets import vecnormalize_kwargs

        venv = make_vec_env(env_id, n_envs=n_envs, seed=seed)
        norm_kwargs = vecnormalize_kwargs(normalize)
        norm = None if norm_kwargs is None else VecNormalize(venv, **norm_kwargs)
        return make_sb3_agent(self.name, norm or venv, hp, seed=seed), norm

    def load(self, path: str | Path) -> Any:
        """Reload a saved ``model.zip`` (predict-only; the env is given at evaluation)."""
        return self.cls.load(path)


AGENTS: dict[str, AgentEntry] = {
    entry.name: entry
    for entry in (
        AgentEntry(
            "jacobian",
            "jacrl.agents.onpolicy:JacobianAgent",
            "jacrl",
            "on-policy",
            ("Discrete", "Box"),
            "invertible-network policy, on-policy: density or volume rule",
        ),
        AgentEntry(
            "jacobian-sac",
            "jacrl.agents.sac:JacobianSAC",
            "jacrl",
            "off-policy",
            ("Box",),
            "invertible-network policy, off-policy max-entropy (SAC-style)",
        ),
        AgentEntry("ppo", "stable_baselines3:PPO", "sb3", "on-policy", _SB3_SPACES, "SB3 PPO"),
        AgentEntry("a2c", "stable_baselines3:A2C", "sb3", "on-policy", _SB3_SPACES, "SB3 A2C"),
        AgentEntry("dqn", "stable_baselines3:DQN", "sb3", "off-policy", ("Discrete",), "SB3 DQN"),
        AgentEntry("sac", "stable_baselines3:SAC", "sb3", "off-policy", ("Box",), "SB3 SAC"),
        AgentEntry("td3", "stable_baselines3:TD3", "sb3", "off-policy", ("Box",), "SB3 TD3"),
        AgentEntry(
            "backprop",
            "jacrl.agents.backprop:BackpropAgent",
            "jacrl",
            "supervised",
            ("Discrete",),
            "supervised upper bound; needs info['label'] (bandits)",
        ),
    )
}
"""Agent name → entry, in the order ``--help`` and error messages list them."""


def get_agent(name: str) -> AgentEntry:
    """The entry of ``name``.

    :raises ConfigError: for an unknown name, listing the accepted ones.
    """
    try:
        return AGENTS[name]
    except KeyError:
        raise ConfigError(f"unknown agent '{name}'; accepted: {', '.join(AGENTS)}") from None


def env_action_space(env_id: str) -> spaces.Space:
    """The action space of ``env_id``, read from one instance made and closed here."""
    env = gym.make(env_id)
    try:
        return env.action_space
    finally:
        env.close()


def check_agent_fits_env(name: str, env_id: str) -> AgentEntry:
    """The entry of ``name``, after checking that it can act in ``env_id``'s action space.

    :raises ConfigError: for an unknown agent name.
    :raises UnsupportedSpaceError: for an action space the agent cannot act in.
    """
    entry = get_agent(name)
    entry.check_action_space(env_action_space(env_id), env_id)
    return entry

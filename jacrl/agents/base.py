"""BaseAgent: what every jacrl agent shares, with Stable-Baselines3's public API.

An agent subclass builds ``self.policy`` (a :class:`torch.nn.Module`) after calling
``BaseAgent.__init__`` and implements three methods:

- :meth:`BaseAgent.collect_rollouts`: step the env through :meth:`BaseAgent._step_env`, which
  counts steps, checks and normalises observations, fills the episode-statistics buffer and runs
  the callbacks; return ``False`` when a callback asked to stop;
- :meth:`BaseAgent.train`: one update from what was collected, recording ``train/*`` keys;
- :meth:`BaseAgent._predict`: env actions for a batch of *normalised* observations.

A subclass with training state beyond the weights (an optimizer, running baselines) extends
``_training_state`` / ``_load_training_state`` so ``learn(checkpoint_every=...)`` can resume.

Everything else (env wrapping and validation, ``learn`` with SB3 callbacks, ``predict`` with input
checks, observation normalisation, non-finite handling, TensorBoard logging, seeding, ``save`` /
``load``, training checkpoints) lives here, so SB3 tools (``evaluate_policy``, ``EvalCallback``,
``CheckpointCallback``, ``ProgressBarCallback``) work on every jacrl agent.

Hyperparameters are saved by name: every argument of the subclass's ``__init__`` (other than the
runtime settings in :attr:`BaseAgent.runtime_arguments`) must be stored as an attribute of the same
name, as SB3 does, so ``load`` can rebuild the agent from ``meta.json``.

The module is longer than jacrl's others for the reason SB3's ``base_class.py`` is: it is one
class, the public API every agent shares, and splitting its methods across mixins would scatter
that contract without making any piece reusable on its own.
"""

from __future__ import annotations

import inspect
import io
import os
import time
import warnings
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, get_args, overload

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import (
    BaseCallback,
    CallbackList,
    ConvertCallback,
    ProgressBarCallback,
)
from stable_baselines3.common.logger import HParam, Logger, TensorBoardOutputFormat
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.type_aliases import MaybeCallback
from stable_baselines3.common.utils import (
    configure_logger,
    get_device,
    get_system_info,
    set_random_seed,
)
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs
from torch.utils.tensorboard import SummaryWriter

import jacrl
from jacrl.common.checkpoint import restore_rng_state, rng_state
from jacrl.common.env_util import AnyEnv, as_vec_env
from jacrl.common.episode_replay import replayable, restore_episodes, save_episodes
from jacrl.common.errors import (
    CheckpointError,
    ConfigError,
    JacrlError,
    NonFiniteError,
    UnsupportedSpaceError,
)
from jacrl.common.schedules import schedule_from_json, schedule_to_json
from jacrl.common.serialization import (
    SavedAgent,
    check_space_matches,
    describe_space,
    read_agent,
    space_from_description,
    write_agent,
)
from jacrl.common.validation import boolean, non_negative_int, positive_int

AgentT = TypeVar("AgentT", bound="BaseAgent")

#: What to do with NaN/inf in an observation or reward (the ``nonfinite`` argument).
NonFinite = Literal["raise", "skip", "clip"]
NONFINITE_MODES: tuple[NonFinite, ...] = get_args(NonFinite)
#: The VecNormalize defaults: normalised observations and rewards are clipped to +-10.
CLIP_OBS = 10.0
CLIP_REWARD = 10.0


@dataclass
class EnvStep:
    """One vectorised env step, as :meth:`BaseAgent._step_env` returns it.

    :param obs: next observations, normalised, shape ``(n_envs, obs_dim)``, float32.
    :param rewards: finite rewards, shape ``(n_envs,)``, float32.
    :param dones: episode ended (terminated or truncated), shape ``(n_envs,)``, bool.
    :param truncated_obs: for each env whose episode was *truncated* (time limit), the normalised
        final observation, so on-policy learners can bootstrap the value there (SB3 does too).
    :param infos: the env infos.
    """

    obs: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    truncated_obs: dict[int, np.ndarray]
    infos: list[dict[str, Any]]


def agent_device(device: torch.device | str, agent: str) -> torch.device:
    """The device a jacrl agent's networks live on.

    ``"auto"`` means the CPU, not SB3's "CUDA when available": jacrl's networks are small MLPs
    (widths of tens, a few layers) in float64, and an update is a long chain of small operations,
    so its cost is per-operation overhead, which a GPU raises (a kernel launch per operation, a
    host-device copy per env step) instead of lowering; GPUs also run float64 far slower than
    float32. SB3 reasons the same way for PPO/A2C with an MLP policy and warns when one runs on a
    GPU (its issue #1245). An explicit GPU device is honoured, with that warning; one that is not
    available falls back to the CPU (SB3's ``get_device``), with a warning too.

    :param agent: the agent's class name, for the warnings.
    :raises ConfigError: for a string torch cannot read as a device.
    """
    if device == "auto":
        return torch.device("cpu")
    try:
        requested = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ConfigError(
            f"device={device!r}: expected 'auto' (the CPU), 'cpu', 'cuda', 'cuda:<index>' or "
            f"a torch.device ({error})"
        ) from None
    resolved = get_device(requested)
    if resolved.type != requested.type:
        warnings.warn(
            f"device={device!r} is not available here; {agent} runs on the CPU", stacklevel=3
        )
    elif resolved.type != "cpu":
        warnings.warn(
            f"You are trying to run {agent} on the GPU ({resolved}), but it is primarily intended "
            "to run on the CPU: its networks are small float64 MLPs, whose updates are dominated "
            "by per-operation overhead. Pass device='cpu' (or 'auto') to use the CPU. Note: the "
            "agent will train, but the GPU utilization will be poor and training may take longer "
            "than on the CPU.",
            UserWarning,
            stacklevel=3,
        )
    return resolved


class BaseAgent(ABC):
    """Shared machinery of jacrl agents (SB3's ``BaseAlgorithm``, reduced to what jacrl needs).

    :param env: a Gymnasium env, an env id (``"CartPole-v1"``, ``"jacrl/DigitsBandit-v0"``), an
        SB3 ``VecEnv`` or a Gymnasium vector env (``gym.make_vec``, ``SyncVectorEnv``,
        ``AsyncVectorEnv``: its envs are rebuilt into an SB3 ``DummyVecEnv`` of the same size, see
        :mod:`jacrl.common.env_util`). Ids are built with SB3's ``make_vec_env`` (``n_envs``
        copies); every env is put in a ``Monitor`` unless one is already among its wrappers, so
        episode returns reach ``rollout/ep_rew_mean``. ``VecNormalize`` is refused: the agent
        normalises observations by itself (``normalize_obs``). ``None`` only together with
        ``observation_space`` and ``action_space``: an agent that can ``predict`` but not ``learn``
        (what ``load(path)`` without an env gives; :meth:`set_env` adds one later).
    :param n_envs: copies of the env stepped in lockstep (``DummyVecEnv``); an env instance can
        only give one, so pass an id for more. Ignored for a vector env, which brings its own.
    :param normalize_obs: keep a running mean/variance of observations (SB3's ``RunningMeanStd``)
        and feed the policy ``clip((obs - mean) / std, -10, 10)``, as ``VecNormalize`` does. It
        lives in the agent, not in an env wrapper, so it is saved and restored with the weights.
    :param nonfinite: what to do with NaN/inf in an observation or reward: ``"raise"`` a
        :class:`~jacrl.common.errors.NonFiniteError` naming the env step (default; a silent NaN
        would poison the weights), ``"skip"`` (treat the bad entries as carrying no information:
        normalised observation entries and rewards become 0, and the bad rows are left out of the
        normaliser) or ``"clip"`` (NaN -> 0, +-inf -> +-10 in normalised observation units and
        +-10 for rewards, VecNormalize's clip values).
    :param tensorboard_log: root folder for TensorBoard runs; each ``learn`` logs to
        ``<tensorboard_log>/<tb_log_name>_<i>`` like SB3. For an exact folder, call
        ``agent.set_logger(stable_baselines3.common.logger.configure(folder, ["tensorboard"]))``.
    :param seed: seeds Python, NumPy, torch, the action space and the env (SB3 semantics).
    :param device: ``"auto"`` (the CPU, see :func:`agent_device`), ``"cpu"``, ``"cuda"`` or a
        ``torch.device``; an explicit GPU is used, with a warning.
    :param verbose: 0 silent, 1 also print the logged table to stdout.
    :param observation_space: with ``env=None``, the space the agent predicts for.
    :param action_space: with ``env=None``, the space the agent acts in.
    """

    #: ``__init__`` arguments that are runtime settings, not hyperparameters: not saved in
    #: ``meta.json`` (``load`` takes them as keyword arguments instead).
    runtime_arguments: ClassVar[tuple[str, ...]] = (
        "env",
        "tensorboard_log",
        "seed",
        "device",
        "verbose",
        "observation_space",
        "action_space",
    )
    policy: torch.nn.Module

    def __init__(
        self,
        env: AnyEnv | None,
        *,
        n_envs: int = 1,
        normalize_obs: bool = True,
        nonfinite: NonFinite = "raise",
        tensorboard_log: str | os.PathLike[str] | None = None,
        seed: int | None = None,
        device: torch.device | str = "auto",
        verbose: int = 0,
        observation_space: spaces.Space | None = None,
        action_space: spaces.Space | None = None,
    ) -> None:
        if nonfinite not in NONFINITE_MODES:
            raise JacrlError(f"nonfinite={nonfinite!r}: expected one of {NONFINITE_MODES}")
        n_envs = positive_int("n_envs", n_envs)
        normalize_obs = boolean("normalize_obs", normalize_obs)
        seed = None if seed is None else non_negative_int("seed", seed)
        verbose = non_negative_int("verbose", verbose)
        self.env: VecEnv | None = None if env is None else self.wrap_env(env, n_envs, seed)
        if self.env is not None:
            n_envs = self.env.num_envs
            observation_space, action_space = self.env.observation_space, self.env.action_space
        elif observation_space is None or action_space is None:
            raise JacrlError("env=None needs observation_space and action_space (predict-only)")
        self.check_spaces(observation_space, action_space)
        self.observation_space: spaces.Box = observation_space  # type: ignore[assignment]
        self.action_space = action_space
        self.n_envs = n_envs
        self.normalize_obs = normalize_obs
        self.nonfinite = nonfinite
        self.tensorboard_log = None if tensorboard_log is None else str(tensorboard_log)
        self.seed = seed
        self.verbose = verbose
        self.device = agent_device(device, type(self).__name__)
        self.obs_rms = RunningMeanStd(shape=self.observation_space.shape)
        self.num_timesteps = 0
        self._total_timesteps = 0
        self._progress_remaining = 1.0
        self._last_obs: np.ndarray | None = None
        self._last_episode_starts = np.ones(n_envs, dtype=bool)
        self.ep_info_buffer: deque[dict[str, float]] = deque(maxlen=100)
        self._logger: Logger | None = None
        self._custom_logger = False
        self._start_time = time.time_ns()
        self._num_timesteps_at_start = 0
        if seed is not None:
            self.set_random_seed(seed)

    # ----------------------------------------------------------------------------------------
    # What a subclass implements

    @abstractmethod
    def collect_rollouts(self, callback: BaseCallback) -> bool:
        """Step the env (through :meth:`_step_env`) and store what ``train`` needs.

        :return: ``False`` when a callback asked to stop training.
        """

    @abstractmethod
    def train(self) -> None:
        """One update from the collected data; records ``train/*`` keys on :attr:`logger`."""

    @abstractmethod
    def _predict(self, obs: torch.Tensor, deterministic: bool) -> np.ndarray:
        """Env actions for a batch of normalised observations ``(batch, obs_dim)``."""

    # ----------------------------------------------------------------------------------------
    # Environments and spaces

    @staticmethod
    def wrap_env(env: AnyEnv, n_envs: int = 1, seed: int | None = None) -> VecEnv:
        """Turn an env id, a Gymnasium env or vector env, or a VecEnv into a monitored ``VecEnv``
        (:func:`jacrl.common.env_util.as_vec_env`).

        :raises ConfigError: for an unknown env id, ``n_envs > 1`` with an env instance,
            ``VecNormalize``, or a Gymnasium vector env whose envs cannot be rebuilt.
        """
        return as_vec_env(env, n_envs, seed)

    def check_spaces(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        """Refuse spaces the agent cannot handle. Default: a flat Box of observations and a
        Discrete or Box action space; subclasses narrow or widen this.

        :raises UnsupportedSpaceError: naming the space and what is supported.
        """
        supported = (
            "supported: observations a 1-D Box (wrap image or matrix observations in "
            "gymnasium.wrappers.FlattenObservation); actions Discrete(k) or a 1-D Box"
        )
        if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
            raise UnsupportedSpaceError(
                f"{type(self).__name__} cannot use the observation space {observation_space}; "
                + supported
            )
        if isinstance(action_space, spaces.Discrete):
            return
        if not isinstance(action_space, spaces.Box) or len(action_space.shape) != 1:
            raise UnsupportedSpaceError(
                f"{type(self).__name__} cannot use the action space {action_space}; " + supported
            )

    def get_env(self) -> VecEnv | None:
        """The training ``VecEnv`` (``None`` for a predict-only agent)."""
        return self.env

    def get_vec_normalize_env(self) -> None:
        """Always ``None``: observation statistics live in the agent (SB3 callbacks ask)."""
        return None

    # ----------------------------------------------------------------------------------------
    # Observations and rewards

    def _sanitize(self, what: str, values: np.ndarray, clip: float) -> np.ndarray:
        """Apply the ``nonfinite`` policy to ``values`` (already normalised when ``what`` is an
        observation); returns them unchanged when all are finite."""
        bad = ~np.isfinite(values)
        if not bad.any():
            return values
        if self.nonfinite == "raise":
            envs = sorted({int(i) for i in np.argwhere(bad)[:, 0]}) if values.ndim else [0]
            raise NonFiniteError(
                f"non-finite {what} at env step {self.num_timesteps} (env index {envs}): "
                f"{values}; pass nonfinite='skip' or 'clip' to {type(self).__name__} to continue"
            )
        posinf = 0.0 if self.nonfinite == "skip" else clip
        return np.nan_to_num(values, nan=0.0, posinf=posinf, neginf=-posinf)

    def normalize(self, obs: VecEnvObs, update: bool = False) -> np.ndarray:
        """``clip((obs - mean) / std, -10, 10)`` as float32, applying the ``nonfinite`` policy.

        :param update: fold the finite rows of ``obs`` into the running statistics (training only).
        """
        obs = np.asarray(obs, dtype=np.float64)  # a flat Box: check_spaces refused the rest
        finite_rows = np.isfinite(obs).all(axis=-1)
        if self.normalize_obs:
            if update and finite_rows.any():
                self.obs_rms.update(obs[finite_rows])
            with np.errstate(invalid="ignore"):
                obs = (obs - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + 1e-8)
        obs = self._sanitize("observation", obs, CLIP_OBS)
        return np.clip(obs, -CLIP_OBS, CLIP_OBS).astype(np.float32)

    def _check_observation(self, observation: Any) -> tuple[np.ndarray, bool]:
        """Validate what ``predict`` was given; returns a batch and whether it was one."""
        obs = np.asarray(observation)
        shape = self.observation_space.shape
        if obs.dtype.kind not in "biuf":
            raise JacrlError(f"predict: observation dtype {obs.dtype} is not numeric")
        if obs.shape == shape:
            batch, vectorized = obs[None], False
        elif obs.ndim == len(shape) + 1 and obs.shape[1:] == shape:
            batch, vectorized = obs, True
        else:
            raise JacrlError(
                f"predict: observation shape {obs.shape} does not fit the observation space "
                f"{self.observation_space}; expected {shape} or (batch, *{shape})"
            )
        if not np.isfinite(batch).all():
            raise NonFiniteError(f"predict: the observation holds NaN or inf: {observation}")
        return batch, vectorized

    def _step_env(self, actions: np.ndarray, callback: BaseCallback) -> EnvStep | None:
        """Step every env once; ``None`` when a callback's ``on_step`` asked to stop.

        Order as in SB3's ``collect_rollouts``: step, count, callbacks, episode statistics.
        """
        assert self.env is not None
        new_obs, rewards, dones, infos = self.env.step(actions)
        self.num_timesteps += self.env.num_envs
        callback.update_locals(locals())
        if not callback.on_step():
            return None
        for info in infos:
            if "episode" in info:
                self.ep_info_buffer.append(info["episode"])
        rewards = self._sanitize("reward", np.asarray(rewards, dtype=np.float64), CLIP_REWARD)
        truncated_obs = {
            i: self.normalize(info["terminal_observation"][None])[0]
            for i, info in enumerate(infos)
            if dones[i] and info.get("TimeLimit.truncated", False)
        }
        return EnvStep(
            obs=self.normalize(new_obs, update=True),
            rewards=rewards.astype(np.float32),
            dones=np.asarray(dones, dtype=bool),
            truncated_obs=truncated_obs,
            infos=list(infos),
        )

    # ----------------------------------------------------------------------------------------
    # Acting

    def predict(
        self,
        observation: np.ndarray,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """Actions for one observation or a batch, SB3's signature (works with ``evaluate_policy``).

        :param observation: shape ``obs_space.shape`` (one) or ``(batch, *shape)``; finite numbers.
        :param state: recurrent state; jacrl policies have none, so it is returned unchanged.
        :param episode_start: unused (no recurrent state), accepted for SB3 compatibility.
        :param deterministic: act on the mean (no exploration noise).
        :raises JacrlError: for a wrongly shaped, non-numeric or non-finite observation.
        """
        obs, vectorized = self._check_observation(observation)
        with torch.no_grad():
            actions = self._predict(torch.as_tensor(self.normalize(obs)), deterministic)
        return (actions if vectorized else actions[0]), state

    # ----------------------------------------------------------------------------------------
    # Training loop

    @property
    def logger(self) -> Logger:
        """The SB3 logger (configured by ``learn`` unless :meth:`set_logger` set one)."""
        if self._logger is None:
            self._logger = configure_logger(self.verbose, None, "", True)
        return self._logger

    def set_logger(self, logger: Logger) -> None:
        """Log to ``logger`` from now on (e.g. ``configure(folder, ["tensorboard"])`` for an exact
        run folder) instead of the one ``learn`` would configure from ``tensorboard_log``."""
        self._logger = logger
        self._custom_logger = True

    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback,
        reset_num_timesteps: bool,
        tb_log_name: str,
        progress_bar: bool,
        new_log_run: bool = True,
    ) -> tuple[int, BaseCallback]:
        if self.env is None:
            raise JacrlError(
                f"{type(self).__name__} has no env to learn from; pass env= to load() or build "
                "the agent with an env"
            )
        try:  # whole floats such as 1e5 are accepted, as SB3 users write them; nan is not
            total_timesteps = positive_int("total_timesteps", total_timesteps)
        except ConfigError:
            raise ConfigError(
                f"total_timesteps={total_timesteps!r}: the budget must be positive, a whole "
                "number of env steps"
            ) from None
        self._start_time = time.time_ns()
        if reset_num_timesteps:
            self.num_timesteps = 0
            self.ep_info_buffer.clear()
        else:
            total_timesteps += self.num_timesteps
        self._total_timesteps = total_timesteps
        self._num_timesteps_at_start = self.num_timesteps
        if reset_num_timesteps or self._last_obs is None:
            self._last_obs = self.normalize(self.env.reset(), update=True)
            self._last_episode_starts = np.ones(self.env.num_envs, dtype=bool)
        if not self._custom_logger:
            self._logger = configure_logger(
                self.verbose, self.tensorboard_log, tb_log_name, new_log_run
            )
        if isinstance(callback, list):
            callback = CallbackList(callback)
        elif callback is None:
            callback = CallbackList([])
        elif not isinstance(callback, BaseCallback):
            callback = ConvertCallback(callback)
        if progress_bar:
            callback = CallbackList([callback, ProgressBarCallback()])
        callback.init_callback(self)  # type: ignore[arg-type]
        return total_timesteps, callback

    def learn(
        self: AgentT,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str | None = None,
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
        checkpoint_every: int | None = None,
        checkpoint_path: str | os.PathLike[str] | None = None,
    ) -> AgentT:
        """Train for ``total_timesteps`` env steps (summed over the ``n_envs`` copies).

        :param callback: an SB3 callback, a list of them, or a ``callback(locals, globals)``
            function returning ``False`` to stop.
        :param log_interval: dump the logged table every this many iterations (rollout + update).
        :param tb_log_name: run-folder prefix under ``tensorboard_log`` (default: the class name).
        :param reset_num_timesteps: start counting from 0; ``False`` continues the step count (and
            the TensorBoard run) of a previous ``learn``.
        :param progress_bar: draw SB3's progress bar (needs ``tqdm`` and ``rich``).
        :param checkpoint_every: write a full training checkpoint (weights, optimizer, observation
            statistics, RNG states, step count) to ``checkpoint_path`` after the first update past
            every multiple of this many env steps. If ``checkpoint_path`` already holds one from
            the same run (same class, hyperparameters and budget), training resumes from it: rerun
            the same script after a crash (even SIGKILL) and the final weights are bit-identical
            to an uninterrupted run. Env internals cannot be saved without pickle, so the
            checkpoint records how each episode in progress began and the actions taken since,
            and a resumed run replays them (:mod:`jacrl.common.episode_replay`): checkpointing
            changes nothing in the run. A ``VecEnv`` jacrl did not build cannot be replayed;
            with one, all envs restart their episodes at every checkpoint with a seed fixed by
            the step count (``seed + num_timesteps``), in the uninterrupted run too, and the cut
            episodes are bootstrapped like time-limit truncations.
        :param checkpoint_path: the checkpoint file (``.zip`` added when there is no suffix).
        :raises JacrlError: for a non-positive budget or an agent without an env.
        :raises CheckpointError: for a checkpoint written by a different run.
        """
        checkpoint = self._checkpoint_file(checkpoint_every, checkpoint_path)
        resuming = checkpoint is not None and checkpoint.exists()
        total_timesteps, callback = self._setup_learn(
            total_timesteps,
            callback,
            reset_num_timesteps,
            tb_log_name or type(self).__name__,
            progress_bar,
            new_log_run=reset_num_timesteps and not resuming,  # a resumed run continues its own
        )
        if resuming:
            assert checkpoint is not None
            self._resume(checkpoint, total_timesteps)
        self._record_hparams()
        callback.on_training_start(locals(), globals())
        iteration = 0
        while self.num_timesteps < total_timesteps:
            steps_before = self.num_timesteps
            callback.on_rollout_start()
            if not self.collect_rollouts(callback):
                break
            callback.on_rollout_end()
            iteration += 1
            self._progress_remaining = 1.0 - self.num_timesteps / total_timesteps
            self.train()
            # dump before checkpointing: what a checkpoint covers is already logged, so a resumed
            # run neither repeats nor skips a point (see _purge_logged_after)
            if log_interval > 0 and iteration % log_interval == 0:
                self.dump_logs(iteration)
            if (
                checkpoint is not None
                and checkpoint_every is not None
                and self.num_timesteps // checkpoint_every > steps_before // checkpoint_every
            ):
                self.save_checkpoint(checkpoint)
                if not replayable(self.env):
                    self._restart_episodes()
        callback.on_training_end()
        return self

    def _record_hparams(self) -> None:
        hparams = {
            k: v if isinstance(v, (int, float, str, bool)) else str(v)
            for k, v in self.hyperparameters().items()
        }
        metrics = {"rollout/ep_rew_mean": 0.0, "train/value_loss": 0.0}
        self.logger.record(
            "hparams", HParam(hparams, metrics), exclude=("stdout", "log", "json", "csv")
        )

    def dump_logs(self, iteration: int = 0) -> None:
        """Record SB3's ``time/*`` and ``rollout/*`` keys and write everything recorded."""
        elapsed = max((time.time_ns() - self._start_time) / 1e9, 1e-9)  # an instant learn
        fps = int((self.num_timesteps - self._num_timesteps_at_start) / elapsed)
        if iteration > 0:
            self.logger.record("time/iterations", iteration, exclude="tensorboard")
        if self.ep_info_buffer:
            self.logger.record(
                "rollout/ep_rew_mean", float(np.mean([ep["r"] for ep in self.ep_info_buffer]))
            )
            self.logger.record(
                "rollout/ep_len_mean", float(np.mean([ep["l"] for ep in self.ep_info_buffer]))
            )
        self.logger.record("time/fps", fps)
        self.logger.record("time/time_elapsed", int(elapsed), exclude="tensorboard")
        self.logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        self.logger.dump(step=self.num_timesteps)

    # ----------------------------------------------------------------------------------------
    # Seeding, parameters, saving

    def set_random_seed(self, seed: int) -> None:
        """Seed Python, NumPy and torch, the action space (used by SB3 tools to sample) and the
        env (its next reset uses ``seed + i`` for copy ``i``)."""
        set_random_seed(seed, using_cuda=self.device.type == "cuda")
        self.action_space.seed(seed)
        if self.env is not None:
            self.env.seed(seed)

    @classmethod
    def hyperparameter_names(cls) -> tuple[str, ...]:
        """The constructor arguments that are saved: all but ``self`` and
        :attr:`runtime_arguments`."""
        parameters = inspect.signature(cls.__init__).parameters
        return tuple(name for name in parameters if name not in ("self", *cls.runtime_arguments))

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor arguments (minus :attr:`runtime_arguments`) as JSON values."""
        values: dict[str, Any] = {}
        for name in self.hyperparameter_names():
            value = schedule_to_json(getattr(self, name))
            values[name] = list(value) if isinstance(value, tuple) else value
        return values

    def get_parameters(self) -> dict[str, torch.Tensor]:
        """A flat ``name -> Tensor`` copy of the policy weights and the observation statistics."""
        params = {f"policy.{k}": v.detach().clone() for k, v in self.policy.state_dict().items()}
        params["obs_rms.mean"] = torch.as_tensor(self.obs_rms.mean).clone()
        params["obs_rms.var"] = torch.as_tensor(self.obs_rms.var).clone()
        params["obs_rms.count"] = torch.tensor(float(self.obs_rms.count), dtype=torch.float64)
        return params

    def set_parameters(self, params: Mapping[str, torch.Tensor], exact_match: bool = True) -> None:
        """Load what :meth:`get_parameters` returned.

        :param exact_match: require every policy weight to be present and no unknown name.
        :raises JacrlError: for missing or unexpected names, or mismatched shapes.
        """
        policy = {k[len("policy.") :]: v for k, v in params.items() if k.startswith("policy.")}
        try:
            self.policy.load_state_dict(policy, strict=exact_match)
        except RuntimeError as exc:
            raise JacrlError(f"set_parameters: the weights do not fit this policy: {exc}") from exc
        if "obs_rms.mean" in params:
            self.obs_rms.mean = params["obs_rms.mean"].double().numpy().copy()
            self.obs_rms.var = params["obs_rms.var"].double().numpy().copy()
            self.obs_rms.count = float(params["obs_rms.count"])

    def _saved_agent(self) -> SavedAgent:
        system_info, _ = get_system_info(print_info=False)
        return SavedAgent(
            cls=type(self).__name__,
            hyperparameters=self.hyperparameters(),
            observation_space=describe_space(self.observation_space),
            action_space=describe_space(self.action_space),
            num_timesteps=self.num_timesteps,
            tensors=self.get_parameters(),
            extra={"system_info": {"jacrl": jacrl.__version__, **system_info}},
        )

    @overload
    def save(
        self,
        path: str | os.PathLike[str],
        exclude: Iterable[str] | None = None,
        include: Iterable[str] | None = None,
    ) -> Path: ...

    @overload
    def save(
        self,
        path: io.BufferedIOBase,
        exclude: Iterable[str] | None = None,
        include: Iterable[str] | None = None,
    ) -> None: ...

    def save(
        self,
        path: str | os.PathLike[str] | io.BufferedIOBase,
        exclude: Iterable[str] | None = None,
        include: Iterable[str] | None = None,
    ) -> Path | None:
        """Write the agent to a zip (``meta.json`` + ``weights.pt``, never pickle): to a path,
        atomically, or into an open binary file (SB3's signature).

        What is saved: the hyperparameters, the weights, the observation statistics and the step
        count. Runtime settings (the env, ``tensorboard_log``, ``seed``, ``device``, ``verbose``)
        never are; ``load`` takes them as arguments.

        :param exclude: hyperparameters to leave out (``load`` then takes the constructor's
            default, or a value passed to ``load``); runtime settings may be named too (a no-op,
            as SB3 users write ``exclude=["tensorboard_log"]``).
        :param include: SB3 saves what it can pickle and lets ``include`` add what it leaves out;
            jacrl already saves everything it can without pickle, so ``include`` may name only
            hyperparameters, and anything else (the env, a buffer) is refused.
        :return: the file written (``.zip`` is added to a name without suffix), or ``None`` for a
            file object.
        :raises ConfigError: for a name ``exclude`` or ``include`` cannot take.
        """
        saved = self._saved_agent()
        names = self.hyperparameter_names()
        for name in include or ():
            if name not in names:
                raise ConfigError(
                    f"include={name!r}: {type(self).__name__} cannot save it without pickle; it "
                    f"saves its hyperparameters {names}, weights and observation statistics"
                )
        for name in exclude or ():
            if name not in (*names, *self.runtime_arguments):
                raise ConfigError(
                    f"exclude={name!r} is not a hyperparameter of {type(self).__name__}; "
                    f"accepted: {names} (the weights and observation statistics are always saved)"
                )
            saved.hyperparameters.pop(name, None)
        return write_agent(path, saved, jacrl.__version__)

    # ----------------------------------------------------------------------------------------
    # Training checkpoints (same file format, plus the state a resumed run needs)

    def _training_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """What a resumed run needs besides :meth:`get_parameters`; subclasses add their
        optimizer and counters (calling ``super()``)."""
        tensors, rng = rng_state()
        episodes = list(self.ep_info_buffer)  # rollout/ep_rew_mean continues across a resume
        extra = {"rng": rng, "total_timesteps": self._total_timesteps, "episodes": episodes}
        if replayable(self.env) and self._last_obs is not None:
            assert self.env is not None
            in_progress, extra["episodes_in_progress"] = save_episodes(
                self.env, self._last_obs, self._last_episode_starts
            )
            tensors.update(in_progress)
        return tensors, extra

    def _load_training_state(self, tensors: dict[str, torch.Tensor], extra: dict[str, Any]) -> None:
        """Inverse of :meth:`_training_state`."""
        restore_rng_state(tensors, extra["rng"])
        self.ep_info_buffer.clear()
        self.ep_info_buffer.extend(extra.get("episodes", []))

    def save_checkpoint(self, path: str | os.PathLike[str]) -> Path:
        """Write a training checkpoint: a saved agent (``load`` reads it) plus training state."""
        saved = self._saved_agent()
        tensors, extra = self._training_state()
        saved.tensors.update(tensors)
        saved.extra["training"] = extra
        return write_agent(path, saved, jacrl.__version__)

    @staticmethod
    def _checkpoint_file(every: int | None, path: str | os.PathLike[str] | None) -> Path | None:
        if every is None and path is None:
            return None
        if every is None or every <= 0 or path is None:
            raise JacrlError(
                f"checkpoint_every={every}, checkpoint_path={path}: checkpoints need both, "
                "with checkpoint_every a positive number of env steps"
            )
        file = Path(path)
        return file if file.suffix else file.with_suffix(".zip")

    def _resume(self, path: Path, total_timesteps: int) -> None:
        saved = read_agent(
            path, type(self).__name__, self.hyperparameter_names(), self.runtime_arguments
        )
        training = saved.extra.get("training")
        if training is None:
            raise CheckpointError(f"{path} is a saved agent, not a training checkpoint")
        if (
            training["total_timesteps"] != total_timesteps
            or saved.hyperparameters != self.hyperparameters()
        ):
            raise CheckpointError(
                f"{path} was written by another run (budget {training['total_timesteps']}, "
                f"hyperparameters {saved.hyperparameters}); resume with the same budget and "
                "hyperparameters, or pass another checkpoint_path"
            )
        self.set_parameters(saved.tensors)
        self.num_timesteps = saved.num_timesteps
        self._load_training_state(saved.tensors, training)
        self._continue_episodes(path, saved.tensors, training)
        self._purge_logged_after(self.num_timesteps)

    def _continue_episodes(
        self, path: Path, tensors: dict[str, torch.Tensor], training: dict[str, Any]
    ) -> None:
        """Bring the envs back into the episodes in progress at the checkpoint (by replay), or
        restart them as the run that wrote it did at its checkpoints."""
        assert self.env is not None
        if "episodes_in_progress" not in training:
            self._restart_episodes()
        elif not replayable(self.env):
            raise CheckpointError(
                f"{path} was written on envs jacrl built, whose episodes in progress it restores "
                "by replay; resume with the env id (or a gymnasium.Env), not a VecEnv"
            )
        else:
            self._last_obs, self._last_episode_starts = restore_episodes(
                self.env, tensors, training["episodes_in_progress"]
            )

    def _purge_logged_after(self, step: int) -> None:
        """Make TensorBoard hide what a killed run logged after its last checkpoint.

        The killed run may have dumped iterations past ``step`` before it died, and the resumed
        run logs them again. A new ``SummaryWriter(purge_step=step + 1)`` writes TensorBoard's
        restart marker, so readers drop the orphaned events (steps > ``step``) and the curve reads
        as one run; the point at ``step`` stays, as ``learn`` dumps it before checkpointing.
        """
        for output in self.logger.output_formats:
            if isinstance(output, TensorBoardOutputFormat):
                folder = output.writer.log_dir
                output.writer.close()
                output.writer = SummaryWriter(log_dir=folder, purge_step=step + 1)

    def _restart_episodes(self) -> None:
        """Reset every env with a seed fixed by the step count (see ``checkpoint_every``)."""
        assert self.env is not None
        self.env.seed((self.seed or 0) + self.num_timesteps)
        self._last_obs = self.normalize(self.env.reset(), update=True)
        self._last_episode_starts = np.ones(self.env.num_envs, dtype=bool)

    @classmethod
    def load(
        cls: type[AgentT],
        path: str | os.PathLike[str] | io.BufferedIOBase,
        env: AnyEnv | None = None,
        device: torch.device | str = "auto",
        custom_objects: Mapping[str, Any] | None = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        **kwargs: Any,
    ) -> AgentT:
        """Rebuild an agent saved with :meth:`save` (SB3's signature).

        :param path: the file (``.zip`` may be left off) or an open binary file.
        :param env: the env to continue training on (its spaces must match the saved ones; its
            number of envs replaces the saved ``n_envs``); ``None`` gives an agent that can only
            ``predict`` until :meth:`set_env`.
        :param device: as for the constructor (``"auto"`` is the CPU).
        :param custom_objects: saved hyperparameters to replace, by name (SB3: values used instead
            of what the file holds); each is checked as a constructor argument is.
        :param print_system_info: print this system's versions (SB3's ``get_system_info``) and
            those the agent was saved with.
        :param force_reset: SB3 resets the env before the next ``learn`` unless this is
            ``False`` and the saved last observation is reused; a jacrl file holds no last
            observation (it belongs to env state, which cannot be saved without pickle), so a
            loaded agent always starts with a reset, whatever this says.
        :param kwargs: runtime settings (``tensorboard_log``, ``verbose``, ``seed``) or more
            hyperparameter overrides.
        :raises CheckpointError: truncated/corrupt file, missing member, newer format, another
            agent class, or an env whose spaces differ from the saved ones.
        :raises ConfigError: for a name in ``custom_objects`` or ``kwargs`` that the agent does
            not take, or a value its constructor refuses.
        """
        saved = read_agent(path, cls.__name__, cls.hyperparameter_names(), cls.runtime_arguments)
        if print_system_info:
            print(f"== CURRENT SYSTEM INFO ==\n- jacrl: {jacrl.__version__}")
            get_system_info(print_info=True)
            print("== SAVED MODEL SYSTEM INFO ==")
            saved_info = saved.extra.get("system_info", {"system info": "not recorded"})
            print("\n".join(f"- {key}: {value}" for key, value in saved_info.items()))
        names = cls.hyperparameter_names()
        unknown = sorted(set(custom_objects or {}) - set(names))
        if unknown:
            raise ConfigError(
                f"custom_objects: {unknown} are not hyperparameters of {cls.__name__}; "
                f"accepted: {names}"
            )
        passed_by_load = ("env", "device", "observation_space", "action_space")
        settings = tuple(name for name in cls.runtime_arguments if name not in passed_by_load)
        unknown = sorted(set(kwargs) - {*names, *settings})
        if unknown:
            raise ConfigError(
                f"{cls.__name__}.load got {unknown}; it takes the hyperparameters {names} and the "
                f"settings {settings} as keyword arguments"
            )
        hyperparameters = {k: schedule_from_json(v) for k, v in saved.hyperparameters.items()}
        hyperparameters.update(custom_objects or {})
        hyperparameters.update(kwargs)
        vec_env = None
        if env is not None:
            n_envs = hyperparameters.get("n_envs", 1) if isinstance(env, str) else 1
            vec_env = cls.wrap_env(env, n_envs)
            check_space_matches("observation", saved.observation_space, vec_env.observation_space)
            check_space_matches("action", saved.action_space, vec_env.action_space)
            hyperparameters["n_envs"] = vec_env.num_envs
        agent = cls(
            vec_env,
            device=device,
            observation_space=space_from_description(saved.observation_space),
            action_space=space_from_description(saved.action_space),
            **hyperparameters,
        )
        agent.set_parameters(saved.tensors)
        agent.num_timesteps = saved.num_timesteps
        return agent

    def set_env(self, env: AnyEnv, force_reset: bool = True) -> None:
        """Train on ``env`` from now on (SB3's ``set_env``): it is wrapped as the constructor
        wraps one, and must have the agent's spaces and number of envs (to change that number,
        ``load(path, env)``, which rebuilds the agent).

        :param force_reset: reset the env before the next ``learn`` (SB3's default); ``False``
            keeps the last observation, for an env that continues where the old one stopped.
        :raises JacrlError: for another number of envs or other spaces.
        """
        vec_env = self.wrap_env(env, self.n_envs if isinstance(env, str) else 1, self.seed)
        if vec_env.num_envs != self.n_envs:
            raise JacrlError(
                f"set_env: the env has {vec_env.num_envs} envs and {type(self).__name__} was built "
                f"for n_envs={self.n_envs}; set_env needs the same number. To use another, "
                f"{type(self).__name__}.load(path, env) after save(path)"
            )
        for what, space, expected in (
            ("observation", vec_env.observation_space, self.observation_space),
            ("action", vec_env.action_space, self.action_space),
        ):
            if space != expected:  # SB3's check_for_correct_spaces
                raise UnsupportedSpaceError(
                    f"set_env: the env's {what} space {space} is not the agent's {expected}"
                )
        if force_reset:
            self._last_obs = None
        self.env = vec_env

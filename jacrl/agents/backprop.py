"""BackpropAgent: the supervised upper bound on a classification bandit.

It plays the same stream as the reward-only learners — it acts greedily and earns the same ±1
rewards — but it also reads the true label from ``info["label"]`` and fits a softmax MLP by
cross-entropy, one plain SGD step per ``batch_size`` examples. Its ``rollout/ep_rew_mean`` curve
therefore shows what knowing the error (not just the reward) is worth on the same budget.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from itertools import pairwise
from typing import Any, Literal, get_args

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from jacrl.agents.base import BaseAgent, NonFinite
from jacrl.backprop.mlp import MLP, HiddenActivation
from jacrl.common.errors import JacrlError, UnsupportedSpaceError, check_choice
from jacrl.common.schedules import ScheduleLike, as_schedule
from jacrl.common.torch_activations import torch_activation
from jacrl.common.validation import check_env_first, layer_sizes, positive_int, schedule

__all__ = ["BackpropAgent", "ClassifierMLP"]

Engine = Literal["numpy", "torch"]
"""Who computes the gradient: the hand-written seed-003 backprop (NumPy), or torch autograd."""


class ClassifierMLP(torch.nn.Module):
    """Logits ``Z_{L+1}`` of seed 003's MLP: ``Linear``, σ, …, ``Linear`` (the last one linear)."""

    def __init__(self, sizes: Sequence[int], activation: HiddenActivation) -> None:
        super().__init__()
        layers: list[torch.nn.Module] = []
        for i, (n_in, n_out) in enumerate(pairwise(sizes)):
            layers.append(torch.nn.Linear(n_in, n_out))
            if i < len(sizes) - 2:
                layers.append(torch_activation(activation)())
        self.net = torch.nn.Sequential(*layers)

    @property
    def linears(self) -> list[torch.nn.Linear]:
        return [m for m in self.net if isinstance(m, torch.nn.Linear)]

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)


class BackpropAgent(BaseAgent):
    """A greedy softmax-MLP classifier trained by cross-entropy on the labels the env reveals.

    Needs an env that reports the true class in ``info["label"]`` (at reset and at every step,
    as :class:`~jacrl.envs.ClassificationBandit` does) and a ``Discrete`` action space; it pairs
    each observation it answered with the label in the info of the step that answered it.

    :param env: see :class:`~jacrl.agents.base.BaseAgent`.
    :param hidden: hidden layer widths of the MLP.
    :param activation: ``"tanh"``, ``"sigmoid"`` or ``"relu"``.
    :param learning_rate: plain-SGD step size (number, ``"lin_<x>"`` or a ``LinearSchedule``):
        the seed's optimiser, so the two engines follow the same trajectory.
    :param batch_size: examples per SGD step; each step of the ``n_envs`` copies yields
        ``n_envs`` examples, so a rollout is ``ceil(batch_size / n_envs)`` env steps.
    :param engine: ``"numpy"`` (the hand-written seed-003 backprop of :mod:`jacrl.backprop`; CPU)
        or ``"torch"`` (autograd). Both update the same weights (the NumPy arrays are views of the
        torch parameters), so save/load and ``get_parameters`` do not depend on the engine.
    :param n_envs: see ``BaseAgent``.
    :param normalize_obs: see ``BaseAgent`` (SGD on raw pixel scales converges slowly).
    :param nonfinite: see ``BaseAgent``.
    :param tensorboard_log: see ``BaseAgent``.
    :param seed: see ``BaseAgent``; also fixes the initial weights.
    :param device: see ``BaseAgent``; the numpy engine always runs on the CPU.
    :param verbose: see ``BaseAgent``.
    :param observation_space: see ``BaseAgent`` (predict-only agents).
    :param action_space: see ``BaseAgent`` (predict-only agents).
    :raises JacrlError: if the env does not report ``info["label"]``.
    """

    def __init__(
        self,
        env: gym.Env | VecEnv | str | None,
        hidden: Sequence[int] = (64,),
        activation: HiddenActivation = "tanh",
        learning_rate: ScheduleLike = 0.1,
        batch_size: int = 32,
        engine: Engine = "numpy",
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
        check_env_first(type(self).__name__, env)
        check_choice("engine", engine, get_args(Engine))
        check_choice("activation", activation, get_args(HiddenActivation))
        hidden = layer_sizes("hidden", hidden)
        batch_size = positive_int("batch_size", batch_size)
        learning_rate = schedule("learning_rate", learning_rate)
        super().__init__(
            env,
            n_envs=n_envs,
            normalize_obs=normalize_obs,
            nonfinite=nonfinite,
            tensorboard_log=tensorboard_log,
            seed=seed,
            device=device,
            verbose=verbose,
            observation_space=observation_space,
            action_space=action_space,
        )
        self.hidden, self.activation = hidden, activation
        self.learning_rate, self.batch_size, self.engine = learning_rate, batch_size, engine
        self._lr_schedule = as_schedule("learning_rate", learning_rate)
        self.n_steps = math.ceil(batch_size / self.n_envs)
        if engine == "numpy":
            self.device = torch.device("cpu")

        assert isinstance(self.action_space, spaces.Discrete)  # check_spaces made sure
        sizes = (self.observation_space.shape[0], *self.hidden, int(self.action_space.n))
        self.policy = ClassifierMLP(sizes, activation).to(self.device)
        self._mlp: MLP | None = None
        self.optimizer: torch.optim.SGD | None = None
        if engine == "numpy":
            # one set of weights, two engines: the seed-003 MLP works on views of the torch
            # parameters (transposed: torch stores W_i as (out, in), the seed as (in, out)), so
            # its in-place SGD updates what save/load and get_parameters see
            self._mlp = MLP(sizes, activation=activation, dtype=np.float32)
            self._mlp.weights = [lin.weight.detach().numpy().T for lin in self.policy.linears]
            self._mlp.biases = [lin.bias.detach().numpy() for lin in self.policy.linears]
        else:
            self.optimizer = torch.optim.SGD(self.policy.parameters(), lr=self._lr_schedule(1.0))
        self._batch: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        if self.env is not None:
            self.env.reset()  # a label-less env is refused now, not at the first learn step
            self._labels(self.env.reset_infos, "reset")

    def check_spaces(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        """A flat Box of features and a Discrete set of classes."""
        super().check_spaces(observation_space, action_space)
        if not isinstance(action_space, spaces.Discrete):
            raise UnsupportedSpaceError(
                f"BackpropAgent classifies: it needs a Discrete action space (the classes), got "
                f"{action_space}"
            )

    def _labels(self, infos: Sequence[dict[str, Any]], where: str) -> np.ndarray:
        try:
            return np.array([int(info["label"]) for info in infos], dtype=np.int64)
        except KeyError:
            raise JacrlError(
                f"BackpropAgent needs the true class in info['label'] at every {where}, and this "
                "env does not report it; it is the supervised baseline for label-reporting envs "
                "such as jacrl/DigitsBandit-v0 (ClassificationBandit)"
            ) from None

    def _predict(self, obs: torch.Tensor, deterministic: bool) -> np.ndarray:
        """Greedy: the class with the largest logit (exploration is not needed with labels)."""
        if self._mlp is not None:
            return self._mlp.predict(obs.numpy())
        return self.policy(obs.to(self.device)).argmax(dim=1).cpu().numpy()

    def collect_rollouts(self, callback: BaseCallback) -> bool:
        """Answer ``n_steps`` examples per env and keep ``(observation, label, answer)``."""
        assert self._last_obs is not None
        observations, labels, answers = [], [], []
        for _ in range(self.n_steps):
            obs = self._last_obs
            with torch.no_grad():
                actions = self._predict(torch.as_tensor(obs), deterministic=True)
            step = self._step_env(actions, callback)
            if step is None:
                return False
            # step's info["label"] belongs to the example just answered, i.e. to obs
            labels.append(self._labels(step.infos, "step"))
            observations.append(obs)
            answers.append(actions)
            self._last_obs, self._last_episode_starts = step.obs, step.dones
        self._batch = (
            np.concatenate(observations),
            np.concatenate(labels),
            np.concatenate(answers),
        )
        return True

    def train(self) -> None:
        """One SGD step of softmax cross-entropy on the collected batch."""
        assert self._batch is not None
        X, y, answers = self._batch
        learning_rate = self._lr_schedule(self._progress_remaining)
        if self._mlp is not None:
            loss = self._mlp.sgd_step(X, y, learning_rate)
        else:
            assert self.optimizer is not None
            for group in self.optimizer.param_groups:
                group["lr"] = learning_rate
            logits = self.policy(torch.as_tensor(X, device=self.device))
            loss_t = torch.nn.functional.cross_entropy(
                logits, torch.as_tensor(y, device=self.device)
            )
            self.optimizer.zero_grad()
            loss_t.backward()
            self.optimizer.step()
            loss = loss_t.item()
        self.logger.record("train/loss", loss)
        # the greedy answers given on this batch, before the update: online training accuracy
        self.logger.record("train/accuracy", float(np.mean(answers == y)))
        self.logger.record("train/learning_rate", learning_rate)

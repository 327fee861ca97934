"""A trained agent's action density at one state: exact, sampled, drawn (``jacrl density``).

An invertible policy knows ``log π(a|s)`` of any given env action exactly (docs/method.md §3,
§7), so its density at a state can be drawn and integrated without sampling
(:mod:`jacrl.policies.density_image`). This module turns a *trained agent* into the
``log_prob_fn`` those functions take, which needs one care: a jacrl agent's policy sees
*normalised* observations (``BaseAgent.normalize``, the statistics saved with the weights), so
the density at a raw state ``s`` is that of the policy at ``normalize(s)`` — exactly what
``predict(s, deterministic=False)`` samples from.

An agent has an exact density of its env action when its policy is the invertible one, the
action space is a Box and F is square in the action (width n == action size k; a wider F's
density is one of n numbers, not of the k the env receives). That holds for ``jacobian-sac``
always and for ``jacobian`` when its width is the action size; SB3's agents are only sampled.

Used by :func:`jacrl.train.train` (an image of the density at every evaluation,
:func:`density_callback`) and by ``jacrl compare``'s multimodal metrics
(:mod:`jacrl.compare.policy_metrics`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from numpy.typing import ArrayLike
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Image
from torch import Tensor

from jacrl.agents.base import BaseAgent
from jacrl.common.errors import (
    JacrlError,
    NonFiniteError,
    PrecisionLossError,
    UnsupportedSpaceError,
)
from jacrl.envs.four_modes import MODES, FourModes
from jacrl.envs.multigoal import GOALS, MultiGoal
from jacrl.policies.density_image import (
    LogProbFn,
    Scale,
    density_grid,
    density_image_array,
    save_action_density_png,
)
from jacrl.policies.invertible import InvertiblePolicy

__all__ = [
    "DENSITY_KEY",
    "ActionDensityCallback",
    "density_callback",
    "exact_log_prob_fn",
    "marked_actions",
    "reference_observation",
    "sample_actions",
    "seeded_torch",
    "write_density_png",
]

DENSITY_KEY = "eval/action_density"
"""The TensorBoard image of the density at every evaluation."""
MASS_KEY = "eval/action_density_mass"
"""Its grid integral beside it (≈ 1: a check of the log-det bookkeeping as training goes)."""
#: the SB3 logger's formats that cannot show an image
NOT_IMAGES = ("stdout", "log", "json", "csv")
#: what an inverse pass raises for an action too far out for F (see exact_log_prob_fn)
TOO_FAR_OUT = (NonFiniteError, PrecisionLossError)


def _invertible_policy(model: Any) -> InvertiblePolicy | None:
    """The model's invertible policy if it has an exact density of the env action, else None."""
    policy = getattr(model, "policy", None)
    if not isinstance(model, BaseAgent) or not isinstance(policy, InvertiblePolicy):
        return None
    # the conditions of InvertiblePolicy.action_log_prob: a Box action and F square in it
    return policy if policy.squash is not None and policy.n == policy.k else None


def _observation(model: Any, observation: ArrayLike) -> np.ndarray:
    obs = np.asarray(observation, dtype=np.float64)
    shape = model.observation_space.shape
    if obs.shape != shape:
        raise JacrlError(
            f"the observation has shape {obs.shape}; the agent's observation space "
            f"{model.observation_space} needs {shape}"
        )
    if not np.isfinite(obs).all():
        raise NonFiniteError(f"the observation holds NaN or inf: {obs}")
    return obs


def exact_log_prob_fn(model: Any, observation: ArrayLike) -> LogProbFn | None:
    """``log π(a|s)`` of ``(M, k)`` env actions at the raw observation ``s``, as a
    :data:`~jacrl.policies.density_image.LogProbFn`; ``None`` for an agent without an exact
    density of its env action (see the module docstring).

    The observation is normalised as ``predict`` normalises it, so this is the density of the
    actions ``model.predict(observation, deterministic=False)`` samples.

    An action whose inverse pass overflows, or loses the accuracy the network guarantees
    (``PrecisionLossError``), gets log-density −inf (density 0). Near the edges of the box
    y = squash⁻¹(a) grows without bound, and an ``asinh`` F's inverse (sinh, compounded over the
    blocks) overflows float64 well inside it (past |a| ≈ 0.99 for a briefly trained on-policy
    agent); the accuracy is lost just before, where the rounding error is amplified by cosh(u)
    per block. There |x| = |F⁻¹(y)| is astronomically large, the Gaussian term −|x − x0|²/2σ²
    outweighs the log-det (which grows like log|x| for jacrl's activations and layers), and the
    density is 0 to far below float64's resolution. The other rows of such a batch are
    evaluated exactly (:func:`_overflow_as_zero`). What a picture or a mass loses this way shows
    in the grid's total mass (``DensityGrid.mass()``, ≈ 1 when nothing that matters was lost).
    An overflow with non-finite weights is raised, not hidden.

    :raises JacrlError: for an observation that does not fit the agent's observation space.
    """
    policy = _invertible_policy(model)
    if policy is None:
        return None
    obs = _observation(model, observation)
    state = torch.as_tensor(model.normalize(obs[None]), device=model.device)
    low, high = model.action_space.low, model.action_space.high
    bounded = np.isfinite(low) & np.isfinite(high)
    centre = torch.as_tensor(np.where(bounded, (low + high) / 2, 0.0), device=model.device)
    half = torch.as_tensor(np.where(bounded, (high - low) / 2, 1.0), device=model.device)

    def exact(batch: Tensor) -> Tensor:
        return policy.action_log_prob(state.expand(len(batch), -1), batch)

    def log_prob(actions: np.ndarray) -> Tensor:
        batch = torch.as_tensor(actions, dtype=policy.dtype, device=model.device)
        try:
            return exact(batch)
        except TOO_FAR_OUT:
            if not all(bool(torch.isfinite(p).all()) for p in policy.parameters()):
                raise
        # The guard refuses a whole batch, so the bisection costs one pass per row that
        # overflows (a 400² grid of a briefly trained asinh policy: ~10 s instead of < 1 s);
        # sorted by closeness to the box's edge, where they are, those rows lie together and
        # few passes are spent on the rest.
        order = torch.argsort(((batch - centre) / half).abs().amax(dim=1), descending=True)
        values = torch.empty(len(batch), dtype=batch.dtype, device=batch.device)
        values[order] = _overflow_as_zero(exact, batch[order])
        return values

    return log_prob


def _overflow_as_zero(exact: Callable[[Tensor], Tensor], batch: Tensor) -> Tensor:
    """``exact(batch)``, bisected down to the single rows it raises an overflow for, which get
    −inf (see :func:`exact_log_prob_fn`)."""
    try:
        return exact(batch)
    except TOO_FAR_OUT:
        if len(batch) == 1:
            return batch.new_full((1,), -math.inf)
    middle = len(batch) // 2
    return torch.cat(
        [_overflow_as_zero(exact, batch[:middle]), _overflow_as_zero(exact, batch[middle:])]
    )


def sample_actions(model: Any, observation: ArrayLike, n: int, seed: int = 0) -> np.ndarray:
    """``n`` actions ``model.predict(observation, deterministic=False)`` draws, ``(n, k)``.

    Works for any agent with SB3's ``predict`` (for an SB3 agent trained with ``normalize``, pass
    the observation as its ``VecNormalize`` returns it). The draw is seeded by ``seed`` in a
    forked torch generator, so it is reproducible and leaves the caller's random state alone.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise JacrlError(f"the number of samples must be a positive whole number, got {n!r}")
    obs = np.asarray(observation)
    with seeded_torch(seed):
        actions, _ = model.predict(np.repeat(obs[None], n, axis=0), deterministic=False)
    return np.asarray(actions, dtype=np.float64).reshape(n, -1)


@contextmanager
def seeded_torch(seed: int) -> Iterator[None]:
    """Draw from torch's CPU generator seeded with ``seed`` inside, restoring its state after:
    reproducible samples (jacrl's and SB3's ``predict`` sample from it) that leave the caller's
    random stream alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def reference_observation(env_id: str, seed: int = 0) -> np.ndarray:
    """The state a density picture of ``env_id`` is drawn at by default: MultiGoal's start
    state (0, 0), where the four goals are symmetric (its reset adds N(0, 0.1²) noise), else
    the observation of ``reset(seed=seed)``."""
    env = gym.make(env_id)
    try:
        if isinstance(env.unwrapped, MultiGoal):
            return np.zeros(2, dtype=np.float32)
        return np.asarray(env.reset(seed=seed)[0])
    finally:
        env.close()


def marked_actions(env_id: str, observation: ArrayLike) -> tuple[np.ndarray, list[str]] | None:
    """The actions worth marking on a density picture of ``env_id`` at ``observation``: the four
    modes of FourModes; on MultiGoal, the full-speed velocity straight at each goal (a unit
    vector). ``None`` for other envs."""
    env = gym.make(env_id)
    try:
        task = env.unwrapped
    finally:
        env.close()
    if isinstance(task, FourModes):
        return MODES.copy(), [f"mode {i}" for i in range(len(MODES))]
    if isinstance(task, MultiGoal):
        towards = GOALS - np.asarray(observation, dtype=np.float64)
        distances = np.linalg.norm(towards, axis=1, keepdims=True)
        directions = towards / np.maximum(distances, 1e-12)  # (0, 0) at a goal itself
        return directions, [f"goal {i}" for i in range(len(GOALS))]
    return None


def _drawable_box(action_space: spaces.Space | None) -> tuple[np.ndarray, np.ndarray] | None:
    """The bounds of a 1-D or 2-D Box with finite bounds, else None."""
    if not isinstance(action_space, spaces.Box) or action_space.shape not in ((1,), (2,)):
        return None
    low, high = action_space.low.astype(np.float64), action_space.high.astype(np.float64)
    return (low, high) if np.isfinite(low).all() and np.isfinite(high).all() else None


def write_density_png(
    model_path: str | Path,
    env_id: str,
    *,
    observation: ArrayLike | None = None,
    out: str | Path | None = None,
    samples: int = 10_000,
    seed: int = 0,
    size: int = 200,
    scale: Scale = "linear",
    agent: str | None = None,
) -> Path:
    """Draw the exact action density of a saved agent at one state as a PNG (``jacrl density``).

    :param model_path: the run's ``model.zip`` (its ``config.yaml`` names the agent).
    :param observation: the raw state (default :func:`reference_observation`).
    :param out: the PNG (default ``action_density.png`` beside the model).
    :param samples: actions sampled from ``predict`` for a histogram beside the exact density,
        a check of it; 0 draws the density alone.
    :param seed: seeds the default observation and the samples.
    :param size: grid cells per axis.
    :param scale: ``"linear"`` or ``"log"`` colours (log shows thin modes).
    :param agent: the agent, if there is no ``config.yaml`` beside the model.
    :raises UnsupportedSpaceError: for an agent without an exact density of its action, or an
        action space that is not a 1-D or 2-D Box with finite bounds.
    """
    from jacrl.evaluate import load_saved  # jacrl.evaluate imports jacrl.train, which imports this

    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
        raise JacrlError(f"samples={samples!r}: expected a whole number >= 0")
    model_path = Path(model_path)
    model, _, entry = load_saved(model_path, env_id, agent, seed)
    box = _drawable_box(model.action_space)
    if box is None:
        raise UnsupportedSpaceError(
            f"jacrl density draws 1-D and 2-D Box actions with finite bounds; {env_id}'s action "
            f"space is {model.action_space}"
        )
    obs = reference_observation(env_id, seed) if observation is None else observation
    log_prob_fn = exact_log_prob_fn(model, obs)
    if log_prob_fn is None:
        raise UnsupportedSpaceError(
            f"agent '{entry.name}' has no exact density of its action: jacrl density needs an "
            "invertible policy square in a Box action (jacobian-sac; jacobian with width = the "
            "action size)"
        )
    marks = marked_actions(env_id, obs)
    shown = ", ".join(f"{v:.3g}" for v in np.ravel(obs))
    return save_action_density_png(
        Path(out) if out is not None else model_path.parent / "action_density.png",
        log_prob_fn,
        *box,
        size=size,
        samples=sample_actions(model, obs, samples, seed) if samples else None,
        points=None if marks is None else marks[0],
        point_labels=None if marks is None else marks[1],
        scale=scale,
        title=f"{entry.name} on {env_id} at s = ({shown})",
    )


class ActionDensityCallback(BaseCallback):
    """Log the policy's exact action density at one state as a TensorBoard image.

    Meant as SB3 ``EvalCallback``'s ``callback_after_eval``: one picture per evaluation, under
    :data:`DENSITY_KEY` at the evaluation's step, with its grid integral under
    :data:`MASS_KEY`. It draws no samples (no random state is used, so a resumed run logs the
    same pictures). A density with NaN or +inf values on the grid is not drawn, with a warning:
    the picture is a diagnostic, which must not end the run.

    :param observation: the raw state the density is drawn at.
    :param low: the action box's lower bounds (1-D or 2-D, finite).
    :param high: its upper bounds.
    :param marks: actions to mark, with their labels (:func:`marked_actions`).
    :param size: grid cells per axis.
    """

    def __init__(
        self,
        observation: ArrayLike,
        low: np.ndarray,
        high: np.ndarray,
        marks: tuple[np.ndarray, list[str]] | None = None,
        size: int = 100,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        self.observation = np.asarray(observation)
        self.low, self.high = low, high
        self.marks = marks
        self.size = size

    def _on_step(self) -> bool:
        log_prob_fn = exact_log_prob_fn(self.model, self.observation)
        assert log_prob_fn is not None, "density_callback builds this for such agents only"
        try:
            mass = density_grid(log_prob_fn, self.low, self.high, self.size).mass()
            image = density_image_array(
                log_prob_fn,
                self.low,
                self.high,
                size=self.size,
                points=None if self.marks is None else self.marks[0],
                point_labels=None if self.marks is None else self.marks[1],
                title=f"step {self.num_timesteps}",
            )
        except NonFiniteError as exc:  # a diagnostic picture must not end the run it watches
            warnings.warn(
                f"{DENSITY_KEY} not drawn at step {self.num_timesteps}: {exc}", stacklevel=1
            )
            return True
        self.logger.record(DENSITY_KEY, Image(image, "HWC"), exclude=NOT_IMAGES)
        self.logger.record(MASS_KEY, mass)
        # EvalCallback dumped its keys just before calling this: dump now, at the same step
        self.logger.dump(self.num_timesteps)
        return True


def density_callback(model: Any, env_id: str, seed: int = 0) -> ActionDensityCallback | None:
    """An :class:`ActionDensityCallback` at :func:`reference_observation` for a model with an
    exact density of a 1-D or 2-D bounded Box action; ``None`` for any other."""
    box = _drawable_box(getattr(model, "action_space", None))
    if box is None or _invertible_policy(model) is None:
        return None
    observation = reference_observation(env_id, seed)
    return ActionDensityCallback(observation, *box, marks=marked_actions(env_id, observation))

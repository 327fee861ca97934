"""The multi-goal point mass of Haarnoja et al. (2017): four equally good goals, one start.

A policy that keeps its options open reaches several goals over a few stochastic episodes; one
that collapses onto one mode (a Gaussian trained by a mode-seeking update) reaches one. That
count, :func:`distinct_goals`, is the task's metric. matplotlib is imported only when drawing
(as Gymnasium's classic-control envs import pygame only in ``render()``), so ``import jacrl``
stays light.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from numpy.typing import ArrayLike

from jacrl.common.errors import JacrlError
from jacrl.envs.actions import clipped_action
from jacrl.policies.density_image import figure_to_array

__all__ = ["GOALS", "MultiGoal", "distinct_goals", "draw_trajectories"]

GOALS = np.array([[5.0, 0.0], [-5.0, 0.0], [0.0, 5.0], [0.0, -5.0]])
"""The goal positions, in the order of the reference code; ``info["goal"]`` indexes this."""

BOUND = 7.0
"""The position is clipped to ``[-BOUND, BOUND]²``."""


class MultiGoal(gym.Env[np.ndarray, np.ndarray]):
    """
    ## Description

    The multi-goal task of Haarnoja, Tang, Abbeel & Levine (2017), "Reinforcement Learning with
    Deep Energy-Based Policies" (its didactic multi-goal example): a point mass starts near
    the origin of the plane and is moved by its velocity towards one of four goals at
    ``(±5, 0)`` and ``(0, ±5)``. The goals are equally good, so the optimal max-entropy
    policy is multimodal. It follows ``MultiGoalEnv`` of the authors' code
    (``softqlearning/environments/multigoal.py``; the same in ``rail-berkeley/softlearning``),
    with the Gymnasium API.

    ## Action Space

    ``Box(-1, 1, (2,), float32)``: the velocity; out-of-range actions are clipped (as in the
    reference). The move is ``s' = clip(s + a, -7, 7)``: deterministic, like the reference's
    ``PointDynamics(sigma=0)``.

    ## Observation Space

    ``Box(-7, 7, (2,), float32)``: the position ``s``.

    ## Rewards

    ``r = -30·‖a‖² - min_g ‖s' - g‖² + 10·[min_g ‖s' - g‖ < 1]``, with ``a`` the clipped action
    and ``s'`` the position *after* the move, exactly the reference's ``compute_reward`` and
    ``goal_reward`` (its ``actuation_cost_coeff=30``, ``distance_cost_coeff=1``).

    ## Starting State

    ``s₀ ~ N(0, 0.1² I)``, clipped to the box (the reference's ``init_sigma=0.1``).

    ## Episode End

    Terminates when the point is within distance 1 of a goal (the reference's
    ``goal_threshold``); ``info["goal"]`` is then the goal's index in :data:`GOALS` and
    ``info["is_success"]`` is True. The key ``"goal"`` is absent on other steps, so
    ``info.get("goal")`` is the index or None: an always-present ``None`` would break
    Gymnasium's vector envs, which stack an info key into an int array when the first env
    reports an int. Truncation is left to the registered spec's ``max_episode_steps`` (30,
    the reference's ``max_path_length``). ``info["distance"]`` is the distance to the nearest
    goal after the move.

    ## Arguments

    ``gym.make("jacrl/MultiGoal-v0", goal_reward=10.0, actuation_cost_coeff=30.0,
    distance_cost_coeff=1.0, init_sigma=0.1, goal_radius=1.0, render_mode=None)``.
    ``render_mode="rgb_array"`` draws the goals, the position cost's contours and the episode's
    trajectory so far; :func:`draw_trajectories` draws several episodes in one image.

    Where this differs from the reference: seeding goes through ``reset(seed=...)`` (the
    reference draws from the global ``np.random``); a non-finite action raises
    :class:`~jacrl.common.errors.NonFiniteError` instead of moving the point to NaN (see
    :func:`~jacrl.envs.actions.clipped_action`); the step info carries ``goal``,
    ``is_success`` and ``distance`` instead of ``pos`` (the observation is the position).

    ## Version History

    - v0: initial version.
    """

    # a plain dict, as gymnasium's own envs declare it (Env annotates it as an instance attribute)
    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}  # noqa: RUF012

    def __init__(
        self,
        goal_reward: float = 10.0,
        actuation_cost_coeff: float = 30.0,
        distance_cost_coeff: float = 1.0,
        init_sigma: float = 0.1,
        goal_radius: float = 1.0,
        render_mode: str | None = None,
    ) -> None:
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise JacrlError(f"render_mode={render_mode!r}: expected None or 'rgb_array'")
        self.render_mode = render_mode
        non_negative = {
            "goal_reward": goal_reward,
            "actuation_cost_coeff": actuation_cost_coeff,
            "distance_cost_coeff": distance_cost_coeff,
            "init_sigma": init_sigma,
        }
        for name, value in non_negative.items():
            if not np.isfinite(value) or value < 0:
                raise JacrlError(f"{name} must be a finite number >= 0, got {value!r}")
        if not 0.0 < goal_radius < 2.5:  # 2.5: half the distance between neighbouring goals
            raise JacrlError(f"goal_radius must be in (0, 2.5), got {goal_radius!r}")
        self.goal_reward = float(goal_reward)
        self.actuation_cost_coeff = float(actuation_cost_coeff)
        self.distance_cost_coeff = float(distance_cost_coeff)
        self.init_sigma = float(init_sigma)
        self.goal_radius = float(goal_radius)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.observation_space = spaces.Box(-BOUND, BOUND, shape=(2,), dtype=np.float32)
        self._position = np.zeros(2)
        self._trajectory: list[np.ndarray] = []

    def _nearest_goal(self) -> tuple[int, float]:
        distances = np.linalg.norm(GOALS - self._position, axis=1)
        nearest = int(np.argmin(distances))
        return nearest, float(distances[nearest])

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        start = self.init_sigma * self.np_random.standard_normal(2)
        self._position = np.clip(start, -BOUND, BOUND)
        self._trajectory = [self._position.copy()]
        return self._position.astype(np.float32), {"distance": self._nearest_goal()[1]}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        velocity = clipped_action(action, 2, "MultiGoal")
        self._position = np.clip(self._position + velocity, -BOUND, BOUND)
        self._trajectory.append(self._position.copy())
        nearest, distance = self._nearest_goal()
        terminated = distance < self.goal_radius
        reward = (
            -self.actuation_cost_coeff * float(velocity @ velocity)
            - self.distance_cost_coeff * distance**2
            + (self.goal_reward if terminated else 0.0)
        )
        info: dict[str, Any] = {"distance": distance, "is_success": terminated}
        if terminated:
            info["goal"] = nearest
        return self._position.astype(np.float32), reward, terminated, False, info

    def render(self) -> np.ndarray | None:
        """The episode so far as a 256×256 RGB image (see :func:`draw_trajectories`)."""
        if self.render_mode is None:
            return None
        return draw_trajectories([np.array(self._trajectory)], goal_radius=self.goal_radius)


def draw_trajectories(
    trajectories: Sequence[ArrayLike], *, size: int = 256, goal_radius: float = 1.0
) -> np.ndarray:
    """Several episodes of :class:`MultiGoal` in one top view, as the paper draws its rollouts.

    :param trajectories: one ``(T, 2)`` array of positions per episode (start first); each is
        drawn as a line with a dot at its start and a cross at its end.
    :param size: the image's width and height in pixels (at least 64).
    :param goal_radius: the radius of the goal discs drawn (the env's termination radius).
    :return: a ``(size, size, 3)`` uint8 RGB array: grey contours of the position cost
        ``min_g ‖s - g‖²``, the goals' discs in red, the episodes in blue.
    """
    # only when drawing (see the module docstring)
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle

    paths = [np.asarray(t, dtype=np.float64) for t in trajectories]
    for i, path in enumerate(paths):
        if path.ndim != 2 or path.shape[1] != 2 or len(path) == 0:
            raise JacrlError(
                f"trajectory {i} must be a (T, 2) array of positions, got {path.shape}"
            )
    if int(size) != size or size < 64:
        raise JacrlError(f"size must be an integer >= 64 pixels, got {size!r}")
    fig = Figure(figsize=(4.0, 4.0), dpi=size / 4.0)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    lim = 1.1 * BOUND
    grid = np.linspace(-lim, lim, 141)
    xx, yy = np.meshgrid(grid, grid)
    cost = np.min([(xx - gx) ** 2 + (yy - gy) ** 2 for gx, gy in GOALS], axis=0)
    ax.contour(xx, yy, cost, levels=12, colors="0.75", linewidths=0.6)
    for goal in GOALS:
        ax.add_patch(Circle(tuple(goal), goal_radius, color="tab:red", alpha=0.6))
    for path in paths:
        ax.plot(path[:, 0], path[:, 1], color="tab:blue", linewidth=1.2)
        ax.plot(*path[0], "o", color="tab:blue", markersize=3)
        ax.plot(*path[-1], "x", color="tab:blue", markersize=5)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_axis_off()
    return figure_to_array(fig)


def distinct_goals(episodes: Iterable[Mapping[str, Any] | int | None]) -> int:
    """How many different goals a set of episodes reached: the paper's measure of multimodality.

    The reference logs the same count (``env:goals_reached`` in its ``log_diagnostics``) over
    its evaluation episodes; here, e.g., over 20 stochastic episodes of the trained policy.

    :param episodes: per episode, either its last step's ``info`` (a mapping; ``info.get("goal")``
        is read, so the infos of *every* step may be passed too) or the reached goal's index
        (``None`` for an episode that reached none).
    :return: the number of distinct goal indices, 0 to 4.
    :raises JacrlError: for an index that is not a goal, or an entry of another type.
    """
    reached: set[int] = set()
    for i, episode in enumerate(episodes):
        goal = episode.get("goal") if isinstance(episode, Mapping) else episode
        if goal is None:
            continue
        if isinstance(goal, bool) or not isinstance(goal, (int, np.integer)):
            raise JacrlError(
                f"entry {i}: expected an info mapping, a goal index or None, got {goal!r}"
            )
        if not 0 <= goal < len(GOALS):
            raise JacrlError(f"entry {i}: goal index {goal} is not in 0..{len(GOALS) - 1}")
        reached.add(int(goal))
    return len(reached)

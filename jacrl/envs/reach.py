"""Continuous reaching whose action has the observation's dimension, so an n×n network fits."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from jacrl.common.errors import JacrlError, NonFiniteError

__all__ = ["Reach"]


class Reach(gym.Env[np.ndarray, np.ndarray]):
    """
    ## Description

    A point moves in the box ``[-1, 1]^n`` towards a goal drawn in the same box. The agent sees
    the offset ``goal - position`` and moves the point by ``step_size * action``. Observation and
    action both live in Rⁿ, so the invertible network of the Jacobian rule is naturally square
    (docs/method.md §3, §7), with no padding or lift needed.

    ## Action Space

    ``Box(-1, 1, (n,), float32)``: the velocity; out-of-range actions are clipped.

    ## Observation Space

    ``Box(-2, 2, (n,), float32)``: ``goal - position``.

    ## Rewards

    ``-‖goal - position‖`` after the move: dense, so every step says how far the point still is.

    ## Starting State

    Position and goal uniform in ``[-1, 1]^n``, at least ``goal_radius`` apart.

    ## Episode End

    Terminates when the distance falls below ``goal_radius`` (``info["is_success"]`` is then
    True, as SB3's success-rate logging expects); truncation is left to ``max_episode_steps`` of
    the registered spec (50).

    ## Arguments

    ``gym.make("jacrl/Reach-v0", n=2, step_size=0.1, goal_radius=0.05, render_mode=None)``;
    ``jacrl/Reach4D-v0`` is the same with ``n=4``. ``render_mode="rgb_array"`` draws the first
    two coordinates: goal green, point red.

    ## Version History

    - v0: initial version.
    """

    # a plain dict, as gymnasium's own envs declare it (Env annotates it as an instance attribute)
    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}  # noqa: RUF012

    def __init__(
        self,
        n: int = 2,
        step_size: float = 0.1,
        goal_radius: float = 0.05,
        render_mode: str | None = None,
    ) -> None:
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise JacrlError(f"render_mode={render_mode!r}: expected None or 'rgb_array'")
        self.render_mode = render_mode
        if int(n) != n or n < 1:
            raise JacrlError(f"n must be a positive integer, got {n!r}")
        if not 0.0 < step_size <= 2.0 or not 0.0 < goal_radius < 1.0:
            raise JacrlError(
                f"need 0 < step_size <= 2 and 0 < goal_radius < 1, got {step_size!r}, "
                f"{goal_radius!r}"
            )
        self.n = int(n)
        self.step_size = float(step_size)
        self.goal_radius = float(goal_radius)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(self.n,), dtype=np.float32)
        self.observation_space = spaces.Box(-2.0, 2.0, shape=(self.n,), dtype=np.float32)
        self._position = np.zeros(self.n)
        self._goal = np.zeros(self.n)

    def _obs(self) -> np.ndarray:
        return (self._goal - self._position).astype(np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        while True:
            self._position = self.np_random.uniform(-1.0, 1.0, self.n)
            self._goal = self.np_random.uniform(-1.0, 1.0, self.n)
            distance = float(np.linalg.norm(self._goal - self._position))
            if distance >= self.goal_radius:
                return self._obs(), {"distance": distance}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        velocity = np.asarray(action, dtype=np.float64).reshape(self.n)
        if not np.all(np.isfinite(velocity)):
            raise NonFiniteError(f"Reach action must be finite, got {action!r}")
        velocity = np.clip(velocity, -1.0, 1.0)
        self._position = np.clip(self._position + self.step_size * velocity, -1.0, 1.0)
        distance = float(np.linalg.norm(self._goal - self._position))
        terminated = distance < self.goal_radius
        info = {"distance": distance, "is_success": terminated}
        return self._obs(), -distance, terminated, False, info

    def render(self) -> np.ndarray | None:
        """A 64×64 RGB top view of the first two coordinates (goal green, point red)."""
        if self.render_mode is None:
            return None
        size = 64
        image = np.full((size, size, 3), 255, dtype=np.uint8)
        for point, colour in ((self._goal, (0, 160, 0)), (self._position, (200, 0, 0))):
            xy = np.resize(point, 2)  # n = 1 draws on the diagonal
            col, row = ((xy + 1.0) / 2.0 * (size - 1)).round().astype(int)
            image[max(row - 1, 0) : row + 2, max(col - 1, 0) : col + 2] = colour
        return image

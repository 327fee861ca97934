"""A state-free bandit with four separate good actions: the smallest test of a multimodal policy.

There is no state to condition on and one step per episode, so everything a learner does shows
in one 2-D action density: a Gaussian policy can cover one mode or smear over all four, an
invertible policy can put mass on each. :func:`mode_masses` (from samples) and
:func:`mode_masses_from_density` (exact, from the policy's log-density) measure how much.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from numpy.typing import ArrayLike

from jacrl.common.errors import JacrlError, NonFiniteError
from jacrl.envs.actions import clipped_action
from jacrl.policies.density_image import LogProbFn, density_grid

__all__ = [
    "MASS_RADIUS",
    "MODES",
    "MODE_WIDTH",
    "FourModes",
    "mode_masses",
    "mode_masses_from_density",
    "mode_reward",
]

MODES = np.array([[0.6, 0.0], [-0.6, 0.0], [0.0, 0.6], [0.0, -0.6]])
"""The four rewarded actions; ``info["mode"]`` and the metrics index this."""

MODE_WIDTH = 0.12
"""The standard deviation of each reward bump."""

MASS_RADIUS = 2 * MODE_WIDTH
"""An action within this distance of a mode counts as that mode's (the discs are disjoint:
neighbouring modes are 0.6·√2 ≈ 0.85 apart)."""


def mode_reward(actions: ArrayLike) -> np.ndarray:
    """``max_g exp(-‖a - g‖² / (2·MODE_WIDTH²))`` over the four modes, for ``(..., 2)`` actions."""
    a = np.asarray(actions, dtype=np.float64)
    squared = np.sum((a[..., None, :] - MODES) ** 2, axis=-1)
    return np.exp(-squared.min(axis=-1) / (2 * MODE_WIDTH**2))


class FourModes(gym.Env[np.ndarray, np.ndarray]):
    """
    ## Description

    A one-step bandit whose reward has four equal, separate peaks in the action square, at
    ``(±0.6, 0)`` and ``(0, ±0.6)``. The observation never changes, so the task isolates the
    policy's action distribution: the max-entropy optimum ``π* ∝ exp(r/α)`` is four-modal; a
    mode-seeking (reverse-KL) update tends to collapse onto one peak, a mass-covering one need
    not (docs/method.md §7).

    ## Action Space

    ``Box(-1, 1, (2,), float32)``; out-of-range actions are clipped.

    ## Observation Space

    ``Box(-1, 1, (1,), float32)``; the observation is always ``[0.0]``. (A zero-width box would
    state the constancy exactly, but divides by zero in any normaliser that rescales by the
    bounds.)

    ## Rewards

    ``r(a) = max_g exp(-‖a - g‖² / (2·0.12²))`` (:func:`mode_reward`): 1 at a mode,
    ``exp(-12.5) ≈ 4e-6`` at the origin.

    ## Starting State

    The constant observation; nothing is random.

    ## Episode End

    Every episode terminates after its one step. ``info["mode"]`` is the index in :data:`MODES`
    of the mode within :data:`MASS_RADIUS` (0.24) of the action, and ``info["is_success"]``
    says whether there is one; the key ``"mode"`` is absent when there is none (an
    always-present ``None`` would break Gymnasium's vector envs, see
    :class:`~jacrl.envs.multigoal.MultiGoal`).

    ## Arguments

    ``gym.make("jacrl/FourModes-v0", render_mode=None)``. ``render_mode="rgb_array"`` draws
    the reward over the action square (dark = high) and the last action in red.

    ## Version History

    - v0: initial version.
    """

    # a plain dict, as gymnasium's own envs declare it (Env annotates it as an instance attribute)
    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}  # noqa: RUF012

    def __init__(self, render_mode: str | None = None) -> None:
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise JacrlError(f"render_mode={render_mode!r}: expected None or 'rgb_array'")
        self.render_mode = render_mode
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self._last_action: np.ndarray | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._last_action = None
        return np.zeros(1, dtype=np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = clipped_action(action, 2, "FourModes")
        self._last_action = a
        distances = np.linalg.norm(MODES - a, axis=1)
        nearest = int(np.argmin(distances))
        success = bool(distances[nearest] <= MASS_RADIUS)
        info: dict[str, Any] = {"is_success": success}
        if success:
            info["mode"] = nearest
        return np.zeros(1, dtype=np.float32), float(mode_reward(a)), True, False, info

    def render(self) -> np.ndarray | None:
        """A 128×128 RGB view of the action square: reward in grey, the last action in red."""
        if self.render_mode is None:
            return None
        size = 128
        centres = -1.0 + (np.arange(size) + 0.5) * (2.0 / size)
        xx, yy = np.meshgrid(centres, centres[::-1])  # row 0 is the top (a[1] = +1)
        grey = (255 * (1.0 - 0.8 * mode_reward(np.stack([xx, yy], axis=-1)))).astype(np.uint8)
        image = np.repeat(grey[..., None], 3, axis=2)
        if self._last_action is not None:
            col, row = ((self._last_action * [1, -1] + 1.0) / 2.0 * (size - 1)).round().astype(int)
            image[max(row - 2, 0) : row + 3, max(col - 2, 0) : col + 3] = (200, 0, 0)
        return image


def mode_masses(samples: ArrayLike, radius: float = MASS_RADIUS) -> np.ndarray:
    """The fraction of sampled actions within ``radius`` of each mode.

    :param samples: ``(N, 2)`` actions (as the env receives them, so inside the square).
    :return: ``(4,)`` fractions in :data:`MODES` order; their sum is the mass on any mode.
    """
    a = np.asarray(samples, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 2 or len(a) == 0:
        raise JacrlError(f"samples must be a non-empty (N, 2) array of actions, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise NonFiniteError("samples must be finite")
    if not np.isfinite(radius) or radius <= 0:
        raise JacrlError(f"radius must be a finite number > 0, got {radius!r}")
    distances = np.linalg.norm(a[:, None, :] - MODES, axis=-1)
    return np.mean(distances <= radius, axis=0)


def mode_masses_from_density(
    log_prob_fn: LogProbFn,
    grid_size: int = 400,
    *,
    radius: float = MASS_RADIUS,
    batch_size: int = 16384,
) -> np.ndarray:
    """The exact mass within ``radius`` of each mode: ``exp(log π)`` integrated on a grid.

    The sample-free counterpart of :func:`mode_masses` (which it matches within sampling
    error), for a policy that can evaluate ``log π`` of given actions.

    :param log_prob_fn: ``(M, 2)`` float64 actions → ``(M,)`` log-densities (see
        :data:`~jacrl.policies.density_image.LogProbFn`).
    :param grid_size: cells per axis of the action square; 400 (cell 0.005) puts the error
        well under 10⁻³ for densities as smooth as the reward's bumps.
    :param batch_size: actions per call of ``log_prob_fn``.
    :return: ``(4,)`` masses in :data:`MODES` order.
    """
    grid = density_grid(log_prob_fn, [-1.0, -1.0], [1.0, 1.0], grid_size, batch_size=batch_size)
    return grid.masses_near(MODES, radius)

"""The two multimodal tasks: MultiGoal's dynamics, rewards and goal bookkeeping against the
reference's formulas, FourModes' reward and its mode-mass metrics (test_envs.py runs the
Gymnasium/SB3 checkers on both ids)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from test_density_image import TruncatedMixture

from jacrl.common.errors import JacrlError, NonFiniteError
from jacrl.envs import FourModes, MultiGoal, distinct_goals, draw_trajectories
from jacrl.envs.four_modes import MASS_RADIUS, MODES, mode_masses, mode_masses_from_density
from jacrl.envs.multigoal import GOALS

UNIT = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])  # towards GOALS[k]


def _reference_reward(position: np.ndarray, action: np.ndarray) -> float:
    """The reference's compute_reward + goal_reward, written out goal by goal."""
    reward = -30.0 * (action[0] ** 2 + action[1] ** 2)
    reward -= min((position[0] - g[0]) ** 2 + (position[1] - g[1]) ** 2 for g in GOALS)
    if min(np.hypot(*(position - g)) for g in GOALS) < 1.0:
        reward += 10.0
    return reward


def test_multigoal_starts_near_the_origin_with_sigma_0_1() -> None:
    env = MultiGoal()
    starts = np.array([env.reset(seed=seed)[0] for seed in range(2000)])
    assert np.all(np.abs(starts.mean(axis=0)) < 4 * 0.1 / np.sqrt(2000))
    np.testing.assert_allclose(starts.std(axis=0), 0.1, rtol=0.06)


def test_multigoal_moves_by_the_clipped_velocity_and_pays_the_reference_costs() -> None:
    env = MultiGoal()
    position, _ = env.reset(seed=3)
    s = position.astype(np.float64)
    for action in ([2.0, -0.3], [0.5, 0.5], [-4.0, -4.0], [0.0, 0.9]):
        clipped = np.clip(action, -1.0, 1.0)
        obs, reward, terminated, truncated, info = env.step(np.array(action, dtype=np.float32))
        s = s + clipped
        np.testing.assert_allclose(obs, s, atol=1e-6)
        assert reward == pytest.approx(_reference_reward(s, clipped), rel=1e-6)
        assert info["distance"] == pytest.approx(np.min(np.linalg.norm(GOALS - s, axis=1)))
        assert not terminated and not truncated and "goal" not in info and not info["is_success"]


@pytest.mark.parametrize("goal", range(4))
def test_multigoal_terminates_strictly_inside_radius_1_with_the_goal_named(goal: int) -> None:
    env = MultiGoal(init_sigma=0.0)  # start exactly at the origin
    assert np.array_equal(env.reset(seed=0)[0], [0.0, 0.0])
    for _ in range(4):  # 4 unit steps: exactly at distance 1, which is not < 1
        _, reward, terminated, _, info = env.step(UNIT[goal])
        assert not terminated and "goal" not in info
    assert info["distance"] == pytest.approx(1.0)
    obs, reward, terminated, _, info = env.step(UNIT[goal])
    np.testing.assert_array_equal(obs, GOALS[goal])
    assert terminated and info["goal"] == goal and info["is_success"]
    assert reward == pytest.approx(-30.0 + 10.0)  # action cost, no distance cost, the bonus


def test_multigoal_clips_the_position_to_the_box() -> None:
    env = MultiGoal(init_sigma=0.0)
    env.reset(seed=0)
    for _ in range(9):
        obs, reward, *_ = env.step([3.0, 1.0])  # velocity clipped to (1, 1)
    np.testing.assert_array_equal(obs, [7.0, 7.0])
    assert reward == pytest.approx(-30.0 * 2 - (2.0**2 + 7.0**2))
    obs, *_ = env.step([-0.5, 1.0])
    np.testing.assert_array_equal(obs, [6.5, 7.0])


def test_multigoal_truncates_after_30_steps() -> None:
    env = gym.make("jacrl/MultiGoal-v0")
    env.reset(seed=0)
    flags = [env.step(np.zeros(2, dtype=np.float32))[2:4] for _ in range(30)]
    assert flags == [(False, False)] * 29 + [(False, True)]  # (terminated, truncated)


def _rollout(seed: int) -> list[tuple[np.ndarray, float]]:
    env = gym.make("jacrl/MultiGoal-v0")
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    steps = [(obs, 0.0)]
    for _ in range(10):
        obs, reward, *_ = env.step(env.action_space.sample())
        steps.append((obs, reward))
    return steps


def test_multigoal_is_deterministic_given_the_seed() -> None:
    first, again, other = _rollout(5), _rollout(5), _rollout(6)
    for (o1, r1), (o2, r2) in zip(first, again, strict=True):
        assert np.array_equal(o1, o2) and r1 == r2
    assert not np.array_equal(first[0][0], other[0][0])


def test_multigoal_rejects_bad_actions_and_arguments() -> None:
    env = MultiGoal()
    env.reset(seed=0)
    with pytest.raises(NonFiniteError, match="finite"):
        env.step(np.array([np.nan, 0.0]))
    with pytest.raises(JacrlError, match="2 components"):
        env.step(np.zeros(3))
    with pytest.raises(JacrlError, match="actuation_cost_coeff"):
        MultiGoal(actuation_cost_coeff=-1.0)
    with pytest.raises(JacrlError, match="goal_radius"):
        MultiGoal(goal_radius=3.0)
    with pytest.raises(JacrlError, match="render_mode"):
        MultiGoal(render_mode="human")


@pytest.mark.parametrize("reaching_env", [0, 1])
def test_goal_info_stacks_in_a_vector_env_whichever_env_reaches(reaching_env: int) -> None:
    """'goal' appears only where a goal is reached, so Gymnasium's mask "_goal" says which."""
    envs = gym.vector.SyncVectorEnv([lambda: MultiGoal(init_sigma=0.0) for _ in range(2)])
    envs.reset(seed=0)
    actions = np.zeros((2, 2), dtype=np.float32)
    actions[reaching_env] = UNIT[2]
    for _ in range(5):
        _, _, terminated, _, infos = envs.step(actions)
    assert terminated[reaching_env] and not terminated[1 - reaching_env]
    assert infos["_goal"][reaching_env] and not infos["_goal"][1 - reaching_env]
    assert infos["goal"][reaching_env] == 2
    envs.close()


def test_distinct_goals_counts_infos_and_indices() -> None:
    assert distinct_goals([{"goal": 1}, {"is_success": False}, {"goal": 1}, {"goal": 3}]) == 2
    assert distinct_goals([0, None, 2, np.int64(3), 2]) == 3
    assert distinct_goals([]) == 0
    env = gym.make("jacrl/MultiGoal-v0", init_sigma=0.0)
    infos = []
    for goal in (0, 3, 0):  # three episodes, two goals; every step's info is passed
        env.reset(seed=0)
        infos += [env.step(UNIT[goal].astype(np.float32))[-1] for _ in range(5)]
    assert distinct_goals(infos) == 2
    with pytest.raises(JacrlError, match=r"entry 1: goal index 4 is not in 0\.\.3"):
        distinct_goals([0, 4])
    with pytest.raises(JacrlError, match="entry 0: expected an info mapping"):
        distinct_goals([True])


def test_multigoal_draws_the_trajectory_and_several_episodes() -> None:
    env = MultiGoal(init_sigma=0.0, render_mode="rgb_array")
    env.reset(seed=0)
    start = env.render()
    assert start is not None and start.shape == (256, 256, 3) and start.dtype == np.uint8
    for _ in range(3):
        env.step(UNIT[0])
    moved = env.render()
    assert moved is not None and not np.array_equal(moved, start)
    paths = [np.cumsum(np.vstack([np.zeros(2), np.tile(u, (4, 1))]), axis=0) for u in UNIT]
    one = draw_trajectories(paths[:1], size=128)
    four = draw_trajectories(paths, size=128)
    assert one.shape == four.shape == (128, 128, 3)
    assert np.count_nonzero(np.any(four != one, axis=-1)) > 100  # three more paths drawn
    with pytest.raises(JacrlError, match=r"trajectory 0 must be a \(T, 2\) array"):
        draw_trajectories([np.zeros((4, 3))])


def test_four_modes_reward_peaks_at_each_mode_and_clips() -> None:
    env = FourModes()
    for k, mode in enumerate(MODES):
        obs, info = env.reset(seed=k)
        assert np.array_equal(obs, [0.0]) and env.observation_space.contains(obs)
        obs, reward, terminated, truncated, info = env.step(mode.astype(np.float32))
        assert reward == pytest.approx(1.0) and terminated and not truncated
        assert info["mode"] == k and info["is_success"] and np.array_equal(obs, [0.0])
    rng = np.random.default_rng(0)
    for action in rng.uniform(-1.3, 1.3, size=(50, 2)):
        env.reset()
        a = np.clip(action, -1.0, 1.0)
        expected = max(np.exp(-np.sum((a - g) ** 2) / (2 * 0.12**2)) for g in MODES)
        _, reward, _, _, info = env.step(action)
        assert reward == pytest.approx(expected, rel=1e-12, abs=1e-300)
        near = [k for k, g in enumerate(MODES) if np.linalg.norm(a - g) <= 0.24]
        assert info.get("mode") == (near[0] if near else None)
    env.reset()
    assert env.step([0.0, 0.0])[1] == pytest.approx(np.exp(-12.5))
    env.reset()
    with pytest.raises(NonFiniteError):
        env.step([np.inf, 0.0])


def test_four_modes_renders_the_last_action() -> None:
    env = FourModes(render_mode="rgb_array")
    env.reset(seed=0)
    env.step([0.6, 0.6])
    frame = env.render()
    assert frame is not None and frame.shape == (128, 128, 3) and frame.dtype == np.uint8
    rows, cols = np.nonzero((frame[..., 0] == 200) & (frame[..., 1] == 0))
    # a[0] = 0.6 is right of centre, a[1] = 0.6 above it (row 0 is the top)
    assert rows.mean() == pytest.approx(0.2 * 127, abs=1) and cols.mean() == pytest.approx(
        0.8 * 127, abs=1
    )


def test_mode_masses_counts_samples_within_0_24() -> None:
    samples = np.vstack(
        [MODES[0], MODES[0] + [0.2, 0.0], MODES[0] + [0.0, 0.25], MODES[3] - [0.1, 0.1], [0, 0]]
    )
    np.testing.assert_allclose(mode_masses(samples), [0.4, 0.0, 0.0, 0.2])
    assert np.isclose(MASS_RADIUS, 0.24)
    with pytest.raises(JacrlError, match=r"\(N, 2\) array"):
        mode_masses(np.zeros((4, 3)))
    with pytest.raises(NonFiniteError):
        mode_masses([[np.nan, 0.0]])


def test_mode_masses_from_density_match_the_closed_form_and_samples() -> None:
    mixture = TruncatedMixture(
        means=MODES + np.array([[0.04, 0.0], [0.0, -0.03], [0.0, 0.0], [0.05, 0.05]]),
        sigmas=np.array([0.08, 0.12, 0.18, 0.1]),
        weights=np.array([0.1, 0.2, 0.3, 0.4]),
        low=-1.0,
        high=1.0,
    )
    masses = mode_masses_from_density(mixture.log_prob)
    exact = np.array([mixture.ball_mass(g, MASS_RADIUS) for g in MODES])
    np.testing.assert_allclose(masses, exact, atol=5e-4)
    samples = mixture.sample(20_000, np.random.default_rng(4))
    standard_error = np.sqrt(exact * (1 - exact) / len(samples))
    assert np.all(np.abs(mode_masses(samples) - masses) < 4 * standard_error)
    # a policy collapsed onto one mode: all its mass there, none elsewhere
    collapsed = mode_masses_from_density(
        lambda a: -np.sum((a - MODES[2]) ** 2, axis=1) / (2 * 0.05**2) - np.log(2 * np.pi * 0.05**2)
    )
    np.testing.assert_allclose(collapsed, [0.0, 0.0, 1.0, 0.0], atol=1e-4)

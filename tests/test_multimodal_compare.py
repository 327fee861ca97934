"""The multimodal tasks in the user-facing tools: compare's ablation variants and policy metrics
(distinct MultiGoal goals, FourModes mode masses), ``jacrl density`` and the TensorBoard image.

One tiny grid (FourModes and MultiGoal × jacobian-sac, jacobian-sac-d0; one seed, 200 steps,
tiny networks) is trained in this process by the grid's own ``execute`` and then reported by
``compare``, which finds every cell finished and only writes the report (no child processes).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from jacrl.agents.registry import get_agent
from jacrl.agents.sac import JacobianSAC
from jacrl.cli import main
from jacrl.compare import policy_metrics
from jacrl.compare.grid import build_grid, execute
from jacrl.compare.pipeline import Comparison, compare
from jacrl.compare.policy_metrics import (
    FOUR_MODES,
    GOAL_EPISODES,
    MASS_SAMPLES,
    POLICY_METRICS_FILE,
    PolicyMetrics,
    goals_reached,
    masses_at_modes,
    run_policy_metrics,
)
from jacrl.compare.scoring import env_scoring
from jacrl.compare.variants import VARIANTS, resolve
from jacrl.density import DENSITY_KEY, exact_log_prob_fn, sample_actions
from jacrl.envs.four_modes import mode_masses_from_density
from jacrl.envs.multigoal import GOALS
from jacrl.policies.density_image import density_grid
from jacrl.presets import load_preset
from jacrl.train import resolve_config, train

FOUR_MODES_ID, MULTIGOAL_ID = "jacrl/FourModes-v0", "jacrl/MultiGoal-v0"
TINY = {"net_arch": [16, 16], "lift_hidden": [16], "batch_size": 32, "learning_starts": 150}
STEPS, EVAL_EVERY = 200, 100
ABLATIONS = [
    "jacobian-sac-d0", "jacobian-sac-shared", "jacobian-sac-cond", "jacobian-sac-fkl",
    "jacobian-sac-fkl-d0", "jacobian-sac-fkl-cond", "jacobian-sac-fkl-rs", "jacobian-sac-fkl-rs-d0",
    "jacobian-sac-rkl", "jacobian-cond",
]  # fmt: skip


def sampling_tolerance(p: np.ndarray, n: int = MASS_SAMPLES) -> np.ndarray:
    """4.5 binomial standard errors of a fraction of ``n`` samples, plus 3e-3 for the grid."""
    return 4.5 * np.sqrt(p * (1 - p) / n) + 3e-3


@pytest.mark.parametrize("name", ABLATIONS)
@pytest.mark.parametrize("env_id", [FOUR_MODES_ID, MULTIGOAL_ID])
def test_variants_build_the_agent_their_names_say_on_both_tasks(name: str, env_id: str) -> None:
    """Each ablation, on top of the env's preset (MultiGoal's jacobian-sac preset conditions F,
    so the depth-0 and shared rows must turn that off), builds the agent its name says:
    ``-d0`` no F, ``-shared`` one F, ``-cond`` F_s, ``-fkl`` the forward-KL update and ``-rkl``
    SAC's reverse KL (on the preset's F; the other names keep the preset's update, FourModes'
    is the forward KL), ``-rs`` its resampled estimator."""
    agent, hp = resolve(name)
    assert agent == ("jacobian" if name == "jacobian-cond" else "jacobian-sac")
    _, agent_hp = resolve_config(agent, env_id, 100, hp)
    small = {"lift_hidden": [8]} | ({"net_arch": [8]} if agent == "jacobian-sac" else {})
    model, _ = get_agent(agent).make(env_id, agent_hp | small, n_envs=1, normalize=False, seed=0)
    policy = model.policy
    assert (policy.net.depth == 0) == name.endswith("-d0")
    preset = load_preset(agent, env_id)
    conditioned = name.endswith("-cond") or (
        preset.get("conditioning") == "state" and not name.endswith(("-d0", "-shared"))
    )
    assert (policy.conditioner is not None) == conditioned
    if agent == "jacobian-sac":
        objective = preset.get("actor_objective", "reverse_kl")
        if "-fkl" in name or name.endswith("-rkl"):
            objective = "reverse_kl" if name.endswith("-rkl") else "forward_kl"
        assert model.actor_objective == objective
        resampled = "-rs" in name or preset.get("forward_kl_estimator") == "resampled"
        assert (model.forward_kl_estimator == "resampled") == resampled


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Comparison]]:
    """The tiny grid, trained here, then reported by ``compare`` (which skips every cell)."""
    root = tmp_path_factory.mktemp("multimodal")
    torch.set_num_threads(1)
    envs, names = [FOUR_MODES_ID, MULTIGOAL_ID], ["jacobian-sac", "jacobian-sac-d0"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(VARIANTS, "jacobian-sac", ("jacobian-sac", dict(TINY)))
        d0 = resolve("jacobian-sac-d0")[1]
        patch.setitem(VARIANTS, "jacobian-sac-d0", ("jacobian-sac", {**TINY, **d0}))
        log_root = str(root / "runs")
        specs = build_grid(
            envs, names, [0], STEPS, EVAL_EVERY,
            scorings={e: env_scoring(e) for e in envs}, eval_episodes=2, log_root=log_root,
        )  # fmt: skip
        for spec in specs:
            assert execute(spec).status == "ok"
        comparison = compare(
            envs, names, seeds=1, steps=STEPS, eval_every=EVAL_EVERY, eval_episodes=2,
            log_root=log_root, out=root / "report", progress=False,
        )  # fmt: skip
    assert {o.status for o in comparison.outcomes} == {"skipped"}
    yield root, comparison


def _run_dir(root: Path, env_id: str, name: str) -> Path:
    return root / "runs" / env_id.replace("/", "_") / f"{name}_0"


def _metrics_file(root: Path, env_id: str, name: str) -> dict[str, Any]:
    found = json.loads((_run_dir(root, env_id, name) / POLICY_METRICS_FILE).read_text())
    assert isinstance(found, dict)
    return found


def test_four_modes_report_has_mode_mass_columns_and_exact_matches_sampled(
    grid: tuple[Path, Comparison],
) -> None:
    root, comparison = grid
    rows = {(r.env_id, r.agent): r for r in comparison.rows}
    table = (root / "report" / "summary.md").read_text()
    assert "mass within 0.24 of modes" in table and "min over modes" in table
    for name in ("jacobian-sac", "jacobian-sac-d0"):
        values = _metrics_file(root, FOUR_MODES_ID, name)["values"]
        exact, sampled = np.array(values["mode_masses"]), np.array(values["mode_masses_sampled"])
        assert values["method"] == "exact" and exact.shape == (4,)
        assert values["grid_mass"] == pytest.approx(1.0, abs=1e-3)
        np.testing.assert_array_less(np.abs(exact - sampled), sampling_tolerance(exact))
        assert values["min_mode_mass"] == exact.min()
        vector, minimum = rows[FOUR_MODES_ID, name].metrics
        assert vector.key == "mode_masses" and minimum.key == "min_mode_mass"
        np.testing.assert_allclose(vector.elementwise_mean, exact)
        assert minimum.mean == pytest.approx(exact.min()) and minimum.runs == 1
        assert vector.cell() in table and "(exact)" in vector.cell()
    summary = json.loads((root / "report" / "summary.json").read_text())
    assert {r["agent"]: len(r["metrics"]) for r in summary if r["env_id"] == FOUR_MODES_ID} == {
        "jacobian-sac": 2,
        "jacobian-sac-d0": 2,
    }


def test_multigoal_report_counts_distinct_goals_of_stochastic_episodes(
    grid: tuple[Path, Comparison],
) -> None:
    root, comparison = grid
    table = (root / "report" / "summary.md").read_text()
    assert f"distinct goals ({GOAL_EPISODES} stochastic episodes)" in table
    for name in ("jacobian-sac", "jacobian-sac-d0"):
        values = _metrics_file(root, MULTIGOAL_ID, name)["values"]
        assert len(values["goals"]) == GOAL_EPISODES
        reached = {g for g in values["goals"] if g is not None}
        assert values["distinct_goals"] == len(reached) and reached <= set(range(4))
        row = next(r for r in comparison.rows if (r.env_id, r.agent) == (MULTIGOAL_ID, name))
        (column,) = row.metrics
        assert column.values == (values["distinct_goals"],)
    assert env_scoring("Pendulum-v1").policy_metrics is None  # the multimodal tasks only


class GoalSeeker:
    """A stand-in agent with SB3's ``predict``: full speed at goal ``k`` in episode ``k`` (mod
    ``cycle``), the episode told by ``episode_start``."""

    def __init__(self, cycle: int) -> None:
        self.cycle, self.episode = cycle, -1

    def predict(
        self,
        obs: np.ndarray,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, None]:
        if episode_start is not None and episode_start[0]:
            self.episode += 1
        goal = GOALS[self.episode % self.cycle]
        return (np.clip(goal - obs, -1.0, 1.0)).astype(np.float32), None


@pytest.mark.parametrize("cycle", [1, 2, 4])
def test_distinct_goals_counts_the_goals_episodes_reach(cycle: int) -> None:
    from stable_baselines3.common.env_util import make_vec_env

    values = goals_reached(GoalSeeker(cycle), make_vec_env(MULTIGOAL_ID, n_envs=1, seed=0), 3)
    assert values["distinct_goals"] == cycle
    assert values["goals"] == [k % cycle for k in range(GOAL_EPISODES)]


def test_policy_metrics_are_cached_for_their_model_and_redone_for_another(
    grid: tuple[Path, Comparison], tmp_path: Path
) -> None:
    root, _ = grid
    run_dir = tmp_path / "run"
    shutil.copytree(_run_dir(root, FOUR_MODES_ID, "jacobian-sac-d0"), run_dir)
    calls: list[int] = []

    def counting(model: Any, env: Any, seed: int) -> dict[str, Any]:
        calls.append(seed)
        return masses_at_modes(model, env, seed)

    metrics = PolicyMetrics(FOUR_MODES.name, counting, FOUR_MODES.columns)
    first = run_policy_metrics(run_dir, FOUR_MODES_ID, 0, metrics)
    assert first == json.loads((run_dir / POLICY_METRICS_FILE).read_text())  # the fixture's
    assert calls == []  # same model, same computation: read back
    (run_dir / "model.zip").write_bytes(b"not a zip")  # another model (an unreadable one)
    broken = run_policy_metrics(run_dir, FOUR_MODES_ID, 0, metrics)
    assert "values" not in broken and "CheckpointError" in broken["error"]
    assert json.loads((run_dir / POLICY_METRICS_FILE).read_text()) == broken  # the old one gone


def test_exact_density_is_that_of_the_normalised_observation() -> None:
    """With observation normalisation on (and statistics far from the raw state), the exact
    quadrant masses at a raw state match predict's samples there; the density at the raw
    state fed unnormalised does not — so the test can tell the two apart."""
    model = JacobianSAC(MULTIGOAL_ID, normalize_obs=True, net_arch=[8], lift_hidden=[16], seed=0)
    model.obs_rms.mean, model.obs_rms.var = np.array([3.0, -2.0]), np.array([0.25, 0.25])
    obs = np.zeros(2, dtype=np.float32)

    def quadrants(grid: Any) -> np.ndarray:
        right, up = np.meshgrid(grid.axes[0] > 0, grid.axes[1] > 0, indexing="ij")
        cells = grid.density * grid.cell_volume
        return np.array(
            [
                cells[r & u].sum()
                for r, u in ((right, up), (~right, up), (~right, ~up), (right, ~up))
            ]
        )

    log_prob_fn = exact_log_prob_fn(model, obs)
    assert log_prob_fn is not None
    exact = quadrants(density_grid(log_prob_fn, [-1, -1], [1, 1], 200))
    samples = sample_actions(model, obs, MASS_SAMPLES, seed=1)
    sampled = np.array([np.mean(m) for m in (
        (samples[:, 0] > 0) & (samples[:, 1] > 0), (samples[:, 0] <= 0) & (samples[:, 1] > 0),
        (samples[:, 0] <= 0) & (samples[:, 1] <= 0), (samples[:, 0] > 0) & (samples[:, 1] <= 0),
    )])  # fmt: skip
    tolerance = sampling_tolerance(exact)
    np.testing.assert_array_less(np.abs(exact - sampled), tolerance)
    policy, raw = model.policy, torch.zeros(1, 2)

    def unnormalised(actions: np.ndarray) -> torch.Tensor:
        batch = torch.as_tensor(actions, dtype=policy.dtype)
        return policy.action_log_prob(raw.expand(len(batch), -1), batch)

    wrong = quadrants(density_grid(unnormalised, [-1, -1], [1, 1], 200))
    assert np.max(np.abs(wrong - sampled) / tolerance) > 3


def test_actions_too_far_out_for_the_inverse_pass_have_density_zero(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An asinh F's inverse pass overflows near the box's edge (here untrained, at |a| = 0.9999):
    such an action gets log π = −inf, the rest of its batch is exact, and the mode masses still
    match the samples with the grid's total mass ≈ 1 (on a 200-cell grid, for time: its outer
    cells, at |a| = 0.995, overflow too)."""
    monkeypatch.setattr(policy_metrics, "MASS_GRID", 200)
    from stable_baselines3.common.env_util import make_vec_env

    from jacrl.agents.onpolicy import JacobianAgent
    from jacrl.common.errors import NonFiniteError

    model = JacobianAgent(FOUR_MODES_ID, lift_hidden=[8], value_hidden=[8], seed=0)
    policy, state = model.policy, torch.zeros(1, 1)
    actions = np.array([[0.0, -0.9999], [0.3, 0.2], [-0.5, 0.1]])
    with pytest.raises(NonFiniteError, match="overflowed"):
        policy.action_log_prob(state, torch.as_tensor(actions[:1]))
    log_prob_fn = exact_log_prob_fn(model, np.zeros(1))
    assert log_prob_fn is not None
    values = log_prob_fn(actions)
    assert values[0] == -np.inf
    torch.testing.assert_close(
        values[1:], policy.action_log_prob(state.expand(2, -1), torch.as_tensor(actions[1:]))
    )
    masses = masses_at_modes(model, make_vec_env(FOUR_MODES_ID, n_envs=1, seed=0), 0)
    exact = np.array(masses["mode_masses"])
    np.testing.assert_array_less(
        np.abs(exact - masses["mode_masses_sampled"]), sampling_tolerance(exact)
    )
    assert masses["grid_mass"] == pytest.approx(1.0, abs=1e-3)


@pytest.fixture(scope="module")
def sb3_sac(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SB3 SAC run on FourModes, its 100 steps all random (learning_starts = budget)."""
    root = tmp_path_factory.mktemp("sb3")
    torch.set_num_threads(1)
    hp = {"learning_starts": 100, "policy_kwargs": "dict(net_arch=[16, 16])"}
    return Path(train("sac", FOUR_MODES_ID, steps=100, hp=hp, log_root=str(root)).run_dir)


def test_sb3_mode_masses_are_sampled_and_match_its_own_density(sb3_sac: Path) -> None:
    """SB3 agents are scored from samples; checked against SB3's own squashed-Gaussian
    log-density of the same actor, integrated on the grid (an independent computation)."""
    from jacrl.evaluate import load_saved

    model, env, _ = load_saved(sb3_sac / "model.zip", FOUR_MODES_ID, seed=5)
    values = masses_at_modes(model, env, 5)
    assert values["method"] == "sampled" and values["mode_masses"] == values["mode_masses_sampled"]
    obs = torch.zeros(1, 1)

    def sb3_log_prob(actions: np.ndarray) -> torch.Tensor:
        mean, log_std, _ = model.actor.get_action_dist_params(obs.expand(len(actions), -1))
        dist = model.actor.action_dist.proba_distribution(mean, log_std)
        return dist.log_prob(torch.as_tensor(actions, dtype=torch.float32))

    with torch.no_grad():
        reference = mode_masses_from_density(sb3_log_prob)
    sampled = np.array(values["mode_masses"])
    np.testing.assert_array_less(np.abs(sampled - reference), sampling_tolerance(reference))


@pytest.mark.parametrize("env_id", [FOUR_MODES_ID, MULTIGOAL_ID])
def test_density_command_writes_a_png(
    grid: tuple[Path, Comparison], tmp_path: Path, env_id: str
) -> None:
    root, _ = grid
    out = tmp_path / "density.png"
    model = _run_dir(root, env_id, "jacobian-sac") / "model.zip"
    argv = ["density", str(model), "--env", env_id, "--out", str(out), "--samples", "2000"]
    assert main(argv) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(out) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=float)
    assert pixels.shape[0] > 200 and pixels.shape[1] > 400  # two panels: density, histogram
    assert pixels.std() > 10  # not a blank page


def test_density_command_refuses_what_has_no_exact_density(
    sb3_sac: Path, grid: tuple[Path, Comparison], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["density", str(sb3_sac / "model.zip"), "--env", FOUR_MODES_ID]) == 2
    assert "agent 'sac' has no exact density of its action" in capsys.readouterr().err
    root, _ = grid
    model = _run_dir(root, FOUR_MODES_ID, "jacobian-sac") / "model.zip"
    assert main(["density", str(model), "--env", FOUR_MODES_ID, "--obs", "0", "1"]) == 2
    assert "the observation has shape (2,)" in capsys.readouterr().err


def test_train_logs_the_density_image_at_every_evaluation(grid: tuple[Path, Comparison]) -> None:
    root, _ = grid
    for env_id in (FOUR_MODES_ID, MULTIGOAL_ID):
        events = EventAccumulator(
            str(_run_dir(root, env_id, "jacobian-sac-d0")), size_guidance={"images": 0}
        )
        events.Reload()
        assert DENSITY_KEY in events.Tags()["images"]
        assert [e.step for e in events.Images(DENSITY_KEY)] == list(
            range(EVAL_EVERY, STEPS + 1, EVAL_EVERY)
        )
        masses = [e.value for e in events.Scalars("eval/action_density_mass")]
        np.testing.assert_allclose(masses, 1.0, atol=0.02)


def test_no_density_image_for_agents_without_one(sb3_sac: Path) -> None:
    from jacrl.density import density_callback
    from jacrl.evaluate import load_saved

    model, _, _ = load_saved(sb3_sac / "model.zip", FOUR_MODES_ID)
    assert density_callback(model, FOUR_MODES_ID) is None
    pendulum = JacobianSAC("Pendulum-v1", net_arch=[8], lift_hidden=[8])
    assert density_callback(pendulum, "Pendulum-v1") is not None  # 1-D, bounded

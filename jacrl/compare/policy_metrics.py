"""What a trained policy does on a multimodal task, beside its return (``jacrl compare``).

The return of a multimodal task does not say whether the policy keeps several good actions or
settled on one; these metrics do (issue: where the invertible policy earns its place):

- ``jacrl/MultiGoal-v0``: the number of distinct goals reached over :data:`GOAL_EPISODES`
  *stochastic* episodes of the final model (``predict(deterministic=False)``), Haarnoja et al.
  2017's measure (:func:`jacrl.envs.multigoal.distinct_goals`);
- ``jacrl/FourModes-v0``: the policy's mass within :data:`~jacrl.envs.four_modes.MASS_RADIUS`
  of each of the four modes and its minimum over them — exact, from the density integrated on
  a grid (as :func:`~jacrl.envs.four_modes.mode_masses_from_density` does, with ``log π`` at the
  constant observation, :func:`jacrl.density.exact_log_prob_fn`) for agents that have one,
  otherwise from :data:`MASS_SAMPLES` samples. The sampled masses are recorded for every agent,
  and for the invertible policy the grid's total mass (≈ 1), so its exact masses are checked in
  the same file.

They are computed from the run's ``model.zip`` after training, when a report is written, so a
report of runs trained earlier has them too. The values go to ``policy_metrics.json`` in the run
folder, with the SHA-256 of the model they describe; a file for another model (retrained, or an
older version of this computation) is recomputed. The env and the sampling are seeded from the
run's seed (:data:`METRICS_SEED_OFFSET` apart from training and evaluation), so the numbers are
reproducible.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import gymnasium as gym
import numpy as np
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv

from jacrl.common.atomic import write_atomically
from jacrl.common.errors import JacrlError
from jacrl.common.run_lock import RunLock
from jacrl.compare import stats
from jacrl.density import exact_log_prob_fn, sample_actions, seeded_torch
from jacrl.envs.four_modes import MASS_RADIUS, MODES, FourModes, mode_masses
from jacrl.envs.multigoal import MultiGoal, distinct_goals
from jacrl.evaluate import load_saved
from jacrl.policies.density_image import density_grid
from jacrl.train import MODEL_FILE

if TYPE_CHECKING:
    from jacrl.compare.results import RunRecord

POLICY_METRICS_FILE = "policy_metrics.json"
FORMAT = 1
"""Version of the computation; a file of another version is recomputed."""
GOAL_EPISODES = 20
MASS_SAMPLES = 20_000
MASS_GRID = 400
"""Cells per axis of the exact masses' grid (mode_masses_from_density's: error well under 1e-3)."""
METRICS_SEED_OFFSET = 20_000

Values = dict[str, Any]
ComputeFn = Callable[[Any, VecEnv, int], Values]
"""``(model, env, seed) -> values``: ``env`` is the run's env as :func:`jacrl.evaluate.load_saved`
gives it (with an SB3 agent's normalisation)."""


@dataclass(frozen=True)
class MetricColumn:
    """One column of the summary table, read from each run's values.

    :param kind: ``"scalar"`` — a number per run, shown as IQM [95% CI] and mean ± std over
        runs; ``"vector"`` — a list per run, shown element by element as the mean over runs.
    :param note_key: a values key whose text (shared by the runs) is shown after the cell.
    """

    key: str
    header: str
    kind: Literal["scalar", "vector"]
    digits: int
    note_key: str | None = None


@dataclass(frozen=True)
class PolicyMetrics:
    """An env's metrics: what computes them and which columns the summary shows."""

    name: str
    compute: ComputeFn
    columns: tuple[MetricColumn, ...]


def goals_reached(model: Any, env: VecEnv, seed: int) -> Values:
    """The goals :data:`GOAL_EPISODES` stochastic episodes reached, their count and return."""
    goals: list[int | None] = []

    def on_step(local: dict[str, Any], _: dict[str, Any]) -> None:
        if local["done"]:
            goal = local["info"].get("goal")
            goals.append(None if goal is None else int(goal))

    env.seed(seed)
    with seeded_torch(seed):
        returns, _ = evaluate_policy(
            model,
            env,
            n_eval_episodes=GOAL_EPISODES,
            deterministic=False,
            return_episode_rewards=True,
            callback=on_step,
        )
    return {
        "distinct_goals": distinct_goals(goals),
        "goals": goals,
        "stochastic_return": float(np.mean(returns)),
    }


def masses_at_modes(model: Any, env: VecEnv, seed: int) -> Values:
    """Mass within ``MASS_RADIUS`` of each mode: exact where the agent has a density (the
    sampled masses beside it), else sampled; and the minimum over the modes."""
    env.seed(seed)
    reset = env.reset()
    assert isinstance(reset, np.ndarray), "a Box observation"
    obs = reset[0]  # as the agent's predict takes it (normalised by an SB3 VecNormalize)
    sampled = mode_masses(sample_actions(model, obs, MASS_SAMPLES, seed))
    values: Values = {"mode_masses_sampled": sampled.tolist()}
    log_prob_fn = exact_log_prob_fn(model, obs)
    if log_prob_fn is None:
        masses = sampled
    else:  # mode_masses_from_density's grid, kept for its total mass (≈ 1: nothing lost)
        grid = density_grid(log_prob_fn, [-1.0, -1.0], [1.0, 1.0], MASS_GRID)
        masses = grid.masses_near(MODES, MASS_RADIUS)
        values["grid_mass"] = grid.mass()
    return {
        "mode_masses": masses.tolist(),
        "min_mode_mass": float(masses.min()),
        "method": "sampled" if log_prob_fn is None else "exact",
        **values,
    }


MULTIGOAL = PolicyMetrics(
    "distinct goals",
    goals_reached,
    (
        MetricColumn(
            "distinct_goals",
            f"distinct goals ({GOAL_EPISODES} stochastic episodes)",
            "scalar",
            1,
        ),
    ),
)
FOUR_MODES = PolicyMetrics(
    "mode masses",
    masses_at_modes,
    (
        MetricColumn(
            "mode_masses",
            f"mass within {MASS_RADIUS:g} of modes (+x, -x, +y, -y), mean over runs",
            "vector",
            3,
            note_key="method",
        ),
        MetricColumn("min_mode_mass", "min over modes", "scalar", 3),
    ),
)


def policy_metrics_for(task: gym.Env) -> PolicyMetrics | None:
    """The metrics of an env (its ``unwrapped`` instance), ``None`` for one without any."""
    if isinstance(task, MultiGoal):
        return MULTIGOAL
    if isinstance(task, FourModes):
        return FOUR_MODES
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_policy_metrics(
    run_dir: Path, env_id: str, seed: int, metrics: PolicyMetrics
) -> dict[str, Any]:
    """The run's ``policy_metrics.json``, computed now unless it describes this ``model.zip``.

    Holds the run folder's lock while it computes and writes. Never raises for the run's own
    sake: a model that cannot be loaded or scored, or a folder another process holds, gives
    ``{"error": ...}`` (written to the file unless the folder is held), which the report lists.
    """
    path = run_dir / POLICY_METRICS_FILE
    try:
        with RunLock(run_dir):
            model_sha = _sha256(run_dir / MODEL_FILE)
            try:
                found = json.loads(path.read_text())
            except (OSError, ValueError):
                found = None
            wanted = {"format": FORMAT, "metrics": metrics.name, "model_sha256": model_sha}
            if isinstance(found, dict) and all(found.get(k) == v for k, v in wanted.items()):
                return found
            path.unlink(missing_ok=True)  # it describes another model: never left beside it
            record: dict[str, Any] = {**wanted, "seed": seed + METRICS_SEED_OFFSET}
            try:
                model, env, _ = load_saved(run_dir / MODEL_FILE, env_id, seed=record["seed"])
                record["values"] = metrics.compute(model, env, record["seed"])
            except (JacrlError, OSError, RuntimeError) as exc:
                record["error"] = f"{type(exc).__name__}: {exc}"
            text = json.dumps(record, indent=2, allow_nan=False)
            write_atomically(path, lambda file: file.write(text.encode()))
            return record
    except (JacrlError, OSError) as exc:  # the lock: another process holds the folder
        return {"error": f"{type(exc).__name__}: {exc}"}


def with_policy_metrics(record: RunRecord, metrics: PolicyMetrics | None) -> RunRecord:
    """``record`` with its run's policy metrics (for an ok run of an env that has some)."""
    if metrics is None or not record.ok:
        return record
    spec = record.spec
    found = run_policy_metrics(spec.run_dir, spec.env_id, spec.seed, metrics)
    return dataclasses.replace(record, policy_metrics=found)


@dataclass(frozen=True)
class MetricSummary:
    """One metric column of one agent on one env, over its runs.

    ``values`` holds each run's value in seed order (``None`` where it is missing); for a
    scalar metric, ``iqm`` … ``std`` are over the runs that have one, for a vector metric
    ``elementwise_mean`` is the mean over runs of each element.
    """

    key: str
    header: str
    kind: Literal["scalar", "vector"]
    digits: int
    runs: int
    values: tuple[Any, ...]
    iqm: float | None = None
    iqm_low: float | None = None
    iqm_high: float | None = None
    mean: float | None = None
    std: float | None = None
    elementwise_mean: tuple[float, ...] = ()
    note: str | None = None

    def cell(self) -> str:
        """The table cell: ``IQM [low, high]; mean ± std`` or ``a / b / c / d (note)``."""
        if self.runs == 0:
            return "n/a"
        d = self.digits
        if self.kind == "vector":
            text = " / ".join(f"{v:.{d}f}" for v in self.elementwise_mean)
        else:
            assert None not in (self.iqm, self.iqm_low, self.iqm_high, self.mean, self.std)
            text = (
                f"{self.iqm:.{d}f} [{self.iqm_low:.{d}f}, {self.iqm_high:.{d}f}]; "
                f"{self.mean:.{d}f} ± {self.std:.{d}f}"
            )
        return text + (f" ({self.note})" if self.note else "")


def summarize_metrics(
    records: Sequence[RunRecord], metrics: PolicyMetrics | None, *, random_state: int
) -> tuple[tuple[MetricSummary, ...], tuple[str, ...]]:
    """The metric columns of one agent's runs, and one line per ok run whose metrics failed."""
    if metrics is None:
        return (), ()
    ok = [r for r in records if r.ok]
    found: list[Mapping[str, Any]] = [(r.policy_metrics or {}).get("values") or {} for r in ok]
    failures = tuple(
        f"seed {r.spec.seed}: {metrics.name} not computed: "
        f"{(r.policy_metrics or {}).get('error', 'no values')} ({r.spec.run_dir})"
        for r, values in zip(ok, found, strict=True)
        if not values
    )
    return tuple(_summary(column, found, random_state) for column in metrics.columns), failures


def _summary(
    column: MetricColumn, found: Sequence[Mapping[str, Any]], random_state: int
) -> MetricSummary:
    values = tuple(v.get(column.key) for v in found)
    present = [v for v in values if v is not None]
    notes = {str(v[column.note_key]) for v in found if column.note_key and column.note_key in v}
    summary = MetricSummary(
        column.key, column.header, column.kind, column.digits, len(present), values,
        note=", ".join(sorted(notes)) or None,
    )  # fmt: skip
    if not present:
        return summary
    array = np.asarray(present, dtype=float)
    if column.kind == "vector":
        return dataclasses.replace(summary, elementwise_mean=tuple(array.mean(axis=0).tolist()))
    point, low, high = stats.stratified_bootstrap_ci(
        array[:, None], stats.iqm, random_state=random_state
    )
    return dataclasses.replace(
        summary,
        iqm=float(point),
        iqm_low=float(low),
        iqm_high=float(high),
        mean=float(stats.mean(array[:, None])),
        std=float(stats.std(array[:, None])),
    )

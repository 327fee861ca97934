"""The comparison grid: one training run per (env, agent, seed) cell, resumable and crash-tolerant.

Each cell is a :class:`RunSpec`; :func:`execute` runs one in the current process and never raises
for a failing run — it leaves ``error.txt`` (the traceback) and a ``result.json`` with
``"status": "failed"`` in the run folder, so one bad cell cannot sink a grid of hundreds.
:func:`run_grid` skips cells that already finished (``result.json`` says ``"ok"`` for the same
budget), so re-running an interrupted command resumes it, and hands the rest to a backend
(:mod:`jacrl.compare.backends`: local processes or Ray tasks) under a progress bar.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from tqdm.auto import tqdm

from jacrl.compare.scoring import EnvScoring
from jacrl.compare.variants import SUPERVISED, resolve

TrainFn = Callable[..., Any]
"""``jacrl.train.train`` or a stand-in with its signature (tests inject one)."""

RESULT_FILE = "result.json"
ERROR_FILE = "error.txt"
EVALUATIONS_FILE = "evaluations.npz"
CONFIG_FILE = "config.yaml"

Status = Literal["ok", "failed", "skipped"]


@dataclass(frozen=True)
class RunSpec:
    """One cell of the grid: the agent name as listed (a variant), its base agent and overrides."""

    name: str
    agent: str
    env_id: str
    seed: int
    steps: int
    eval_every: int
    eval_episodes: int = 10
    log_root: str = "runs"
    hp: Mapping[str, Any] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        """``<log_root>/<env>/<name>_<seed>``, the folder ``jacrl.train.train`` writes."""
        from jacrl.train import run_dir_for

        return run_dir_for(self.log_root, self.env_id, self.name, self.seed)

    def train_kwargs(self) -> dict[str, Any]:
        """Arguments of ``train``; a variant passes ``run_name`` so its folder is its own."""
        kwargs: dict[str, Any] = {
            "agent": self.agent,
            "env_id": self.env_id,
            "steps": self.steps,
            "seed": self.seed,
            "hp": dict(self.hp) or None,
            "log_root": self.log_root,
            "eval_every": self.eval_every,
            "eval_episodes": self.eval_episodes,
        }
        if self.name != self.agent:
            kwargs["run_name"] = self.name
        return kwargs


@dataclass(frozen=True)
class RunOutcome:
    """What became of one cell in this invocation (``error`` is the exception's last line)."""

    spec: RunSpec
    status: Status
    error: str | None = None


def build_grid(
    env_ids: Sequence[str],
    names: Sequence[str],
    seeds: Iterable[int],
    steps: int,
    eval_every: int,
    *,
    scorings: Mapping[str, EnvScoring],
    eval_episodes: int | None = None,
    log_root: str = "runs",
) -> list[RunSpec]:
    """All cells, env-major. The supervised baseline runs on labelled envs only, and always there.

    On a classification bandit ``backprop`` is added even if not listed, because the report
    draws it as the upper bound; elsewhere it is dropped, having no labels to learn from.

    :param scorings: per env, from :func:`jacrl.compare.scoring.env_scoring`.
    :param eval_episodes: episodes per evaluation; ``None`` evaluates bandits on their whole
        held-out set and other envs on 10 episodes.
    """
    seeds = list(seeds)
    specs = []
    for env_id in env_ids:
        scoring = scorings[env_id]
        episodes = eval_episodes or scoring.eval_episodes(default=10)
        env_names = [n for n in names if n != SUPERVISED or scoring.is_accuracy]
        if scoring.is_accuracy and SUPERVISED not in env_names:
            env_names.append(SUPERVISED)
        for name in env_names:
            agent, hp = resolve(name)
            for seed in seeds:
                specs.append(
                    RunSpec(name, agent, env_id, seed, steps, eval_every, episodes, log_root, hp)
                )
    return specs


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def is_finished(spec: RunSpec) -> bool:
    """The cell has a ``result.json`` with status ok, trained for the budget asked for now.

    The budget is read from ``config.yaml`` (``n_timesteps``), not from ``result.json``'s
    ``steps``, which vectorised agents round up to whole rollouts.
    """
    if _read_json(spec.run_dir / RESULT_FILE).get("status") != "ok":
        return False
    try:
        config = yaml.safe_load((spec.run_dir / CONFIG_FILE).read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(config, dict) and config.get("n_timesteps") == spec.steps


def record_failure(spec: RunSpec, trace: str) -> RunOutcome:
    """Leave the traceback and a failed ``result.json`` in the run folder; return the outcome."""
    lines = trace.strip().splitlines()
    error = lines[-1] if lines else "unknown error"
    spec.run_dir.mkdir(parents=True, exist_ok=True)
    (spec.run_dir / ERROR_FILE).write_text(trace)
    result = {
        "agent": spec.agent,
        "run_name": spec.name,
        "env_id": spec.env_id,
        "seed": spec.seed,
        "steps": spec.steps,
        "status": "failed",
        "error": error,
    }
    (spec.run_dir / RESULT_FILE).write_text(json.dumps(result, indent=2))
    return RunOutcome(spec, "failed", error)


def execute(spec: RunSpec, train_fn: TrainFn | None = None) -> RunOutcome:
    """Train one cell here and now; a failure is recorded, not raised.

    :param train_fn: ``None`` means ``jacrl.train.train``.
    """
    from jacrl.train import train

    for stale in (ERROR_FILE, RESULT_FILE):  # from an earlier failed or interrupted attempt
        (spec.run_dir / stale).unlink(missing_ok=True)
    try:
        (train_fn or train)(**spec.train_kwargs())
        if not is_finished(spec):
            raise RuntimeError(
                f"train returned without writing {RESULT_FILE} (status ok) and {CONFIG_FILE} "
                f"(n_timesteps={spec.steps}) in {spec.run_dir}"
            )
    except Exception:
        return record_failure(spec, traceback.format_exc())
    return RunOutcome(spec, "ok")


class GridProgress:
    """A tqdm bar over the cells: done / running / failed / skipped, with tqdm's ETA.

    "running" is the number of cells the backend's slots hold right now (unfinished cells, capped
    by the slots); the ETA counts only cells trained in this invocation, not skipped ones.
    """

    def __init__(self, total: int, skipped: int, slots: int, enabled: bool = True) -> None:
        self.done, self.failed, self.skipped = 0, 0, skipped
        self.pending = total - skipped
        self.slots = slots
        self._bar = tqdm(total=total, initial=skipped, unit="run", desc="grid", disable=not enabled)
        self._show()

    def _show(self) -> None:
        self._bar.set_postfix(
            done=self.done,
            running=min(self.pending, self.slots),
            failed=self.failed,
            skipped=self.skipped,
        )

    def record(self, outcome: RunOutcome) -> None:
        """Count one finished cell; a failure is printed above the bar with its error."""
        self.pending -= 1
        if outcome.status == "failed":
            self.failed += 1
            spec = outcome.spec
            self._bar.write(
                f"failed: {spec.name} on {spec.env_id} seed {spec.seed}: {outcome.error} "
                f"(traceback: {spec.run_dir / ERROR_FILE})"
            )
        else:
            self.done += 1
        self._show()
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()


def run_grid(
    specs: Sequence[RunSpec],
    *,
    backend: str = "local",
    workers: int | None = None,
    address: str | None = None,
    train_fn: TrainFn | None = None,
    progress: bool = True,
) -> list[RunOutcome]:
    """Run every unfinished cell on ``backend`` (``"local"`` or ``"ray"``); outcomes of all cells.

    :param workers: parallel runs (default: this machine's cores; with Ray and an ``address``, the
        cluster's CPUs).
    :param address: the Ray cluster to join (``"auto"``, ``"ray://host:10001"``); ``None`` starts
        a local Ray instance.
    """
    from jacrl.compare.backends import make_backend

    todo: list[RunSpec] = []
    outcomes: list[RunOutcome] = []
    for spec in specs:
        if is_finished(spec):
            outcomes.append(RunOutcome(spec, "skipped"))
        else:
            todo.append(spec)
    if not todo:
        return outcomes
    with make_backend(backend, workers=workers, address=address, runs=len(todo)) as pool:
        bar = GridProgress(len(specs), len(outcomes), pool.slots, enabled=progress)
        try:
            for outcome in pool.run(todo, train_fn):
                bar.record(outcome)
                outcomes.append(outcome)
        finally:
            bar.close()
    return outcomes

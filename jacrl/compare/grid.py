"""The comparison grid: one training run per (env, agent, seed) cell, resumable and crash-tolerant.

Each cell is a :class:`RunSpec`; :func:`execute` runs one in the current process and never raises
for a failing run — it leaves ``error.txt`` (the traceback) and a ``result.json`` with
``"status": "failed"`` in the run folder, so one bad cell cannot sink a grid of hundreds.
:func:`is_finished` tells a cell that already finished *with the configuration the cell asks for*
(``result.json`` says ``"ok"`` and ``config.yaml``'s fingerprint is the one
:func:`jacrl.train.run_config` gives for the cell: agent, preset and overrides, seed, budget,
evaluation settings, versions), which :func:`jacrl.compare.runner.run_grid` skips, so re-running
an interrupted command resumes it. A folder holding a run of another configuration is
:func:`folder_conflict`: the grid refuses it rather than report it or train over it.

:func:`execute` holds the run folder's lock (:mod:`jacrl.common.run_lock`) while it cleans,
trains and records, and writes nothing into a folder another process holds.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from jacrl.common.errors import JacrlError, RunFolderError
from jacrl.common.run_lock import RunLock
from jacrl.compare.scoring import EnvScoring
from jacrl.compare.variants import SUPERVISED, resolve
from jacrl.train import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    ERROR_FILE,
    MODEL_FILE,
    RESULT_FILE,
    RunConfig,
    config_differences,
    finished_result,
    read_config,
    run_config,
    run_dir_for,
    train,
)

TrainFn = Callable[..., Any]
"""``jacrl.train.train`` or a stand-in with its signature (tests inject one)."""

Status = Literal["ok", "failed", "skipped"]


@dataclass(frozen=True)
class RunSpec:
    """One cell of the grid: the agent name as listed (a variant), its base agent and overrides.

    :param force: train even over a finished run of another configuration in the folder (which
        ``train`` moves aside); set by ``jacrl compare --force`` for the cells that need it.
    """

    name: str
    agent: str
    env_id: str
    seed: int
    steps: int
    eval_every: int
    eval_episodes: int = 10
    log_root: str = "runs"
    hp: Mapping[str, Any] = field(default_factory=dict)
    force: bool = False

    @property
    def run_dir(self) -> Path:
        """``<log_root>/<env>/<name>_<seed>``, the folder ``jacrl.train.train`` writes."""
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
        if self.force:
            kwargs["force"] = True
        return kwargs

    def config(self) -> RunConfig:
        """The configuration ``train`` resolves for this cell.

        :raises JacrlError: for a cell ``train`` would refuse (it then records the failure).
        """
        kwargs = self.train_kwargs()
        for key in ("log_root", "force"):
            kwargs.pop(key, None)
        return run_config(**kwargs)


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
    steps: int | Mapping[str, int],
    eval_every: int | Mapping[str, int],
    *,
    scorings: Mapping[str, EnvScoring],
    eval_episodes: int | None = None,
    log_root: str = "runs",
) -> list[RunSpec]:
    """All cells, env-major. The supervised baseline runs on labelled envs only, and always there.

    On a classification bandit ``backprop`` is added even if not listed, because the report
    draws it as the upper bound; elsewhere it is dropped, having no labels to learn from.

    :param steps: env steps per run: one budget for every env, or one per env id.
    :param eval_every: env steps between evaluations, likewise.
    :param scorings: per env, from :func:`jacrl.compare.scoring.env_scoring`.
    :param eval_episodes: episodes per evaluation; ``None`` evaluates bandits on their whole
        held-out set and other envs on 10 episodes.
    """
    seeds = list(seeds)
    specs = []
    for env_id in env_ids:
        scoring = scorings[env_id]
        budget = steps if isinstance(steps, int) else steps[env_id]
        every = eval_every if isinstance(eval_every, int) else eval_every[env_id]
        episodes = scoring.eval_episodes(default=10) if eval_episodes is None else eval_episodes
        env_names = [n for n in names if n != SUPERVISED or scoring.is_accuracy]
        if scoring.is_accuracy and SUPERVISED not in env_names:
            env_names.append(SUPERVISED)
        for name in env_names:
            agent, hp = resolve(name)
            for seed in seeds:
                specs.append(
                    RunSpec(name, agent, env_id, seed, budget, every, episodes, log_root, hp)
                )
    return specs


def _found_config(spec: RunSpec) -> dict[str, Any] | None:
    try:
        return read_config(spec.run_dir)
    except JacrlError:
        return None


def is_finished(spec: RunSpec) -> bool:
    """The cell's folder holds a finished run (``result.json`` status ok) of exactly the
    configuration the cell asks for (``config.yaml``'s fingerprint, see the module docstring)."""
    if finished_result(spec.run_dir) is None:
        return False
    found = _found_config(spec)
    try:
        expected = spec.config()
    except JacrlError:
        return False
    return found is not None and found.get("fingerprint") == expected.fingerprint


def folder_conflict(spec: RunSpec) -> str | None:
    """Why the cell's folder cannot be trained into without ``--force`` (``None`` if it can):
    it holds a finished run of another configuration, a model without a result, or a
    checkpoint (``jacrl compare`` does not write checkpoints: it is another command's run)."""
    run_dir = spec.run_dir
    if (run_dir / CHECKPOINT_FILE).exists():
        return f"{run_dir}: the checkpoint of an interrupted `jacrl train` run"
    if finished_result(run_dir) is not None:
        if is_finished(spec):
            return None
        found = _found_config(spec) or {}
        try:
            differences = config_differences(found, spec.config())
        except JacrlError as exc:
            differences = [str(exc)]
        return f"{run_dir}: a finished run of another configuration ({'; '.join(differences)})"
    if (run_dir / MODEL_FILE).exists():
        return f"{run_dir}: a trained model without a result"
    return None


def record_failure(spec: RunSpec, trace: str) -> RunOutcome:
    """Leave the traceback and a failed ``result.json`` in the run folder; return the outcome."""
    lines = trace.strip().splitlines()
    error = lines[-1] if lines else "unknown error"
    spec.run_dir.mkdir(parents=True, exist_ok=True)
    (spec.run_dir / ERROR_FILE).write_text(trace)
    result: dict[str, Any] = {
        "agent": spec.agent,
        "run_name": spec.name,
        "env_id": spec.env_id,
        "seed": spec.seed,
        "steps": spec.steps,
        "status": "failed",
        "error": error,
    }
    (spec.run_dir / RESULT_FILE).write_text(json.dumps(result, indent=2, allow_nan=False))
    return RunOutcome(spec, "failed", error)


def execute(spec: RunSpec, train_fn: TrainFn | None = None) -> RunOutcome:
    """Train one cell here and now, holding its folder's lock; a failure is recorded, not
    raised — except in a folder this cell may not write (another process holds it, or it holds
    another run), which is left as it is.

    :param train_fn: ``None`` means ``jacrl.train.train``.
    """
    try:
        with RunLock(spec.run_dir):
            return _execute_locked(spec, train_fn)
    except RunFolderError as exc:
        return RunOutcome(spec, "failed", f"{type(exc).__name__}: {exc}")


def _execute_locked(spec: RunSpec, train_fn: TrainFn | None) -> RunOutcome:
    if not spec.force:  # from an earlier failed or interrupted attempt (train clears the rest)
        for stale in (ERROR_FILE, RESULT_FILE):
            (spec.run_dir / stale).unlink(missing_ok=True)
    try:
        (train_fn or train)(**spec.train_kwargs())
        if not is_finished(spec):
            raise RuntimeError(
                f"train returned without writing {RESULT_FILE} (status ok) and a {CONFIG_FILE} "
                f"of this cell's configuration in {spec.run_dir}"
            )
    except RunFolderError:
        raise
    except Exception:
        return record_failure(spec, traceback.format_exc())
    return RunOutcome(spec, "ok")

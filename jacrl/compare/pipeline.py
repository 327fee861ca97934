"""``compare``: run the grid, then write the summary, the figures and the README section.

The library function behind ``jacrl compare``. The report is rebuilt from the run folders every
time, so a resumed grid reports all its runs, not only the ones trained in the last invocation.
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from jacrl.agents.registry import env_action_space, get_agent
from jacrl.common.errors import ConfigError, RunFolderError, UnsupportedSpaceError
from jacrl.common.paths import inside_root
from jacrl.compare.grid import RunOutcome, RunSpec, TrainFn, build_grid
from jacrl.compare.plots import plot_final_scores, plot_learning_curves
from jacrl.compare.policy_metrics import with_policy_metrics
from jacrl.compare.report import SummaryRow, readme_section, summarize, write_summary
from jacrl.compare.results import RunRecord, learning_curves, load_run
from jacrl.compare.runner import run_grid
from jacrl.compare.scoring import EnvScoring, env_scoring
from jacrl.train import env_slug, move_aside

README_FILE = "README_results.md"
GRID_FILE = "grid.json"  # the grid a report folder summarises (its cells and the command)


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare` did and wrote."""

    outcomes: list[RunOutcome]
    rows: list[SummaryRow]
    files: list[Path]

    @property
    def failed(self) -> list[RunOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]


def default_out(log_root: str, env_ids: Sequence[str]) -> Path:
    """``<log_root>/compare/<env>[+<env>…]``: next to the runs it summarises.

    :raises ConfigError: for env ids that would put it outside ``log_root``.
    """
    name = "+".join(env_slug(e) for e in env_ids)
    return inside_root(log_root, "compare", name, what=f"the report of env ids {list(env_ids)}")


def _count_text(counts: Sequence[int]) -> str:
    """``"5000"`` when every env has the same count, else ``"5000,20000"``."""
    return str(counts[0]) if len(set(counts)) == 1 else ",".join(map(str, counts))


def cli_command(
    env_ids: Sequence[str],
    agents: Sequence[str],
    *,
    seeds: int,
    steps: Sequence[int],
    eval_every: Sequence[int],
    eval_episodes: int | None,
    log_root: str,
    backend: str,
    thresholds: Sequence[float] | None = None,
) -> str:
    """The ``jacrl compare`` command that reproduces these runs (options that change results)."""
    words = [
        "jacrl", "compare",
        "--env", ",".join(env_ids),
        "--agents", ",".join(agents),
        "--seeds", str(seeds),
        "--steps", _count_text(steps),
        "--eval-every", _count_text(eval_every),
    ]  # fmt: skip
    if eval_episodes is not None:
        words += ["--eval-episodes", str(eval_episodes)]
    if thresholds is not None:
        words += ["--threshold", ",".join(format(value, ".12g") for value in thresholds)]
    if log_root != "runs":
        words += ["--log-root", log_root]
    if backend != "local":
        words += ["--backend", backend]
    return shlex.join(words)


def compare(
    env_ids: Sequence[str],
    agents: Sequence[str],
    *,
    seeds: int = 5,
    steps: int | Sequence[int] = 100_000,
    eval_every: int | Sequence[int] | None = None,
    eval_episodes: int | None = None,
    thresholds: Sequence[float] | None = None,
    log_root: str = "runs",
    out: Path | None = None,
    backend: str = "local",
    workers: int | None = None,
    address: str | None = None,
    train_fn: TrainFn | None = None,
    progress: bool = True,
    random_state: int = 0,
    force: bool = False,
) -> Comparison:
    """Train ``agents`` × ``env_ids`` × ``range(seeds)`` (finished runs skipped), then report.

    :param steps: env steps per run: one budget for every env, or one per env (in ``env_ids``
        order), as the envs' budgets differ (CartPole 5·10⁴, LunarLander 5·10⁵).
    :param eval_every: env steps between evaluations, one for all or one per env; default a
        tenth of each env's budget, so every learning curve has ten points.
    :param eval_episodes: episodes per evaluation; default 10, and on a classification bandit
        the whole held-out set.
    :param thresholds: one return per env (in ``env_ids`` order) that "steps to threshold"
        counts against, replacing the env's ``reward_threshold``; default each env's own.
    :param out: where the summary, figures and ``README_results.md`` go (default
        :func:`default_out`).
    :param random_state: seed of every bootstrap in the report.
    :param force: train cells whose folders hold runs of another configuration, and replace a
        report of another grid in ``out``, moving the old ones aside (``<name>.old-<time>``);
        without it both are refused before any run starts.
    :raises RunFolderError: for such folders, without ``force``.
    """
    budgets = per_env("--steps", steps, env_ids)
    everies = (
        [max(b // 10, 1) for b in budgets]
        if eval_every is None
        else per_env("--eval-every", eval_every, env_ids)
    )
    if seeds < 1:
        raise ConfigError(f"--seeds must be a positive number of seeds, got {seeds}")
    if eval_episodes is not None and (isinstance(eval_episodes, bool) or eval_episodes < 1):
        raise ConfigError(
            f"eval_episodes={eval_episodes}: --eval-episodes must be a positive number of "
            "episodes (or left out: 10, a bandit's whole held-out set)"
        )
    if thresholds is not None and (
        len(thresholds) != len(env_ids) or not all(math.isfinite(t) for t in thresholds)
    ):
        raise ConfigError(
            f"--threshold {list(thresholds)}: give one finite return per --env "
            f"({len(env_ids)}: {', '.join(env_ids)}), comma-separated in the same order"
        )
    own = [None] * len(env_ids) if thresholds is None else thresholds
    scorings = {env_id: env_scoring(env_id, t) for env_id, t in zip(env_ids, own, strict=True)}
    specs = build_grid(
        env_ids,
        agents,
        range(seeds),
        dict(zip(env_ids, budgets, strict=True)),
        dict(zip(env_ids, everies, strict=True)),
        scorings=scorings,
        eval_episodes=eval_episodes,
        log_root=log_root,
    )
    check_action_spaces(specs)
    command = cli_command(
        env_ids, agents, seeds=seeds, steps=budgets, eval_every=everies,
        eval_episodes=eval_episodes, log_root=log_root, backend=backend, thresholds=thresholds,
    )  # fmt: skip
    out = out or default_out(log_root, env_ids)
    grid = grid_identity(specs, command)
    check_report_folder(out, grid, force)
    outcomes = run_grid(
        specs, backend=backend, workers=workers, address=address, train_fn=train_fn,
        progress=progress, force=force,
    )  # fmt: skip
    rows, files = write_report(specs, scorings, out, command, random_state)
    (out / GRID_FILE).write_text(json.dumps(grid, indent=2, allow_nan=False))
    return Comparison(outcomes, rows, [*files, out / GRID_FILE])


def per_env(option: str, value: int | Sequence[int], env_ids: Sequence[str]) -> list[int]:
    """One positive step count per env: ``value`` itself for all, or its entries in order.

    :raises ConfigError: for a count that is not a positive integer, or a list of another length.
    """
    values = [value] * len(env_ids) if isinstance(value, int) else list(value)
    if len(values) != len(env_ids) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values
    ):
        raise ConfigError(
            f"{option} {value}: give one positive number of env steps for every env, or one "
            f"per --env ({len(env_ids)}: {', '.join(env_ids)}), comma-separated in that order"
        )
    return values


def grid_identity(specs: Sequence[RunSpec], command: str) -> dict[str, Any]:
    """What a report summarises: the command, and every cell (``grid.json``)."""
    cells = [{k: v for k, v in asdict(spec).items() if k != "force"} for spec in specs]
    text = json.dumps({"command": command, "cells": cells}, default=list, allow_nan=False)
    return json.loads(text)


def check_report_folder(out: Path, grid: dict[str, Any], force: bool) -> None:
    """Refuse (or, with ``force``, move aside) a report folder ``out`` that holds the report of
    another grid (its ``grid.json`` says so) with cells this grid lacks, before any run starts:
    a report is replaced by one of the same runs or more, never by one of fewer.

    :raises RunFolderError: for a report of another grid, without ``force``.
    """
    try:
        previous = json.loads((out / GRID_FILE).read_text())
    except (OSError, ValueError):
        previous = None
    covered = isinstance(previous, dict) and all(
        cell in grid["cells"] for cell in previous.get("cells", [None])
    )
    if previous is not None and not covered:  # a report of more (or other) runs than this one
        if not force:
            raise RunFolderError(
                f"{out} holds the summary of another grid ({previous.get('command')}); write "
                "this one elsewhere with --out, or pass --force to move that report aside (to "
                f"{out.name}.old-<time>)"
            )
        move_aside(out)


def check_action_spaces(specs: Sequence[RunSpec]) -> None:
    """Refuse the grid before any run starts if one of its agents cannot act in one of its envs.

    :raises UnsupportedSpaceError: naming the agent, the env and the agents that would fit.
    """
    spaces = {env_id: env_action_space(env_id) for env_id in dict.fromkeys(s.env_id for s in specs)}
    for spec in specs:
        try:
            get_agent(spec.agent).check_action_space(spaces[spec.env_id], spec.env_id)
        except UnsupportedSpaceError as exc:
            raise UnsupportedSpaceError(
                f"cannot run '{spec.name}' on {spec.env_id}: {exc} (drop it from --agents, or "
                "compare on this env separately)"
            ) from None


def write_report(
    specs: Sequence[RunSpec],
    scorings: dict[str, EnvScoring],
    out: Path,
    command: str,
    random_state: int,
) -> tuple[list[SummaryRow], list[Path]]:
    """Summary (md, csv, json), two figures per env and ``README_results.md`` in ``out``.

    Figure links in the README section are relative to the working directory (the repository
    root, where the section is pasted into README.md).
    """
    cells: dict[str, dict[str, list[RunRecord]]] = {}
    for spec in specs:
        record = with_policy_metrics(load_run(spec), scorings[spec.env_id].policy_metrics)
        cells.setdefault(spec.env_id, {}).setdefault(spec.name, []).append(record)
    rows = summarize(cells, scorings, random_state=random_state)
    files = write_summary(rows, out)
    plots = []
    for env_id, agents in cells.items():
        scoring = scorings[env_id]
        env_rows = [r for r in rows if r.env_id == env_id]
        curves = {name: learning_curves(records, scoring.score) for name, records in agents.items()}
        slug = env_slug(env_id)
        plots += [
            plot_learning_curves(
                curves,
                scoring,
                threshold=env_rows[0].threshold_score,
                path=out / f"curves_{slug}.png",
                random_state=random_state,
            ),
            plot_final_scores(env_rows, scoring, path=out / f"final_{slug}.png"),
        ]
    readme = out / README_FILE
    readme.write_text(readme_section(rows, plots, command, relative_to=Path.cwd()))
    return rows, [*files, *plots, readme]

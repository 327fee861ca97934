"""``compare``: run the grid, then write the summary, the figures and the README section.

The library function behind ``jacrl compare``. The report is rebuilt from the run folders every
time, so a resumed grid reports all its runs, not only the ones trained in the last invocation.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jacrl.common.errors import ConfigError
from jacrl.compare.grid import RunOutcome, RunSpec, TrainFn, build_grid, run_grid
from jacrl.compare.plots import plot_final_scores, plot_learning_curves
from jacrl.compare.report import SummaryRow, readme_section, summarize, write_summary
from jacrl.compare.results import RunRecord, learning_curves, load_run
from jacrl.compare.scoring import EnvScoring, env_scoring

README_FILE = "README_results.md"


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare` did and wrote."""

    outcomes: list[RunOutcome]
    rows: list[SummaryRow]
    files: list[Path]

    @property
    def failed(self) -> list[RunOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]


def env_slug(env_id: str) -> str:
    """An env id as a file-name part, the way run folders name it (``/`` → ``_``)."""
    return env_id.replace("/", "_")


def default_out(log_root: str, env_ids: Sequence[str]) -> Path:
    """``<log_root>/compare/<env>[+<env>…]``: next to the runs it summarises."""
    return Path(log_root) / "compare" / "+".join(env_slug(e) for e in env_ids)


def cli_command(
    env_ids: Sequence[str],
    agents: Sequence[str],
    *,
    seeds: int,
    steps: int,
    eval_every: int,
    eval_episodes: int | None,
    log_root: str,
    backend: str,
) -> str:
    """The ``jacrl compare`` command that reproduces these runs (options that change results)."""
    words = [
        "jacrl", "compare",
        "--env", ",".join(env_ids),
        "--agents", ",".join(agents),
        "--seeds", str(seeds),
        "--steps", str(steps),
        "--eval-every", str(eval_every),
    ]  # fmt: skip
    if eval_episodes is not None:
        words += ["--eval-episodes", str(eval_episodes)]
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
    steps: int = 100_000,
    eval_every: int | None = None,
    eval_episodes: int | None = None,
    log_root: str = "runs",
    out: Path | None = None,
    backend: str = "local",
    workers: int | None = None,
    address: str | None = None,
    train_fn: TrainFn | None = None,
    progress: bool = True,
    random_state: int = 0,
) -> Comparison:
    """Train ``agents`` × ``env_ids`` × ``range(seeds)`` (finished runs skipped), then report.

    :param eval_every: env steps between evaluations; default a tenth of the budget, so every
        learning curve has ten points.
    :param eval_episodes: episodes per evaluation; default 10, and on a classification bandit
        the whole held-out set.
    :param out: where the summary, figures and ``README_results.md`` go (default
        :func:`default_out`).
    :param random_state: seed of every bootstrap in the report.
    """
    if seeds < 1 or steps < 1 or (eval_every is not None and eval_every < 1):
        raise ConfigError(
            f"--seeds, --steps and --eval-every must be positive, got {seeds}, {steps} and "
            f"{eval_every}"
        )
    eval_every = eval_every or max(steps // 10, 1)
    scorings = {env_id: env_scoring(env_id) for env_id in env_ids}
    specs = build_grid(
        env_ids,
        agents,
        range(seeds),
        steps,
        eval_every,
        scorings=scorings,
        eval_episodes=eval_episodes,
        log_root=log_root,
    )
    outcomes = run_grid(
        specs, backend=backend, workers=workers, address=address, train_fn=train_fn,
        progress=progress,
    )  # fmt: skip
    command = cli_command(
        env_ids, agents, seeds=seeds, steps=steps, eval_every=eval_every,
        eval_episodes=eval_episodes, log_root=log_root, backend=backend,
    )  # fmt: skip
    rows, files = write_report(
        specs, scorings, out or default_out(log_root, env_ids), command, random_state
    )
    return Comparison(outcomes, rows, files)


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
        cells.setdefault(spec.env_id, {}).setdefault(spec.name, []).append(load_run(spec))
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

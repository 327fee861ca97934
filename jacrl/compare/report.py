"""The comparison's summary: one row per (env, agent), written as Markdown, CSV and JSON.

Each row holds the IQM of the final evaluations with a stratified-bootstrap 95 % CI, mean ± std,
how many seeds reached the env's reward threshold and how fast (never-reaching seeds counted, not
dropped), wall-clock time and env steps per second. :func:`readme_section` adds the provenance a
reader needs to trust a number: the exact command, the commit and the machine.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from jacrl.compare import stats
from jacrl.compare.policy_metrics import MetricSummary, summarize_metrics
from jacrl.compare.results import (
    RunRecord,
    final_scores,
    learning_curves,
    mean_length,
    raw_returns,
    result_values,
)
from jacrl.compare.scoring import EnvScoring
from jacrl.compare.variants import describe


@dataclass(frozen=True)
class SummaryRow:
    """One agent on one env. Scores are in the env's units (return, or accuracy for bandits).

    ``median_steps`` is over all runs, a run that never reached the threshold counted as slower
    than the budget, so it is ``None`` when half or more did not reach it (or with no threshold);
    ``median_steps_reached`` is over the runs that did. On a multimodal task ``metrics`` holds
    what the policy does beside the return (:mod:`jacrl.compare.policy_metrics`), and
    ``metric_failures`` the ok runs whose metrics could not be computed.
    """

    env_id: str
    agent: str
    metric: str
    accuracy: bool
    runs_ok: int
    runs: int
    iqm: float | None
    iqm_low: float | None
    iqm_high: float | None
    mean: float | None
    std: float | None
    threshold: float | None
    threshold_score: float | None
    reached: int | None
    median_steps: float | None
    median_steps_reached: float | None
    budget: int
    wall_time_s: float | None
    steps_per_s: float | None
    failures: tuple[str, ...]
    metrics: tuple[MetricSummary, ...] = ()
    metric_failures: tuple[str, ...] = ()


def _float(value: np.ndarray | float | None) -> float | None:
    """A JSON-safe float: ``None`` for missing, NaN and infinity."""
    if value is None:
        return None
    x = float(value)
    return x if math.isfinite(x) else None


def _mean(values: np.ndarray) -> float | None:
    return _float(values.mean()) if values.size else None


def summarize_agent(
    records: Sequence[RunRecord], scoring: EnvScoring, *, random_state: int
) -> SummaryRow:
    """The row of one agent on one env from its runs (all seeds, failed ones included)."""
    spec = records[0].spec
    finals = final_scores(records, scoring.score)
    metrics, metric_failures = summarize_metrics(
        records, scoring.policy_metrics, random_state=random_state
    )
    iqm = low = high = mean = std = None
    if finals.size:
        interval = stats.stratified_bootstrap_ci(
            finals[:, None], stats.iqm, random_state=random_state
        )
        iqm, low, high = (_float(v) for v in interval)
        mean, std = _float(stats.mean(finals[:, None])), _float(stats.std(finals[:, None]))
    reached = median_steps = median_reached = None
    if scoring.threshold is not None and finals.size:
        timesteps, returns = learning_curves(records, raw_returns)
        summary = stats.summarize_threshold(
            stats.steps_to_threshold(timesteps, returns, scoring.threshold)
        )
        reached = summary.reached
        median_steps, median_reached = summary.median_all, summary.median_reached
    return SummaryRow(
        env_id=spec.env_id,
        agent=spec.name,
        metric=scoring.label,
        accuracy=scoring.is_accuracy,
        runs_ok=int(finals.size),
        runs=len(records),
        iqm=iqm,
        iqm_low=low,
        iqm_high=high,
        mean=mean,
        std=std,
        threshold=scoring.threshold,
        threshold_score=_float(scoring.threshold_score(mean_length(records))),
        reached=reached,
        median_steps=_float(median_steps),
        median_steps_reached=_float(median_reached),
        budget=spec.steps,
        wall_time_s=_mean(result_values(records, "wall_time_s")),
        steps_per_s=_mean(result_values(records, "steps_per_s")),
        failures=tuple(
            f"seed {r.spec.seed}: {r.result.get('error', r.status)} ({r.spec.run_dir})"
            for r in records
            if not r.ok
        ),
        metrics=metrics,
        metric_failures=metric_failures,
    )


def summarize(
    cells: Mapping[str, Mapping[str, Sequence[RunRecord]]],
    scorings: Mapping[str, EnvScoring],
    *,
    random_state: int = 0,
) -> list[SummaryRow]:
    """Rows for ``cells[env_id][agent] = records``, in the grid's order."""
    return [
        summarize_agent(records, scorings[env_id], random_state=random_state)
        for env_id, agents in cells.items()
        for records in agents.values()
    ]


def format_steps(steps: float) -> str:
    """``40000`` → ``40k``, ``1.5e6`` → ``1.5M``: readable step counts for tables."""
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if abs(steps) >= size:
            return f"{steps / size:.3g}{unit}"
    return f"{steps:.0f}"


def format_threshold(row: SummaryRow) -> str:
    """E.g. ``3/5 reached; median 40k over those, > 100k for the rest``."""
    if row.threshold is None or row.reached is None:
        return "n/a (no threshold)" if row.threshold is None else "n/a (no finished run)"
    budget = format_steps(row.budget)
    head = f"{row.reached}/{row.runs_ok} reached"
    if row.reached == 0:
        return f"{head} (> {budget})"
    assert row.median_steps_reached is not None
    if row.reached == row.runs_ok:
        return f"{head}; median {format_steps(row.median_steps_reached)}"
    overall = format_steps(row.median_steps) if row.median_steps is not None else f"> {budget}"
    return (
        f"{head}; median {format_steps(row.median_steps_reached)} over those, > {budget} for "
        f"the rest (median of all: {overall})"
    )


def _score(value: float, accuracy: bool) -> str:
    return f"{value:.3f}" if accuracy else f"{value:.1f}"


def _amount(value: float | None) -> str:
    """Seconds or steps/s with about three significant digits (0.35, 12.3, 1234)."""
    if value is None:
        return "n/a"
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def _scores(row: SummaryRow) -> tuple[str, str]:
    """The IQM-with-CI and mean ± std cells."""
    if row.iqm is None or row.iqm_low is None or row.iqm_high is None:
        return "n/a", "n/a"
    assert row.mean is not None and row.std is not None
    acc = row.accuracy
    return (
        f"{_score(row.iqm, acc)} [{_score(row.iqm_low, acc)}, {_score(row.iqm_high, acc)}]",
        f"{_score(row.mean, acc)} ± {_score(row.std, acc)}",
    )


def markdown_table(rows: Sequence[SummaryRow]) -> str:
    """A Markdown table per env (the units differ between envs)."""
    blocks = []
    for env_id in dict.fromkeys(r.env_id for r in rows):
        env_rows = [r for r in rows if r.env_id == env_id]
        first = env_rows[0]
        threshold = "none" if first.threshold is None else f"{first.threshold:g} (return)"
        if first.accuracy and first.threshold_score is not None:
            threshold += f" = {first.threshold_score:.3f} accuracy"
        extra = "".join(f" {m.header} |" for m in first.metrics)
        lines = [
            f"**{env_id}**: {first.metric} after {format_steps(first.budget)} env steps; "
            f"reward threshold: {threshold}",
            "",
            f"| agent | runs | IQM [95% CI] | mean ± std |{extra} steps to threshold "
            "| wall time (s) | env steps/s |",
            "|---|---|---|---|" + "---|" * len(first.metrics) + "---|---|---|",
        ]
        for r in env_rows:
            iqm, mean_std = _scores(r)
            cells = "".join(f" {m.cell()} |" for m in r.metrics)
            lines.append(
                f"| {r.agent} | {r.runs_ok}/{r.runs} | {iqm} | {mean_std} |{cells} "
                f"{format_threshold(r)} | {_amount(r.wall_time_s)} | {_amount(r.steps_per_s)} |"
            )
        failures = [f"- {r.agent}, {f}" for r in env_rows for f in r.failures]
        if failures:
            lines += ["", "Runs without a result:", *failures]
        missing = [f"- {r.agent}, {f}" for r in env_rows for f in r.metric_failures]
        if missing:
            lines += ["", "Runs without policy metrics:", *missing]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def write_summary(rows: Sequence[SummaryRow], out: Path) -> list[Path]:
    """``summary.md``, ``summary.csv`` and ``summary.json`` in ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    md, csv_path, json_path = out / "summary.md", out / "summary.csv", out / "summary.json"
    md.write_text(markdown_table(rows))
    records = [asdict(r) for r in rows]
    json_path.write_text(json.dumps(records, indent=2, allow_nan=False))
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(SummaryRow.__dataclass_fields__))
        writer.writeheader()
        for row, record in zip(rows, records, strict=True):
            writer.writerow(
                {
                    **record,
                    "failures": "; ".join(record["failures"]),
                    "metrics": "; ".join(f"{m.header}: {m.cell()}" for m in row.metrics),
                    "metric_failures": "; ".join(record["metric_failures"]),
                }
            )
    return [md, csv_path, json_path]


def git_commit() -> str:
    """``git rev-parse --short HEAD`` of the jacrl source that ran, ``+dirty`` if modified.

    Asked where the jacrl package lives, not in the working directory, which may be any folder.
    """
    import jacrl

    def git(*args: str) -> str:
        source = Path(jacrl.__file__).resolve().parent
        done = subprocess.run(["git", "-C", str(source), *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise OSError(done.stderr.strip())
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except OSError:
        return f"unknown (jacrl {jacrl.__version__}, not run from a git checkout)"
    return commit + ("+dirty" if dirty else "")


def machine() -> str:
    """Platform, CPU count and the library versions that move the numbers."""
    import torch

    return (
        f"{platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs; Python {platform.python_version()}, torch {torch.__version__}"
    )


def readme_section(
    rows: Sequence[SummaryRow], plots: Sequence[Path], command: str, relative_to: Path
) -> str:
    """The README's results section: table, figures, command, commit, machine.

    Figure paths are written relative to ``relative_to`` (where the Markdown file will live).
    """
    figures = [f"![{p.stem}]({Path(os.path.relpath(p, relative_to)).as_posix()})" for p in plots]
    agents = describe(dict.fromkeys(r.agent for r in rows)).splitlines()
    return "\n".join(
        [
            "## Results",
            "",
            "Final deterministic evaluation on a separate env (held-out split for bandits), "
            "IQM over seeds with a stratified-bootstrap 95% CI (rliable); steps to threshold "
            "counts the first evaluation at or above the reward threshold (the env's own, or "
            "`--threshold`).",
            "",
            "Agents (presets: `agents/<agent>.yml`):",
            "",
            *[f"- {line}" for line in agents],
            "",
            markdown_table(rows),
            *[line for fig in figures for line in (fig, "")],
            "Reproduce with:",
            "",
            "```",
            command,
            "```",
            "",
            f"Commit `{git_commit()}`; machine: {machine()}.",
            "",
        ]
    )

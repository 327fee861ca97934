"""The comparison's figures, one pair per env: learning curves and final scores, as PNG.

Drawn on ``matplotlib.figure.Figure`` with the Agg canvas, not through ``pyplot``: no display,
no global backend switch, nothing left open. Every agent keeps its colour across both figures;
the supervised baseline (``backprop``, which sees the labels the others never see) is drawn in
black as the upper bound, and the env's reward threshold as a dashed grey line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from jacrl.compare import stats
from jacrl.compare.report import SummaryRow
from jacrl.compare.scoring import EnvScoring
from jacrl.compare.variants import SUPERVISED

Curve = tuple[np.ndarray, np.ndarray]
"""``(timesteps (evals,), scores (runs, evals))`` as :func:`results.learning_curves` returns."""


def agent_colors(names: Sequence[str]) -> dict[str, str]:
    """One colour per agent in grid order (``C0``, ``C1``…), black for the supervised baseline."""
    others = [n for n in names if n != SUPERVISED]
    return {**{n: f"C{i % 10}" for i, n in enumerate(others)}, SUPERVISED: "black"}


def _label(name: str, runs: int) -> str:
    role = " (supervised baseline, sees labels)" if name == SUPERVISED else ""
    return f"{name}{role}, {runs} seed{'s' if runs != 1 else ''}"


def _finish(
    fig: Figure,
    title: str,
    scoring: EnvScoring,
    threshold: float | None,
    path: Path,
    **legend: Any,
) -> Path:
    """Shared dressing: threshold and chance lines, title, labels, grid, legend; then save."""
    (ax,) = fig.axes
    if threshold is not None:
        ax.axhline(
            threshold, color="grey", linestyle="--", label=f"reward threshold ({threshold:.3g})"
        )
    if scoring.chance is not None:
        ax.axhline(
            scoring.chance, color="grey", linestyle=":", label=f"chance ({scoring.chance:.3g})"
        )
        ax.set_ylim(0.0, 1.0)
    ax.set_title(title)
    ax.set_ylabel(scoring.label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", **legend)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def plot_learning_curves(
    curves: Mapping[str, Curve],
    scoring: EnvScoring,
    *,
    threshold: float | None,
    path: Path,
    random_state: int,
) -> Path:
    """Evaluation score vs env steps: IQM over seeds with its 95 % bootstrap band, per agent.

    :param threshold: the reward threshold on the score scale (``None``: no line).
    """
    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    colors = agent_colors(list(curves))
    for name, (timesteps, scores) in curves.items():
        if scores.size == 0:
            continue
        band = stats.stratified_bootstrap_ci(
            scores[:, None, :], stats.iqm, random_state=random_state
        )
        style: dict[str, Any] = {"color": colors[name], "marker": ".", "markersize": 4}
        if name == SUPERVISED:
            style["linestyle"] = "-."
        ax.plot(timesteps, band.point, label=_label(name, len(scores)), **style)
        ax.fill_between(timesteps, band.low, band.high, color=colors[name], alpha=0.2, linewidth=0)
    ax.xaxis.set_major_formatter(EngFormatter())
    ax.set_xlabel("environment steps")
    title = f"{scoring.env_id}: learning curves\n(IQM over seeds, shaded: 95% bootstrap CI)"
    return _finish(fig, title, scoring, threshold, path, loc="best")


def plot_final_scores(rows: Sequence[SummaryRow], scoring: EnvScoring, *, path: Path) -> Path:
    """Bar chart of the final IQM per agent with its 95 % CI, for the rows of one env."""
    fig = Figure(figsize=(max(6.0, 1.2 * len(rows) + 4.0), 4.5), layout="constrained")
    ax = fig.add_subplot()
    colors = agent_colors([r.agent for r in rows])
    drawn = [r for r in rows if r.iqm is not None]
    for x, row in enumerate(drawn):
        assert row.iqm is not None and row.iqm_low is not None and row.iqm_high is not None
        err = np.array([[row.iqm - row.iqm_low], [row.iqm_high - row.iqm]])
        ax.bar(
            x,
            row.iqm,
            yerr=err,
            capsize=6,
            color=colors[row.agent],
            alpha=0.8,
            label=_label(row.agent, row.runs_ok),
        )
        ax.annotate(
            f"{row.iqm:.3g}",
            (x, row.iqm),
            textcoords="offset points",
            xytext=(8, 4),
            fontsize="small",
        )
    ax.set_xticks(range(len(drawn)), [r.agent for r in drawn])
    ax.set_xlabel("agent")
    first = rows[0]
    title = (
        f"{first.env_id}: final score after {first.budget:,} env steps\n"
        "(IQM over seeds, error bars 95% bootstrap CI)"
    )
    return _finish(
        fig, title, scoring, first.threshold_score, path, loc="upper left", bbox_to_anchor=(1.01, 1)
    )

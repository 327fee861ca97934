"""What a finished ``jacrl tune`` leaves: the best trial as a preset, and the study's plots.

``best.yml`` is a preset file in the format of ``agents/<agent>.yml`` (:mod:`jacrl.presets`), one
entry keyed by the env id, so ``jacrl train --preset best.yml`` (or ``--preset`` of ``jacrl
compare``) trains with it as it stands: the tuned values on top of the preset the study started
from, with the tuning budget as ``n_timesteps``. Its header says where it came from.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

HISTORY_PNG = "optimization_history.png"
IMPORTANCE_PNG = "param_importances.png"


def write_best_preset(path: Path, env_id: str, hp: Mapping[str, Any], provenance: str) -> Path:
    """Write ``{env_id: hp}`` to ``path`` with ``provenance`` as its comment header."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "".join(f"# {line}\n" for line in _wrap(provenance))
    path.write_text(header + yaml.safe_dump({env_id: dict(hp)}, sort_keys=False))
    return path


def _wrap(text: str, width: int = 98) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line]


def save_plots(study: Any, out: Path) -> list[Path]:
    """Optuna's optimisation-history and parameter-importance figures as PNGs in ``out``.

    The importances need two completed trials that differ in some parameter; with fewer, only
    the history is drawn (and the caller's file list says so).
    """
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization.matplotlib import (
        plot_optimization_history,
        plot_param_importances,
    )

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    varied = len({tuple(sorted(t.params.items())) for t in complete}) > 1
    drawings: list[tuple[str, Callable[[Any], Any]]] = [(HISTORY_PNG, plot_optimization_history)]
    if varied:
        drawings.append((IMPORTANCE_PNG, plot_param_importances))
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in drawings:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            ax = draw(study)
        figure: Any = ax.figure
        figure.savefig(out / name, dpi=120, bbox_inches="tight")
        plt.close(figure)
        written.append(out / name)
    return written

"""The grid's run folders read back as arrays over seeds, as :mod:`jacrl.compare.stats` takes them.

Everything comes from disk (``result.json``, ``evaluations.npz``), not from the processes that
trained, so a report can be rebuilt from a finished, resumed or partly failed grid alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any

import numpy as np

from jacrl.compare.grid import RunSpec
from jacrl.train import EVALUATIONS_FILE, RESULT_FILE

ScoreFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``(episode returns, episode lengths) -> scores`` of one shape, e.g. ``EnvScoring.score``."""


@dataclass(frozen=True)
class RunRecord:
    """One cell as found on disk.

    :param evaluations: ``evaluations.npz`` as arrays — ``timesteps`` ``(evals,)``, ``results``
        and ``ep_lengths`` ``(evals, episodes)`` — or ``None`` if the run left none.
    :param policy_metrics: ``policy_metrics.json`` on a multimodal env (set by
        :func:`jacrl.compare.policy_metrics.with_policy_metrics`), else ``None``.
    """

    spec: RunSpec
    result: dict[str, Any]
    evaluations: dict[str, np.ndarray] | None
    policy_metrics: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.result.get("status") == "ok" and self.evaluations is not None

    @property
    def status(self) -> str:
        """``ok``, ``failed`` (with an ``error.txt``) or ``missing`` (never ran, or interrupted)."""
        return "ok" if self.ok else str(self.result.get("status", "missing"))


def load_run(spec: RunSpec) -> RunRecord:
    """Read one run folder; absent or unreadable files leave the record not ``ok``."""
    try:
        result = json.loads((spec.run_dir / RESULT_FILE).read_text())
    except (OSError, ValueError):
        result = {}
    try:
        with np.load(spec.run_dir / EVALUATIONS_FILE) as npz:
            evaluations = {key: npz[key] for key in ("timesteps", "results", "ep_lengths")}
    except (OSError, ValueError, KeyError):
        evaluations = None
    if evaluations is not None and evaluations["timesteps"].size == 0:
        evaluations = None
    return RunRecord(spec, result, evaluations)


def _evals(record: RunRecord) -> dict[str, np.ndarray]:
    assert record.evaluations is not None, "only ok records have evaluations"
    return record.evaluations


def final_scores(records: Sequence[RunRecord], score: ScoreFn) -> np.ndarray:
    """``(runs,)``: each ok run's last evaluation (train's final one), averaged over episodes."""
    finals = [score(_evals(r)["results"][-1], _evals(r)["ep_lengths"][-1]) for r in records if r.ok]
    return np.array([np.mean(f) for f in finals])


def learning_curves(records: Sequence[RunRecord], score: ScoreFn) -> tuple[np.ndarray, np.ndarray]:
    """``(timesteps (evals,), scores (runs, evals))`` at the evaluation steps all ok runs share.

    Runs with one budget and ``eval_every`` evaluate at the same steps; restricting to the shared
    ones keeps a run with an extra (final) evaluation from misaligning the rest.
    """
    ok = [_evals(r) for r in records if r.ok]
    if not ok:
        return np.zeros(0, dtype=int), np.zeros((0, 0))
    common = reduce(np.intersect1d, [e["timesteps"] for e in ok])
    rows = []
    for e in ok:
        keep = np.isin(e["timesteps"], common)
        rows.append(np.mean(score(e["results"][keep], e["ep_lengths"][keep]), axis=1))
    return common, np.array(rows)


def mean_length(records: Sequence[RunRecord]) -> float:
    """Mean evaluation episode length over ok runs (to put a return threshold on a score scale)."""
    lengths = [_evals(r)["ep_lengths"].mean() for r in records if r.ok]
    return float(np.mean(lengths)) if lengths else 1.0


def raw_returns(returns: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The identity :data:`ScoreFn`: episode returns as they are (for reward thresholds)."""
    return np.asarray(returns, dtype=float)


def result_values(records: Sequence[RunRecord], key: str) -> np.ndarray:
    """``(runs,)`` a numeric ``result.json`` field (``wall_time_s``, ``steps_per_s``) of ok runs."""
    return np.array(
        [float(r.result[key]) for r in records if r.ok and r.result.get(key) is not None]
    )

"""Statistics for comparing agents over a few seeds, after rliable (Agarwal et al., NeurIPS 2021).

**Data shape.** Every metric takes ``scores`` of shape ``(num_runs, num_tasks, *rest)``:
``scores[run][task]`` is the score of one seed on one environment, and ``rest`` holds any extra
axes a caller wants kept, such as the evaluation points of a learning curve (``(runs, tasks,
evals)``). A metric reduces the two leading axes and returns an array of shape ``rest`` (a 0-d
array for plain ``(runs, tasks)`` scores). Runs must be comparable across tasks (normalise
first) if ``num_tasks > 1``.

Why these estimators: with 3-10 seeds the mean is at the mercy of one divergent seed and the
median throws most runs away; the interquartile mean (IQM) is robust and still uses half the runs.
Point estimates alone hide how few runs there are, so every estimate comes with a stratified
bootstrap confidence interval (runs resampled within each task, as rliable does). The bootstrap
takes an explicit ``random_state`` so reports are reproducible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import stats as sps

Metric = Callable[[np.ndarray], np.ndarray]
"""Reduces the two leading (run, task) axes of ``scores``; keeps the rest."""


def _pooled(scores: np.ndarray) -> np.ndarray:
    """Merge the run and task axes into one leading axis of ``runs * tasks`` scores."""
    scores = np.asarray(scores, dtype=float)
    if scores.ndim < 2:
        raise ValueError(f"scores must have shape (runs, tasks, ...), got {scores.shape}")
    return scores.reshape(-1, *scores.shape[2:])


def iqm(scores: np.ndarray) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50 % of all run × task scores.

    25 % is cut from each end (``int(0.25 * n)`` scores each), as ``scipy.stats.trim_mean`` does:
    for 8 scores the 3rd to 6th smallest are averaged; for 5 the middle 3.
    """
    return np.asarray(sps.trim_mean(_pooled(scores), proportiontocut=0.25, axis=0))


def mean(scores: np.ndarray) -> np.ndarray:
    """Mean over runs and tasks."""
    return _pooled(scores).mean(axis=0)


def std(scores: np.ndarray) -> np.ndarray:
    """Standard deviation over runs and tasks (``ddof=0``, the convention of SB3's evaluations)."""
    return _pooled(scores).std(axis=0)


class Interval(NamedTuple):
    """A point estimate with the bounds of its confidence interval (arrays of one shape)."""

    point: np.ndarray
    low: np.ndarray
    high: np.ndarray


def stratified_bootstrap_ci(
    scores: np.ndarray,
    metric: Metric,
    *,
    random_state: int | np.random.Generator,
    reps: int = 2000,
    confidence: float = 0.95,
) -> Interval:
    """Percentile bootstrap interval of ``metric(scores)``, resampling runs within each task.

    Each of ``reps`` replicates draws ``num_runs`` runs with replacement independently for every
    task (the strata), so a task never borrows runs from another. All replicates are evaluated in
    one vectorised call of ``metric``.

    :param random_state: a seed or a generator; the same seed gives the same interval.
    """
    scores = np.asarray(scores, dtype=float)
    if scores.ndim < 2 or scores.shape[0] == 0:
        raise ValueError(f"scores must have shape (runs >= 1, tasks, ...), got {scores.shape}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    rng = np.random.default_rng(random_state)
    num_runs, num_tasks = scores.shape[:2]
    runs = rng.integers(0, num_runs, size=(num_runs, num_tasks, reps))
    tasks = np.arange(num_tasks)[None, :, None]
    estimates = metric(scores[runs, tasks])  # (reps, *rest)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(estimates, [tail, 100.0 - tail], axis=0)
    return Interval(metric(scores), low, high)


def steps_to_threshold(timesteps: np.ndarray, returns: np.ndarray, threshold: float) -> np.ndarray:
    """Env steps at each run's first evaluation with mean return ``>= threshold``.

    :param timesteps: ``(evals,)`` env steps of the evaluations.
    :param returns: ``(runs, evals)`` mean evaluation return of each run at each evaluation.
    :returns: ``(runs,)`` steps, ``inf`` for a run that never reached the threshold — it needed
        more than the budget, by an unknown amount.
    """
    reached = np.asarray(returns) >= threshold
    first = reached.argmax(axis=1)
    return np.where(reached.any(axis=1), np.asarray(timesteps, dtype=float)[first], np.inf)


@dataclass(frozen=True)
class ThresholdSummary:
    """How many runs reached the threshold, and how fast.

    ``median_all`` counts a run that never reached it as slower than every run that did, so it
    is ``inf`` ("> budget") unless more than half of the runs reached it; ``median_reached`` is
    the median over the runs that did (``None`` if none did).
    """

    reached: int
    runs: int
    median_all: float
    median_reached: float | None


def summarize_threshold(steps: np.ndarray) -> ThresholdSummary:
    """Summarise :func:`steps_to_threshold` over runs without dropping the runs that failed."""
    steps = np.asarray(steps, dtype=float)
    done = steps[np.isfinite(steps)]
    return ThresholdSummary(
        reached=int(done.size),
        runs=int(steps.size),
        median_all=float(np.median(steps)) if steps.size else float("inf"),
        median_reached=float(np.median(done)) if done.size else None,
    )

"""jacrl.compare.stats checked against rliable (Agarwal et al. 2021), the reference it follows.

rliable is a dev-only test oracle (the ``dev`` extra installs it; jacrl itself never imports it).

**Point estimates** (IQM, mean) are deterministic and must agree to 1e-12.

**Bootstrap intervals** cannot agree draw for draw: rliable resamples through ``arch`` with
NumPy's global ``np.random.choice``, jacrl with its own ``Generator``. Both estimate the same
quantity — the 2.5 % and 97.5 % quantiles of the stratified-bootstrap distribution of the metric —
so they differ only by Monte-Carlo error. That error is measured, not guessed: jacrl's interval is
computed with ``K`` seeds at rliable's number of replicates ``R``; the spread of its endpoints over
the seeds, ``s``, is the Monte-Carlo standard error of one ``R``-replicate endpoint (rliable's has
the same, as it samples the same distribution). The mean of jacrl's ``K`` endpoints and rliable's
one then differ with standard error ``s * sqrt(1 + 1/K)``, and the test allows 4 of those (a false
alarm about once in 16 000 runs, were the errors Gaussian). So the test has teeth, it also checks
that this tolerance is small against the differences a real mistake would make: a 90 % instead
of a 95 % interval, or resampling runs across tasks instead of within each task.

Per-evaluation curves (``(runs, tasks, evals)`` scores): rliable draws fresh run indices for every
evaluation point, jacrl one set per replicate for the whole curve (so a replicate's curve is a
real curve). The interval at each point is a property of that point's marginal bootstrap
distribution, which is the same under both, so the pointwise intervals are compared the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest

rliable = pytest.importorskip("rliable", reason="rliable (the dev extra) is the test oracle")
from rliable import library as rly  # noqa: E402
from rliable import metrics  # noqa: E402

from jacrl.compare import stats  # noqa: E402

R = 6000  # replicates per interval (rliable's pure-Python loop takes ~0.3 ms each)
K = 40  # jacrl seeds, to measure the Monte-Carlo error
Z = 4.0


@pytest.fixture(autouse=True)
def _global_numpy_rng() -> Iterator[None]:
    """rliable draws from NumPy's global RNG: seed it here and leave it as it was."""
    state = np.random.get_state()  # noqa: NPY002 (rliable draws from the legacy global RNG)
    np.random.seed(0)  # noqa: NPY002
    yield
    np.random.set_state(state)  # noqa: NPY002


def _scores(runs: int, tasks: int, *rest: int, seed: int = 1) -> np.ndarray:
    """Normal scores with very different scales and offsets per task (as returns of different
    envs are), so that resampling across tasks would be visibly wrong."""
    rng = np.random.default_rng(seed)
    scale = 10.0 ** np.arange(tasks)
    shape = (runs, tasks, *rest)
    per_task = (slice(None), slice(None), *(None for _ in rest))
    return rng.normal(size=shape) * scale[per_task[1:]] + 3.0 * np.arange(tasks)[per_task[1:]]


MATRICES = {
    "5 runs x 3 tasks": _scores(5, 3),
    "10 runs x 3 tasks": _scores(10, 3, seed=5),
    "10 runs x 1 task": _scores(10, 1, seed=2),
    "8 runs x 2 tasks, ties": np.round(_scores(8, 2, seed=3), 0),
}


@pytest.mark.parametrize("name", sorted(MATRICES))
def test_point_estimates_match_rliable(name: str) -> None:
    scores = MATRICES[name]
    assert abs(float(stats.iqm(scores)) - metrics.aggregate_iqm(scores)) <= 1e-12
    assert abs(float(stats.mean(scores)) - metrics.aggregate_mean(scores)) <= 1e-12


def test_curve_iqm_matches_rliable_per_evaluation() -> None:
    scores = _scores(6, 2, 7)
    reference = [metrics.aggregate_iqm(scores[..., e]) for e in range(scores.shape[-1])]
    np.testing.assert_allclose(stats.iqm(scores), reference, rtol=0, atol=1e-12)


def _jacrl(
    scores: np.ndarray, metric: stats.Metric, confidence: float = 0.95, reps: int = R
) -> tuple[np.ndarray, np.ndarray]:
    """jacrl's interval endpoints for K seeds: ``(lows, highs)``, each ``(K, *rest)``."""
    runs = [
        stats.stratified_bootstrap_ci(
            scores, metric, random_state=seed, reps=reps, confidence=confidence
        )
        for seed in range(K)
    ]
    return np.array([r.low for r in runs]), np.array([r.high for r in runs])


def _rliable(
    scores: np.ndarray, metric: Callable[[np.ndarray], np.ndarray], reps: int = R
) -> np.ndarray:
    """rliable's 95 % percentile interval, shape ``(2, *rest)``."""
    _, intervals = rly.get_interval_estimates(
        {"x": scores}, lambda s: np.atleast_1d(metric(s)), reps=reps, confidence_interval_size=0.95
    )
    return np.asarray(intervals["x"])


def _pooled_bootstrap(scores: np.ndarray, metric: stats.Metric, seed: int) -> np.ndarray:
    """The wrong bootstrap (runs drawn from all tasks' scores at once), for scale only."""
    rng = np.random.default_rng(seed)
    flat = scores.reshape(-1, *scores.shape[2:])
    picks = rng.integers(0, flat.shape[0], size=(R, *scores.shape[:2]))
    estimates = np.array([metric(flat[p]) for p in picks])
    return np.percentile(estimates, [2.5, 97.5], axis=0)


CASES = {
    "IQM, 10 runs x 3 tasks": (MATRICES["10 runs x 3 tasks"], stats.iqm, metrics.aggregate_iqm),
    "mean, 10 runs x 1 task": (MATRICES["10 runs x 1 task"], stats.mean, metrics.aggregate_mean),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bootstrap_interval_matches_rliable_within_monte_carlo_error(name: str) -> None:
    scores, ours, theirs = CASES[name]
    lows, highs = _jacrl(scores, ours)
    reference = _rliable(scores, theirs)[:, 0]
    mc_error = np.array([lows.std(ddof=1), highs.std(ddof=1)])
    tolerance = Z * mc_error * np.sqrt(1 + 1 / K)
    ours_mean = np.array([lows.mean(), highs.mean()])
    assert np.all(np.abs(ours_mean - reference) <= tolerance), (ours_mean, reference, tolerance)

    # teeth: a 90 % interval would be caught (it moves the endpoints well past the tolerance)
    lows90, highs90 = _jacrl(scores, ours, confidence=0.90)
    shift90 = np.abs(np.array([lows90.mean(), highs90.mean()]) - ours_mean)
    assert np.all(tolerance < shift90 / 1.5), (tolerance, shift90)
    if scores.shape[1] > 1:  # and far below the error of resampling across tasks
        pooled = _pooled_bootstrap(scores, ours, seed=0)
        assert np.any(tolerance < np.abs(pooled - ours_mean) / 3), (tolerance, pooled)


def test_curve_intervals_match_rliable_pointwise() -> None:
    scores = _scores(10, 2, 3, seed=4)
    reps = 3000  # the tolerance is measured at the same count, so fewer replicates stay fair
    lows, highs = _jacrl(scores, stats.iqm, reps=reps)  # (K, evals) each

    def per_eval(s: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(s[..., e]) for e in range(s.shape[-1])])

    reference = _rliable(scores, per_eval, reps)  # (2, evals)
    for ours, ref in ((lows, reference[0]), (highs, reference[1])):
        tolerance = Z * ours.std(axis=0, ddof=1) * np.sqrt(1 + 1 / K)
        assert np.all(np.abs(ours.mean(axis=0) - ref) <= tolerance), (ours.mean(0), ref)

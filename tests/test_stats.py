"""jacrl.compare.stats on tiny matrices whose answers are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from jacrl.compare import stats


def test_iqm_of_one_to_eight_averages_the_middle_four() -> None:
    # 8 scores: cut int(0.25 * 8) = 2 from each end, mean(3, 4, 5, 6) = 4.5
    scores = np.arange(1.0, 9.0)[:, None]
    assert stats.iqm(scores) == pytest.approx(4.5)
    # the run and task axes are pooled: the same 8 numbers as 4 runs x 2 tasks
    assert stats.iqm(scores.reshape(4, 2)) == pytest.approx(4.5)


def test_iqm_ignores_one_divergent_run() -> None:
    # 5 scores: cut 1 from each end, mean(2, 3, 4) = 3, whatever the outlier
    assert stats.iqm(np.array([[1.0], [2.0], [3.0], [4.0], [1e6]])) == pytest.approx(3.0)


def test_metrics_keep_trailing_axes() -> None:
    # (runs=4, tasks=1, evals=2): the second eval point is the first plus 10
    scores = np.array([1.0, 2.0, 3.0, 4.0])[:, None, None] + np.array([0.0, 10.0])
    np.testing.assert_allclose(stats.iqm(scores), [2.5, 12.5])
    np.testing.assert_allclose(stats.mean(scores), [2.5, 12.5])
    np.testing.assert_allclose(stats.std(scores), [np.sqrt(1.25)] * 2)  # ddof = 0


def test_bootstrap_ci_contains_the_estimate_and_is_reproducible() -> None:
    scores = np.array([[10.0], [12.0], [15.0], [11.0], [30.0]])
    first = stats.stratified_bootstrap_ci(scores, stats.iqm, random_state=3, reps=500)
    again = stats.stratified_bootstrap_ci(scores, stats.iqm, random_state=3, reps=500)
    assert first.point == pytest.approx(38.0 / 3.0)  # sorted 10 11 12 15 30: mean(11, 12, 15)
    assert first.low <= first.point <= first.high
    assert first.low < first.high
    assert (first.low, first.high) == (again.low, again.high)
    other = stats.stratified_bootstrap_ci(scores, stats.iqm, random_state=4, reps=500)
    assert (first.low, first.high) != (other.low, other.high)


def test_bootstrap_resamples_within_each_task() -> None:
    # task 0 always scores 0, task 1 always 10: resampling runs within a task can never change
    # the mean (5); resampling across tasks would.
    scores = np.array([[0.0, 10.0], [0.0, 10.0], [0.0, 10.0]])
    interval = stats.stratified_bootstrap_ci(scores, stats.mean, random_state=0, reps=200)
    assert tuple(map(float, interval)) == (5.0, 5.0, 5.0)


def test_bootstrap_band_of_a_curve_has_the_curve_shape() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(5, 1, 7))
    band = stats.stratified_bootstrap_ci(scores, stats.iqm, random_state=0, reps=100)
    assert band.point.shape == band.low.shape == band.high.shape == (7,)
    assert np.all(band.low <= band.point) and np.all(band.point <= band.high)


def test_bootstrap_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"shape \(runs"):
        stats.stratified_bootstrap_ci(np.ones(3), stats.mean, random_state=0)
    with pytest.raises(ValueError, match="confidence"):
        stats.stratified_bootstrap_ci(np.ones((3, 1)), stats.mean, random_state=0, confidence=95)


def test_steps_to_threshold_counts_runs_that_never_reach_it() -> None:
    timesteps = np.array([10, 20, 30])
    returns = np.array(
        [
            [0.0, 5.0, 9.0],  # reaches 9 at 30
            [9.5, 9.0, 9.0],  # at once, 10
            [0.0, 8.9, 0.0],  # never
        ]
    )
    steps = stats.steps_to_threshold(timesteps, returns, threshold=9.0)
    np.testing.assert_array_equal(steps, [30.0, 10.0, np.inf])
    summary = stats.summarize_threshold(steps)
    # 2/3 reached: the median of all is finite (30), counting the third as slower than any
    assert summary == stats.ThresholdSummary(
        reached=2, runs=3, median_all=30.0, median_reached=20.0
    )


def test_threshold_median_is_beyond_budget_when_most_runs_fail() -> None:
    summary = stats.summarize_threshold(np.array([40.0, np.inf, np.inf]))
    assert summary.reached == 1 and summary.runs == 3
    assert summary.median_all == np.inf
    assert summary.median_reached == 40.0
    assert stats.summarize_threshold(np.array([np.inf, np.inf])).median_reached is None

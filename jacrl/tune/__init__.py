"""Hyperparameter search with Optuna (``jacrl tune``, or ``python -m jacrl.tune``).

:func:`tune` runs a study (:mod:`jacrl.tune.study`) over a search space (:mod:`jacrl.tune.space`)
and writes the best trial as a preset (:mod:`jacrl.tune.output`). Optuna is an optional
dependency, ``pip install 'jacrl[tune]'``; it is imported only when a study runs.
"""

from jacrl.tune.study import TUNE_SEED_BASE, TuneResult, tune

__all__ = ["TUNE_SEED_BASE", "TuneResult", "tune"]

"""``jacrl tune``: the arguments and the command, for a parser to mount (as ``compare``'s are).

Light at import: building the ``jacrl`` parser imports this module for every subcommand.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import get_args

from jacrl.tune.runner import Backend
from jacrl.tune.study import Pruner


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``jacrl tune``'s options to ``parser``."""
    parser.description = (
        "Search hyperparameters of one agent on one env with Optuna (TPE sampler, pruning on "
        "intermediate evaluations). The study is stored (SQLite by default), so running the "
        "same command again resumes it; at the end the best trial is written as a preset "
        "(<out>/best.yml, usable with --preset) with the optimisation-history and parameter-"
        "importance plots. Trial k trains with seed 1000000 + k (with --seeds-per-trial m, seeds "
        "1000000 + m·k + j, j < m, scored by their mean): evaluate presets on other seeds. "
        "On a classification bandit trials are scored on a validation split carved from the "
        "training rows, never on the test split."
    )
    parser.add_argument("--agent", required=True, help="agent name, e.g. jacobian or ppo")
    parser.add_argument("--env", required=True, help="Gymnasium env id, e.g. CartPole-v1")
    parser.add_argument(
        "--trials", type=int, required=True, help="completed-or-pruned trials the study ends with"
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="env steps per trial (default: the preset's)"
    )
    parser.add_argument(
        "--space", type=Path, default=None, help="a search-space YAML file (default: built in)"
    )
    parser.add_argument(
        "--preset", default=None, help="the preset file to start from (default agents/<agent>.yml)"
    )
    parser.add_argument(
        "--storage",
        default=None,
        help="Optuna storage: an RDB URL (sqlite:///f.db, postgresql://…) or a journal file "
        "*.log (default sqlite:///runs/tune/<study>.db)",
    )
    parser.add_argument("--study-name", default=None, help="default <env>_<agent>")
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default runs/tune/<study>)"
    )
    parser.add_argument("--n-jobs", type=int, default=1, help="trials trained at once (processes)")
    parser.add_argument(
        "--backend",
        choices=get_args(Backend),
        default="local",
        help="local: spawn processes on this machine (default); ray: Ray tasks, as jacrl compare",
    )
    parser.add_argument(
        "--address", default=None, help="Ray cluster to join (e.g. auto); default a local Ray"
    )
    parser.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    parser.add_argument("--pruner", choices=get_args(Pruner), default="median")
    parser.add_argument(
        "--n-startup-trials",
        type=int,
        default=10,
        help="random trials before TPE, and before the median pruner prunes (default 10)",
    )
    parser.add_argument(
        "--n-evaluations", type=int, default=5, help="evaluations per trial (default 5)"
    )
    parser.add_argument(
        "--seeds-per-trial",
        type=int,
        default=1,
        help="training seeds per trial, one after the other; a trial scores the mean of their "
        "final evaluations (default 1)",
    )
    parser.add_argument(
        "--eval-episodes",
        type=int,
        default=None,
        help="episodes per evaluation (default 10; on a bandit its whole validation split)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds after which no trial starts (running ones finish); the study may then "
        "hold fewer than --trials, and the same command continues it",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    """Run the study; 0 once it holds ``--trials`` finished trials."""
    from jacrl.tune.study import require_optuna, tune

    optuna = require_optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress bar says it instead
    result = tune(
        args.agent,
        args.env,
        args.trials,
        steps=args.steps,
        space=args.space,
        preset=args.preset,
        storage=args.storage,
        study_name=args.study_name,
        out=args.out,
        n_jobs=args.n_jobs,
        backend=args.backend,
        address=args.address,
        seed=args.seed,
        pruner=args.pruner,
        n_startup_trials=args.n_startup_trials,
        n_evaluations=args.n_evaluations,
        eval_episodes=args.eval_episodes,
        seeds_per_trial=args.seeds_per_trial,
        timeout=args.timeout,
        progress_bar=not args.no_progress,
    )
    print(
        f"study '{result.study_name}' ({result.storage}): {result.complete} complete, "
        f"{result.pruned} pruned, {result.failed} failed of {result.trials}"
    )
    if result.best_trial is not None:
        print(f"best: trial {result.best_trial}, value {result.best_value:.6g}")
    if result.files:
        print("wrote:\n  " + "\n  ".join(str(p) for p in result.files))
    return 0 if result.finished or args.timeout is not None else 1

"""``jacrl compare``: the arguments and the command, for the ``jacrl`` CLI to mount as a subparser.

Kept light at import (the heavy modules load in :func:`run`), because building the ``jacrl``
parser imports this module even for ``jacrl train``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jacrl.common.errors import ConfigError
from jacrl.compare.variants import VARIANTS, describe, parse_names


def _agent_names(text: str) -> list[str]:
    try:
        return parse_names(text)
    except ConfigError as exc:  # argparse shows an ArgumentTypeError's message as it is
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _env_ids(text: str) -> list[str]:
    ids = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not ids:
        raise argparse.ArgumentTypeError("--env needs at least one env id, e.g. CartPole-v1")
    return ids


def _step_counts(text: str) -> list[int]:
    """``5e4`` or ``50000,2e5``: env-step counts, written as integers or in e-notation."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    if not values or not all(v.is_integer() and v >= 1 for v in values):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give positive whole numbers of env steps (e.g. 5e4), one for every env "
            "or one per --env, comma-separated"
        )
    return [int(v) for v in values]


def _one_or_each(values: list[int]) -> int | list[int]:
    """A single count applies to every env; several are one per env."""
    return values[0] if len(values) == 1 else values


def _thresholds(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--threshold {text!r}: give one return per --env, comma-separated, e.g. -200"
        ) from None
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``jacrl compare``'s options to ``parser``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (
        "Train every agent on every env with seeds 0..N-1, then write summary.{md,csv,json},\n"
        "learning-curve and final-score PNGs and README_results.md. Runs already finished with\n"
        "the same configuration are skipped, so re-running the same command resumes an\n"
        "interrupted grid; folders holding runs of another configuration are refused (--force)."
    )
    parser.epilog = "agents:\n  " + describe(VARIANTS).replace("\n", "\n  ")
    parser.add_argument("--env", required=True, type=_env_ids, help="env id(s), comma-separated")
    parser.add_argument(
        "--agents",
        default="jacobian,ppo,a2c",
        type=_agent_names,
        help="agent names, comma-separated (default: jacobian,ppo,a2c); backprop is added on "
        "classification bandits",
    )
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds, 0..N-1 (default 5)")
    parser.add_argument(
        "--steps",
        type=_step_counts,
        default=[100_000],
        help="env steps per run, every agent: one for all envs or one per --env, "
        "comma-separated (default 1e5)",
    )
    parser.add_argument(
        "--eval-every",
        type=_step_counts,
        default=None,
        help="env steps between evaluations, one for all or one per --env (default steps/10)",
    )
    parser.add_argument(
        "--eval-episodes",
        type=int,
        default=None,
        help="episodes per evaluation (default 10; on bandits the whole held-out set)",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="runs in parallel (default: all cores)"
    )
    parser.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="local: processes on this machine (default); ray: Ray tasks",
    )
    parser.add_argument(
        "--address", default=None, help="Ray cluster to join (e.g. auto); default a local Ray"
    )
    parser.add_argument(
        "--threshold",
        type=_thresholds,
        default=None,
        help="return to count 'steps to threshold' against, one per --env (comma-separated), "
        "replacing the env's reward_threshold (default: the env's own, if it has one)",
    )
    parser.add_argument("--log-root", default="runs", help="run folders go to LOG_ROOT/<env>/")
    parser.add_argument(
        "--out", type=Path, default=None, help="report folder (default LOG_ROOT/compare/<envs>)"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="retrain cells whose folders hold runs of another configuration, and replace a "
        "report of another grid, moving the old ones aside to <name>.old-<time> (without it "
        "both are refused)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    """Run the comparison; 0 if every run finished, 1 if some failed (the report is written)."""
    from jacrl.compare.pipeline import compare
    from jacrl.compare.report import markdown_table

    result = compare(
        args.env,
        args.agents,
        seeds=args.seeds,
        steps=_one_or_each(args.steps),
        eval_every=None if args.eval_every is None else _one_or_each(args.eval_every),
        eval_episodes=args.eval_episodes,
        thresholds=args.threshold,
        log_root=args.log_root,
        out=args.out,
        backend=args.backend,
        workers=args.workers,
        address=args.address,
        progress=not args.no_progress,
        force=args.force,
    )
    print(markdown_table(result.rows))
    print("wrote:\n  " + "\n  ".join(str(p) for p in result.files))
    if result.failed:
        print(f"{len(result.failed)} run(s) failed; their tracebacks are in error.txt")
        return 1
    return 0

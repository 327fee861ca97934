"""The ``jacrl`` command: train, evaluate, draw a policy's density, compare, tune, analyse, and
list environments.

Each subcommand is a thin layer over a library function (``jacrl.train.train``,
``jacrl.compare``, ``jacrl.analysis``), so whatever the CLI does a script can do too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from jacrl.common.errors import JacrlError


def _agents_epilog() -> str:
    from jacrl.agents.registry import AGENTS

    lines = [f"  {e.name:<13} {e.summary} [{', '.join(e.action_spaces)}]" for e in AGENTS.values()]
    return "agents [the action spaces they act in]:\n" + "\n".join(lines)


def _add_train(sub: argparse._SubParsersAction) -> None:
    from jacrl.agents.registry import AGENTS

    p = sub.add_parser(
        "train",
        help="train one agent on one env",
        description="Train an agent and log to <log-root>/<env>/<agent>_<seed>/ (TensorBoard "
        "events, model.zip, config.yaml; with --eval-every also evaluations.npz, result.json).",
        epilog=_agents_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--agent", choices=list(AGENTS), help="required unless --resume")
    p.add_argument("--env", help="Gymnasium env id, e.g. CartPole-v1 (required unless --resume)")
    p.add_argument("--steps", type=int, default=None, help="env steps (default: the preset's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", default=None, help="a preset YAML file (default agents/<agent>.yml)")
    p.add_argument(
        "--hp",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a hyperparameter, e.g. --hp n_steps=64 (repeatable; values are YAML)",
    )
    p.add_argument("--rule", choices=("density", "volume"), help="Jacobian agent's update rule")
    p.add_argument("--log-root", default="runs")
    p.add_argument("--eval-every", type=int, default=None, help="evaluate every K env steps")
    p.add_argument(
        "--eval-episodes",
        type=int,
        default=None,
        help="episodes per evaluation (default 10; a bandit's whole held-out split)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        metavar="K",
        help="write <run>/checkpoint.zip every K env steps (jacrl's agents, not SB3's)",
    )
    p.add_argument(
        "--resume",
        default=None,
        metavar="DIR",
        help="continue the interrupted run in DIR from its checkpoint (its config.yaml decides "
        "everything else)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="if the run folder holds a finished or interrupted run, move it aside to "
        "<run>.old-<time> and train again (without it, such a folder is refused)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from jacrl.presets import parse_overrides
    from jacrl.train import resume, train

    if args.resume is not None:
        result = resume(args.resume, progress_bar=not args.no_progress)
        print(f"resumed {args.resume}: {result.steps} steps in all")
        return 0
    if args.agent is None or args.env is None:
        raise JacrlError("jacrl train needs --agent and --env (or --resume DIR)")
    hp = parse_overrides(args.hp)
    if args.rule is not None:
        if args.agent != "jacobian":
            raise JacrlError("--rule applies to --agent jacobian only")
        hp["rule"] = args.rule
    result = train(
        args.agent,
        args.env,
        steps=args.steps,
        seed=args.seed,
        hp=hp,
        preset=args.preset,
        log_root=args.log_root,
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        progress_bar=not args.no_progress,
        checkpoint_every=args.checkpoint_every,
        force=args.force,
    )
    speed = "" if result.steps_per_s is None else f" ({result.steps_per_s:.0f} steps/s)"
    print(f"trained {args.agent} on {args.env} for {result.steps} steps{speed} -> {result.run_dir}")
    if result.final_eval_mean is not None:
        print(
            f"final deterministic evaluation: {result.final_eval_mean:.2f} "
            f"± {result.final_eval_std:.2f}"
        )
    return 0


def _add_eval(sub: argparse._SubParsersAction) -> None:
    from jacrl.agents.registry import AGENTS

    p = sub.add_parser("eval", help="evaluate a saved model.zip")
    p.add_argument(
        "model",
        help="path to model.zip, or its run folder (whose config.yaml names the agent)",
    )
    p.add_argument("--env", required=True)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument(
        "--agent",
        choices=list(AGENTS),
        default=None,
        help="agent type, if there is no config.yaml beside it",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of the mode")
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help="load the model and vecnormalize.pkl with SB3's own loaders, which unpickle (run "
        "code from) the file: only for files you trust. Without it nothing is unpickled",
    )
    p.set_defaults(func=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    from jacrl.evaluate import evaluate_saved

    mean, std = evaluate_saved(
        Path(args.model),
        args.env,
        episodes=args.episodes,
        agent=args.agent,
        seed=args.seed,
        deterministic=not args.stochastic,
        trust_pickle=args.trust_pickle,
    )
    print(f"{args.env}: mean return {mean:.2f} ± {std:.2f} over {args.episodes} episodes")
    return 0


def _add_density(sub: argparse._SubParsersAction) -> None:
    from jacrl.agents.registry import AGENTS

    p = sub.add_parser(
        "density",
        help="draw a saved policy's exact action density at one state (PNG)",
        description="Write the exact action density of a saved jacrl agent (an invertible "
        "policy, 1-D or 2-D Box actions) at one state as a PNG, with a histogram of sampled "
        "actions beside it as a check, and the task's modes (FourModes) or goal directions "
        "(MultiGoal) marked.",
    )
    p.add_argument(
        "model",
        help="path to model.zip, or its run folder (whose config.yaml names the agent)",
    )
    p.add_argument("--env", required=True)
    p.add_argument(
        "--obs",
        type=float,
        nargs="+",
        default=None,
        metavar="X",
        help="the raw state (default: the env's reset observation with --seed; MultiGoal: the "
        "start state 0 0)",
    )
    p.add_argument("--out", default=None, help="the PNG (default: action_density.png beside MODEL)")
    p.add_argument(
        "--samples",
        type=int,
        default=10_000,
        help="sampled actions for the histogram beside the density (0: none; default 10000)",
    )
    p.add_argument("--seed", type=int, default=0, help="seeds the reset and the samples")
    p.add_argument("--grid", type=int, default=200, help="grid cells per axis (default 200)")
    p.add_argument("--log-scale", action="store_true", help="logarithmic colours (thin modes)")
    p.add_argument(
        "--agent",
        choices=list(AGENTS),
        default=None,
        help="agent type, if there is no config.yaml beside it",
    )
    p.set_defaults(func=_run_density)


def _run_density(args: argparse.Namespace) -> int:
    from jacrl.density import write_density_png

    path = write_density_png(
        Path(args.model),
        args.env,
        observation=args.obs,
        out=args.out,
        samples=args.samples,
        seed=args.seed,
        size=args.grid,
        scale="log" if args.log_scale else "linear",
        agent=args.agent,
    )
    print(f"wrote {path}")
    return 0


def _add_envs(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("envs", help="list the environments jacrl registers, with their spec files")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_run_envs)


def _run_envs(args: argparse.Namespace) -> int:
    from jacrl.envs.registration import list_registered

    entries = list_registered()
    if args.json:
        print(json.dumps(entries, indent=2, default=str, allow_nan=False))
        return 0
    for entry in entries:
        print(f"{entry['id']:<32} {entry['source']}")
    return 0


def _add_compare(sub: argparse._SubParsersAction) -> None:
    from jacrl.compare.cli import add_arguments, run

    p = sub.add_parser("compare", help="run an agent x env x seed grid and summarise it")
    add_arguments(p)
    p.set_defaults(func=run)


def _add_tune(sub: argparse._SubParsersAction) -> None:
    from jacrl.tune.cli import add_arguments, run

    p = sub.add_parser("tune", help="search an agent's hyperparameters on an env with Optuna")
    add_arguments(p)
    p.set_defaults(func=run)


def _add_analyze(sub: argparse._SubParsersAction) -> None:
    from jacrl.analysis.cli import add_arguments, run

    p = sub.add_parser("analyze", help="analyses (iteration-jacobian: seed 002)")
    what = p.add_subparsers(dest="analysis", required=True)
    q = what.add_parser(
        "iteration-jacobian",
        help="Jacobian Df = I - alpha*Hessian of one gradient-descent step, and its spectrum",
    )
    add_arguments(q)
    q.set_defaults(func=run)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``jacrl`` command."""
    parser = argparse.ArgumentParser(
        prog="jacrl", description="Reward-driven Jacobian learning, with honest baselines."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (
        _add_train, _add_eval, _add_density, _add_envs, _add_compare, _add_tune, _add_analyze,
    ):  # fmt: skip
        add(sub)
    return parser


TRACEBACK_ENV = "JACRL_TRACEBACK"
"""Set to 1 to let an unexpected exception (a bug, or an input jacrl does not check yet) end the
command with its traceback instead of one ``jacrl: error:`` line."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jacrl`` console script.

    Exit codes: 0 done; 2 refused (bad input: one ``jacrl: error: ...`` line naming the problem
    and what is accepted); 1 an unexpected error (one line too, unless ``$JACRL_TRACEBACK``);
    130 interrupted (Ctrl-C: one line, finished runs are kept).
    """
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except JacrlError as exc:
        print(f"jacrl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "jacrl: interrupted; finished runs are kept (re-run the same command to continue: "
            "finished runs are skipped, `jacrl train --resume DIR` continues a checkpointed run)",
            file=sys.stderr,
        )
        return 130
    except Exception as exc:
        if os.environ.get(TRACEBACK_ENV):
            raise
        print(
            f"jacrl: error: unexpected {type(exc).__name__}: {exc} (likely a bug, or an input "
            f"jacrl does not check yet; {TRACEBACK_ENV}=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""Sample efficiency: JacobianAgent configurations vs SB3 PPO vs random play, side by side.

Every run goes through ``jacrl.train.train`` (presets from ``agents/*.yml``, deterministic
evaluation every ``--eval-every`` env steps on a separate env seeded ``seed + 10000``, the held-out
split for bandits), so the learners see identical envs, budgets and evaluations.

Configurations are jacrl compare's agent names (``jacrl/compare/variants.py``), plus ``random``:
  jacobian         JacobianAgent with its preset (density rule, learned lift, GAE, PPO update)
  jacobian-seed    the seed's rule: volume, embed pad, raw-reward advantage, REINFORCE steps
  jacobian-volume  the preset with the volume rule instead of the density rule (GAE, PPO; the
                   lift gets no gradient from the volume rule: it stays a fixed random embedding)
  jacobian-d0      the preset without F (a Gaussian policy on the lift): does F add anything?
  ppo              SB3 PPO with the zoo-tuned preset (agents/ppo.yml)
  random           uniformly random actions (evaluation only)

Targets: CartPole-v1 mean eval return >= 475 within 5e4 steps; Pendulum-v1 >= -200
within 2e5; jacrl/DigitsBandit-v0 held-out accuracy >= 0.95 within 20 passes. The machine is
small, so seeds, budgets and configurations are flags:

    python benchmarks/learning.py --envs CartPole-v1 --seeds 3
    python benchmarks/learning.py --envs Pendulum-v1 --seeds 2 --configs jacobian,ppo \
        --budget 100000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
from stable_baselines3.common.env_util import make_vec_env

import jacrl  # noqa: F401  (registers the jacrl/ envs)
from jacrl.common.threads import use_threads
from jacrl.compare.scoring import EnvScoring, env_scoring
from jacrl.compare.stats import steps_to_threshold, summarize_threshold
from jacrl.compare.variants import VARIANTS, resolve
from jacrl.presets import parse_overrides
from jacrl.train import EVAL_SEED_OFFSET, train


@dataclass(frozen=True)
class Task:
    """A benchmark task: target score (accuracy for a bandit), default budget, eval interval."""

    target: float
    budget: int
    eval_every: int


TASKS = {
    "CartPole-v1": Task(target=475.0, budget=50_000, eval_every=5_000),
    "Pendulum-v1": Task(target=-200.0, budget=200_000, eval_every=10_000),
    "jacrl/DigitsBandit-v0": Task(target=0.95, budget=28_740, eval_every=2_874),
}


@dataclass
class Curve:
    """Evaluations of one run: env steps and mean score at each."""

    steps: np.ndarray
    scores: np.ndarray
    wall_s: float


def first_reach(curve: Curve, budget: int, target: float) -> float:
    """Env steps at the run's first evaluation >= ``target`` within ``budget`` (inf if none): a
    run whose rollouts overshoot the budget is evaluated past it, and that does not count."""
    inside = curve.steps <= budget
    return float(steps_to_threshold(curve.steps[inside], curve.scores[None, inside], target)[0])


def run_config(
    config: str,
    scoring: EnvScoring,
    seed: int,
    budget: int,
    eval_every: int,
    root: Path,
    overrides: dict,
) -> Curve:
    agent, hp = resolve(config)
    if agent == "jacobian":
        hp = {**overrides, **hp}  # the configuration's defining keys win
    result = train(
        agent,
        scoring.env_id,
        steps=budget,
        seed=seed,
        hp=hp,
        log_root=root / config,
        eval_every=eval_every,
    )
    data = np.load(Path(result.run_dir) / "evaluations.npz")
    scores = scoring.score(data["results"], data["ep_lengths"]).mean(axis=1)
    return Curve(data["timesteps"], scores, result.wall_time_s)


def random_score(scoring: EnvScoring, seed: int, episodes: int) -> float:
    """Mean score of uniformly random actions on the evaluation env of ``seed``."""
    kwargs = {"split": "test"} if scoring.is_accuracy else {}
    env = make_vec_env(scoring.env_id, n_envs=1, seed=seed + EVAL_SEED_OFFSET, env_kwargs=kwargs)
    env.action_space.seed(seed)
    env.reset()
    returns: list[float] = []
    lengths: list[int] = []
    total, length = 0.0, 0
    while len(returns) < episodes:
        _, rewards, dones, _ = env.step(np.array([env.action_space.sample()]))
        total, length = total + float(rewards[0]), length + 1
        if dones[0]:
            returns.append(total)
            lengths.append(length)
            total, length = 0.0, 0
    return float(scoring.score(np.array(returns), np.array(lengths)).mean())


def fmt(values: list[float], digits: int) -> str:
    """``mean ± std`` of ``values`` with ``digits`` decimals."""
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {spread:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default="CartPole-v1", help="comma-separated env ids")
    parser.add_argument("--configs", default="jacobian,jacobian-seed,jacobian-d0,ppo,random")
    parser.add_argument("--seeds", type=int, default=5, help="how many seeds")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds start here")
    parser.add_argument("--budget", type=int, default=None, help="env steps (default per task)")
    parser.add_argument("--eval-every", type=int, default=None, help="env steps between evals")
    parser.add_argument("--log-root", default=None, help="keep the runs here (default: a tmp dir)")
    parser.add_argument(
        "--hp",
        action="append",
        default=[],
        help="key=value override of the JacobianAgent preset (all jacobian configs), repeatable",
    )
    args = parser.parse_args()
    use_threads(1)
    configs = args.configs.split(",")
    overrides = parse_overrides(args.hp)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    unknown = set(configs) - {*VARIANTS, "random"}
    if unknown:
        parser.error(f"unknown configs {sorted(unknown)}; choose from {[*VARIANTS, 'random']}")

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.log_root or tmp)
        for env_id in args.envs.split(","):
            task = TASKS.get(env_id, Task(target=gym.spec(env_id).reward_threshold or np.inf,
                                          budget=100_000, eval_every=10_000))  # fmt: skip
            scoring = env_scoring(env_id)
            budget = args.budget or task.budget
            eval_every = args.eval_every or task.eval_every
            unit = "accuracy" if scoring.is_accuracy else "return"
            digits = 3 if scoring.is_accuracy else 1
            print(
                f"\n{env_id}: budget {budget} steps, eval every {eval_every}, target {unit} >= "
                f"{task.target}, seeds {seeds[0]}..{seeds[-1]}, overrides {overrides}"
            )
            header = (
                f"{'config':<15}{'final ' + unit:>20}{'best ' + unit:>20}{'reached':>9}"
                f"{'median steps':>14}{'steps/s':>9}"
            )
            print(header)
            print("-" * len(header))
            for config in configs:
                start = time.perf_counter()
                if config == "random":
                    episodes = scoring.eval_episodes(10)
                    scores = [random_score(scoring, s, episodes) for s in seeds]
                    cell = fmt(scores, digits)
                    print(f"{config:<15}{cell:>20}{cell:>20}{'-':>9}{'-':>14}")
                    continue
                curves = [
                    run_config(config, scoring, s, budget, eval_every, root, overrides)
                    for s in seeds
                ]
                hits = [first_reach(c, budget, task.target) for c in curves]
                reach = summarize_threshold(np.array(hits))
                median = f"{reach.median_reached:.0f}" if reach.median_reached else "-"
                rate = sum(int(c.steps[-1]) for c in curves) / (time.perf_counter() - start)
                print(
                    f"{config:<15}{fmt([float(c.scores[-1]) for c in curves], digits):>20}"
                    f"{fmt([float(c.scores.max()) for c in curves], digits):>20}"
                    f"{reach.reached:>5}/{reach.runs:<3}{median:>14}{rate:>9.0f}"
                )
                for seed, curve, hit in zip(seeds, curves, hits, strict=True):
                    points = " ".join(
                        f"{s / 1000:g}k:{v:.{digits}f}"
                        for s, v in zip(curve.steps, curve.scores, strict=True)
                    )
                    first = f"{hit:.0f}" if np.isfinite(hit) else "never"
                    print(f"    seed {seed}: first >= target at {first}; {points}")


if __name__ == "__main__":
    main()

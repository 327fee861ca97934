"""Training throughput (env steps/s): JacobianAgent vs SB3 PPO, measured side by side.

Both learners use the same sizes (64-64 tanh lift/policy MLP, 64-64 value MLP), the same rollout
and update settings, CartPole-v1, one torch thread. Two settings: 1 env with SB3's PPO defaults
(n_steps 2048, batch 64, 10 epochs) and 8 envs with the zoo's tuned CartPole settings (n_steps 32,
batch 256, 20 epochs). Each cell is the median of ``--repeats`` timed ``learn`` calls, the two
learners interleaved.

    python benchmarks/throughput.py --steps 20000 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

from jacrl.agents import JacobianAgent

SETTINGS = {
    "1 env (SB3 defaults)": dict(n_envs=1, n_steps=2048, batch_size=64, n_epochs=10),
    "8 envs (zoo CartPole)": dict(n_envs=8, n_steps=32, batch_size=256, n_epochs=20),
}


def steps_per_second(make: Callable[[], object], steps: int) -> float:
    """Env steps/s of ``learn(steps)`` on a fresh learner (construction not timed)."""
    learner = make()
    start = time.perf_counter()
    learner.learn(steps)  # type: ignore[attr-defined]
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="env steps per timed learn")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per cell (median)")
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument(
        "--depth", type=int, default=3, help="blocks of F (0: the no-F ablation, what F costs)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)

    print(
        f"{args.env}, {args.steps} steps, median of {args.repeats}, torch threads 1, "
        f"JacobianAgent depth {args.depth}"
    )
    print(f"{'setting':<24}{'JacobianAgent':>15}{'SB3 PPO':>12}{'ratio':>8}")
    for name, setting in SETTINGS.items():
        n_envs = setting["n_envs"]
        update = {k: v for k, v in setting.items() if k != "n_envs"}

        def jacobian(n_envs: int = n_envs, update: dict = update) -> JacobianAgent:
            return JacobianAgent(args.env, n_envs=n_envs, seed=0, depth=args.depth, **update)

        def ppo(n_envs: int = n_envs, update: dict = update) -> PPO:
            env = make_vec_env(args.env, n_envs=n_envs, seed=0)
            return PPO("MlpPolicy", env, seed=0, device="cpu", **update)

        # interleaved, so a change in machine load hits both learners alike
        rates = [(steps_per_second(jacobian, args.steps), steps_per_second(ppo, args.steps))
                 for _ in range(args.repeats)]  # fmt: skip
        ours = statistics.median(r[0] for r in rates)
        theirs = statistics.median(r[1] for r in rates)
        print(f"{name:<24}{ours:>15.0f}{theirs:>12.0f}{ours / theirs:>8.2f}")


if __name__ == "__main__":
    main()

"""Soak test: long Jacobian-agent runs must stay finite and well conditioned.

Trains the Jacobian agent with its shipped presets (``agents/jacobian.yml``) on CartPole-v1 and
Pendulum-v1 for every rule (``density``, ``volume``) and parameterization (``inverse``, ``lu``),
and after every rollout reads the policy net: the largest cond(V_l), the largest |log det| of the
rollout's ℓ(y0) = log|det J_{F⁻¹}(y0)|, and whether every weight is finite, and counts the
layers the agent had to project back under ``max_cond`` (``ill_conditioned="repair"``, the
default; ``--ill-conditioned raise`` makes any crossing a failure). The agent raises on a
non-finite loss; this script records such a failure instead of stopping, so one bad
configuration does not hide the others.

Memory: the callback also reads the process's resident set size (RSS, from ``/proc/self/statm``)
after every rollout. A run must not grow after its first update (issue #16): the table reports
the RSS at the first rollout after the first update, the last one, and the least-squares slope
over the samples in between (MiB per 10⁵ env steps); a growth of more than ``--max-growth`` MiB
between the two counts as a failure. Run one configuration per process for a clean reading
(the configurations of one process share its allocator; a later one starts from the earlier
ones' peak).

The issue's budget is ``--steps 1000000`` per configuration (8 configurations, ~25 minutes on one
core); a reduced ``--steps`` checks the same properties over a shorter horizon.

Usage::

    python benchmarks/soak.py --steps 20000
    python benchmarks/soak.py --steps 1000000 --env CartPole-v1 --rule density --param inverse
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

from jacrl.agents import JacobianAgent
from jacrl.common.errors import JacrlError
from jacrl.common.threads import use_threads
from jacrl.presets import RUN_KEYS, load_preset

ENVS = ("CartPole-v1", "Pendulum-v1")
RULES = ("density", "volume")
PARAMETERIZATIONS = ("inverse", "lu")


@dataclass
class Health:
    """The worst values one run showed; ``failure`` holds the error that stopped it, if any."""

    worst_cond: float = 1.0
    max_abs_logdet: float = 0.0
    rollouts: int = 0
    reconditions: int = 0
    failure: str = ""
    #: (env steps, RSS in MiB) after every rollout
    memory: list[tuple[int, float]] = field(default_factory=list)

    def memory_after_first_update(self) -> tuple[float, float, float]:
        """(RSS at the first rollout after the first update, at the last, slope in MiB per 10⁵
        env steps between them); NaN without two such samples."""
        # the first sample is taken before any update (on_rollout_end precedes train)
        samples = self.memory[1:]
        if len(samples) < 2:
            return math.nan, math.nan, math.nan
        steps, rss = (np.array(column, dtype=float) for column in zip(*samples, strict=True))
        slope = float(np.polyfit(steps, rss, 1)[0]) * 1e5
        return float(rss[0]), float(rss[-1]), slope


def resident_mib() -> float:
    """This process's resident set size now, in MiB (``/proc/self/statm``: Linux)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class HealthCallback(BaseCallback):
    """After every rollout: cond(V_l), |ℓ(y0)| of the rollout just scored, weight finiteness.

    ``on_rollout_end`` runs after ``collect_rollouts`` has scored the rollout, so
    ``rollout_buffer.logabsdet`` holds ℓ(y0) under the weights that acted.
    """

    def __init__(self, health: Health, print_every: int = 0) -> None:
        super().__init__()
        self.health = health
        #: print the RSS about every this many env steps (0: never), so a run cut short by a
        #: time limit still shows its memory curve
        self.print_every = print_every
        self._next_print = print_every

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.health.rollouts += 1
        steps, rss = self.model.num_timesteps, resident_mib()
        self.health.memory.append((steps, rss))
        if self.print_every and steps >= self._next_print:
            print(f"  env step {steps}: RSS {rss:.1f} MiB", flush=True)
            self._next_print += self.print_every
        self._inspect()

    def _on_training_end(self) -> None:
        self._inspect()  # the weights after the last update, which no rollout acted with

    def _inspect(self) -> None:
        agent: JacobianAgent = self.model  # type: ignore[assignment]
        cond = agent.policy.net.condition_numbers()
        if cond.numel():
            self.health.worst_cond = max(self.health.worst_cond, float(cond.max()))
        logabsdet = float(abs(agent.rollout_buffer.logabsdet).max())
        self.health.max_abs_logdet = max(self.health.max_abs_logdet, logabsdet)
        if not math.isfinite(logabsdet) or not all(
            bool(torch.isfinite(p).all()) for p in agent.policy.parameters()
        ):
            self.health.failure = f"non-finite weights or log det at step {agent.num_timesteps}"


def soak(
    env_id: str,
    rule: str,
    parameterization: str,
    steps: int,
    seed: int,
    ill_conditioned: str,
    max_growth: float = math.inf,
    print_every: int = 0,
) -> Health:
    """Train one configuration for ``steps`` env steps and return what the callback saw."""
    hp = {k: v for k, v in load_preset("jacobian", env_id).items() if k not in RUN_KEYS}
    n_envs = load_preset("jacobian", env_id).get("n_envs", 1)
    hp.update(rule=rule, parameterization=parameterization, ill_conditioned=ill_conditioned)
    health = Health()
    agent = JacobianAgent(env_id, n_envs=n_envs, seed=seed, **hp)
    try:
        agent.learn(steps, callback=HealthCallback(health, print_every))
    except JacrlError as exc:  # SingularWeightError, NonFiniteError: the failures we soak for
        health.failure = f"{type(exc).__name__}: {exc}"
    health.reconditions = agent.reconditions
    bound = agent.max_cond
    if not health.failure and health.worst_cond > bound:
        health.failure = f"cond {health.worst_cond:.3g} > max_cond {bound:g}"
    first, last, _ = health.memory_after_first_update()
    if not health.failure and last - first > max_growth:
        health.failure = f"RSS grew {last - first:.1f} MiB after the first update"
    return health


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000, help="env steps per config")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--env", choices=ENVS, action="append", help="default: both")
    parser.add_argument("--rule", choices=RULES, action="append", help="default: both")
    parser.add_argument("--param", choices=PARAMETERIZATIONS, action="append", help="default: both")
    parser.add_argument("--ill-conditioned", choices=("repair", "raise"), default="repair")
    parser.add_argument(
        "--max-growth",
        type=float,
        default=16.0,
        help="MiB of RSS growth after the first update that counts as a failure",
    )
    parser.add_argument(
        "--print-memory-every", type=int, default=0, help="print the RSS every N env steps"
    )
    args = parser.parse_args()
    use_threads(1)

    print(f"soak: {args.steps} env steps per configuration, seed {args.seed}")
    print(
        f"{'env':<12} {'rule':<8} {'param':<8} {'rollouts':>8} {'worst cond':>11} "
        f"{'max|logdet|':>11} {'repairs':>7} {'time s':>7} {'RSS MiB first→last':>19} "
        f"{'MiB/1e5 steps':>13}  status"
    )
    worst_cond, worst_logdet, failures, repairs = 1.0, 0.0, 0, 0
    for env_id, rule, param in itertools.product(
        args.env or ENVS, args.rule or RULES, args.param or PARAMETERIZATIONS
    ):
        start = time.perf_counter()
        health = soak(
            env_id,
            rule,
            param,
            args.steps,
            args.seed,
            args.ill_conditioned,
            args.max_growth,
            args.print_memory_every,
        )
        elapsed = time.perf_counter() - start
        first, last, slope = health.memory_after_first_update()
        worst_cond = max(worst_cond, health.worst_cond)
        worst_logdet = max(worst_logdet, health.max_abs_logdet)
        failures += bool(health.failure)
        repairs += health.reconditions
        print(
            f"{env_id:<12} {rule:<8} {param:<8} {health.rollouts:>8} {health.worst_cond:>11.4g} "
            f"{health.max_abs_logdet:>11.4g} {health.reconditions:>7} {elapsed:>7.1f} "
            f"{f'{first:.1f}→{last:.1f}':>19} {slope:>13.3f}  {health.failure or 'ok'}",
            flush=True,
        )
    print(
        f"worst condition number: {worst_cond:.4g}; max |log det|: {worst_logdet:.4g}; "
        f"layer repairs: {repairs}; failed configurations: {failures}"
    )


if __name__ == "__main__":
    main()

"""Soak test: long Jacobian-agent runs must stay finite and well conditioned.

Trains the Jacobian agent with its shipped presets (``agents/jacobian.yml``) on CartPole-v1 and
Pendulum-v1 for every rule (``density``, ``volume``) and parameterization (``inverse``, ``lu``),
and after every rollout reads the policy net: the largest cond(V_l), the largest |log det| of the
rollout's ℓ(y0) = log|det J_{F⁻¹}(y0)|, and whether every weight is finite, and counts the
layers the agent had to project back under ``max_cond`` (``ill_conditioned="repair"``, the
default; ``--ill-conditioned raise`` makes any crossing a failure). The agent raises on a
non-finite loss; this script records such a failure instead of stopping, so one bad
configuration does not hide the others.

The issue's budget is ``--steps 1000000`` per configuration (8 configurations, ~25 minutes on one
core); a reduced ``--steps`` checks the same properties over a shorter horizon.

Usage::

    python benchmarks/soak.py --steps 20000
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
from dataclasses import dataclass

import torch
from stable_baselines3.common.callbacks import BaseCallback

from jacrl.agents import JacobianAgent
from jacrl.common.errors import JacrlError
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


class HealthCallback(BaseCallback):
    """After every rollout: cond(V_l), |ℓ(y0)| of the rollout just scored, weight finiteness.

    ``on_rollout_end`` runs after ``collect_rollouts`` has scored the rollout, so
    ``rollout_buffer.logabsdet`` holds ℓ(y0) under the weights that acted.
    """

    def __init__(self, health: Health) -> None:
        super().__init__()
        self.health = health

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.health.rollouts += 1
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
    env_id: str, rule: str, parameterization: str, steps: int, seed: int, ill_conditioned: str
) -> Health:
    """Train one configuration for ``steps`` env steps and return what the callback saw."""
    hp = {k: v for k, v in load_preset("jacobian", env_id).items() if k not in RUN_KEYS}
    n_envs = load_preset("jacobian", env_id).get("n_envs", 1)
    hp.update(rule=rule, parameterization=parameterization, ill_conditioned=ill_conditioned)
    health = Health()
    agent = JacobianAgent(env_id, n_envs=n_envs, seed=seed, **hp)
    try:
        agent.learn(steps, callback=HealthCallback(health))
    except JacrlError as exc:  # SingularWeightError, NonFiniteError: the failures we soak for
        health.failure = f"{type(exc).__name__}: {exc}"
    health.reconditions = agent.reconditions
    bound = agent.max_cond
    if not health.failure and health.worst_cond > bound:
        health.failure = f"cond {health.worst_cond:.3g} > max_cond {bound:g}"
    return health


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000, help="env steps per config")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--env", choices=ENVS, action="append", help="default: both")
    parser.add_argument("--rule", choices=RULES, action="append", help="default: both")
    parser.add_argument("--param", choices=PARAMETERIZATIONS, action="append", help="default: both")
    parser.add_argument("--ill-conditioned", choices=("repair", "raise"), default="repair")
    args = parser.parse_args()
    torch.set_num_threads(1)

    print(f"soak: {args.steps} env steps per configuration, seed {args.seed}")
    print(
        f"{'env':<12} {'rule':<8} {'param':<8} {'rollouts':>8} {'worst cond':>11} "
        f"{'max|logdet|':>11} {'repairs':>7} {'time s':>7}  status"
    )
    worst_cond, worst_logdet, failures, repairs = 1.0, 0.0, 0, 0
    for env_id, rule, param in itertools.product(
        args.env or ENVS, args.rule or RULES, args.param or PARAMETERIZATIONS
    ):
        start = time.perf_counter()
        health = soak(env_id, rule, param, args.steps, args.seed, args.ill_conditioned)
        elapsed = time.perf_counter() - start
        worst_cond = max(worst_cond, health.worst_cond)
        worst_logdet = max(worst_logdet, health.max_abs_logdet)
        failures += bool(health.failure)
        repairs += health.reconditions
        print(
            f"{env_id:<12} {rule:<8} {param:<8} {health.rollouts:>8} {health.worst_cond:>11.4g} "
            f"{health.max_abs_logdet:>11.4g} {health.reconditions:>7} {elapsed:>7.1f}  "
            f"{health.failure or 'ok'}",
            flush=True,
        )
    print(
        f"worst condition number: {worst_cond:.4g}; max |log det|: {worst_logdet:.4g}; "
        f"layer repairs: {repairs}; failed configurations: {failures}"
    )


if __name__ == "__main__":
    main()

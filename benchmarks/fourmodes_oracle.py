"""JacobianSAC's forward-KL actor update on FourModes with the exact reward as its critic.

The full learner on jacrl/FourModes-v0 fits its policy to π* ∝ exp(Q/α) through a learned Q.
This benchmark replaces that Q by the env's own reward (FourModes is a one-step bandit with a
constant observation and γ = 0, so the reward *is* the optimal Q) and runs only the actor's
update, so it separates two questions: can the update fit F to the four modes at all
(``--critic exact``, the default), and does the learned critic keep it there (``--critic
learned``: the full learner, one env step and one update at a time, which also prints what its
critic believes — the highest min-Q within 0.12 of each mode, where the true peak is 1 — and how
many of the replay buffer's actions lie near each mode). It prints the exact mass within 0.24 of
each mode (from the density on a grid) every ``--eval-every`` updates.

    .venv/bin/python benchmarks/fourmodes_oracle.py                        # the preset, seed 0
    .venv/bin/python benchmarks/fourmodes_oracle.py --hp n_action_samples=128 --seeds 0,1
    .venv/bin/python benchmarks/fourmodes_oracle.py --critic learned --hp n_action_samples=128

Each 6000-update run takes 1-3 minutes on one core with the exact reward, 5-10 with the learned
critic.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

import jacrl  # noqa: F401  (registers jacrl/FourModes-v0)
from jacrl.agents.sac import JacobianSAC
from jacrl.common.threads import use_threads
from jacrl.density import exact_log_prob_fn
from jacrl.envs.four_modes import (
    MODE_WIDTH,
    MODES,
    mode_masses,
    mode_masses_from_density,
    mode_reward,
)
from jacrl.presets import load_preset, parse_overrides

ENV_ID = "jacrl/FourModes-v0"


class ExactReward:
    """The critic's one verb the forward-KL loss calls, answered by the env's reward."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.modes = torch.as_tensor(MODES, dtype=dtype)

    def min_q(self, obs: Tensor, actions: Tensor) -> Tensor:
        squared = ((actions[:, None, :] - self.modes) ** 2).sum(-1).min(dim=1).values
        return torch.exp(-squared / (2 * MODE_WIDTH**2))


def check_exact_reward(dtype: torch.dtype = torch.float64) -> None:
    """The oracle is the env's reward (``mode_reward``), on random actions in the box."""
    actions = torch.rand(512, 2, dtype=dtype, generator=torch.Generator().manual_seed(0)) * 2 - 1
    ours = ExactReward(dtype).min_q(torch.zeros(512, 1), actions).numpy()
    if not np.allclose(ours, mode_reward(actions.numpy()), rtol=1e-12, atol=0.0):
        raise SystemExit("ExactReward differs from jacrl.envs.four_modes.mode_reward")


def build(seed: int, hp: dict[str, object]) -> JacobianSAC:
    """The FourModes preset with ``hp`` on top; the forward-KL update is what is measured."""
    torch.manual_seed(seed)
    hyperparameters = {**load_preset("jacobian-sac", ENV_ID), **hp}
    hyperparameters.pop("n_timesteps", None)
    agent = JacobianSAC(gym.make(ENV_ID), seed=seed, **hyperparameters)
    if agent.actor_objective != "forward_kl":
        raise SystemExit(
            "this benchmark runs the forward-KL update: pass actor_objective=forward_kl"
        )
    return agent


def masses(agent: JacobianSAC, grid: int) -> str:
    """The exact mass within 0.24 of each mode, from the density on a grid."""
    log_prob = exact_log_prob_fn(agent, np.zeros(1, dtype=np.float32))
    assert log_prob is not None  # JacobianSAC has an exact density
    return per_mode(mode_masses_from_density(log_prob, grid).tolist())


def per_mode(values: list[float]) -> str:
    return " / ".join(f"{v:.3f}" for v in values)


def report(seed: int, start: float, trace: list[str]) -> str:
    return f"seed {seed} ({time.perf_counter() - start:.0f} s)\n  " + "\n  ".join(trace)


def critic_view(agent: JacobianSAC) -> str:
    """The learned critic's highest min-Q within MODE_WIDTH of each mode (the true peak is 1),
    and the replay buffer's action count within 0.24 of each mode."""
    axis = np.linspace(-MODE_WIDTH, MODE_WIDTH, 25)
    offsets = np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2)
    offsets = offsets[(offsets**2).sum(axis=1) <= MODE_WIDTH**2]
    points = (MODES[:, None, :] + offsets).reshape(-1, 2)
    dtype = next(agent.critic.parameters()).dtype
    with torch.no_grad():
        q = agent.critic.min_q(
            torch.zeros(len(points), 1, dtype=dtype), torch.as_tensor(points, dtype=dtype)
        )
    peaks = q.view(len(MODES), -1).max(dim=1).values
    buffer = agent.replay_buffer
    actions = buffer.actions[: buffer.size()].reshape(-1, 2)
    counts = np.rint(mode_masses(actions) * len(actions)).astype(int)
    near = " / ".join(str(c) for c in counts)
    return f"  critic peak {per_mode(peaks.tolist())}  buffer near modes {near}"


def run_exact(
    seed: int, hp: dict[str, object], updates: int, every: int, batch: int, grid: int
) -> str:
    agent = build(seed, hp)
    agent.critic = ExactReward(agent.policy.dtype)  # type: ignore[assignment]
    alpha = agent.log_ent_coef.detach().exp()
    obs = torch.zeros(batch, 1, dtype=torch.float32)
    trace, start = [], time.perf_counter()
    for update in range(1, updates + 1):
        loss = agent._forward_kl_loss(obs, alpha)
        agent.actor_optimizer.zero_grad()
        loss.backward()
        agent.actor_optimizer.step()
        if agent.ill_conditioned == "repair" and update % 100 == 0:
            agent.policy.enforce_conditioning("repair")
        if update % every == 0:
            trace.append(f"{update}: {masses(agent, grid)}")
    return report(seed, start, trace)


def run_learned(seed: int, hp: dict[str, object], steps: int, every: int, grid: int) -> str:
    agent = build(seed, hp)
    trace, start = [], time.perf_counter()
    for done in range(every, steps + 1, every):
        agent.learn(every, reset_num_timesteps=done == every)
        trace.append(f"{done}: {masses(agent, grid)}{critic_view(agent)}")
    return report(seed, start, trace)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument(
        "--critic",
        choices=("exact", "learned"),
        default="exact",
        help="exact: the actor update against the reward; learned: the full learner",
    )
    parser.add_argument(
        "--updates", type=int, default=6000, help="actor updates (exact) or env steps (learned)"
    )
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument(
        "--batch-size", type=int, default=256, help="states per update (--critic exact)"
    )
    parser.add_argument("--grid", type=int, default=200, help="grid points per axis")
    parser.add_argument(
        "--hp", action="append", default=[], metavar="KEY=VALUE", help="override the preset"
    )
    args = parser.parse_args()
    if args.eval_every < 1 or args.updates % args.eval_every:
        parser.error(
            f"--updates ({args.updates}) must be a positive multiple of --eval-every "
            f"({args.eval_every}): the learned critic trains in --eval-every steps at a time"
        )
    use_threads(1)
    hp = parse_overrides(args.hp)
    check_exact_reward()
    if args.critic == "exact":
        print(f"{ENV_ID}: the actor update against the exact reward; overrides {hp or 'none'}")
    else:
        print(f"{ENV_ID}: the full learner with its learned critic; overrides {hp or 'none'}")
    print("mass within 0.24 of each mode (+x / -x / +y / -y), exact, by update")
    for seed in (int(s) for s in args.seeds.split(",")):
        if args.critic == "exact":
            text = run_exact(seed, hp, args.updates, args.eval_every, args.batch_size, args.grid)
        else:
            text = run_learned(seed, hp, args.updates, args.eval_every, args.grid)
        print(text, flush=True)


if __name__ == "__main__":
    main()

"""JacobianSAC's forward-KL actor update on FourModes with the exact reward as its critic.

The full learner on jacrl/FourModes-v0 fits its policy to π* ∝ exp(Q/α) through a learned Q.
This benchmark replaces that Q by the env's own reward (FourModes is a one-step bandit with a
constant observation and γ = 0, so the reward *is* the optimal Q) and runs only the actor's
update, so it separates two questions: can the update fit F to the four modes at all (here),
and does the learned critic keep it there (``jacrl compare``). It prints the exact mass within
0.24 of each mode (from the density on a grid) every ``--eval-every`` updates.

    .venv/bin/python benchmarks/fourmodes_oracle.py                        # the preset, seed 0
    .venv/bin/python benchmarks/fourmodes_oracle.py --hp n_action_samples=128 --seeds 0,1

Each 6000-update run takes 1-3 minutes on one core.
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
from jacrl.density import exact_log_prob_fn
from jacrl.envs.four_modes import MODE_WIDTH, MODES, mode_masses_from_density, mode_reward
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


def run(seed: int, hp: dict[str, object], updates: int, every: int, batch: int, grid: int) -> str:
    torch.manual_seed(seed)
    hyperparameters = {**load_preset("jacobian-sac", ENV_ID), **hp}
    hyperparameters.pop("n_timesteps", None)
    agent = JacobianSAC(gym.make(ENV_ID), seed=seed, **hyperparameters)
    if agent.actor_objective != "forward_kl":
        raise SystemExit(
            "this benchmark runs the forward-KL update: pass actor_objective=forward_kl"
        )
    agent.critic = ExactReward(agent.policy.dtype)  # type: ignore[assignment]
    alpha = agent.log_ent_coef.detach().exp()
    obs = torch.zeros(batch, 1, dtype=torch.float32)
    observation = np.zeros(1, dtype=np.float32)
    trace, start = [], time.perf_counter()
    for update in range(1, updates + 1):
        loss = agent._forward_kl_loss(obs, alpha)
        agent.actor_optimizer.zero_grad()
        loss.backward()
        agent.actor_optimizer.step()
        if agent.ill_conditioned == "repair" and update % 100 == 0:
            agent.policy.enforce_conditioning("repair")
        if update % every == 0:
            log_prob = exact_log_prob_fn(agent, observation)
            assert log_prob is not None  # JacobianSAC has an exact density
            masses = mode_masses_from_density(log_prob, grid)
            trace.append(f"{update}: {' / '.join(f'{m:.3f}' for m in masses)}")
    return f"seed {seed} ({time.perf_counter() - start:.0f} s)\n  " + "\n  ".join(trace)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--updates", type=int, default=6000)
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=256, help="states per update")
    parser.add_argument("--grid", type=int, default=200, help="grid points per axis")
    parser.add_argument(
        "--hp", action="append", default=[], metavar="KEY=VALUE", help="override the preset"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    hp = parse_overrides(args.hp)
    check_exact_reward()
    print(f"{ENV_ID}: the actor update against the exact reward; preset overrides {hp or 'none'}")
    print("mass within 0.24 of each mode (+x / -x / +y / -y), exact, by update")
    for seed in (int(s) for s in args.seeds.split(",")):
        print(run(seed, hp, args.updates, args.eval_every, args.batch_size, args.grid), flush=True)


if __name__ == "__main__":
    main()

"""The seed's volume rule and its variants, side by side with random play and the density rule.

Every run goes through ``jacrl.train.train`` (JacobianAgent presets from ``agents/jacobian.yml``
plus the overrides below; deterministic evaluation on a separate env seeded ``seed + 10000``, the
held-out split for the digits bandit), so all variants see identical envs, budgets and evals.

Variants (all on top of the seed-faithful configuration: volume rule, ``embed="pad"``, raw-reward
advantage, one REINFORCE step per rollout, σ_x = 1, activation asinh — the configuration of the
tables in docs/volume_rule.md, measured before the volume rule's default activation became
smooth_leaky_relu; the ``smooth`` variant is that default):
  seed        the seed as written (y0 held fixed, grow ℓ = log|det J_{F⁻¹}(y0)|)
  smooth      the seed with activation smooth_leaky_relu (JacobianAgent's volume-rule default)
  absdet      grow |J| itself (seed eqs. 7, 11): the step of each sample is weighted by its |J|
  hold-x0     hold the input x that produced y0, grow ℓ(F(x)) = −log|det J_F(x)|
  x0-baseline hold-x0 with the baseline advantage (docs/volume_rule.md: hold-x0 is REINFORCE plus
              an advantage-weighted entropy term, which a baseline shrinks)
  softmax     reward-weighted averaging: weights N·softmax(r) instead of r
  sigma0.3    σ_x = 0.3
  sigma0.1    σ_x = 0.1
  baseline    advantage = discounted return minus a running mean (a ranking signal on CartPole,
              where every raw reward is +1)
  lr0         control: the seed with learning_rate 0 (the untrained network, with the same running
              observation normalisation): what the deterministic policy scores without learning
  lr0-sigma0.1  the same control at σ_x = 0.1 (σ_x changes the visited states, hence the running
              observation normalisation, hence the deterministic policy even without learning)
  density     reference: the density rule (exact REINFORCE), pad, baseline advantage, REINFORCE
  density-ppo reference: JacobianAgent's preset as is (density rule, learned lift, GAE, PPO)
  random      reference: uniformly random actions

Diagnostic (does the rule use the reward?): before every update, on that rollout, with F's
parameters θ only,
  g      = ∇θ mean_t(w_t · score_t)  the variant's own update direction (w its advantages/weights),
  g_shuf = the same with w permuted across samples (the shuffled control of docs/volume_rule.md),
  g_pg   = ∇θ mean_t(A_t · log p(y0_t|s_t))  the exact REINFORCE gradient of the same policy, with
           A the discounted return-to-go minus its mean, normalised;
reported as the rollout means of cos(g, g_pg), cos(g_shuf, g_pg) and |g − g_shuf| / |g| (0: the
update does not depend on which sample got which reward).

    python benchmarks/volume_rule.py --envs CartPole-v1,jacrl/DigitsBandit-v0 --seeds 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from learning import fmt, random_score

import jacrl  # noqa: F401  (registers the jacrl/ envs)
from jacrl.agents import JacobianAgent
from jacrl.common.errors import JacrlError
from jacrl.common.threads import use_threads
from jacrl.compare.scoring import env_scoring
from jacrl.train import train

SEED = {
    "rule": "volume",
    "embed": "pad",
    "advantage": "reward",
    "update": "reinforce",
    "activation": "asinh",
}
VARIANTS: dict[str, dict] = {
    "seed": {},
    "smooth": {"activation": "smooth_leaky_relu"},
    "absdet": {"volume_objective": "absdet"},
    "hold-x0": {"volume_hold": "x0"},
    "x0-baseline": {"volume_hold": "x0", "advantage": "baseline"},
    "softmax": {"advantage_weighting": "softmax"},
    "sigma0.3": {"sigma_x": 0.3},
    "sigma0.1": {"sigma_x": 0.1},
    "baseline": {"advantage": "baseline"},
    "lr0": {"learning_rate": 0.0},
    "lr0-sigma0.1": {"learning_rate": 0.0, "sigma_x": 0.1},
    "density": {"rule": "density", "advantage": "baseline"},
    "density-ppo": {},
}
#: variants that run the preset unchanged, without SEED and ENV_HP
PRESET_VARIANTS = {"density-ppo"}
#: per-env settings on top of the preset: width None = max(obs, actions), as pad needs; on the
#: digits bandit the preset's 2048-step rollout would give REINFORCE only 3 steps in 5 passes
ENV_HP: dict[str, dict] = {
    "CartPole-v1": {"width": None},
    "jacrl/DigitsBandit-v0": {"width": None, "n_steps": 64},
}
DEFAULT_BUDGETS = {"CartPole-v1": 20_000, "jacrl/DigitsBandit-v0": 5 * 1437}


def _flat_grad(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> torch.Tensor:
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return torch.cat(
        [
            (torch.zeros_like(p) if g is None else g).flatten()
            for p, g in zip(params, grads, strict=True)
        ]
    )


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def update_alignment(agent: JacobianAgent) -> tuple[float, float, float]:
    """(cos(g, g_pg), cos(g_shuf, g_pg), |g − g_shuf| / |g|) on the agent's current rollout."""
    buffer, policy = agent.rollout_buffer, agent.policy
    rollout = buffer.tensors(agent.device)
    # the variant's own weights, as JacobianAgent.train forms them on a full batch
    w = rollout.advantages.clone()
    if agent.advantage != "reward":
        w = (w - w.mean()) / (w.std() + 1e-8)
    if agent.advantage_weighting == "softmax":
        w = len(w) * torch.softmax(w / agent.weighting_temperature, dim=0)
    # reference advantage: discounted return-to-go within the rollout, minus its mean
    returns = np.zeros_like(buffer.rewards)
    running = np.zeros(buffer.n_envs)
    for t in reversed(range(buffer.n_steps)):
        if t + 1 < buffer.n_steps:
            running = running * (1.0 - buffer.episode_starts[t + 1])
        running = buffer.rewards[t] + agent.gamma * running
        returns[t] = running
    ref = torch.as_tensor(returns.reshape(-1), device=agent.device)
    ref = (ref - ref.mean()) / (ref.std() + 1e-8)

    params = [p for p in policy.net.parameters() if p.requires_grad]
    x = rollout.x if policy.needs_input else None
    score, _ = policy.log_prob(rollout.obs, rollout.y0, x)
    x_inv, logdet = policy.net.inverse_and_logdet(rollout.y0)
    z = (x_inv - policy.embed(rollout.obs)) / policy.log_sigma.exp()
    log_p = (-0.5 * z**2 - policy.log_sigma).sum(-1) + logdet
    g = _flat_grad((w * score).mean(), params)
    g_shuf = _flat_grad((w[torch.randperm(len(w))] * score).mean(), params)
    g_pg = _flat_grad((ref * log_p).mean(), params)
    dependence = float((g - g_shuf).norm() / (g.norm() + 1e-30))
    return _cos(g, g_pg), _cos(g_shuf, g_pg), dependence


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default="CartPole-v1,jacrl/DigitsBandit-v0")
    parser.add_argument("--variants", default=",".join([*VARIANTS, "random"]))
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=None, help="env steps (default per env)")
    parser.add_argument("--evals", type=int, default=4, help="evaluations per run")
    args = parser.parse_args()
    use_threads(1)
    variants = args.variants.split(",")
    unknown = set(variants) - {*VARIANTS, "random"}
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; choose from {[*VARIANTS, 'random']}")
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))

    with tempfile.TemporaryDirectory() as tmp:
        for env_id in args.envs.split(","):
            scoring = env_scoring(env_id)
            budget = args.budget or DEFAULT_BUDGETS[env_id]
            unit, digits = ("accuracy", 3) if scoring.is_accuracy else ("return", 1)
            print(f"\n{env_id}: {budget} steps, seeds {seeds}, final/best deterministic {unit}")
            header = (
                f"{'variant':<13}{'final':>15}{'best':>15}{'cos(g,PG)':>11}"
                f"{'cos(shuf,PG)':>14}{'|g-g_shuf|/|g|':>16}{'s':>6}"
            )
            print(header + "\n" + "-" * len(header))
            for variant in variants:
                if variant == "random":
                    episodes = scoring.eval_episodes(10)
                    cell = fmt([random_score(scoring, s, episodes) for s in seeds], digits)
                    print(f"{variant:<13}{cell:>15}{cell:>15}")
                    continue
                hp = (
                    {}
                    if variant in PRESET_VARIANTS
                    else {**ENV_HP.get(env_id, {}), **SEED, **VARIANTS[variant]}
                )
                finals, bests, diagnostics, failures = [], [], [], []
                start = time.perf_counter()
                original = JacobianAgent.train

                def train_with_diagnostic(
                    agent: JacobianAgent, _original=original, _log=diagnostics
                ) -> None:
                    _log.append(update_alignment(agent))
                    _original(agent)

                for seed in seeds:
                    try:
                        with mock.patch.object(JacobianAgent, "train", train_with_diagnostic):
                            result = train(
                                "jacobian",
                                env_id,
                                steps=budget,
                                seed=seed,
                                hp=hp,
                                log_root=Path(tmp) / variant,
                                eval_every=max(budget // args.evals, 1),
                            )
                    except JacrlError as error:  # e.g. |J| overflowing: report, go on
                        failures.append(f"seed {seed}: {type(error).__name__}: {error}")
                        continue
                    evaluations = np.load(Path(result.run_dir) / "evaluations.npz")
                    scores = scoring.score(evaluations["results"], evaluations["ep_lengths"])
                    scores = scores.mean(axis=1)
                    finals.append(float(scores[-1]))
                    bests.append(float(scores.max()))
                cos_pg, cos_shuf, dependence = np.mean(diagnostics, axis=0)
                if not finals:
                    finals = bests = [float("nan")]
                print(
                    f"{variant:<13}{fmt(finals, digits):>15}{fmt(bests, digits):>15}"
                    f"{cos_pg:>11.3f}{cos_shuf:>14.3f}{dependence:>16.3f}"
                    f"{time.perf_counter() - start:>6.0f}",
                    flush=True,
                )
                per_seed = ", ".join(f"{v:.{digits}f}" for v in finals)
                print(f"{'':<13}per seed final: {per_seed}; {len(diagnostics)} updates")
                for failure in failures:
                    print(f"{'':<13}FAILED {failure}")


if __name__ == "__main__":
    main()

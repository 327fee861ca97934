"""The agent names ``jacrl compare --agents`` accepts: the base agents and named ablations.

The base agents are those of :data:`jacrl.agents.registry.AGENTS`, as their presets configure
them. An ablation is a base agent plus hyperparameter overrides. Naming it (``jacobian-d0``)
rather than passing ``--hp`` lets one grid hold several variants of the same agent side by side,
each in its own run folder (``runs/<env>/jacobian-d0_<seed>``) and its own row of the summary.
This dict is the one place to add a variant.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jacrl.agents.registry import AGENTS
from jacrl.common.errors import ConfigError

(SUPERVISED,) = (name for name, entry in AGENTS.items() if entry.learning == "supervised")
"""The supervised baseline: it learns from ``info["label"]``, so only labelled envs can run it."""

FKL_RESAMPLED: dict[str, Any] = {
    "actor_objective": "forward_kl",
    "forward_kl_estimator": "resampled",
    "proposal_margin": 0.05,
}
"""The update of ``jacobian-sac-fkl-rs``: forward KL from one resampled proposal per state."""

VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    **{name: (name, {}) for name in AGENTS},
    # the seed, read literally: the volume rule on the zero-padded state, weighted by the raw
    # reward, one REINFORCE step per rollout (no critic, no clipping, no learned lift)
    "jacobian-seed": (
        "jacobian",
        # width None: the default max(obs, actions), since padding needs width >= obs size
        {
            "rule": "volume",
            "embed": "pad",
            "advantage": "reward",
            "update": "reinforce",
            "width": None,
        },
    ),
    # the seed's update rule with the density rule's machinery (learned lift, GAE, PPO clipping)
    "jacobian-volume": ("jacobian", {"rule": "volume"}),
    # the ablation "no F" (docs/method.md §3): a Gaussian policy on the lift alone
    "jacobian-d0": ("jacobian", {"depth": 0}),
    # the seed-faithful fixed embedding instead of the learned lift
    "jacobian-pad": ("jacobian", {"embed": "pad"}),
    # the state-conditioned F_s instead of one F for every state (docs/method.md §7)
    "jacobian-cond": ("jacobian", {"conditioning": "state"}),
    # The off-policy ablation rows: depth 0, shared F, conditioned F. Each names its
    # conditioning, since a preset may set one (MultiGoal's jacobian-sac preset conditions F).
    # off-policy, "no F": depth 0 is a squashed Gaussian, SB3 SAC's actor (docs/method.md §7)
    "jacobian-sac-d0": ("jacobian-sac", {"depth": 0, "conditioning": "none"}),
    # off-policy with one F shared by every state (the state only moves the base Gaussian)
    "jacobian-sac-shared": ("jacobian-sac", {"conditioning": "none"}),
    # off-policy with the state-conditioned F_s instead of one F shared by every state
    "jacobian-sac-cond": ("jacobian-sac", {"conditioning": "state"}),
    # the mass-covering forward-KL actor update instead of SAC's mode-seeking reverse KL
    "jacobian-sac-fkl": ("jacobian-sac", {"actor_objective": "forward_kl"}),
    # forward KL on the depth-0 Gaussian: what the update covers without F
    "jacobian-sac-fkl-d0": (
        "jacobian-sac",
        {"actor_objective": "forward_kl", "depth": 0, "conditioning": "none"},
    ),
    # forward KL with the state-conditioned F_s
    "jacobian-sac-fkl-cond": (
        "jacobian-sac",
        {"actor_objective": "forward_kl", "conditioning": "state"},
    ),
    # forward KL estimated by resampling one proposal per state, proposals kept 5% off each side
    # of the box (docs/method.md §7): the update of the FourModes preset, for any env
    "jacobian-sac-fkl-rs": ("jacobian-sac", FKL_RESAMPLED),
    # the same update on the depth-0 Gaussian: what F adds under the same update
    "jacobian-sac-fkl-rs-d0": (
        "jacobian-sac",
        {**FKL_RESAMPLED, "depth": 0, "conditioning": "none"},
    ),
    # SAC's reverse KL on the preset's F (FourModes' preset uses the forward KL)
    "jacobian-sac-rkl": ("jacobian-sac", {"actor_objective": "reverse_kl"}),
    # A higher entropy target than SAC's "auto" (−dim A): 0 nats, a quarter of the volume of a
    # 2-D action box [−1, 1]² (log 4 = 1.39 is the uniform's). Does more entropy let a policy
    # keep several goals, and F more of them than the Gaussian (MultiGoal, README)?
    "jacobian-sac-ent0": ("jacobian-sac", {"target_entropy": 0.0}),
    "jacobian-sac-d0-ent0": (
        "jacobian-sac",
        {"depth": 0, "conditioning": "none", "target_entropy": 0.0},
    ),
    "sac-ent0": ("sac", {"target_entropy": 0.0}),
}
"""Agent name → ``(base agent for jacrl.train.train, hyperparameter overrides)``."""


def resolve(name: str) -> tuple[str, dict[str, Any]]:
    """The base agent and overrides of ``name``; a copy, so callers may add to the overrides."""
    try:
        agent, hp = VARIANTS[name]
    except KeyError:
        raise ConfigError(
            f"unknown agent '{name}'; accepted: {', '.join(VARIANTS)} "
            "(add a variant in jacrl/compare/variants.py)"
        ) from None
    return agent, dict(hp)


def parse_names(text: str) -> list[str]:
    """Split ``"jacobian,ppo"`` into checked, de-duplicated names in the order given."""
    names = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not names:
        raise ConfigError(f"--agents needs at least one name; accepted: {', '.join(VARIANTS)}")
    for name in names:
        resolve(name)
    return names


def describe(names: Iterable[str]) -> str:
    """One line per name with its base agent and overrides, for ``--help`` and the README."""
    lines = []
    for name in names:
        agent, hp = VARIANTS[name]
        extra = ", ".join(f"{k}={v}" for k, v in hp.items())
        lines.append(
            f"{name}: {agent}, preset hyperparameters" + (f" with {extra}" if extra else "")
        )
    return "\n".join(lines)

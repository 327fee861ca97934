"""The conditioning repairs of a Jacobian learner: counted, and announced once.

Both learners call ``policy.enforce_conditioning`` after their updates; with
``ill_conditioned="repair"`` a layer past ``max_cond`` is projected back under it (docs/method.md
§6). A repair is a change to the weights the optimizer did not make, so the user hears of the
first one (a warning) and of every later one (the ``jacobian/reconditions`` count).
"""

from __future__ import annotations

import warnings
from typing import Protocol


class RepairingAgent(Protocol):
    """What :func:`count_reconditions` reads and writes on an agent."""

    num_timesteps: int
    max_cond: float
    reconditions: int


def count_reconditions(agent: RepairingAgent, repaired: list[int]) -> None:
    """Add the layers ``enforce_conditioning`` repaired to ``agent.reconditions``; warn the first
    time a run repairs any."""
    if repaired and not agent.reconditions:
        warnings.warn(
            f"env step {agent.num_timesteps}: the update drove cond(V) of layer(s) {repaired} "
            f"past max_cond={agent.max_cond:g}; projected back to max_cond/2 "
            "(ill_conditioned='repair'; 'raise' stops instead). Later repairs are counted in "
            "jacobian/reconditions.",
            stacklevel=3,
        )
    agent.reconditions += len(repaired)

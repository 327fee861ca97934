"""The off-policy max-entropy Jacobian learner: soft actor-critic on the invertible policy."""

from jacrl.agents.sac.agent import JacobianSAC

__all__ = ["JacobianSAC"]

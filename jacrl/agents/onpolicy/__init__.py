"""The on-policy Jacobian agent: the density and volume rules on rollouts (REINFORCE / PPO)."""

from jacrl.agents.onpolicy.agent import JacobianAgent

__all__ = ["JacobianAgent"]

"""The Jacobian agent: policy (invertible network), rollout buffer, training loop."""

from jacrl.agents.jacobian.agent import JacobianAgent
from jacrl.agents.jacobian.policy import JacobianPolicy

__all__ = ["JacobianAgent", "JacobianPolicy"]

"""jacrl's agents: :class:`BaseAgent` (the SB3-like API they share), the on-policy
:class:`JacobianAgent` and the off-policy :class:`JacobianSAC`."""

from jacrl.agents.base import BaseAgent
from jacrl.agents.onpolicy import JacobianAgent
from jacrl.agents.sac import JacobianSAC

__all__ = ["BaseAgent", "JacobianAgent", "JacobianSAC"]

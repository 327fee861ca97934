"""jacrl's agents: :class:`BaseAgent` (the SB3-like API they share) and :class:`JacobianAgent`."""

from jacrl.agents.base import BaseAgent
from jacrl.agents.onpolicy import JacobianAgent

__all__ = ["BaseAgent", "JacobianAgent"]

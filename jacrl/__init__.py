"""jacrl: King-Yin Yan's reward-driven Jacobian learning rule, packaged as Gymnasium agents.

Importing jacrl registers its environments (``jacrl/...`` ids) with Gymnasium.
"""

__version__ = "0.1.0"

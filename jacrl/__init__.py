"""jacrl: King-Yin Yan's reward-driven Jacobian learning rule, packaged as Gymnasium agents.

Importing jacrl registers its environments (``jacrl/...`` ids) with Gymnasium.
"""

__version__ = "0.1.0"  # first: submodules read it while jacrl is still importing

import jacrl.envs  # noqa: E402, F401  (registers the jacrl/ env ids, like gymnasium.envs)
from jacrl import nn  # noqa: E402
from jacrl.agents import JacobianAgent  # noqa: E402
from jacrl.agents.backprop import BackpropAgent  # noqa: E402

__all__ = ["BackpropAgent", "JacobianAgent", "__version__", "nn"]

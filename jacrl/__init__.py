"""jacrl: King-Yin Yan's reward-driven Jacobian learning rule, packaged as Gymnasium agents.

Importing jacrl registers its environments (``jacrl/...`` ids) with Gymnasium.
"""

__version__ = "0.1.0"  # first: submodules read it while jacrl is still importing

import jacrl.envs  # noqa: F401  (registers the jacrl/ env ids, like gymnasium.envs)
from jacrl import nn
from jacrl.agents import JacobianAgent, JacobianSAC
from jacrl.agents.backprop import BackpropAgent
from jacrl.common.errors import (
    CheckpointError,
    ConfigError,
    ConvergenceError,
    DatasetError,
    InputShapeError,
    JacrlError,
    NonFiniteError,
    OutsideBoxError,
    PrecisionLossError,
    RunFolderError,
    SingularWeightError,
    UnsupportedSpaceError,
)

__all__ = [
    "BackpropAgent",
    "CheckpointError",
    "ConfigError",
    "ConvergenceError",
    "DatasetError",
    "InputShapeError",
    "JacobianAgent",
    "JacobianSAC",
    "JacrlError",
    "NonFiniteError",
    "OutsideBoxError",
    "PrecisionLossError",
    "RunFolderError",
    "SingularWeightError",
    "UnsupportedSpaceError",
    "__version__",
    "nn",
]

"""The invertible policy shared by every Jacobian learner: lift x0(s), noise σ, network F."""

from jacrl.policies.invertible import InvertiblePolicy

__all__ = ["InvertiblePolicy"]

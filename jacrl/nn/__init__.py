"""Invertible networks for Jacobian learning (nflows-style blocks, docs/method.md §1).

Every block maps ``(batch, n)`` tensors and returns ``(outputs, logabsdet)`` with ``logabsdet`` of
shape ``(batch,)``; :class:`InvertibleMLP` composes them and gives the learning signal
ℓ(y0) = log|det ∂F⁻¹/∂y (y0)| via :meth:`InvertibleMLP.inverse_and_logdet`.
"""

from jacrl.nn.activations import (
    ACTIVATIONS,
    Activation,
    Asinh,
    LeakyReLU,
    SmoothLeakyReLU,
    make_activation,
)
from jacrl.nn.linear import InverseLinear, InvertibleLinear, LULinear
from jacrl.nn.mlp import PARAMETERIZATIONS, InvertibleMLP
from jacrl.nn.validation import InputShapeError, SingularWeightError

__all__ = [
    "ACTIVATIONS",
    "PARAMETERIZATIONS",
    "Activation",
    "Asinh",
    "InputShapeError",
    "InverseLinear",
    "InvertibleLinear",
    "InvertibleMLP",
    "LULinear",
    "LeakyReLU",
    "SingularWeightError",
    "SmoothLeakyReLU",
    "make_activation",
]

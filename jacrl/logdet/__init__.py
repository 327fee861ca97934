"""Gradients of the learning signal ℓ(y0) = log|det ∂F⁻¹/∂y (y0)| with respect to the weights.

Four implementations that must agree: :func:`logdet_grad` (fast, exact: one inverse pass and a
hand-written backward), :func:`backprop_logdet_grad` (simple, exact: autograd through one inverse
pass, the fast path's reference), :func:`autograd_logdet` (naive: jacrev + slogdet per sample)
and :func:`seed_logdet_grad` (the seed's literal eqs. 13–19, one recursion per weight).
"""

from jacrl.logdet.agreement import max_relative_error
from jacrl.logdet.autograd import autograd_jacobian, autograd_logdet, inverse_map
from jacrl.logdet.backprop import backprop_logdet_grad, named_gradients, weighted_logdet
from jacrl.logdet.fast import logdet_grad
from jacrl.logdet.seed import seed_absdet_grad, seed_jacobian, seed_logdet_grad

__all__ = [
    "autograd_jacobian",
    "autograd_logdet",
    "backprop_logdet_grad",
    "inverse_map",
    "logdet_grad",
    "max_relative_error",
    "named_gradients",
    "seed_absdet_grad",
    "seed_jacobian",
    "seed_logdet_grad",
    "weighted_logdet",
]

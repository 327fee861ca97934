"""Hand-written backprop in NumPy: the seed-003 MLP and the seed-001 (UFLDL) matrix gradients.

These are references without autograd: the tests pin them to torch, and the MLP is the
``engine="numpy"`` learner of the supervised baseline.
"""

from jacrl.backprop.mlp import MLP, ForwardCache, Gradients, softmax_cross_entropy

__all__ = ["MLP", "ForwardCache", "Gradients", "softmax_cross_entropy"]

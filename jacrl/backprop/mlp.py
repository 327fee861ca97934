"""A multilayer perceptron trained by hand-written backprop in batch-matrix form (seed 003).

Notation of seed 003 (``003_07202ee328403318.txt``): a batch ``X`` of ``m`` rows passes through

    Z_1 = X,   Z_{i+1} = σ_i(Z_i W_i + b_i),   i = 1, …, L            (eq. 12)

with ``W_i ∈ R^{n_i × n_{i+1}}``; the last layer is linear (σ_L = identity), as in the seed's
two-layer ``h(X) = σ(X W_1) W_2`` (eq. 5), so ``Z_{L+1}`` are the logits. The backward pass starts
from the gradient of the softmax cross-entropy, averaged over the batch,

    G_{L+1} = ∇_{Z_{L+1}} ℓ = (S − I_y) / m,   S = softmax(Z_{L+1})    (eqs. 9–10)

and runs

    D_i   = G_{i+1} ∘ σ_i′(Z_i W_i + b_i)
    G_i   = D_i W_iᵀ                                                   (eq. 14)
    ∇W_i  = Z_iᵀ D_i,   ∇b_i = 1ᵀ D_i                                  (eqs. 15–16)

which is the chain rule plus the cached ``Z_i`` and pre-activations, exactly as the seed says.
NumPy only, so it doubles as an autograd-free reference for the torch learners; it is the
``engine="numpy"`` of :class:`jacrl.agents.backprop.BackpropAgent`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

import numpy as np

from jacrl.common.errors import JacrlError

__all__ = ["MLP", "ForwardCache", "Gradients", "HiddenActivation", "softmax_cross_entropy"]

HiddenActivation = Literal["sigmoid", "tanh", "relu"]
"""σ of the hidden layers (the output layer is linear)."""


def _sigmoid(u: np.ndarray) -> np.ndarray:
    # the two-branch form never evaluates exp of a large positive number
    e = np.exp(-np.abs(u))
    return np.where(u >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _sigmoid_grad(u: np.ndarray) -> np.ndarray:
    s = _sigmoid(u)
    return s * (1.0 - s)


# σ and σ′, both as functions of the pre-activation U = Z W + b
_SIGMA_AND_DERIVATIVE: dict[HiddenActivation, tuple[Callable[[np.ndarray], np.ndarray], ...]] = {
    "sigmoid": (_sigmoid, _sigmoid_grad),
    "tanh": (np.tanh, lambda u: 1.0 - np.tanh(u) ** 2),
    "relu": (lambda u: np.maximum(u, 0.0), lambda u: (u > 0).astype(u.dtype)),
}


@dataclass
class ForwardCache:
    """What the backward pass needs: layer inputs ``Z_1 … Z_{L+1}`` and pre-activations ``U_i``."""

    Z: list[np.ndarray]
    U: list[np.ndarray]

    @property
    def logits(self) -> np.ndarray:
        return self.Z[-1]


@dataclass
class Gradients:
    """∇W_i and ∇b_i for every layer, in layer order."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]


def softmax_cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of integer labels ``y`` and its gradient ``G_{L+1} = (S − I_y) / m``.

    The log-sum-exp is shifted by the row maximum, so large logits do not overflow.
    """
    m = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_S = shifted - log_norm
    rows = np.arange(m)
    loss = -float(log_S[rows, y].mean())
    G = np.exp(log_S)
    G[rows, y] -= 1.0
    return loss, G / m


class MLP:
    """The seed-003 network: ``len(sizes) - 1`` layers, σ on all but the last.

    :param sizes: ``(n_1, …, n_{L+1})``: input width, hidden widths, number of classes.
    :param activation: σ of the hidden layers (seed 002's network uses sigmoid).
    :param bias: add ``b_i`` to every layer (the seed allows it, "Z_i W_i + b_i").
    :param seed: seeds the Glorot (tanh/sigmoid) or He (relu) uniform initialisation.
    :param dtype: float64 for gradient checks, float32 for speed.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: HiddenActivation = "sigmoid",
        bias: bool = True,
        seed: int | None = None,
        dtype: type[np.floating] = np.float64,
    ) -> None:
        if len(sizes) < 2 or any(int(n) != n or n < 1 for n in sizes):
            raise JacrlError(f"sizes must be >= 2 positive integers (input … classes), got {sizes}")
        if activation not in _SIGMA_AND_DERIVATIVE:
            raise JacrlError(
                f"activation must be one of {sorted(_SIGMA_AND_DERIVATIVE)}, got {activation!r}"
            )
        self.sizes = tuple(int(n) for n in sizes)
        self.activation = activation
        self.bias = bias
        self.dtype = np.dtype(dtype)
        self._sigma, self._sigma_grad = _SIGMA_AND_DERIVATIVE[activation]
        rng = np.random.default_rng(seed)
        gain = np.sqrt(6.0) if activation == "relu" else np.sqrt(3.0)  # He / Glorot uniform
        self.weights: list[np.ndarray] = []
        self.biases: list[np.ndarray] = []
        for n_in, n_out in pairwise(self.sizes):
            fan = n_in if activation == "relu" else (n_in + n_out) / 2
            limit = gain / np.sqrt(fan)
            self.weights.append(rng.uniform(-limit, limit, (n_in, n_out)).astype(self.dtype))
            self.biases.append(np.zeros(n_out, dtype=self.dtype))

    @property
    def depth(self) -> int:
        """L, the number of weight matrices."""
        return len(self.weights)

    def forward(self, X: np.ndarray) -> ForwardCache:
        """Eq. (12): ``Z_{i+1} = σ_i(Z_i W_i + b_i)``, caching what backward needs."""
        Z = [np.asarray(X, dtype=self.dtype)]
        U: list[np.ndarray] = []
        for i, (W, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            u = Z[-1] @ W + b if self.bias else Z[-1] @ W
            U.append(u)
            Z.append(u if i == self.depth - 1 else self._sigma(u))
        return ForwardCache(Z, U)

    def backward(self, cache: ForwardCache, G_out: np.ndarray) -> Gradients:
        """Eqs. (14)–(16), from ``G_out = ∇_{Z_{L+1}} ℓ`` down to layer 1."""
        grads_W: list[np.ndarray] = [np.empty(0)] * self.depth
        grads_b: list[np.ndarray] = [np.empty(0)] * self.depth
        G = G_out
        for i in reversed(range(self.depth)):
            D = G if i == self.depth - 1 else G * self._sigma_grad(cache.U[i])
            grads_W[i] = cache.Z[i].T @ D  # eq. (15)
            grads_b[i] = D.sum(axis=0) if self.bias else np.zeros_like(self.biases[i])
            if i > 0:
                G = D @ self.weights[i].T  # eq. (14)
        return Gradients(grads_W, grads_b)

    def logits(self, X: np.ndarray) -> np.ndarray:
        return self.forward(X).logits

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The class with the largest logit, per row."""
        return self.logits(X).argmax(axis=1)

    def loss_and_gradients(self, X: np.ndarray, y: np.ndarray) -> tuple[float, Gradients]:
        """Mean softmax cross-entropy of a batch and its gradient w.r.t. every W_i, b_i."""
        cache = self.forward(X)
        loss, G_out = softmax_cross_entropy(cache.logits, np.asarray(y))
        return loss, self.backward(cache, G_out)

    def sgd_step(self, X: np.ndarray, y: np.ndarray, learning_rate: float) -> float:
        """One plain SGD step ``W_i ← W_i − η ∇W_i`` on a batch; returns the loss before it."""
        loss, grads = self.loss_and_gradients(X, y)
        for W, b, gW, gb in zip(
            self.weights, self.biases, grads.weights, grads.biases, strict=True
        ):
            W -= learning_rate * gW
            b -= learning_rate * gb
        return loss

"""The two-layer sigmoid/softmax network of seed 002 as a function of one flat parameter vector.

Seed 002 writes the network in batch-matrix form (eqs. 13-16)::

    A1 = X W1 + b1,   Z1 = sigmoid(A1),   A2 = Z1 W2 + b2,   Y = softmax(A2)

with W1 ∈ R^{d×h} (eq. 7), b1 ∈ R^h (eq. 8), W2 ∈ R^{h×c} (eq. 9), b2 ∈ R^c (eq. 10), and the
parameters stacked in the order θ = (W1, b1, W2, b2) (eqs. 11, 18). Everything downstream (the
gradient step of eq. 20, its Jacobian Df of eqs. 12/22/23) is a function of that flat θ, so the
network is written here as pure functions of θ for ``torch.func``.

The loss is the cross-entropy L = −(1/k) Σ_i Σ_j t_j^i log y_j^i. Seed 002's eq. 17 prints
``y log y`` (the entropy of the prediction, which ignores the labels): that is a typo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from jacrl.common.errors import JacrlError

BLOCK_NAMES: tuple[str, str, str, str] = ("W1", "b1", "W2", "b2")
"""The four parameter blocks of eq. 18, in the order they are stacked into θ."""


@dataclass(frozen=True)
class ParamLayout:
    """Where each block (W1, b1, W2, b2) of eq. 18 lives inside the flat θ.

    :param n_in: input width d (784 for MNIST, 64 for sklearn digits).
    :param n_hidden: hidden width h (50 in seed 002).
    :param n_out: number of classes c (10).
    """

    n_in: int
    n_hidden: int
    n_out: int

    def __post_init__(self) -> None:
        if min(self.n_in, self.n_hidden, self.n_out) < 1:
            raise JacrlError(
                f"layer widths must be positive integers, got "
                f"{self.n_in}-{self.n_hidden}-{self.n_out}"
            )

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of each block: W1 (d, h), b1 (h,), W2 (h, c), b2 (c,) as in eqs. 7-10."""
        d, h, c = self.n_in, self.n_hidden, self.n_out
        return {"W1": (d, h), "b1": (h,), "W2": (h, c), "b2": (c,)}

    @property
    def sizes(self) -> dict[str, int]:
        """Number of scalars in each block."""
        return {name: math.prod(shape) for name, shape in self.shapes.items()}

    @property
    def slices(self) -> dict[str, slice]:
        """The slice of θ holding each block (row/column ranges of the blocks of eq. 23)."""
        out, start = {}, 0
        for name in BLOCK_NAMES:
            out[name] = slice(start, start + self.sizes[name])
            start += self.sizes[name]
        return out

    @property
    def n_params(self) -> int:
        """dim θ: 39,760 = 784·50 + 50 + 50·10 + 10 for seed 002 (footnote 1)."""
        return sum(self.sizes.values())

    def unflatten(self, theta: Tensor) -> dict[str, Tensor]:
        """Views of the blocks of θ, reshaped to eqs. 7-10."""
        if theta.shape != (self.n_params,):
            raise JacrlError(
                f"θ must be a flat vector of length {self.n_params} for a "
                f"{self.n_in}-{self.n_hidden}-{self.n_out} network, got shape {tuple(theta.shape)}"
            )
        return {name: theta[self.slices[name]].view(self.shapes[name]) for name in BLOCK_NAMES}

    def flatten(self, blocks: dict[str, Tensor]) -> Tensor:
        """Stack W1, b1, W2, b2 into θ (eq. 18)."""
        return torch.cat([blocks[name].reshape(-1) for name in BLOCK_NAMES])


def init_params(layout: ParamLayout, seed: int = 0, dtype: torch.dtype = torch.float64) -> Tensor:
    """A θ drawn like ``torch.nn.Linear``'s default initialisation.

    Every weight and bias of a layer with fan-in m is uniform on [−1/√m, 1/√m], which is what
    ``nn.Linear.reset_parameters`` produces. Matching it matters because the issue's observation
    (negative curvature at initialisation, λ_min(∇²L) < 0) is about that init.
    """
    generator = torch.Generator().manual_seed(seed)
    fan_in = {"W1": layout.n_in, "b1": layout.n_in, "W2": layout.n_hidden, "b2": layout.n_hidden}
    blocks = {
        name: (torch.rand(shape, generator=generator, dtype=dtype) * 2 - 1)
        / math.sqrt(fan_in[name])
        for name, shape in layout.shapes.items()
    }
    return layout.flatten(blocks)


def hidden_preactivation(layout: ParamLayout, theta: Tensor, x: Tensor) -> Tensor:
    """A1 = X W1 + b1 (eq. 13): the only place the inputs X enter, and linearly in (W1, b1)."""
    p = layout.unflatten(theta)
    return x @ p["W1"] + p["b1"]


def head_cross_entropy_sum(a1: Tensor, w2: Tensor, b2: Tensor, t: Tensor) -> Tensor:
    """−Σ_i Σ_j t_j^i log y_j^i given A1: sigmoid (eq. 14), A2 = Z1 W2 + b2 (eq. 15), softmax
    (eq. 16) and the corrected cross-entropy (eq. 17), summed over the rows, not yet divided by k.

    Summing rather than averaging lets a loss over chunks be divided once by the full k;
    ``log_softmax`` keeps log y finite when a y_j underflows.
    """
    a2 = torch.sigmoid(a1) @ w2 + b2
    return -(t * torch.log_softmax(a2, dim=-1)).sum()


def cross_entropy_sum(layout: ParamLayout, theta: Tensor, x: Tensor, t: Tensor) -> Tensor:
    """The summed cross-entropy of the whole network (eqs. 13-17) as a function of θ."""
    p = layout.unflatten(theta)
    return head_cross_entropy_sum(hidden_preactivation(layout, theta, x), p["W2"], p["b2"], t)


def logits(layout: ParamLayout, theta: Tensor, x: Tensor) -> Tensor:
    """A2 = sigmoid(X W1 + b1) W2 + b2 (eqs. 13-15), the input of the softmax (eq. 16)."""
    p = layout.unflatten(theta)
    return torch.sigmoid(hidden_preactivation(layout, theta, x)) @ p["W2"] + p["b2"]


def accuracy(layout: ParamLayout, theta: Tensor, x: Tensor, t: Tensor) -> float:
    """Fraction of rows whose largest output is the labelled class."""
    with torch.no_grad():
        return (logits(layout, theta, x).argmax(-1) == t.argmax(-1)).double().mean().item()

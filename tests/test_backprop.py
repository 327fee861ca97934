"""The hand-written gradients (seeds 003 and 001) against torch autograd, in float64."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from jacrl.backprop import MLP, softmax_cross_entropy, ufldl
from jacrl.common.errors import JacrlError

TOL = {"rtol": 1e-6, "atol": 1e-9}
TORCH_ACT = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}


def t64(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64, requires_grad=True)


def test_softmax_cross_entropy_matches_torch() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(7, 4)) * 30  # large: the shifted log-sum-exp must not overflow
    y = rng.integers(0, 4, size=7)
    loss, G = softmax_cross_entropy(logits, y)
    logits_t = t64(logits)
    loss_t = torch.nn.functional.cross_entropy(logits_t, torch.tensor(y))
    loss_t.backward()
    assert loss == pytest.approx(loss_t.item(), rel=1e-12)
    assert logits_t.grad is not None
    np.testing.assert_allclose(G, logits_t.grad.numpy(), **TOL)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("sizes", [(5, 3), (5, 7, 3), (6, 8, 5, 4)])
@pytest.mark.parametrize("bias", [True, False])
def test_mlp_gradients_match_autograd(activation: str, sizes: tuple[int, ...], bias: bool) -> None:
    net = MLP(sizes, activation=activation, bias=bias, seed=1)  # type: ignore[arg-type]
    rng = np.random.default_rng(2)
    for b in net.biases:  # non-zero biases, so their gradients are tested too
        b += rng.normal(size=b.shape) * 0.3
    X = rng.normal(size=(9, sizes[0]))
    y = rng.integers(0, sizes[-1], size=9)
    loss, grads = net.loss_and_gradients(X, y)

    Ws = [t64(W) for W in net.weights]
    bs = [t64(b) for b in net.biases]
    Z = torch.tensor(X)
    for i, (W, b) in enumerate(zip(Ws, bs, strict=True)):
        U = Z @ W + b if bias else Z @ W
        Z = U if i == len(Ws) - 1 else TORCH_ACT[activation](U)
    loss_t = torch.nn.functional.cross_entropy(Z, torch.tensor(y))
    loss_t.backward()

    assert loss == pytest.approx(loss_t.item(), rel=1e-12)
    for g, W in zip(grads.weights, Ws, strict=True):
        assert W.grad is not None
        np.testing.assert_allclose(g, W.grad.numpy(), **TOL)
    if bias:
        for g, b in zip(grads.biases, bs, strict=True):
            assert b.grad is not None
            np.testing.assert_allclose(g, b.grad.numpy(), **TOL)


def test_sgd_step_is_plain_sgd_and_learns() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + 2 * (X[:, 2] > 0)
    net = MLP((4, 16, 4), activation="tanh", seed=0)
    before = [W.copy() for W in net.weights]
    _, grads = net.loss_and_gradients(X, y)
    first_loss = net.sgd_step(X, y, learning_rate=0.1)
    for W0, W, g in zip(before, net.weights, grads.weights, strict=True):
        np.testing.assert_allclose(W, W0 - 0.1 * g, rtol=1e-12)
    for _ in range(300):
        last_loss = net.sgd_step(X, y, learning_rate=0.5)
    assert last_loss < 0.3 * first_loss
    assert np.mean(net.predict(X) == y) > 0.9


def test_mlp_float32_and_errors() -> None:
    net = MLP((3, 4, 2), dtype=np.float32, seed=0)
    assert net.logits(np.ones((2, 3))).dtype == np.float32 and net.depth == 2
    with pytest.raises(JacrlError, match="sizes"):
        MLP((3,))
    with pytest.raises(JacrlError, match="activation"):
        MLP((3, 2), activation="swish")  # type: ignore[arg-type]


def _autograd(f: Callable[..., torch.Tensor], *args: np.ndarray, wrt: int) -> np.ndarray:
    tensors = [t64(a) for a in args]
    f(*tensors).backward()
    grad = tensors[wrt].grad
    assert grad is not None
    return grad.numpy()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def test_sparse_coding_gradients(rng: np.random.Generator) -> None:
    A, s, x, gamma = rng.normal(size=(6, 4)), rng.normal(size=(4, 5)), rng.normal(size=(6, 5)), 0.3

    def cost(A: torch.Tensor, s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return ((A @ s - x) ** 2).sum() + gamma * (A**2).sum()

    assert ufldl.sparse_coding_cost(A, s, x, gamma) == pytest.approx(
        cost(*map(torch.tensor, (A, s, x))).item(), rel=1e-12
    )
    np.testing.assert_allclose(
        ufldl.sparse_coding_grad_A(A, s, x, gamma), _autograd(cost, A, s, x, wrt=0), **TOL
    )
    # ∇_s has no γ term: the penalty is on A only
    np.testing.assert_allclose(
        ufldl.sparse_coding_grad_s(A, s, x), _autograd(cost, A, s, x, wrt=1), **TOL
    )


def test_topographic_l1_gradient(rng: np.random.Generator) -> None:
    s, epsilon = rng.normal(size=(6, 5)), 1e-2
    V = (rng.random(size=(3, 6)) < 0.5).astype(float)  # each group pools some features

    def penalty(s: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(V @ (s * s) + epsilon).sum()

    assert ufldl.topographic_l1(s, V, epsilon) == pytest.approx(
        penalty(torch.tensor(s), torch.tensor(V)).item(), rel=1e-12
    )
    np.testing.assert_allclose(
        ufldl.topographic_l1_grad(s, V, epsilon), _autograd(penalty, s, V, wrt=0), **TOL
    )


@pytest.mark.parametrize("shape", [(3, 5), (4, 4)])
def test_ica_reconstruction_gradient(rng: np.random.Generator, shape: tuple[int, int]) -> None:
    W, x = rng.normal(size=shape), rng.normal(size=(shape[1], 7))

    def cost(W: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return ((W.T @ (W @ x) - x) ** 2).sum()

    assert ufldl.ica_reconstruction_cost(W, x) == pytest.approx(
        cost(torch.tensor(W), torch.tensor(x)).item(), rel=1e-12
    )
    expected = _autograd(cost, W, x, wrt=0)
    np.testing.assert_allclose(ufldl.ica_reconstruction_grad(W, x), expected, **TOL)
    if shape[0] == shape[1]:  # the seed's literal (Wᵀ)(2r)xᵀ term type-checks, and is wrong
        r = W.T @ W @ x - x
        seed_literal = W.T @ (2 * r) @ x.T + 2 * (W @ x) @ r.T
        assert not np.allclose(seed_literal, expected)

"""The state-conditioned F_s (jacrl.nn.conditioner) against autograd Jacobians and its own spec."""

from __future__ import annotations

import pytest
import torch

from jacrl.common.errors import ConfigError, NonFiniteError
from jacrl.nn import PARAMETERIZATIONS, InputShapeError, InvertibleMLP
from jacrl.nn.conditioner import StateConditioner

F64 = torch.float64
OBS_DIM = 3


def zeros(*shape: int, dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.zeros(*shape, dtype=dtype)


def make_pair(
    n: int = 4,
    depth: int = 3,
    parameterization: str = "inverse",
    activation: str = "smooth_leaky_relu",
    perturb: float = 0.5,
    seed: int = 0,
) -> tuple[InvertibleMLP, StateConditioner]:
    """F and a conditioner with random non-zero weights (perturb=0: the conditioner at init)."""
    torch.manual_seed(seed)
    net = InvertibleMLP(n, depth, parameterization, activation, dtype=F64)
    conditioner = StateConditioner(OBS_DIM, depth, n, hidden=(8,), dtype=F64)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.2 * torch.randn_like(p))
        if perturb:
            for p in conditioner.parameters():
                p.add_(perturb * torch.randn_like(p))
    return net, conditioner


def reference_forward(net: InvertibleMLP, x: torch.Tensor, shift, log_scale) -> torch.Tensor:
    """F_s from the spec, composed from the public blocks: σ((W_l x + b_l + c_l) ⊙ exp(g_l))."""
    for index, layer in enumerate(net.layers()):
        u = layer(x)[0] + shift[:, index]
        x = net.activation(u * log_scale[:, index].exp())[0]
    return x


def jacobians(fn, points: torch.Tensor, shift, log_scale) -> torch.Tensor:
    """(batch, n, n): ∂fn/∂x of each sample at its own fixed condition, by torch.func.jacrev."""
    rows = []
    for i in range(points.shape[0]):
        condition = (shift[i : i + 1], log_scale[i : i + 1])
        rows.append(torch.func.jacrev(lambda p, c=condition: fn(p[None], c)[0])(points[i]))
    return torch.stack(rows)


CASES = [
    (p, depth, activation)
    for p in sorted(PARAMETERIZATIONS)
    for depth in (1, 3)  # depth 3 with "inverse" runs the batched inverse path
    for activation in ("asinh", "smooth_leaky_relu")
]


@pytest.mark.parametrize(("parameterization", "depth", "activation"), CASES)
def test_round_trip_and_logdets_match_autograd_jacobians(parameterization, depth, activation):
    net, conditioner = make_pair(4, depth, parameterization, activation)
    obs = torch.randn(6, OBS_DIM, dtype=F64)
    with torch.no_grad():
        shift, log_scale = conditioner(obs)
    assert shift.shape == log_scale.shape == (6, depth, 4)
    assert float(log_scale.abs().min()) > 1e-3  # the conditioner really conditions
    x = torch.randn(6, 4, dtype=F64)

    y, forward_logdet = net.forward_and_logdet(x, (shift, log_scale))
    torch.testing.assert_close(y, reference_forward(net, x, shift, log_scale), rtol=0, atol=1e-12)
    assert not torch.allclose(y, net(x))  # and the states matter
    x2, inverse_logdet = net.inverse_and_logdet(y, (shift, log_scale))
    torch.testing.assert_close(x2, x, rtol=1e-10, atol=1e-10)

    forward_ref = torch.linalg.slogdet(jacobians(net.forward, x, shift, log_scale))
    inverse_ref = torch.linalg.slogdet(jacobians(net.inverse, y, shift, log_scale))
    torch.testing.assert_close(forward_logdet, forward_ref.logabsdet, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(inverse_logdet, inverse_ref.logabsdet, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(net.inverse(y, (shift, log_scale)), x2)


@pytest.mark.parametrize("parameterization", sorted(PARAMETERIZATIONS))
def test_at_init_the_conditioned_network_is_the_unconditioned_one(parameterization):
    net, conditioner = make_pair(5, 3, parameterization, perturb=0.0)
    obs = torch.randn(7, OBS_DIM, dtype=F64)
    condition = conditioner(obs)
    assert all(bool((t == 0).all()) for t in condition)
    x = torch.randn(7, 5, dtype=F64)
    y, forward_logdet = net.forward_and_logdet(x)
    y_s, forward_logdet_s = net.forward_and_logdet(x, condition)
    assert torch.equal(y_s, y) and torch.equal(forward_logdet_s, forward_logdet)
    x_s, inverse_logdet_s = net.inverse_and_logdet(y, condition)
    x_u, inverse_logdet = net.inverse_and_logdet(y)
    assert torch.equal(x_s, x_u) and torch.equal(inverse_logdet_s, inverse_logdet)


def test_gradient_reaches_the_conditioner_and_log_scale_is_bounded():
    net, conditioner = make_pair(3, 2, perturb=20.0)  # huge weights: raw log-scales far past B
    obs = torch.randn(16, OBS_DIM, dtype=F64)
    shift, log_scale = conditioner(obs)
    bound = conditioner.max_log_scale
    assert bound is not None
    assert float(log_scale.detach().abs().max()) <= bound
    assert float(log_scale.detach().abs().max()) > 0.9 * bound  # the bound is what stops it
    _, logdet = net.inverse_and_logdet(torch.randn(16, 3, dtype=F64), (shift, log_scale))
    logdet.sum().backward()
    assert all(
        p.grad is not None and bool(p.grad.abs().sum() > 0) for p in conditioner.parameters()
    )


def test_unbounded_log_scale_option():
    torch.manual_seed(1)
    conditioner = StateConditioner(OBS_DIM, 2, 3, max_log_scale=None)
    with torch.no_grad():
        conditioner.net[-1].bias.fill_(5.0)
    _, log_scale = conditioner(torch.zeros(2, OBS_DIM))
    torch.testing.assert_close(log_scale, torch.full((2, 2, 3), 5.0, dtype=F64))


def test_depth_zero_condition_is_empty_and_identity():
    net = InvertibleMLP(3, 0, dtype=F64)
    x = torch.randn(4, 3, dtype=F64)
    y, logdet = net.forward_and_logdet(x, (zeros(4, 0, 3), zeros(4, 0, 3)))
    assert torch.equal(y, x) and torch.equal(logdet, torch.zeros(4, dtype=F64))


@pytest.mark.parametrize(
    ("condition", "match"),
    [
        (zeros(2, 3, 4), "tuple of tensors"),
        ((zeros(2, 3, 4),), "tuple of tensors"),
        ((zeros(2, 3, 4), [0.0]), "log_scale must be a torch.Tensor"),
        ((zeros(2, 3, 4), zeros(1, 3, 4)), r"log_scale must have shape.*\(2, 3, 4\)"),
        ((zeros(2, 2, 4), zeros(2, 2, 4)), r"shift must have shape.*got \(2, 2, 4\)"),
        ((zeros(2, 3, 4, dtype=torch.float32), zeros(2, 3, 4)), "dtype torch.float32"),
    ],
)
def test_bad_conditions_name_what_is_expected(condition, match):
    net = InvertibleMLP(4, 3, dtype=F64)
    for method in (net.forward_and_logdet, net.inverse_and_logdet):
        with pytest.raises(InputShapeError, match=match):
            method(zeros(2, 4), condition)


def test_non_finite_condition_is_named():
    net = InvertibleMLP(2, 1, dtype=F64)
    shift = torch.tensor([[[float("nan"), 0.0]]], dtype=F64)
    with pytest.raises(NonFiniteError, match=r"condition \(shift, log_scale\)"):
        net.forward_and_logdet(torch.zeros(1, 2, dtype=F64), (shift, torch.zeros_like(shift)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"obs_dim": 0}, "obs_dim must be"),
        ({"depth": 0}, "depth must be an int >= 1"),
        ({"hidden": (0,)}, "hidden sizes"),
        ({"max_log_scale": 0.0}, "max_log_scale must be > 0"),
    ],
)
def test_bad_conditioner_configuration(kwargs, match):
    args = {"obs_dim": 3, "depth": 2, "n": 4, **kwargs}
    with pytest.raises(ConfigError, match=match):
        StateConditioner(**args)

"""jacrl.nn: invertible blocks and InvertibleMLP against dense autograd references."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jacrl.common.errors import ConfigError, JacrlError, NonFiniteError, PrecisionLossError
from jacrl.nn import (
    ACTIVATIONS,
    PARAMETERIZATIONS,
    InputShapeError,
    InverseLinear,
    InvertibleMLP,
    LULinear,
    SingularWeightError,
    make_activation,
)
from jacrl.nn.validation import all_finite

F64 = torch.float64
TOL = {torch.float32: 1e-4, torch.float64: 1e-10}


def dense_jacobian(fn, points: torch.Tensor) -> torch.Tensor:
    """(batch, n, n) Jacobians of a row-batch map, one sample at a time via torch.func.jacrev."""
    return torch.func.vmap(torch.func.jacrev(lambda p: fn(p[None])[0]))(points)


def unguarded_forward(net: InvertibleMLP):
    """F composed from the public blocks, without the NaN guard (which vmap cannot trace)."""

    def forward(x: torch.Tensor) -> torch.Tensor:
        for layer in net.layers():
            x = net.activation(layer(x)[0])[0]
        return x

    return forward


def unguarded_inverse(net: InvertibleMLP):
    """F⁻¹ composed from the public blocks (seed eq. 4), without the NaN guard."""

    def inverse(y: torch.Tensor) -> torch.Tensor:
        for layer in reversed(net.layers()):
            y = layer.inverse(net.activation.inverse(y)[0])[0]
        return y

    return inverse


def make_net(
    n=4, depth=3, parameterization="inverse", activation="asinh", dtype=F64, seed=0, max_cond=1e6
):
    torch.manual_seed(seed)
    return InvertibleMLP(n, depth, parameterization, activation, dtype=dtype, max_cond=max_cond)


# Blocks -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_contract_and_derivatives(name):
    act = make_activation(name)
    x = torch.linspace(-3, 3, 14, dtype=F64).reshape(2, 7)
    y, fwd = act(x)
    x2, inv = act.inverse(y)
    assert fwd.shape == inv.shape == (2,)
    torch.testing.assert_close(x2, x)
    torch.testing.assert_close(fwd + inv, torch.zeros(2, dtype=F64))
    # (σ⁻¹)′ and (σ⁻¹)″ against autograd of σ⁻¹, elementwise (away from leaky ReLU's kink).
    u = torch.tensor([-2.0, -0.7, 0.3, 1.9], dtype=F64, requires_grad=True)
    (d1,) = torch.autograd.grad(act.inverse_value(u).sum(), u, create_graph=True)
    torch.testing.assert_close(d1, act.inverse_derivative(u))
    torch.testing.assert_close(d1.log(), act.log_inverse_derivative(u))
    d2 = torch.autograd.grad(d1.sum(), u)[0] if d1.requires_grad else torch.zeros_like(u)
    torch.testing.assert_close(d2, act.inverse_second_derivative(u))
    assert act.piecewise_linear == bool((d2 == 0).all())


def test_log_cosh_is_finite_where_cosh_overflows():
    u = torch.tensor([-1000.0, 0.0, 1000.0], dtype=F64)
    expected = torch.tensor([1000.0 - math.log(2.0), 0.0, 1000.0 - math.log(2.0)], dtype=F64)
    torch.testing.assert_close(make_activation("asinh").log_inverse_derivative(u), expected)


@pytest.mark.parametrize("layer_cls", [InverseLinear, LULinear])
def test_linear_layer_against_dense_matrix(layer_cls):
    torch.manual_seed(1)
    layer = layer_cls(5, dtype=F64)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    w, v = layer.weight(), layer.inverse_weight()
    torch.testing.assert_close(w @ v, torch.eye(5, dtype=F64))
    x = torch.randn(3, 5, dtype=F64)
    y, fwd = layer(x)
    torch.testing.assert_close(y, x @ w.T + layer.bias)
    torch.testing.assert_close(fwd, torch.linalg.slogdet(w)[1].expand(3))
    x2, inv = layer.inverse(y)
    torch.testing.assert_close(x2, x)
    torch.testing.assert_close(inv, -fwd)


def test_lu_layer_reconstructs_p_l_u():
    torch.manual_seed(2)
    layer = LULinear(6, dtype=F64)
    p = torch.eye(6, dtype=F64)[layer.perm]
    lower, upper = layer.unit_lower(), layer.upper_with_diagonal()
    torch.testing.assert_close(layer.weight(), p @ lower @ upper)
    torch.testing.assert_close(torch.diagonal(lower), torch.ones(6, dtype=F64))
    torch.testing.assert_close(layer.log_abs_det_inverse(), -layer.log_diag.sum())


@pytest.mark.parametrize("layer_cls", [InverseLinear, LULinear])
def test_layers_start_orthogonal(layer_cls):
    torch.manual_seed(3)
    assert float(layer_cls(16, dtype=F64).condition_number()) == pytest.approx(1.0, abs=1e-8)


@pytest.mark.parametrize("layer_cls", [InverseLinear, LULinear])
def test_log_abs_det_gradient_is_inverse_transpose(layer_cls):
    """∂ log|det V|/∂V = V⁻ᵀ (Jacobi), pulled back to the layer's own parameters."""
    torch.manual_seed(4)
    layer = layer_cls(6, dtype=F64)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    v = layer.inverse_weight().detach().requires_grad_()
    (expected,) = torch.autograd.grad(torch.linalg.slogdet(v)[1], v)
    torch.testing.assert_close(expected, torch.linalg.inv(v).T)
    params = [p for p in layer.parameters() if p is not layer.bias]
    direct = torch.autograd.grad(layer.log_abs_det_inverse(), params, materialize_grads=True)
    via_v = torch.autograd.grad(layer.inverse_weight(), params, grad_outputs=expected)
    for a, b in zip(direct, via_v, strict=True):
        torch.testing.assert_close(a, b)


# InvertibleMLP ----------------------------------------------------------------------------------
CASES = [(p, a, d) for p in sorted(PARAMETERIZATIONS) for a in sorted(ACTIVATIONS) for d in TOL]


@pytest.mark.parametrize(("parameterization", "activation", "dtype"), CASES)
def test_round_trip_and_logdets(parameterization, activation, dtype):
    net = make_net(6, 3, parameterization, activation, dtype)
    x = torch.randn(9, 6, dtype=dtype)
    y, fwd = net.forward_and_logdet(x)
    x2, inv = net.inverse_and_logdet(y)
    torch.testing.assert_close(x2, x, rtol=TOL[dtype], atol=TOL[dtype])
    torch.testing.assert_close(fwd, -inv, rtol=TOL[dtype], atol=TOL[dtype])
    torch.testing.assert_close(net(x), y)
    torch.testing.assert_close(net.inverse(y), x2)
    # against slogdet of the explicit Jacobians, computed in float64
    net64 = net.to(F64)
    assert net64.dtype == F64
    x64, y64 = x.to(F64), y.to(F64)
    fwd_ref = torch.linalg.slogdet(dense_jacobian(unguarded_forward(net64), x64))[1]
    inv_ref = torch.linalg.slogdet(dense_jacobian(unguarded_inverse(net64), y64))[1]
    torch.testing.assert_close(fwd.to(F64), fwd_ref, rtol=TOL[dtype], atol=TOL[dtype])
    torch.testing.assert_close(inv.to(F64), inv_ref, rtol=TOL[dtype], atol=TOL[dtype])


@given(
    n=st.integers(1, 7),
    depth=st.integers(0, 3),
    batch=st.integers(1, 5),
    seed=st.integers(0, 2**16),
    parameterization=st.sampled_from(sorted(PARAMETERIZATIONS)),
    activation=st.sampled_from(sorted(ACTIVATIONS)),
)
@settings(max_examples=40, deadline=None)
def test_property_round_trip_and_inverse_logdet(
    n, depth, batch, seed, parameterization, activation
):
    net = make_net(n, depth, parameterization, activation, F64, seed)
    # y in the range a policy produces: the image of a standard normal x. (A standard normal y
    # itself can be far outside it: sinh∘sinh∘sinh(3) overflows float64.)
    x = 2.0 * torch.randn(batch, n, dtype=F64)
    y = net(x)
    x2, logabsdet = net.inverse_and_logdet(y)
    torch.testing.assert_close(x2, x, rtol=1e-8, atol=1e-8)
    reference = torch.linalg.slogdet(dense_jacobian(unguarded_inverse(net), y))[1]
    torch.testing.assert_close(logabsdet, reference, rtol=1e-8, atol=1e-8)


def test_depth_zero_is_identity():
    net = InvertibleMLP(3, 0)
    x = torch.randn(4, 3)
    for out, logabsdet in (net.forward_and_logdet(x), net.inverse_and_logdet(x)):
        torch.testing.assert_close(out, x)
        torch.testing.assert_close(logabsdet, torch.zeros(4))
    assert net.condition_numbers().shape == (0,)
    assert list(net.parameters()) == []


def test_inverse_logdet_is_differentiable_in_every_weight_but_the_first_bias():
    net = make_net(4, 2, activation="asinh")
    net.inverse_and_logdet(torch.randn(5, 4, dtype=F64))[1].sum().backward()
    for name, p in net.named_parameters():
        # b_1 acts after the last σ⁻¹ of the inverse pass, so ℓ does not depend on it.
        assert (p.grad is None) == (name == "linears.0.bias"), name


@pytest.mark.parametrize("parameterization", sorted(PARAMETERIZATIONS))
def test_frozen_forward_is_a_snapshot_of_the_weights_when_built(parameterization):
    """frozen_forward equals F at the weights it was built from and ignores later steps: it is a
    value, whose owner (InvertiblePolicy) decides when to rebuild it."""
    net = make_net(5, 2, parameterization)
    x = torch.randn(3, 5, dtype=F64)
    reference = net(x)
    snapshot = net.frozen_forward()
    before = snapshot(x)
    torch.testing.assert_close(before, reference, rtol=1e-12, atol=1e-12)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    net.inverse_and_logdet(torch.randn(3, 5, dtype=F64))[1].sum().backward()
    optimizer.step()
    assert not torch.allclose(net(x), reference)
    assert torch.equal(snapshot(x), before)
    torch.testing.assert_close(net.frozen_forward()(x), net(x), rtol=1e-12, atol=1e-12)


def test_frozen_forward_sends_no_gradient_to_the_matrices():
    net = make_net(3, 1)
    x = torch.randn(2, 3, dtype=F64, requires_grad=True)
    net.frozen_forward()(x).sum().backward()
    assert net.linears[0].V.grad is None and x.grad is not None


def test_frozen_forward_refuses_non_finite_weights():
    net = make_net(3, 2)
    with torch.no_grad():
        net.linears[1].bias[0] = float("inf")
    with pytest.raises(SingularWeightError, match="not finite"):
        net.frozen_forward()


def test_n256_float64_and_float32():
    """The feasibility study saw batched slogdet backward / inv / solve fail at 256×256 on this
    torch build; here every 256×256 path must work (one layer, small batch)."""
    for parameterization in sorted(PARAMETERIZATIONS):
        for dtype in TOL:
            net = make_net(256, 1, parameterization, dtype=dtype, seed=5)
            x = torch.randn(2, 256, dtype=dtype)
            y = net(x)
            x2, inv = net.inverse_and_logdet(y)
            torch.testing.assert_close(x2, x, rtol=TOL[dtype], atol=TOL[dtype])
            inv.sum().backward()
            assert all(torch.isfinite(p.grad).all() for p in net.parameters())
            torch.testing.assert_close(net.frozen_forward()(x), y, rtol=TOL[dtype], atol=TOL[dtype])
            if dtype == F64:
                reference = torch.linalg.slogdet(dense_jacobian(unguarded_inverse(net), y))[1]
                torch.testing.assert_close(inv, reference)


# Errors -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (torch.zeros(4), r"shape \(batch, 4\).*x\[None\]"),
        (torch.zeros(2, 3), r"shape \(batch, 4\), got \(2, 3\)"),
        (torch.zeros(1, 2, 4), r"shape \(batch, 4\)"),
        (torch.zeros(2, 4, dtype=F64), r"dtype torch.float64.*torch.float32"),
        ([[0.0] * 4], r"torch.Tensor"),
    ],
)
def test_bad_inputs_name_what_is_expected(bad, match):
    net = InvertibleMLP(4, 2)
    for method in (net.forward_and_logdet, net.inverse_and_logdet, net, net.inverse):
        with pytest.raises(InputShapeError, match=match):
            method(bad)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"activation": "relu"}, r"unknown activation 'relu'.*asinh.*leaky_relu.*smooth_leaky"),
        ({"parameterization": "qr"}, r"unknown parameterization 'qr'.*inverse.*lu"),
        ({"n": 0}, "n must be a positive int"),
        ({"depth": -1}, "depth must be"),
        ({"dtype": torch.float16}, "dtype must be one of"),
        ({"max_cond": 0.5}, "max_cond must be > 1"),
    ],
)
def test_bad_configuration(kwargs, match):
    args = {"n": 4, "depth": 2, **kwargs}
    with pytest.raises(ConfigError, match=match):
        InvertibleMLP(**args)


@pytest.mark.parametrize("name", ["leaky_relu", "smooth_leaky_relu"])
def test_bad_negative_slope(name):
    with pytest.raises(ConfigError, match=r"negative_slope must lie in \(0, 1"):
        make_activation(name, negative_slope=0.0)


def test_smooth_leaky_relu_inverse_is_accurate_over_a_wide_range():
    act = make_activation("smooth_leaky_relu")
    x = torch.linspace(-1e4, 1e4, 20001, dtype=F64)
    x2 = act.inverse_value(act(x[None])[0][0])
    assert float(((x2 - x).abs() / (1 + x.abs())).max()) < 1e-14
    u = torch.tensor([-1e6, 1e6], dtype=F64)  # linear tails: no overflow, bounded log-derivative
    torch.testing.assert_close(
        act.inverse_value(u), torch.tensor([-1e7, 1e6], dtype=F64), rtol=1e-5, atol=0
    )
    assert float(act.log_inverse_derivative(u).abs().max()) <= math.log(10) + 1e-12


def test_deep_asinh_inverse_overflows_where_smooth_leaky_relu_does_not():
    y = torch.full((1, 4), 3.0, dtype=F64)
    for name in ("asinh", "smooth_leaky_relu"):
        net = make_net(4, 3, activation=name)
        with torch.no_grad():
            for layer in net.layers():
                layer.V.copy_(torch.eye(4, dtype=F64))
        if name == "asinh":
            with pytest.raises(NonFiniteError, match="sinh overflows"):
                net.inverse_and_logdet(y)
        else:
            assert bool(torch.isfinite(net.inverse_and_logdet(y)[0]).all())


def test_a_singular_matrix_found_by_the_bound_is_a_singular_weight_error(monkeypatch):
    """The bound inverts the layer matrices in float64; where that inverse fails although the
    pass's own solve did not (seen on one CPU for an exactly singular float32 V), the pass raises
    SingularWeightError, not a bare LinAlgError."""
    net = make_net(4, 2, "inverse")

    def fail(*args, **kwargs):
        raise torch.linalg.LinAlgError("linalg.inv: the input matrix is singular")

    monkeypatch.setattr(InverseLinear, "forward_error", fail)
    with pytest.raises(SingularWeightError, match=r"a layer matrix is singular: linalg\.inv"):
        net.forward_and_logdet(torch.randn(3, 4, dtype=F64))


@pytest.mark.parametrize(
    "values",
    [[], [[]], [[1.0, -2.0], [3.0]], [[1.0], [math.nan]], [[math.inf]], [[0.0, -math.inf]]],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_all_finite_agrees_with_isfinite(values, dtype):
    tensors = [torch.tensor(v, dtype=dtype) for v in values] + [torch.zeros(2, 2)]
    assert all_finite(tensors) == all(bool(torch.isfinite(t).all()) for t in tensors)


def test_errors_are_jacrl_errors():
    assert issubclass(SingularWeightError, JacrlError)
    assert issubclass(InputShapeError, JacrlError)


@pytest.mark.parametrize("dtype", sorted(TOL, key=str))
def test_near_singular_weight_raises_never_nan(dtype):
    net = make_net(4, 2, "inverse", dtype=dtype)
    with torch.no_grad():
        net.linears[1].V[0] = net.linears[1].V[1] * (1 + 1e-9)
    with pytest.raises(SingularWeightError, match=r"layer 1 \(InverseLinear\).*max_cond=1e\+06"):
        net.check_conditioning()
    with torch.no_grad():
        # exactly singular in floating point on every CPU: a zero row stays zero through the
        # LU, so its pivot is an exact 0 (a copied row need not cancel exactly: on some BLAS
        # kernels slogdet then returned a finite -35 rather than -inf)
        net.linears[1].V[0] = 0.0
    y = torch.randn(3, 4, dtype=dtype)
    for method in (net.inverse_and_logdet, net.forward_and_logdet):
        with pytest.raises(SingularWeightError, match="layer 1"):
            method(y)


@pytest.mark.parametrize("parameterization", sorted(PARAMETERIZATIONS))
def test_recondition_raises_small_singular_values_and_keeps_the_rest(parameterization):
    net = make_net(5, 3, parameterization, max_cond=100.0)
    layer = net.linears[1]
    u, s, vh = torch.linalg.svd(layer.trained_matrix())
    s = torch.tensor([3.0, 2.0, 1.0, 1e-3, 1e-5], dtype=F64)  # cond 3e5 > 100
    layer.set_trained_matrix((u * s) @ vh)
    untouched = [net.linears[i].trained_matrix().clone() for i in (0, 2)]

    assert net.recondition() == [1]
    # independent check: singular values of the repaired matrix, vectors unchanged
    repaired = layer.trained_matrix()
    expected = torch.tensor([3.0, 2.0, 1.0, 0.06, 0.06], dtype=F64)  # floor s_max / (100 / 2)
    torch.testing.assert_close(torch.linalg.svdvals(repaired), expected)
    torch.testing.assert_close(repaired, (u * expected) @ vh)
    torch.testing.assert_close(torch.linalg.cond(repaired), torch.tensor(50.0, dtype=F64))
    for index, before in zip((0, 2), untouched, strict=True):
        assert torch.equal(net.linears[index].trained_matrix(), before)
    net.check_conditioning()  # passes now
    assert net.recondition() == []  # nothing left to repair
    x = torch.randn(4, 5, dtype=F64)
    torch.testing.assert_close(net.inverse(net(x)), x)  # still an exact bijection


def test_recondition_leaves_non_finite_weights_to_the_check():
    net = make_net(3, 2, "inverse")
    with torch.no_grad():
        net.linears[0].V[0, 0] = float("nan")
    assert net.recondition() == []
    with pytest.raises(SingularWeightError, match="NaN"):
        net.check_conditioning()


def test_nan_weights_and_inputs_raise():
    net = make_net(3, 2, "lu")
    with pytest.raises(NonFiniteError, match="y contains NaN"):
        net.inverse_and_logdet(torch.tensor([[0.0, float("nan"), 1.0]], dtype=F64))
    with torch.no_grad():
        net.linears[0].upper[0, 1] = float("nan")
    with pytest.raises(SingularWeightError, match=r"layer 0 \(LULinear\).*NaN"):
        net.inverse_and_logdet(torch.zeros(1, 3, dtype=F64))


def test_sinh_overflow_is_reported():
    net = make_net(3, 2, dtype=torch.float32)
    with pytest.raises(NonFiniteError, match=r"sinh overflows.*smooth_leaky_relu"):
        net.inverse_and_logdet(torch.full((1, 3), 200.0))


def test_float32_round_trip_degrades_with_condition_number():
    """Why max_cond and float64 matter (docs/method.md §6): the error grows with cond(V). At
    cond 1e1 a float32 round trip is accurate to 1e-4; at cond 1e5 the forward pass loses three
    digits (measured: 9e-4 of max(1, |y|)), past float32's stated tolerance 1e-3 by its bound, and
    is refused naming the layer instead of returning them."""
    torch.manual_seed(6)
    for cond in (1e1, 1e5):
        net = InvertibleMLP(8, 1, activation="leaky_relu", max_cond=1e9)
        u, _, vt = torch.linalg.svd(torch.randn(8, 8, dtype=F64))
        spectrum = torch.logspace(0, math.log10(cond), 8, dtype=F64)
        with torch.no_grad():
            net.linears[0].V.copy_((u * spectrum) @ vt)
        x = torch.randn(64, 8)
        assert float(net.condition_numbers()[0]) == pytest.approx(cond, rel=1e-3)
        if cond < 1e2:
            with torch.no_grad():
                assert float((net.inverse(net(x)) - x).abs().max()) < 1e-4
        else:
            with pytest.raises(PrecisionLossError, match=r"forward pass from x .* at layer 0"):
                net(x)

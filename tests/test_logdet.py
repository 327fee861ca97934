"""jacrl.logdet: the fast gradient, the naive autograd one and the seed's recursion agree."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jacrl.common.errors import PrecisionLossError
from jacrl.logdet import (
    autograd_jacobian,
    autograd_logdet,
    backprop_logdet_grad,
    logdet_grad,
    max_relative_error,
    seed_absdet_grad,
    seed_jacobian,
    seed_logdet_grad,
    weighted_logdet,
)
from jacrl.logdet.fast import _TransposedLU
from jacrl.nn import (
    ACTIVATIONS,
    PARAMETERIZATIONS,
    InputShapeError,
    InverseLinear,
    InvertibleMLP,
    SingularWeightError,
)

F64 = torch.float64


def generic_net(n, depth, parameterization="inverse", activation="asinh", seed=0, scale=0.3):
    """A float64 net moved off its orthogonal, zero-bias start so no term vanishes by symmetry."""
    torch.manual_seed(seed)
    net = InvertibleMLP(n, depth, parameterization, activation, dtype=F64)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(scale * torch.randn_like(p))
    return net


def sample(net, batch, seed=0):
    """y0 = F(x0) for standard normal x0, and per-sample weights a (advantages)."""
    generator = torch.Generator().manual_seed(seed)
    x0 = torch.randn(batch, net.n, dtype=F64, generator=generator)
    with torch.no_grad():
        return net(x0), torch.randn(batch, dtype=F64, generator=generator)


@pytest.mark.parametrize("parameterization", sorted(PARAMETERIZATIONS))
@pytest.mark.parametrize("n", [2, 4, 8, 16])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_autograd_and_seed_agree(parameterization, n, seed):
    net = generic_net(n, 3, parameterization, seed=seed)
    y0, a = sample(net, 4, seed)
    reference = autograd_logdet(net, y0, a)
    assert max_relative_error(logdet_grad(net, y0, a), reference) <= 1e-5
    assert max_relative_error(backprop_logdet_grad(net, y0, a), reference) <= 1e-5
    assert max_relative_error(seed_logdet_grad(net, y0, a), reference) <= 1e-5
    assert sorted(reference) == sorted(name for name, _ in net.named_parameters())


@pytest.mark.parametrize("parameterization", sorted(PARAMETERIZATIONS))
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize(("depth", "bias"), [(1, True), (2, False), (3, True), (4, True)])
def test_fast_path_matches_the_simple_reference(parameterization, activation, depth, bias):
    """The hand-written backward against autograd through inverse_and_logdet: the same
    gradient up to rounding, in the same keys and order."""
    torch.manual_seed(depth)
    net = InvertibleMLP(12, depth, parameterization, activation, bias=bias, dtype=F64)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    y0, a = sample(net, 9, seed=depth)
    fast, simple = logdet_grad(net, y0, a), backprop_logdet_grad(net, y0, a)
    assert list(fast) == list(simple)
    assert max_relative_error(fast, simple) <= 1e-12
    assert max_relative_error(logdet_grad(net, y0), backprop_logdet_grad(net, y0)) <= 1e-12


def test_fast_path_in_float32_matches_the_simple_reference():
    torch.manual_seed(13)
    net = InvertibleMLP(16, 3, "inverse", dtype=torch.float32)
    y0 = net.frozen_forward()(torch.randn(32, 16))
    a = torch.randn(32)
    assert max_relative_error(logdet_grad(net, y0, a), backprop_logdet_grad(net, y0, a)) <= 1e-5


def test_the_torch_lu_matches_lapack():
    """_TransposedLU's torch branch (used off the CPU) against its LAPACK branch and slogdet."""
    v = torch.randn(7, 7, dtype=F64, generator=torch.Generator().manual_seed(14))
    for lapack in (True, False):
        factors = _TransposedLU(v, lapack=lapack)
        torch.testing.assert_close(factors.log_abs_det, torch.linalg.slogdet(v).logabsdet)
        torch.testing.assert_close(factors.inverse_transpose(), torch.linalg.inv(v).T)


def test_other_layer_types_take_the_reference_path():
    class Shifted(InverseLinear):
        """An InverseLinear subclass the fast path has no hand-written backward for."""

    net = generic_net(4, 2, seed=15)
    net.linears[1] = Shifted(4, dtype=F64)
    y0, a = sample(net, 3, seed=15)
    assert max_relative_error(logdet_grad(net, y0, a), backprop_logdet_grad(net, y0, a)) == 0.0


@pytest.mark.parametrize("parameterization", sorted(PARAMETERIZATIONS))
def test_fast_path_refuses_what_its_bound_cannot_certify(parameterization):
    """float32 at n = 256, depth 4: the running error bound of ℓ passes float32's tolerance
    (10× for ``lu``, 36× for ``inverse``), so both paths raise rather than return an uncertified
    gradient. At depth 3 the ``lu`` bound sat at 0.8–1× the tolerance, on which side depending on
    the CPU's BLAS kernels."""
    torch.manual_seed(16)
    net = InvertibleMLP(256, 4, parameterization, dtype=torch.float32)
    y0 = net.frozen_forward()(torch.randn(4, 256))
    with pytest.raises(PrecisionLossError, match="loses accuracy"):
        logdet_grad(net, y0)
    with pytest.raises(PrecisionLossError, match="loses accuracy"):
        backprop_logdet_grad(net, y0)


def test_fast_path_reports_a_singular_layer():
    net = generic_net(4, 2, seed=17)
    with torch.no_grad():
        net.linears[0].V[:, 0] = 0.0
    y0, _ = sample(generic_net(4, 2, seed=17), 3, seed=17)
    with pytest.raises(SingularWeightError):
        logdet_grad(net, y0)


@pytest.mark.parametrize("parameterization", sorted(PARAMETERIZATIONS))
def test_fast_gradient_matches_finite_differences(parameterization):
    net = generic_net(3, 2, parameterization, seed=3)
    y0, a = sample(net, 5, seed=3)
    grads = logdet_grad(net, y0, a)
    step = 1e-6
    for name, p in net.named_parameters():
        numeric = torch.zeros_like(p)
        with torch.no_grad():
            for index in range(p.numel()):
                original = p.view(-1)[index].item()
                p.view(-1)[index] = original + step
                plus = weighted_logdet(net, y0, a)
                p.view(-1)[index] = original - step
                minus = weighted_logdet(net, y0, a)
                p.view(-1)[index] = original
                numeric.view(-1)[index] = (plus - minus) / (2 * step)
        torch.testing.assert_close(grads[name], numeric, rtol=1e-6, atol=1e-7, msg=name)


@pytest.mark.parametrize("parameterization", sorted(PARAMETERIZATIONS))
def test_seed_truncation_is_exact_only_for_piecewise_linear_sigma(parameterization):
    for activation, exact in (("leaky_relu", True), ("asinh", False), ("smooth_leaky_relu", False)):
        net = generic_net(4, 3, parameterization, activation, seed=4)
        y0, a = sample(net, 6, seed=4)
        truncated = seed_logdet_grad(net, y0, a, seed_truncated=True)
        error = max_relative_error(truncated, autograd_logdet(net, y0, a))
        assert (error <= 1e-8) == exact, (activation, error)
        assert error <= 1e-8 or error > 1e-2


def test_leaky_relu_gradient_ignores_the_input():
    """docs/method.md §5: with leaky ReLU, ∇_V ℓ = V⁻ᵀ for every y0 and biases get 0."""
    net = generic_net(5, 3, "inverse", "leaky_relu", seed=5)
    y0, a = sample(net, 7, seed=5)
    grads = logdet_grad(net, y0, a)
    for index, layer in enumerate(net.layers()):
        expected = a.sum() * torch.linalg.inv(layer.V.detach()).T
        torch.testing.assert_close(grads[f"linears.{index}.V"], expected)
        assert float(grads[f"linears.{index}.bias"].abs().max()) == 0.0


@pytest.mark.parametrize("parameterization", sorted(PARAMETERIZATIONS))
def test_seed_jacobian_recursion_is_the_jacobian(parameterization):
    net = generic_net(5, 3, parameterization, seed=6)
    y0, _ = sample(net, 3, seed=6)
    torch.testing.assert_close(seed_jacobian(net, y0), autograd_jacobian(net, y0).detach())


def test_seed_absdet_gradient_is_eq11():
    """∂|J|/∂w = |J|·tr(J⁻¹ ∂J/∂w) (eq. 11) against autograd of Σ_b a_b |det J_b|."""
    net = generic_net(3, 2, "inverse", seed=7)
    y0, a = sample(net, 4, seed=7)
    abs_det = torch.linalg.det(autograd_jacobian(net, y0)).abs()
    params = dict(net.named_parameters())
    reference = torch.autograd.grad((a * abs_det).sum(), list(params.values()), allow_unused=True)
    expected = {
        k: torch.zeros_like(p) if g is None else g
        for (k, p), g in zip(params.items(), reference, strict=True)
    }
    assert max_relative_error(seed_absdet_grad(net, y0, a), expected) <= 1e-10


@given(
    n=st.integers(1, 5),
    depth=st.integers(0, 3),
    batch=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    parameterization=st.sampled_from(sorted(PARAMETERIZATIONS)),
    activation=st.sampled_from(sorted(ACTIVATIONS)),
)
@settings(max_examples=30, deadline=None)
def test_property_three_gradients_agree(n, depth, batch, seed, parameterization, activation):
    net = generic_net(n, depth, parameterization, activation, seed=seed)
    y0, a = sample(net, batch, seed)
    reference = autograd_logdet(net, y0, a)
    assert max_relative_error(logdet_grad(net, y0, a), reference) <= 1e-8
    assert max_relative_error(seed_logdet_grad(net, y0, a), reference) <= 1e-8


def test_default_weights_are_ones_and_bad_weights_are_rejected():
    net = generic_net(3, 2, seed=8)
    y0, _ = sample(net, 4, seed=8)
    ones = torch.ones(4, dtype=F64)
    assert max_relative_error(logdet_grad(net, y0), logdet_grad(net, y0, ones)) == 0.0
    with pytest.raises(InputShapeError, match=r"weights must have shape \(batch,\) = \(4,\)"):
        logdet_grad(net, y0, torch.ones(3, dtype=F64))


def test_depth_zero_has_no_gradients():
    net = InvertibleMLP(3, 0, dtype=F64)
    y0 = torch.randn(2, 3, dtype=F64)
    assert logdet_grad(net, y0) == autograd_logdet(net, y0) == seed_logdet_grad(net, y0) == {}


def test_backprop_through_inverse_and_logdet_is_the_fast_gradient():
    """What an agent does: put ℓ(y0) in its own loss and call backward."""
    net = generic_net(4, 3, "lu", seed=9)
    y0, a = sample(net, 5, seed=9)
    (a * net.inverse_and_logdet(y0)[1]).sum().backward()
    by_backward = {k: p.grad for k, p in net.named_parameters() if p.grad is not None}
    simple = backprop_logdet_grad(net, y0, a)
    assert max_relative_error(by_backward, {k: simple[k] for k in by_backward}) == 0.0
    fast = logdet_grad(net, y0, a)
    assert max_relative_error(by_backward, {k: fast[k] for k in by_backward}) <= 1e-12


@pytest.mark.parametrize("parameterization", sorted(PARAMETERIZATIONS))
def test_n256_fast_gradient_matches_autograd(parameterization):
    net = generic_net(256, 1, parameterization, seed=10, scale=0.02)
    y0, a = sample(net, 2, seed=10)
    assert max_relative_error(logdet_grad(net, y0, a), autograd_logdet(net, y0, a)) <= 1e-8


def test_seed_spot_check_of_the_first_weights():
    net = generic_net(6, 2, "inverse", seed=11)
    y0, a = sample(net, 3, seed=11)
    partial = seed_logdet_grad(net, y0, a, max_weights_per_layer=4)
    fast = logdet_grad(net, y0, a)
    for name, value in partial.items():
        computed = ~torch.isnan(value)
        assert int(computed.sum()) == 4, name
        torch.testing.assert_close(value[computed], fast[name][computed])


def test_frozen_parameters_are_left_out():
    net = generic_net(3, 2, seed=12)
    net.linears[1].bias.requires_grad_(False)
    y0, a = sample(net, 2, seed=12)
    assert "linears.1.bias" not in logdet_grad(net, y0, a)
    assert list(logdet_grad(net, y0, a)) == list(backprop_logdet_grad(net, y0, a))

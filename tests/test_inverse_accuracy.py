"""Every x and log-det a pass of InvertibleMLP returns is accurate to its stated tolerance, or the
pass raises PrecisionLossError naming the layer (issue #12 item 1; jacrl.nn.accuracy).

The judge is an independent evaluation of the same network in 50-digit arithmetic (mpmath), from
the same float weights and inputs, on random inputs — not only on y = F(x).
"""

from __future__ import annotations

import itertools
import math

import mpmath
import numpy as np
import pytest
import torch

from jacrl.common.errors import NonFiniteError, PrecisionLossError
from jacrl.nn import InverseLinear, InvertibleMLP, LULinear, make_activation
from jacrl.nn.accuracy import COARSE_FROM_WIDTH, ErrorBound
from jacrl.nn.linear import random_orthogonal

mpmath.mp.dps = 50
DTYPES = (torch.float64, torch.float32)


def _matrix(t: torch.Tensor) -> mpmath.matrix:
    return mpmath.matrix([[mpmath.mpf(float(v)) for v in row] for row in t.detach().tolist()])


def _forward_matrix(layer: InverseLinear | LULinear) -> mpmath.matrix:
    """W in 50 digits from the layer's float parameters."""
    if isinstance(layer, InverseLinear):
        return _matrix(layer.V) ** -1
    product = _matrix(layer.unit_lower()) * _matrix(layer.upper_with_diagonal())
    rows = [[product[int(p), j] for j in range(layer.n)] for p in layer.perm.tolist()]
    return mpmath.matrix(rows)


def _activation(name: str, u: mpmath.mpf, inverse: bool) -> tuple[mpmath.mpf, mpmath.mpf]:
    """(σ⁻¹(u), log (σ⁻¹)′(u)) or (σ(u), log σ′(u)) in 50 digits, written from the formulas."""
    alpha = mpmath.mpf("0.1")
    if name == "asinh":
        if inverse:
            return mpmath.sinh(u), mpmath.log(mpmath.cosh(u))
        return mpmath.asinh(u), -mpmath.log(1 + u * u) / 2
    if name == "leaky_relu":
        slope = 1 if u > 0 else alpha
        return (u / slope, -mpmath.log(slope)) if inverse else (u * slope, mpmath.log(slope))
    a, b = (1 + alpha) / 2, (1 - alpha) / 2  # smooth_leaky_relu
    if inverse:
        t = u + b
        s = mpmath.sqrt(t * t + alpha)
        return (a * t - b * s) / alpha, mpmath.log((a - b * t / s) / alpha)
    r = mpmath.sqrt(u * u + 1)
    return a * u + b * (r - 1), mpmath.log(a + b * u / r)


def reference(net: InvertibleMLP, inputs: torch.Tensor, inverse: bool) -> tuple[np.ndarray, ...]:
    """F⁻¹ (or F) and its log-det for each row, in 50 digits, rounded to float64 at the end."""
    name = {"Asinh": "asinh", "LeakyReLU": "leaky_relu"}.get(
        type(net.activation).__name__, "smooth_leaky_relu"
    )
    layers = net.layers()
    weights = [_forward_matrix(layer) for layer in layers]
    biases = [[mpmath.mpf(float(b)) for b in layer.bias.tolist()] for layer in layers]
    log_det_w = sum(mpmath.log(abs(mpmath.det(w))) for w in weights)
    outputs, logdets = [], []
    for row in inputs.tolist():
        v = mpmath.matrix([mpmath.mpf(float(c)) for c in row])
        logdet = -log_det_w if inverse else log_det_w
        order = reversed(range(len(layers))) if inverse else range(len(layers))
        for index in order:
            if inverse:
                pairs = [_activation(name, c, True) for c in v]
                v = weights[index] ** -1 * mpmath.matrix(
                    [p[0] - b for p, b in zip(pairs, biases[index], strict=True)]
                )
            else:
                u = weights[index] * v
                pairs = [_activation(name, u[i] + biases[index][i], False) for i in range(net.n)]
                v = mpmath.matrix([p[0] for p in pairs])
            logdet += sum(p[1] for p in pairs)
        outputs.append([float(c) for c in v])
        logdets.append(float(logdet))
    return np.array(outputs), np.array(logdets)


def assert_within_tolerance(
    net: InvertibleMLP,
    outputs: torch.Tensor,
    logdet: torch.Tensor,
    inputs: torch.Tensor,
    inverse: bool,
) -> None:
    exact, exact_logdet = reference(net, inputs, inverse)
    got, got_logdet = outputs.detach().double().numpy(), logdet.detach().double().numpy()
    x_error = np.abs(got - exact).max(-1) / np.maximum(1.0, np.abs(got).max(-1))
    logdet_error = np.abs(got_logdet - exact_logdet) / np.maximum(1.0, np.abs(got_logdet))
    assert (x_error <= net.rtol).all(), x_error
    assert (logdet_error <= net.rtol).all(), logdet_error


NETS = [
    (parameterization, activation, n)
    for parameterization in ("inverse", "lu")
    for activation in ("asinh", "smooth_leaky_relu", "leaky_relu")
    for n in (4, 8)
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("parameterization", "activation", "n"), NETS)
def test_every_returned_pass_is_accurate_to_the_tolerance(
    parameterization: str, activation: str, n: int, dtype: torch.dtype
) -> None:
    """Random y (and x) of three sizes, one at a time: each pass either raises or returns x and
    ℓ within rtol of the 50-digit values; and the running bound bounds the actual error
    elementwise (the stronger claim the check rests on)."""
    torch.manual_seed(n)
    net = InvertibleMLP(n, depth=3, parameterization=parameterization, activation=activation,
                        dtype=dtype)  # fmt: skip
    inputs = (
        torch.randn(9, n, dtype=torch.float64) * torch.tensor([0.5, 1.0, 2.0]).repeat(3)[:, None]
    )
    inputs = inputs.to(dtype)
    returned = 0
    for inverse in (True, False):
        for row in inputs.split(1):
            bound = ErrorBound(row, "inverse" if inverse else "forward", coarse=True)
            try:
                outputs, logdet = (net.inverse_and_logdet if inverse else net.forward_and_logdet)(
                    row
                )
            except (PrecisionLossError, NonFiniteError):
                continue
            returned += 1
            assert_within_tolerance(net, outputs, logdet, row, inverse)
            tight = ErrorBound(row, "inverse" if inverse else "forward", coarse=False)
            run = net._inverse_pass if inverse else net._forward_pass
            outputs, logdet = run(row, bound)
            run(row, tight)
            exact, exact_logdet = reference(net, row, inverse)
            error = np.abs(outputs.detach().double().numpy() - exact)
            assert (error <= tight.value.numpy()).all()
            assert abs(float(logdet.detach()) - exact_logdet[0]) <= float(tight.logdet)
            # the coarse bound (tried first) bounds at least as much, elementwise
            assert (tight.value <= bound.value).all() and (tight.logdet <= bound.logdet).all()
    assert returned >= 6  # most small and moderate inputs are not refused


def test_the_issue_example_inverse_is_accurate_and_the_forward_pass_is_refused() -> None:
    """InvertibleMLP(16, depth=3) (asinh), y ~ N(0, I): x reaches 1e117. The inverse pass is
    accurate (x to 1e-12 relative, ℓ to 1e-10 of the 50-digit values); slogdet of the autograd
    Jacobian — the comparison the issue made — is what is off, by > 100. Going back, F(x) at such
    an x loses the small components (even from the correctly rounded x): that pass raises."""
    torch.manual_seed(0)
    net = InvertibleMLP(16, depth=3, dtype=torch.float64)
    y = torch.randn(4, 16, dtype=torch.float64)
    x, logdet = net.inverse_and_logdet(y)
    exact, exact_logdet = reference(net, y, inverse=True)
    assert np.abs(exact).max() > 1e100
    scale = np.abs(exact).max(-1, keepdims=True)
    assert (np.abs(x.detach().numpy() - exact) <= 1e-12 * scale).all()
    assert np.abs(logdet.detach().numpy() - exact_logdet).max() < 1e-10 * np.abs(exact_logdet).max()
    jacobians = torch.stack(
        [torch.autograd.functional.jacobian(lambda v: net.inverse(v[None])[0], row) for row in y]
    )
    autograd_logdet = torch.linalg.slogdet(jacobians).logabsdet.numpy()
    assert np.abs(autograd_logdet - exact_logdet).max() > 100
    with pytest.raises(PrecisionLossError, match=r"forward pass from x loses accuracy at layer"):
        net(torch.as_tensor(exact))


def test_an_ill_conditioned_layer_that_loses_x_is_refused_naming_it() -> None:
    """One layer with cond(V) = 1e12 (past max_cond, but the pass does not run the SVD check) and
    a y whose z = sinh(y) lies along V's small singular direction: x = V z cancels, so the float
    x is off by ~1e-4 relative. Before, it was returned without a word."""
    torch.manual_seed(0)
    net = InvertibleMLP(4, depth=1, dtype=torch.float64)
    q = random_orthogonal(4, torch.float64)
    with torch.no_grad():
        net.layers()[0].V.copy_(
            q @ torch.diag(torch.tensor([1.0, 1.0, 1.0, 1e-12], dtype=torch.float64)) @ q.T
        )
    y = torch.asinh(1e12 * q[:, 3])[None]
    with torch.no_grad():
        x_float = y.sinh() @ net.layers()[0].V.T
    exact, _ = reference(net, y, inverse=True)
    assert np.abs(x_float.numpy() - exact).max() / max(1.0, np.abs(exact).max()) > 1e-6
    with pytest.raises(PrecisionLossError, match=r"inverse pass from y loses accuracy at layer 0"):
        net.inverse(y)


@pytest.mark.parametrize("n", [4, 8])
def test_lu_logdet_and_inverse_match_the_explicit_matrix(n: int) -> None:
    """The lu log-det discrepancy of the issue is not LULinear's: its log|det V| = −Σ s and its
    inverse pass equal −slogdet(W) and solve(W, ·) of the explicit W = P L U′, at initialisation
    and after set_trained_matrix of an ill-conditioned matrix (cond 1e5)."""
    torch.manual_seed(n)
    layer = LULinear(n, dtype=torch.float64)
    z = torch.randn(16, n, dtype=torch.float64)
    q1, q2 = random_orthogonal(n, torch.float64), random_orthogonal(n, torch.float64)
    for _ in range(2):
        weight = layer.weight().detach()
        torch.testing.assert_close(
            layer.log_abs_det_inverse().detach(), -torch.linalg.slogdet(weight).logabsdet
        )
        torch.testing.assert_close(
            layer.apply_inverse_weight(z).detach(), torch.linalg.solve(weight, z.T).T
        )
        layer.set_trained_matrix(q1 @ torch.diag(torch.logspace(0, 5, n, dtype=torch.float64)) @ q2)


@pytest.mark.parametrize("name", ["asinh", "smooth_leaky_relu", "leaky_relu"])
@pytest.mark.parametrize("inverse", [True, False])
def test_activation_error_bounds_hold_over_the_interval(name: str, inverse: bool) -> None:
    """Activation.inverse_error / forward_error bound sup_{|δ|<=e} of the change of the value and
    of the log-derivative: checked on a dense grid of δ, for errors from 1e-8 to 0.5 (up to the
    1e-12 the differences themselves round to). On the inverse pass also from the (σ⁻¹)′ the
    pass computed, in float64 and float32 (the log-det gradient's pass hands it over)."""
    activation = make_activation(name)  # type: ignore[arg-type]
    u = torch.linspace(-6, 6, 241, dtype=torch.float32).double()[:, None]  # float32 values
    for error, given in itertools.product((1e-8, 1e-3, 0.1, 0.5), (None, *DTYPES)):
        if given is not None and not inverse:
            continue
        e = torch.full_like(u, error)
        derivative = None if given is None else activation.inverse_derivative(u.to(given))
        value_bound, log_bound = (
            activation.inverse_error(u, e, derivative)
            if inverse
            else activation.forward_error(u, e)
        )
        deltas = torch.linspace(-error, error, 101, dtype=torch.float64)[None]
        if inverse:
            values, logs = activation.inverse_value, activation.log_inverse_derivative
        else:
            values = activation.value
            logs = lambda v: activation.forward(v.reshape(-1, 1))[1].reshape(v.shape)  # noqa: E731
        moved = (values(u + deltas) - values(u)).abs().amax(-1, keepdim=True)
        moved_log = (logs(u + deltas) - logs(u)).abs().amax(-1, keepdim=True)
        assert (moved <= value_bound * (1 + 1e-9) + 1e-12).all()
        assert (moved_log <= log_bound * (1 + 1e-9) + 1e-12).all()


def test_the_check_costs_no_change_of_the_numbers() -> None:
    """The bound rides along: a pass with it returns exactly what the arithmetic gives without."""
    torch.manual_seed(0)
    net = InvertibleMLP(6, depth=3, dtype=torch.float64)
    y = torch.randn(5, 6, dtype=torch.float64)
    x, logdet = net.inverse_and_logdet(y)
    manual = y
    manual_logdet = sum(layer.log_abs_det_inverse() for layer in net.layers())
    for layer in reversed(net.layers()):
        manual, term = net.activation.inverse(manual)
        manual_logdet = manual_logdet + term
        manual = layer.apply_inverse_weight(manual - layer.bias)
    assert torch.equal(x, manual)
    assert math.isclose(
        float(logdet.detach().sum()), float(manual_logdet.detach().sum()), rel_tol=1e-14
    )


def test_the_one_sync_verdict_refuses_non_finite_results_and_agrees_with_check() -> None:
    """``ErrorBound.accurate`` (the verdict every pass takes, one host sync) is False for a NaN
    or an inf in x or in ℓ, though the bound itself is finite; for finite results it says what
    ``check`` says: True where check passes, False where check raises."""
    torch.manual_seed(0)
    net = InvertibleMLP(4, depth=2, dtype=torch.float64)
    y = net(torch.randn(6, 4, dtype=torch.float64)).detach()
    bound = ErrorBound(y, "inverse")
    x, logdet = net._inverse_pass(y, bound)
    assert bound.accurate(x, logdet, net.rtol)
    bound.check(x, logdet, net.rtol, "y")  # passes
    for bad in (float("nan"), float("inf"), -float("inf")):
        spoiled_x, spoiled_logdet = x.clone(), logdet.clone()
        spoiled_x[2, 1] = bad
        spoiled_logdet[4] = bad
        assert not bound.accurate(spoiled_x, logdet, net.rtol)
        assert not bound.accurate(x, spoiled_logdet, net.rtol)
    assert not bound.accurate(x, logdet, 1e-30)  # a tolerance below the bound
    with pytest.raises(PrecisionLossError, match=r"inverse pass from y loses accuracy at layer"):
        bound.check(x, logdet, 1e-30, "y")


def _needed_rtol(bound: ErrorBound, x: torch.Tensor, logdet: torch.Tensor) -> float:
    """The smallest tolerance the bound certifies every sample of (x, logdet) to."""
    x, logdet = x.detach().double(), logdet.detach().double()
    value = bound.value.amax(-1) / x.abs().amax(-1).clamp_min(1.0)
    return float(torch.maximum(value, bound.logdet / logdet.abs().clamp_min(1.0)).max())


def test_a_pass_the_coarse_bound_cannot_certify_is_judged_by_the_tight_one() -> None:
    """ErrorBound tries the coarse bound first; where it fails, the tight bound decides: at a
    tolerance between the two the pass is certified (and the bound says it fell back), below
    the tight one it is refused."""
    torch.manual_seed(2)
    net = InvertibleMLP(16, depth=3, dtype=torch.float64)
    y = net(torch.randn(8, 16, dtype=torch.float64)).detach()
    coarse, tight = ErrorBound(y, "inverse"), ErrorBound(y, "inverse", coarse=False)
    x, logdet = net._inverse_pass(y, coarse)
    net._inverse_pass(y, tight)
    needs_tight, needs_coarse = _needed_rtol(tight, x, logdet), _needed_rtol(coarse, x, logdet)
    assert needs_tight < needs_coarse / 2  # the coarse bound is the looser one here
    between = math.sqrt(needs_tight * needs_coarse)
    assert coarse.accurate(x, logdet, between) and not coarse.coarse  # fell back, certified
    again = ErrorBound(y, "inverse")
    net._inverse_pass(y, again)
    assert not again.accurate(x, logdet, needs_tight / 2)
    # float32 bounds sit near their tolerance, and narrow passes gain nothing: both start tight
    assert not ErrorBound(y.float(), "inverse").coarse
    assert not ErrorBound(y[:, : COARSE_FROM_WIDTH - 1], "inverse").coarse

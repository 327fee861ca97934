"""BoxSquash (jacrl.policies.squash) against autograd derivatives, round trips and densities."""

from __future__ import annotations

import decimal
import math
from decimal import Decimal

import numpy as np
import pytest
import torch
from gymnasium import spaces

from jacrl.common.errors import ConfigError, JacrlError, UnsupportedSpaceError
from jacrl.policies.squash import BoxSquash, OutsideBoxError

F64 = torch.float64
INF = np.inf


def box(low: list[float], high: list[float], dtype: type = np.float32) -> spaces.Box:
    return spaces.Box(np.array(low, dtype=dtype), np.array(high, dtype=dtype), dtype=dtype)


BOXES = {
    "bounded": box([-1.0, -2.0], [1.0, 5.0]),
    "upper_only": box([-INF, -INF], [0.0, 0.0]),  # Box(-inf, 0, (2,))
    "lower_only": box([0.5, -3.0], [INF, INF]),
    "mixed": box([-1.0, 0.0, -INF, -INF, 0.1], [1.0, INF, 2.0, INF, 0.7]),
    "mixed_float64": box([-1.0, 0.0, -INF], [3.0, INF, -1.0], np.float64),
}


def elementwise_log_derivative(fn, inputs: torch.Tensor) -> torch.Tensor:
    """Σ_i log|∂fn_i/∂x_i| by autograd; the maps are elementwise, so the Jacobian is diagonal
    (checked) and the gradient of the sum is its diagonal."""
    jacobian = torch.func.jacrev(lambda row: fn(row[None])[0][0])(inputs[0])
    assert torch.equal(jacobian, torch.diag(torch.diagonal(jacobian)))
    inputs = inputs.detach().requires_grad_()
    (diagonal,) = torch.autograd.grad(fn(inputs)[0].sum(), inputs)
    return diagonal.abs().log().sum(-1)


@pytest.mark.parametrize("name", sorted(BOXES))
def test_logdets_match_autograd_and_round_trip(name):
    space = BOXES[name]
    squash = BoxSquash.from_space(space)
    torch.manual_seed(0)
    y = torch.cat(
        [
            3.0 * torch.randn(20, space.shape[0], dtype=F64),
            torch.full((1, 1), 8.0).expand(1, space.shape[0]).to(F64),
            torch.full((1, space.shape[0]), -8.0, dtype=F64),
        ]
    )
    a, forward_logdet = squash(y)
    torch.testing.assert_close(forward_logdet, elementwise_log_derivative(squash, y))
    y2, inverse_logdet = squash.inverse(a)
    torch.testing.assert_close(y2, y, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(inverse_logdet, -forward_logdet, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(inverse_logdet, elementwise_log_derivative(squash.inverse, a))
    # and the formulas of the module docstring, dimension by dimension
    low, high = (torch.as_tensor(b, dtype=F64) for b in (space.low, space.high))
    for i in range(space.shape[0]):
        yi = y[:, i]
        if math.isfinite(low[i]) and math.isfinite(high[i]):
            expected = (low[i] + high[i]) / 2 + (high[i] - low[i]) / 2 * torch.tanh(yi)
        elif math.isfinite(low[i]):
            expected = low[i] + torch.log1p(torch.exp(yi))
        elif math.isfinite(high[i]):
            expected = high[i] - torch.log1p(torch.exp(-yi))
        else:
            expected = yi
        torch.testing.assert_close(a[:, i], expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(BOXES))
def test_every_forward_output_is_in_the_space(name):
    space = BOXES[name]
    squash = BoxSquash.from_space(space)
    k = space.shape[0]
    values = [-1e4, -710.0, -40.0, -20.0, -19.5, -9.0, 0.0, 1e-300, 9.0, 19.5, 20.0, 40.0, 710.0]
    y = torch.tensor([*values, 1e4], dtype=F64)[:, None].expand(-1, k)
    y = torch.cat([y, 10.0 * torch.randn(50, k, dtype=F64)])
    a, logdet = squash(y)
    assert bool(torch.isfinite(logdet).all())
    for row in a.numpy().astype(space.dtype):
        assert space.contains(row), (name, row)


@pytest.mark.parametrize(
    ("low", "high", "y", "bound"), [(-0.3, 0.1, 20.0, 0.1), (0.1, 0.7, -20.0, 0.1)]
)
def test_the_clamp_is_what_keeps_saturated_actions_in_the_box(low, high, y, bound):
    """tanh(±20) rounds to ±1 in float64, and for these (float64) bounds mid ± half lands an ulp
    past the bound; the clamp puts the action back on it, the log-det stays the finite one
    computed from y, and the inverse refuses the action on the bound."""
    mid, half = (low + high) / 2, (high - low) / 2
    unclamped = mid + half * math.tanh(y)
    assert not low <= unclamped <= high  # the rounding the clamp fixes
    squash = BoxSquash(np.array([low]), np.array([high]))
    a, logdet = squash(torch.tensor([[y]], dtype=F64))
    assert float(a) == bound and math.isfinite(float(logdet))
    assert spaces.Box(low, high, (1,), dtype=np.float64).contains(a[0].numpy())
    with pytest.raises(OutsideBoxError, match="not strictly inside"):
        squash.inverse(a)


def test_inverse_is_accurate_next_to_the_bounds():
    squash = BoxSquash(np.array([-1.0, 0.0, -INF]), np.array([1.0, INF, 0.0]))
    for gap in (1e-3, 1e-9, 1e-15):
        a = torch.tensor([[1.0 - gap, gap, -gap]], dtype=F64)
        y, logdet = squash.inverse(a)
        assert bool(torch.isfinite(y).all()) and bool(torch.isfinite(logdet).all())
        a2, forward_logdet = squash(y)
        torch.testing.assert_close(a2, a, rtol=1e-12, atol=0)
        torch.testing.assert_close(forward_logdet, -logdet)


def test_inverse_uses_the_distance_to_the_bound_not_atanh():
    """Next to a bound, atanh((a − mid)/half) has lost digits in (a − mid)/half; the distances
    a − low and high − a are exact. Reference: ½ ln((a − low)/(high − a)) in 50-digit decimals."""
    decimal.getcontext().prec = 50
    squash = BoxSquash(np.array([-2.0]), np.array([5.0]))
    for gap in (1e-6, 1e-12):
        a = torch.tensor([[5.0 - gap]], dtype=F64)
        exact = Decimal(float(a))
        reference = float(((exact + 2) / (5 - exact)).ln() / 2)
        y = float(squash.inverse(a)[0])
        assert abs(y - reference) <= 1e-14 * reference
    naive = float(torch.atanh((a - 1.5) / 3.5))
    assert abs(naive - reference) > 1e-7 * reference  # what the direct formula would give


@pytest.mark.parametrize(
    ("low", "high", "grid"),
    [
        (-1.0, 2.0, np.linspace(-1.0, 2.0, 200001)[1:-1]),
        (0.5, INF, 0.5 + np.geomspace(1e-12, 60.0, 200001)),
        (-INF, 0.0, -np.geomspace(1e-12, 60.0, 200001)[::-1]),
    ],
)
def test_pushforward_of_a_standard_normal_integrates_to_one(low, high, grid):
    """p_a(a) = N(y(a); 0, 1)·|dy/da| from the inverse, integrated over the action interval."""
    squash = BoxSquash(np.array([low]), np.array([high]))
    a = torch.as_tensor(grid, dtype=F64)[:, None]
    y, logdet = squash.inverse(a)
    density = torch.exp(-0.5 * y[:, 0] ** 2 - 0.5 * math.log(2 * math.pi) + logdet)
    mass = float(torch.trapezoid(density, a[:, 0]))
    assert mass == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize(
    "action",
    [
        [1.0, 0.5, -0.5],
        [0.0, 0.0, -0.5],
        [0.0, 0.5, 0.0],
        [2.0, 0.5, -0.5],
        [0.0, -1.0, -0.5],
        [0.0, 0.5, float("nan")],
        [0.0, float("inf"), -0.5],
        [float("-inf"), 0.5, -0.5],
    ],
)
def test_inverse_rejects_actions_outside_the_open_box(action):
    squash = BoxSquash(np.array([-1.0, 0.0, -INF]), np.array([1.0, INF, 0.0]))
    with pytest.raises(OutsideBoxError, match=r"not strictly inside the action box"):
        squash.inverse(torch.tensor([[0.0, 0.5, -0.5], action], dtype=F64))
    assert issubclass(OutsideBoxError, JacrlError)


def test_unbounded_inverse_rejects_non_finite_actions():
    squash = BoxSquash(np.array([-INF]), np.array([INF]))
    with pytest.raises(OutsideBoxError, match=r"row 0"):
        squash.inverse(torch.tensor([[float("nan")]], dtype=F64))


@pytest.mark.parametrize(
    ("low", "high", "error", "match"),
    [
        ([0.0], [0.0], ConfigError, "low < high"),
        ([1.0], [0.0], ConfigError, "low < high"),
        ([INF], [INF], ConfigError, "low < high"),
        ([float("nan")], [1.0], ConfigError, "NaN"),
        ([[0.0]], [[1.0]], UnsupportedSpaceError, "1-D bounds"),
        ([0.0], [1.0, 2.0], UnsupportedSpaceError, "1-D bounds"),
    ],
)
def test_bad_bounds(low, high, error, match):
    with pytest.raises(error, match=match):
        BoxSquash(np.array(low), np.array(high))


def test_from_space_needs_a_1d_box():
    with pytest.raises(UnsupportedSpaceError, match="1-D Box"):
        BoxSquash.from_space(spaces.Box(-1.0, 1.0, (2, 2)))
    with pytest.raises(UnsupportedSpaceError, match="1-D Box"):
        BoxSquash.from_space(spaces.Discrete(3))  # type: ignore[arg-type]


def test_bounds_are_not_saved_with_the_weights():
    assert BoxSquash(np.array([-1.0]), np.array([1.0])).state_dict() == {}


def test_the_all_bounded_shortcut_equals_the_general_selection() -> None:
    """A Box bounded on every side takes the tanh branch alone (fewer operations); its values
    and gradients are bit for bit those of the general per-dimension selection."""
    squash = BoxSquash.from_space(BOXES["bounded"], F64)
    general = BoxSquash.from_space(BOXES["bounded"], F64)
    general.all_bounded = False
    assert squash.all_bounded and not BoxSquash.from_space(BOXES["mixed"], F64).all_bounded
    torch.manual_seed(0)
    y = (3.0 * torch.randn(64, 2, dtype=F64)).requires_grad_()
    results = []
    for module in (squash, general):
        a, logdet = module(y)
        back, back_logdet = module.inverse(a.detach().clamp(-0.999, 4.999))
        (grad,) = torch.autograd.grad((a.sum() + logdet.sum()), y)
        results.append((a, logdet, back, back_logdet, grad))
    for fast, reference in zip(*results, strict=True):
        assert torch.equal(fast, reference)

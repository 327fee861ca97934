"""Seed 002's iteration Jacobian Df = I − α∇²L, each piece against an independent computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jacrl.analysis import (
    FullBatchLoss,
    IterationJacobian,
    ParamLayout,
    StabilityVerdict,
    extreme_eigenvalues,
    init_params,
    load_batch,
    probe_estimates,
    top_eigenpairs,
)
from jacrl.analysis.data import Batch
from jacrl.analysis.lanczos import MIN_TOL, lanczos_top
from jacrl.common.errors import ConfigError, ConvergenceError

LR = 0.1


def tiny_problem(seed: int = 0, d: int = 5, h: int = 4, c: int = 3, k: int = 12):
    """A d-h-c net on k random examples with scaled-up weights, so every block is non-trivial."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(k, d, generator=g, dtype=torch.float64)
    t = torch.eye(c, dtype=torch.float64)[torch.randint(0, c, (k,), generator=g)]
    layout = ParamLayout(d, h, c)
    theta = 3 * init_params(layout, seed)
    return FullBatchLoss(layout, Batch("tiny", x, t)), theta


@pytest.fixture(scope="module")
def digits_small():
    """sklearn digits, 64-16-10 on the first 600 images: dense in about a second."""
    batch = load_batch("digits", batch_size=600)
    layout = ParamLayout(64, 16, 10)
    theta = init_params(layout, seed=0)
    loss = FullBatchLoss(layout, batch)
    hessian = loss.hessian(theta)
    return loss, theta, hessian, torch.linalg.eigvalsh(hessian.dense()).numpy()


def test_layout_matches_seed_002():
    layout = ParamLayout(784, 50, 10)
    assert layout.n_params == 39760  # footnote 1 of seed 002
    assert layout.shapes == {"W1": (784, 50), "b1": (50,), "W2": (50, 10), "b2": (10,)}
    theta = torch.arange(layout.n_params, dtype=torch.float64)
    assert torch.equal(layout.flatten(layout.unflatten(theta)), theta)


def test_loss_is_cross_entropy_of_softmax_network():
    loss, theta = tiny_problem()
    p = loss.layout.unflatten(theta)
    x, t = loss.batch.x, loss.batch.t
    y = torch.softmax(torch.sigmoid(x @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"], dim=1)
    expected = -(t * torch.log(y)).sum() / len(x)  # eq. 17 with t log y
    torch.testing.assert_close(loss.value(theta), expected)


def test_dense_df_matches_finite_differences_of_the_update_map():
    loss, theta = tiny_problem()
    df = IterationJacobian.from_hessian(loss.hessian(theta), LR).matrix
    eps = 1e-6
    columns = []
    for i in range(len(theta)):
        e = torch.zeros_like(theta)
        e[i] = eps
        columns.append((loss.step(theta + e, LR) - loss.step(theta - e, LR)) / (2 * eps))
    torch.testing.assert_close(df, torch.stack(columns, dim=1), atol=1e-8, rtol=1e-7)


def test_hessian_product_matches_double_backward(digits_small):
    loss, theta = tiny_problem(seed=1, d=7, h=6, c=4, k=20)
    v = torch.randn(len(theta), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    p = theta.clone().requires_grad_()
    (g,) = torch.autograd.grad(loss.value(p), p, create_graph=True)
    (expected,) = torch.autograd.grad(g, p, v)
    hessian = loss.hessian(theta)
    torch.testing.assert_close(hessian.matvec(v), expected)  # by hand
    torch.testing.assert_close(hessian.reference_matvec(v), expected)  # torch.func
    # on the digits net too, where softmax and sigmoid are far from their linear parts
    _, theta, hessian, _ = digits_small
    v = torch.randn(len(theta), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(hessian.matvec(v), hessian.reference_matvec(v), rtol=1e-12, atol=0)


def test_chunked_products_match_one_at_a_time():
    """matmat/dense split their vectors by a memory budget; the split must not change a bit."""
    loss, theta = tiny_problem(seed=2)
    hessian = loss.hessian(theta)
    vectors = torch.randn(5, len(theta), dtype=torch.float64)
    one_by_one = torch.stack([hessian.matvec(v) for v in vectors])
    torch.testing.assert_close(hessian.matmat(vectors, chunk_bytes=1), one_by_one)
    torch.testing.assert_close(hessian.matmat(vectors), one_by_one)
    torch.testing.assert_close(hessian.dense(chunk_bytes=1), hessian.dense())


def test_float32_operator_agrees_with_float64(digits_small):
    _, theta, hessian, _ = digits_small
    v = torch.randn(len(theta), dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    exact = hessian.matvec(v)
    rounded = hessian.to(torch.float32).matvec(v.float()).double()
    assert (rounded - exact).norm() <= 1e-5 * exact.norm()
    assert hessian.a1.dtype == torch.float64  # the original is untouched


def test_manual_blocks_match_dense_df(digits_small):
    """Two blocks of eq. 23 by hand (seed 002's eq. 33 family, with the correct softmax Jacobian
    S_i = diag(y^i) − y^i y^iᵀ, which is not diagonal):

    ∂b2'/∂b2 = I − α (1/k) Σ_i S_i,    ∂W2'_{jc}/∂b2_d = −α (1/k) Σ_i z^i_j S_i[c, d].
    """
    loss, theta, hessian, _ = digits_small
    df = IterationJacobian.from_hessian(hessian, LR)
    p = loss.layout.unflatten(theta)
    z = torch.sigmoid(loss.batch.x @ p["W1"] + p["b1"])
    y = torch.softmax(z @ p["W2"] + p["b2"], dim=1)
    s = torch.diag_embed(y) - y[:, :, None] * y[:, None, :]
    k = loss.batch.k
    b2_b2 = torch.eye(10, dtype=torch.float64) - LR * s.sum(0) / k
    w2_b2 = -LR * torch.einsum("ij,icd->jcd", z, s).reshape(-1, 10) / k
    torch.testing.assert_close(df.block("b2", "b2"), b2_b2)
    torch.testing.assert_close(df.block("W2", "b2"), w2_b2)
    torch.testing.assert_close(df.block("b2", "W2"), w2_b2.T)


def test_softmax_shift_directions_are_exactly_flat(digits_small):
    """(W2 + u1ᵀ, b2 + c1) leave the loss unchanged, so ∇²L has h + 1 exact zero eigenvalues."""
    loss, theta, hessian, _ = digits_small
    v = loss.layout.unflatten(torch.zeros_like(theta))
    v["W2"] += torch.randn(16, 1, dtype=torch.float64)
    v["b2"] += 1.0
    assert hessian.matvec(loss.layout.flatten(v)).abs().max() < 1e-14


def test_lanczos_matches_dense_spectrum(digits_small):
    _, _, hessian, dense = digits_small
    top, _ = top_eigenpairs(hessian, k=3)
    np.testing.assert_allclose(top, dense[::-1][:3], rtol=1e-6, atol=0)
    ends = extreme_eigenvalues(hessian)
    assert abs(ends.lam_max - dense[-1]) <= 1e-6 * dense[-1]
    # λ_min: looser tolerance, float32 products (spectrum.smallest_eigenvalue), never too low.
    width = dense[-1] - dense[0]
    assert -1e-6 * width <= ends.lam_min - dense[0] <= 1e-5 * width


class CountingMatvec:
    """A matvec that counts its calls (how many products Lanczos made)."""

    def __init__(self, matvec):
        self.matvec, self.calls = matvec, 0

    def __call__(self, v):
        self.calls += 1
        return self.matvec(v)


@pytest.mark.parametrize("tol", [1e-2, 1e-3, 1e-6, 1e-10])
def test_lanczos_meets_its_tolerance_against_the_dense_spectrum(digits_small, tol):
    """The verified residual bound holds (|λ − ρ| ≤ ‖r‖ for the nearest eigenvalue, here λ_max)
    and is within tol; the actual error is far below it (about ‖r‖²/gap)."""
    _, _, hessian, dense = digits_small
    counting = CountingMatvec(hessian.matvec)
    start = torch.as_tensor(np.random.default_rng(0).standard_normal(hessian.n))
    pairs = lanczos_top(counting, start, k=1, tol=tol)
    error = abs(pairs.values[0] - dense[-1])
    assert pairs.residuals[0] <= tol * abs(pairs.values[0])
    assert error <= pairs.residuals[0] + 1e-12 * dense[-1]
    assert error <= tol * dense[-1]
    assert pairs.products == counting.calls
    vector = torch.as_tensor(pairs.vectors[:, 0])
    residual = (hessian.matvec(vector) - pairs.values[0] * vector).norm().item()
    assert residual == pytest.approx(pairs.residuals[0], rel=1e-3, abs=1e-13)


def test_a_looser_tolerance_takes_fewer_products(digits_small):
    _, _, hessian, _ = digits_small
    start = torch.as_tensor(np.random.default_rng(0).standard_normal(hessian.n))
    loose, tight = (lanczos_top(hessian.matvec, start, tol=tol).products for tol in (1e-2, 1e-10))
    assert loose < tight


def test_lanczos_finds_a_cluster_of_top_eigenvalues():
    """A diagonal operator with three nearly equal top eigenvalues, k = 3."""
    top = torch.tensor([10.0, 9.999, 9.99], dtype=torch.float64)
    spectrum = torch.cat([top, torch.linspace(0, 9, 200, dtype=torch.float64)])
    start = torch.ones(len(spectrum), dtype=torch.float64)
    pairs = lanczos_top(lambda v: spectrum * v, start, k=3, tol=1e-8)
    np.testing.assert_allclose(pairs.values, [10.0, 9.999, 9.99], rtol=1e-8)
    assert (pairs.residuals <= 1e-8 * np.abs(pairs.values)).all()


@pytest.mark.parametrize(
    "tol", [0, -1e-3, 1.0, 2.0, float("nan"), float("inf"), MIN_TOL / 10, "1e-3", True, None]
)
def test_bad_tolerances_are_refused_before_any_product(digits_small, tol):
    _, _, hessian, _ = digits_small
    counting = CountingMatvec(hessian.matvec)
    start = torch.ones(hessian.n, dtype=torch.float64)
    with pytest.raises(ConfigError, match="tol"):
        lanczos_top(counting, start, tol=tol)
    with pytest.raises(ConfigError, match="tol"):
        extreme_eigenvalues(hessian, tol=tol)
    with pytest.raises(ConfigError, match="lam_min_tol"):
        extreme_eigenvalues(hessian, lam_min_tol=tol)
    assert counting.calls == 0


def test_bad_lanczos_arguments_are_refused():
    start = torch.ones(5, dtype=torch.float64)
    with pytest.raises(ConfigError, match="k must be"):
        lanczos_top(lambda v: v, start, k=6)
    with pytest.raises(ConfigError, match="max_products"):
        lanczos_top(lambda v: v, start, k=2, max_products=1)
    with pytest.raises(ConfigError, match="start vector"):
        lanczos_top(lambda v: v, torch.zeros(5, dtype=torch.float64))


def test_lanczos_raises_when_its_budget_is_spent(digits_small):
    _, _, hessian, _ = digits_small
    with pytest.raises(ConvergenceError, match="did not reach tol=1e-10"):
        top_eigenpairs(hessian, tol=1e-10, max_products=3)


def test_probe_estimates_match_dense_blocks_and_trace(digits_small):
    _, _, hessian, _ = digits_small
    df = IterationJacobian.from_hessian(hessian, LR)
    estimate = probe_estimates(hessian, LR, n_probes=32)
    exact = df.matrix.trace().item()
    assert abs(estimate.trace - exact) <= 4 * estimate.trace_stderr + 1e-9
    exact_norms = df.block_norms()
    np.testing.assert_allclose(estimate.block_norms.df, exact_norms.df, rtol=0.25)
    np.testing.assert_allclose(estimate.block_norms.step, exact_norms.step, rtol=0.25)


@pytest.mark.parametrize(
    ("lam_min", "lam_max", "kind", "df_outside"),
    [
        (0.0, 5.0, "stable", None),  # flat softmax directions alone: ρ = 1, neutral
        (-0.1, 5.0, "saddle", 1.01),  # Df eigenvalue 1 − αλ_min > +1
        (0.0, 25.0, "curvature", -1.5),  # Df eigenvalue 1 − αλ_max < −1
        (-0.1, 25.0, "curvature+saddle", -1.5),
        (-1e-9, 19.99999, "stable", None),  # within tolerance of the boundaries
    ],
)
def test_verdict_classification(lam_min, lam_max, kind, df_outside):
    verdict = StabilityVerdict(LR, lam_min, lam_max)
    assert verdict.kind == kind
    if df_outside is None:
        assert verdict.spectral_radius <= 1.0 + 1e-7
    else:
        assert verdict.spectral_radius == pytest.approx(abs(df_outside))
    assert kind.split("+")[0].upper() in verdict.summary()


def test_verdict_predicts_what_gd_does(digits_small):
    """Constructed from a real Hessian: a perturbation along the top eigenvector flips sign
    each step when λ_max > 2/α (curvature) and one along the bottom eigenvector grows without
    flipping when λ_min < 0 (saddle), as the linearisation δθ' = Df δθ says."""
    loss, theta, hessian, dense = digits_small
    lam_max = dense[-1]
    assert StabilityVerdict(LR, dense[0], lam_max).kind == "saddle"
    big_lr = 2.2 / lam_max  # 2/α < λ_max
    assert StabilityVerdict(big_lr, dense[0], lam_max).kind == "curvature+saddle"
    _, vectors = torch.linalg.eigh(hessian.dense())
    eps = 1e-5
    for lr, vector, expected in (
        (big_lr, vectors[:, -1], 1 - big_lr * lam_max),
        (LR, vectors[:, 0], 1 - LR * dense[0]),
    ):
        delta = loss.step(theta + eps * vector, lr) - loss.step(theta, lr)
        ratio = (delta @ vector).item() / eps
        assert ratio == pytest.approx(expected, rel=1e-4)
        assert abs(ratio) > 1  # < −1 for curvature (flips), > +1 for the saddle (no flip)


@pytest.mark.slow
def test_lanczos_matches_dense_spectrum_of_the_full_digits_net():
    """The issue's case: 64-50-10 on all 1797 digits (3,760 parameters), λ_max to 1e-6."""
    layout = ParamLayout(64, 50, 10)
    hessian = FullBatchLoss(layout, load_batch("digits")).hessian(init_params(layout))
    dense = torch.linalg.eigvalsh(hessian.dense()).numpy()
    top, _ = top_eigenpairs(hessian, k=3)
    np.testing.assert_allclose(top, dense[::-1][:3], rtol=1e-6, atol=0)
    ends = extreme_eigenvalues(hessian)
    assert dense[0] == pytest.approx(-0.1142, abs=1e-4)  # negative curvature at a default init
    width = dense[-1] - dense[0]
    assert -1e-6 * width <= ends.lam_min - dense[0] <= 1e-5 * width
    assert StabilityVerdict(LR, ends.lam_min, ends.lam_max).spectral_radius > 1.01

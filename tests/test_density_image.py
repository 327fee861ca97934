"""The exact action-density grid and pictures, checked on Gaussian mixtures truncated to a box:
the grid integrates to 1, its masses near points match closed forms and 20,000 samples."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from jacrl.common.errors import JacrlError, NonFiniteError, UnsupportedSpaceError
from jacrl.policies.density_image import (
    density_grid,
    density_image_array,
    plot_action_density,
    save_action_density_png,
)


class TruncatedMixture:
    """Isotropic Gaussians mixed with weights, restricted to the box [low, high]^d, renormalised.

    Its masses have closed forms, independent of any grid: the box mass of a component is a
    product of normal cdf differences, and the mass of a ball that lies inside the box is the
    Rice cdf in 2-D (distance of an offset isotropic Gaussian) or a normal cdf difference in 1-D.
    """

    def __init__(
        self, means: np.ndarray, sigmas: np.ndarray, weights: np.ndarray, low: float, high: float
    ) -> None:
        self.means, self.sigmas, self.weights = means, sigmas, weights
        self.low, self.high = low, high
        self.dim = means.shape[1]
        box = [
            np.prod(stats.norm.cdf(high, m, s) - stats.norm.cdf(low, m, s))
            for m, s in zip(means, sigmas, strict=True)
        ]
        self.normaliser = float(np.dot(weights, box))

    def log_prob(self, actions: np.ndarray) -> np.ndarray:
        parts = [
            np.log(w)
            - np.sum((actions - m) ** 2, axis=1) / (2 * s**2)
            - self.dim / 2 * np.log(2 * np.pi * s**2)
            for m, s, w in zip(self.means, self.sigmas, self.weights, strict=True)
        ]
        inside = np.all((actions >= self.low) & (actions <= self.high), axis=1)
        return np.where(
            inside, np.logaddexp.reduce(parts, axis=0) - np.log(self.normaliser), -np.inf
        )

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        kept: list[np.ndarray] = []
        while sum(len(k) for k in kept) < n:
            comp = rng.choice(len(self.weights), size=n, p=self.weights)
            draws = self.means[comp] + self.sigmas[comp, None] * rng.standard_normal((n, self.dim))
            kept.append(draws[np.all((draws >= self.low) & (draws <= self.high), axis=1)])
        return np.concatenate(kept)[:n]

    def ball_mass(self, centre: np.ndarray, radius: float) -> float:
        assert np.all(centre - radius > self.low) and np.all(centre + radius < self.high)
        if self.dim == 1:
            parts = [
                stats.norm.cdf(centre[0] + radius, m[0], s)
                - stats.norm.cdf(centre[0] - radius, m[0], s)
                for m, s in zip(self.means, self.sigmas, strict=True)
            ]
        else:
            parts = [
                stats.rice.cdf(radius, np.linalg.norm(m - centre) / s, scale=s)
                for m, s in zip(self.means, self.sigmas, strict=True)
            ]
        return float(np.dot(self.weights, parts)) / self.normaliser


CENTRES_2D = np.array([[0.6, 0.0], [-0.6, 0.0], [0.0, 0.6], [0.0, -0.6]])
MIXTURE_2D = TruncatedMixture(
    means=CENTRES_2D + np.array([[0.05, 0.0], [0.0, 0.05], [-0.03, 0.02], [0.0, 0.0]]),
    sigmas=np.array([0.10, 0.15, 0.20, 0.12]),  # the widest spills 1 % across the box's edge
    weights=np.array([0.4, 0.3, 0.2, 0.1]),
    low=-1.0,
    high=1.0,
)
CENTRES_1D = np.array([[-0.5], [0.4]])
MIXTURE_1D = TruncatedMixture(
    means=np.array([[-0.55], [0.4]]),
    sigmas=np.array([0.2, 0.3]),
    weights=np.array([0.35, 0.65]),
    low=-1.0,
    high=1.0,
)
CASES = {"1d": (MIXTURE_1D, CENTRES_1D, 0.3), "2d": (MIXTURE_2D, CENTRES_2D, 0.24)}


@pytest.mark.parametrize("case", list(CASES))
def test_the_grid_integrates_an_exact_density_to_one(case: str) -> None:
    mixture = CASES[case][0]
    low, high = [mixture.low] * mixture.dim, [mixture.high] * mixture.dim
    grid = density_grid(mixture.log_prob, low, high, 400)
    assert grid.density.shape == (400,) * mixture.dim
    assert abs(grid.mass() - 1.0) < 1e-4
    # the normaliser matters: a mixture not truncated would integrate to less than 1 on the box
    assert mixture.normaliser < 0.995 if case == "2d" else mixture.normaliser < 0.999


@pytest.mark.parametrize("case", list(CASES))
def test_masses_near_points_match_closed_forms_and_samples(case: str) -> None:
    mixture, centres, radius = CASES[case]
    grid = density_grid(mixture.log_prob, [-1.0] * mixture.dim, [1.0] * mixture.dim, 400)
    masses = grid.masses_near(centres, radius)
    exact = np.array([mixture.ball_mass(c, radius) for c in centres])
    np.testing.assert_allclose(masses, exact, atol=5e-4)
    samples = mixture.sample(20_000, np.random.default_rng(0))
    fractions = np.mean(np.linalg.norm(samples[:, None, :] - centres, axis=-1) <= radius, axis=0)
    standard_error = np.sqrt(exact * (1 - exact) / len(samples))
    assert np.all(np.abs(fractions - masses) < 4 * standard_error), (fractions, masses)


def test_grid_axes_are_cell_centres_with_ij_indexing() -> None:
    # log p(a) = 2·a0 − a1 on [0, 1] × [−1, 3]: unnormalised on purpose, to see each index
    grid = density_grid(lambda a: 2 * a[:, 0] - a[:, 1], [0.0, -1.0], [1.0, 3.0], 4)
    np.testing.assert_allclose(grid.axes[0], [0.125, 0.375, 0.625, 0.875])
    np.testing.assert_allclose(grid.axes[1], [-0.5, 0.5, 1.5, 2.5])
    expected = np.exp(2 * grid.axes[0][:, None] - grid.axes[1][None, :])
    np.testing.assert_allclose(grid.density, expected)
    assert grid.cell_volume == pytest.approx(0.25)


def test_batches_and_torch_functions_give_the_same_grid() -> None:
    reference = density_grid(MIXTURE_2D.log_prob, [-1, -1], [1, 1], 30)
    batched = density_grid(MIXTURE_2D.log_prob, [-1, -1], [1, 1], 30, batch_size=7)
    np.testing.assert_array_equal(batched.density, reference.density)
    weight = torch.ones((), dtype=torch.float64, requires_grad=True)  # a grad-carrying output

    def torch_log_prob(a: np.ndarray) -> torch.Tensor:
        assert a.dtype == np.float64 and not torch.is_grad_enabled()
        return weight * torch.from_numpy(MIXTURE_2D.log_prob(a))

    from_torch = density_grid(torch_log_prob, [-1, -1], [1, 1], 30)
    np.testing.assert_array_equal(from_torch.density, reference.density)


def test_zero_density_is_accepted_and_bad_outputs_are_named() -> None:
    half = density_grid(lambda a: np.where(a[:, 0] < 0, np.log(1.0), -np.inf), [-1.0], [1.0], 10)
    assert half.mass() == pytest.approx(1.0) and np.all(half.density[5:] == 0)
    with pytest.raises(NonFiniteError, match=r"2 NaN or \+inf .*first at action \[0\.15\]"):
        density_grid(lambda a: np.where(np.abs(a[:, 0] - 0.2) < 0.15, np.nan, 0.0), [0], [1], 10)
    with pytest.raises(NonFiniteError, match="NaN or"):
        density_grid(lambda a: np.full(len(a), np.inf), [0], [1], 10)
    with pytest.raises(JacrlError, match=r"map \(10, 1\) actions to \(10,\) log-densities"):
        density_grid(lambda a: np.zeros((len(a), 1)), [0], [1], 10)


@pytest.mark.parametrize(
    ("low", "high", "size", "error", "match"),
    [
        ([0, 0, 0], [1, 1, 1], 10, UnsupportedSpaceError, "1-D and 2-D .* got 3-D"),
        ([0, 1], [1, 1], 10, JacrlError, "low < high"),
        ([0, -np.inf], [1, 1], 10, JacrlError, "finite bounds"),
        ([0, 0], [1], 10, JacrlError, r"\(d,\) arrays"),
        ([0], [1], 1, JacrlError, "size must be an integer >= 2"),
    ],
)
def test_bad_boxes_and_sizes(
    low: list[float], high: list[float], size: int, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        density_grid(lambda a: np.zeros(len(a)), low, high, size)


def test_masses_near_checks_its_points() -> None:
    grid = density_grid(MIXTURE_2D.log_prob, [-1, -1], [1, 1], 20)
    with pytest.raises(JacrlError, match=r"\(P, 2\) array"):
        grid.masses_near([0.0, 0.0], 0.1)
    with pytest.raises(JacrlError, match="radius"):
        grid.masses_near([[0.0, 0.0]], 0.0)


def test_the_picture_puts_the_density_where_the_actions_are() -> None:
    """The 2-D panel shows density.T with the origin at the bottom left, not transposed."""
    peak = np.array([0.6, -0.3])
    fig = plot_action_density(
        lambda a: -np.sum((a - peak) ** 2, axis=1) / (2 * 0.05**2), [-1, -1], [1, 1], size=100
    )
    image = fig.axes[0].images[0]
    pixels = np.asarray(image.get_array())
    left, right, bottom, top = image.get_extent()
    assert image.origin == "lower"
    row, col = np.unravel_index(np.argmax(pixels), pixels.shape)
    x = left + (col + 0.5) * (right - left) / pixels.shape[1]
    y = bottom + (row + 0.5) * (top - bottom) / pixels.shape[0]
    np.testing.assert_allclose([x, y], peak, atol=0.011)


@pytest.mark.parametrize("case", list(CASES))
def test_the_png_is_a_valid_image_with_both_panels(case: str, tmp_path: Path) -> None:
    mixture, centres, _ = CASES[case]
    low, high = [mixture.low] * mixture.dim, [mixture.high] * mixture.dim
    samples = mixture.sample(2000, np.random.default_rng(1))
    path = save_action_density_png(
        tmp_path / "sub" / "density.png",
        mixture.log_prob,
        low,
        high,
        size=120,
        samples=samples,
        points=centres,
        point_labels=[f"mode {i}" for i in range(len(centres))],
        title=f"{case} mixture",
        dpi=80,
    )
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as png:
        png.verify()
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > pixels.shape[0]
    assert pixels.std() > 0.05  # not a blank canvas


@pytest.mark.parametrize("scale", ["linear", "log"])
def test_the_image_array_is_rgb_uint8_and_a_sample_panel_widens_it(scale: str) -> None:
    one = density_image_array(MIXTURE_2D.log_prob, [-1, -1], [1, 1], size=60, scale=scale, dpi=50)
    two = density_image_array(
        MIXTURE_2D.log_prob,
        [-1, -1],
        [1, 1],
        size=60,
        scale=scale,
        dpi=50,
        samples=MIXTURE_2D.sample(500, np.random.default_rng(2)),
    )
    for array in (one, two):
        assert array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3
        assert array.min() < array.max()
    assert one.shape[0] == two.shape[0] and two.shape[1] > 1.5 * one.shape[1]


def test_plot_options_are_checked() -> None:
    with pytest.raises(JacrlError, match="scale='sqrt'"):
        plot_action_density(MIXTURE_1D.log_prob, [-1], [1], scale="sqrt")  # type: ignore[arg-type]
    with pytest.raises(JacrlError, match="one label per point"):
        plot_action_density(MIXTURE_1D.log_prob, [-1], [1], points=[[0.0]], point_labels=["a", "b"])
    with pytest.raises(JacrlError, match=r"samples must be a non-empty \(N, 2\)"):
        plot_action_density(MIXTURE_2D.log_prob, [-1, -1], [1, 1], samples=np.zeros((5, 3)))

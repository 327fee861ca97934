"""PNG figures of Df = I − α∇²L (seed 002): its blocks (eq. 23), its spectrum, and the sharpness
over training against 2/α. Agg backend: they are written to files, never shown."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm

from jacrl.analysis.iteration_jacobian import BlockNorms
from jacrl.analysis.network import BLOCK_NAMES
from jacrl.analysis.track import History

KIND_COLORS = {
    "stable": "tab:green",
    "saddle": "tab:orange",
    "curvature": "tab:red",
    "curvature+saddle": "tab:purple",
}
"""Colour of each stability verdict (see :class:`~jacrl.analysis.stability.StabilityVerdict`)."""


def plot_block_norms(norms: BlockNorms, lr: float, path: Path, estimated: bool) -> Path:
    """Two heatmaps of the 4 × 4 block norms of eq. 23: Df itself, and Df − I = −α∇²L."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), constrained_layout=True)
    panels = (
        (norms.df, "‖∂θ'_i/∂θ_j‖_F  (blocks of Df)"),
        (norms.step, f"‖(Df − I)_ij‖_F = {lr:g}·‖(∇²L)_ij‖_F"),
    )
    for ax, (values, title) in zip(axes, panels, strict=True):
        positive = values[values > 0]
        floor = positive.min() if positive.size else 1.0
        image = ax.imshow(
            np.maximum(values, floor), norm=LogNorm(vmin=floor, vmax=max(values.max(), floor))
        )
        for (i, j), value in np.ndenumerate(values):
            ax.text(
                j,
                i,
                f"{value:.3g}",
                ha="center",
                va="center",
                fontsize=10,
                bbox={"facecolor": "white", "alpha": 0.7, "linewidth": 0},
            )
        ax.set_xticks(range(4), [f"∂{name}" for name in BLOCK_NAMES])
        ax.set_yticks(range(4), [f"∂{name}'" for name in BLOCK_NAMES])
        ax.set_xlabel("with respect to (parameters at step t)")
        ax.set_ylabel("derivative of (parameters at step t+1)")
        ax.set_title(title)
        fig.colorbar(image, ax=ax, shrink=0.85, label="Frobenius norm (log scale)")
    how = "estimated from random probes" if estimated else "exact, from the dense Df"
    fig.suptitle(f"Block norms of the GD-step Jacobian Df = I − α∇²L, α = {lr:g} ({how})")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_spectrum(hessian_eigenvalues: np.ndarray, lr: float, path: Path) -> Path:
    """Hessian eigenvalues against the stable interval (0, 2/α), and Df's against the unit circle.

    With the dense spectrum the left panel is a histogram (log counts); matrix-free it shows only
    the two ends λ_min and λ_max that Lanczos found.
    """
    eigenvalues = np.sort(np.asarray(hessian_eigenvalues))
    threshold = 2.0 / lr
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), constrained_layout=True)
    low = min(eigenvalues[0], 0.0)
    # 2/α may lie far beyond λ_max (20 against ≈ 1 for digits at α = 0.1): then the axis stops
    # at λ_max and an arrow points to the threshold, so the spectrum itself stays readable.
    shown = threshold <= 3.0 * max(eigenvalues[-1], 1e-12)
    high = max(eigenvalues[-1], threshold) if shown else eigenvalues[-1]
    margin = 0.05 * (high - low)
    left.axvspan(
        0.0,
        threshold if shown else high + margin,
        color="tab:green",
        alpha=0.08,
        label="stable: 0 < λ < 2/α",
    )
    if eigenvalues.size > 2:
        left.hist(
            eigenvalues,
            bins=200,
            range=(low - margin, high + margin),
            log=True,
            color="tab:blue",
            label=f"{eigenvalues.size} eigenvalues of ∇²L",
        )
        left.set_ylabel("count (log scale)")
    else:
        left.plot(
            eigenvalues,
            np.zeros_like(eigenvalues),
            "o",
            color="tab:blue",
            label="λ_min, λ_max of ∇²L (Lanczos)",
        )
        left.set_yticks([])
    left.axvline(0.0, color="black", lw=1, label="λ = 0")
    if shown:
        left.axvline(threshold, color="tab:red", ls="--", label=f"λ = 2/α = {threshold:g}")
    else:
        left.annotate(
            f"2/α = {threshold:g} →",
            (0.98, 0.7),
            xycoords="axes fraction",
            ha="right",
            color="tab:red",
            fontsize=11,
        )
    left.set_xlim(low - margin, high + margin)
    left.set_xlabel("Hessian eigenvalue λ")
    left.set_title(f"Spectrum of ∇²L (λ_min = {eigenvalues[0]:.4g}, λ_max = {eigenvalues[-1]:.4g})")
    left.legend(loc="upper center", fontsize=8)

    df_eigenvalues = 1.0 - lr * eigenvalues
    circle = np.linspace(0.0, 2.0 * np.pi, 400)
    right.plot(np.cos(circle), np.sin(circle), color="tab:red", ls="--", label="unit circle")
    right.plot(
        df_eigenvalues,
        np.zeros_like(df_eigenvalues),
        "|",
        ms=20,
        color="tab:blue",
        label="eigenvalues 1 − αλ of Df (real: Df is symmetric)",
    )
    for value, offset in ((df_eigenvalues[0], 30), (df_eigenvalues[-1], -30)):
        outside = abs(value) > 1.0
        right.plot(value, 0.0, "o", color="tab:red" if outside else "tab:blue", ms=7)
        label = f"{value:.4f}" + (" (outside)" if outside else "")
        right.annotate(
            label,
            (value, 0.0),
            xytext=(0, offset),
            textcoords="offset points",
            ha="center",
            arrowprops={"arrowstyle": "->"},
        )
    radius = np.abs(df_eigenvalues).max()
    right.set_title(f"Spectrum of Df: ρ(Df) = {radius:.6f}")
    extent = max(1.2, 1.1 * radius)
    right.set_xlim(-extent, extent)
    right.set_ylim(-1.2, 1.2)
    right.set_aspect("equal")
    right.set_xlabel("Re")
    right.set_ylabel("Im")
    right.legend(loc="lower center", fontsize=8)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_sharpness(history: History, path: Path, title: str) -> Path:
    """Sharpness λ_max(∇²L) against 2/α over training, with loss, accuracy and ρ(Df) below."""
    threshold = 2.0 / history.lr
    fig, (top, middle, bottom) = plt.subplots(
        3, 1, figsize=(8, 9), sharex=True, constrained_layout=True
    )
    top.plot(history.steps, history.lam_max, "o-", ms=3, label="sharpness λ_max(∇²L)")
    top.axhline(threshold, color="tab:red", ls="--", label=f"2/α = {threshold:g}")
    top.set_ylabel("λ_max(∇²L)")
    top.set_title(title)
    top.legend()
    middle.plot(history.steps, history.loss, color="tab:blue", label="loss")
    middle.set_yscale("log")
    middle.set_ylabel("training loss (log)")
    twin = middle.twinx()
    twin.plot(history.steps, history.accuracy, color="tab:green", label="accuracy")
    twin.set_ylabel("training accuracy")
    middle.legend(loc="center left")
    twin.legend(loc="center right")
    bottom.plot(history.steps, history.spectral_radius, color="tab:gray", lw=1)
    steps, radii, kinds = (
        np.array(a) for a in (history.steps, history.spectral_radius, history.kind)
    )
    for kind, color in KIND_COLORS.items():
        chosen = kinds == kind
        if chosen.any():
            bottom.plot(
                steps[chosen],
                radii[chosen],
                "o",
                ms=4,
                color=color,
                label=f"ρ(Df), verdict: {kind}",
            )
    bottom.axhline(1.0, color="black", lw=1, label="ρ = 1")
    bottom.set_ylabel("spectral radius ρ(Df)")
    bottom.set_xlabel("gradient-descent step")
    bottom.legend()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

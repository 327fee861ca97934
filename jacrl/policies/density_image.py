"""Pictures of a policy's exact action density at one state, from its log-density alone.

An invertible policy knows ``log π(a|s)`` of any given action exactly, so its density can be
drawn without sampling: evaluate ``log π`` on a grid of actions inside the Box and exponentiate.
The grid also integrates the density (the total should be ~1: a direct check of the
log-det bookkeeping) and gives the exact mass near chosen points (the modes of a multimodal
task). Nothing here knows about a policy class: the caller passes a function, e.g.

    log_prob_fn = lambda a: policy.action_log_prob(
        obs.expand(len(a), -1), torch.as_tensor(a, dtype=obs.dtype)
    )

A histogram of sampled actions can be drawn beside the exact density as a check. matplotlib is
imported only when drawing, so importing this module (which :mod:`jacrl.envs` does) stays light.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np
import torch
from numpy.typing import ArrayLike

from jacrl.common.errors import JacrlError, NonFiniteError, UnsupportedSpaceError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "DensityGrid",
    "LogProbFn",
    "density_grid",
    "density_image_array",
    "figure_to_array",
    "plot_action_density",
    "save_action_density_png",
]

LogProbFn = Callable[[np.ndarray], Any]
"""Maps a ``(M, d)`` float64 array of actions to their ``(M,)`` log-densities (a numpy array or
a torch tensor; −inf is density 0). Called under ``torch.no_grad()``."""

Scale = Literal["linear", "log"]


class DensityGrid(NamedTuple):
    """A density evaluated at the centres of a regular grid of cells covering a box.

    ``density[i]`` (1-D) or ``density[i, j]`` (2-D) is the density at ``axes[0][i]`` (and
    ``axes[1][j]``): "ij" indexing, so a 2-D picture shows ``density.T`` with the origin at the
    bottom left. Integrals are midpoint sums: exact to O(h²) for a smooth density.
    """

    axes: tuple[np.ndarray, ...]
    density: np.ndarray

    @property
    def cell_volume(self) -> float:
        """The length (1-D) or area (2-D) of one cell."""
        return float(np.prod([axis[1] - axis[0] for axis in self.axes]))

    def mass(self) -> float:
        """The integral of the density over the box (~1 for a normalised density)."""
        return float(self.density.sum() * self.cell_volume)

    def masses_near(self, centres: ArrayLike, radius: float) -> np.ndarray:
        """The integral of the density over the ball of ``radius`` around each centre.

        A cell counts if its centre is within ``radius`` (≤): the ball's edge then costs an
        error of order h·(density at the edge) that mostly cancels around the circle.

        :param centres: ``(P, d)`` points, ``d`` the grid's dimension.
        :return: ``(P,)`` masses.
        """
        points = np.asarray(centres, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != len(self.axes):
            raise JacrlError(
                f"centres must be a (P, {len(self.axes)}) array, got shape {points.shape}"
            )
        if not np.isfinite(radius) or radius <= 0:
            raise JacrlError(f"radius must be a finite number > 0, got {radius!r}")
        cells = np.stack(np.meshgrid(*self.axes, indexing="ij"), axis=-1)
        weights = self.density * self.cell_volume
        return np.array(
            [weights[np.linalg.norm(cells - point, axis=-1) <= radius].sum() for point in points]
        )


def _box(low: ArrayLike, high: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    lo = np.atleast_1d(np.asarray(low, dtype=np.float64))
    hi = np.atleast_1d(np.asarray(high, dtype=np.float64))
    if lo.ndim != 1 or lo.shape != hi.shape:
        raise JacrlError(f"low and high must be (d,) arrays, got shapes {lo.shape}, {hi.shape}")
    if len(lo) not in (1, 2):
        raise UnsupportedSpaceError(
            f"action densities are drawn for 1-D and 2-D action spaces, got {len(lo)}-D"
        )
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo < hi)):
        raise JacrlError(f"need finite bounds with low < high, got low={lo}, high={hi}")
    return lo, hi


def _log_density(log_prob_fn: LogProbFn, actions: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        values = log_prob_fn(actions)
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (len(actions),):
        raise JacrlError(
            f"log_prob_fn must map ({len(actions)}, {actions.shape[1]}) actions to "
            f"({len(actions)},) log-densities, got shape {values.shape}"
        )
    bad = np.isnan(values) | (values == np.inf)
    if bad.any():
        raise NonFiniteError(
            f"log_prob_fn returned {int(bad.sum())} NaN or +inf log-densities; the first at "
            f"action {actions[int(np.argmax(bad))]} (−inf, density 0, is accepted)"
        )
    return values


def density_grid(
    log_prob_fn: LogProbFn,
    low: ArrayLike,
    high: ArrayLike,
    size: int = 200,
    *,
    batch_size: int = 16384,
) -> DensityGrid:
    """Evaluate ``exp(log_prob_fn)`` at the centres of ``size`` cells per axis of the box.

    The centres lie strictly inside the box, so a squashed policy, whose log-density is
    undefined on the boundary, can be evaluated.

    :param low: the box's lower bounds, shape ``(d,)`` with ``d`` in {1, 2} (or a scalar).
    :param high: its upper bounds.
    :param size: cells per axis (at least 2): ``size ** d`` evaluations.
    :param batch_size: actions per call of ``log_prob_fn``.
    :return: the grid's axes and the density on it (not renormalised: its
        :meth:`~DensityGrid.mass` shows how well the density integrates to 1).
    """
    lo, hi = _box(low, high)
    if int(size) != size or size < 2:
        raise JacrlError(f"size must be an integer >= 2, got {size!r}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise JacrlError(f"batch_size must be a positive integer, got {batch_size!r}")
    step = (hi - lo) / size
    axes = tuple(lo[k] + (np.arange(size) + 0.5) * step[k] for k in range(len(lo)))
    actions = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(lo))
    log_density = np.concatenate(
        [
            _log_density(log_prob_fn, np.ascontiguousarray(actions[start : start + batch_size]))
            for start in range(0, len(actions), int(batch_size))
        ]
    )
    return DensityGrid(axes, np.exp(log_density).reshape((int(size),) * len(lo)))


def plot_action_density(
    log_prob_fn: LogProbFn,
    low: ArrayLike,
    high: ArrayLike,
    *,
    size: int = 200,
    samples: ArrayLike | None = None,
    points: ArrayLike | None = None,
    point_labels: list[str] | None = None,
    scale: Scale = "linear",
    title: str | None = None,
    batch_size: int = 16384,
) -> Figure:
    """Draw the exact density of a 1-D or 2-D action on its box; optionally samples beside it.

    :param log_prob_fn: see :data:`LogProbFn`; :func:`density_grid` evaluates it.
    :param low: the box's lower bounds (``action_space.low``).
    :param high: its upper bounds.
    :param size: grid cells per axis.
    :param samples: ``(N, d)`` sampled actions: drawn as a histogram in a second panel, on
        the same colour (2-D) or density (1-D) scale, with the exact density dashed over it in 1-D.
    :param points: ``(P, d)`` actions to mark (e.g. a task's modes or goal directions).
    :param point_labels: one label per point.
    :param scale: ``"log"`` shows densities down to 10⁻⁴ of the peak (thin modes stand out).
    :param title: the figure's title.
    :param batch_size: actions per call of ``log_prob_fn``.
    :return: a :class:`matplotlib.figure.Figure` (not attached to pyplot; nothing to close).
    """
    from matplotlib.figure import Figure  # only when drawing (see the module docstring)

    if scale not in ("linear", "log"):
        raise JacrlError(f"scale={scale!r}: expected 'linear' or 'log'")
    grid = density_grid(log_prob_fn, low, high, size, batch_size=batch_size)
    lo, hi = _box(low, high)
    dim = len(lo)
    sample_array = None if samples is None else _points(samples, dim, "samples")
    point_array = None if points is None else _points(points, dim, "points")
    if point_labels is not None and (point_array is None or len(point_labels) != len(point_array)):
        raise JacrlError("point_labels needs points, and one label per point")
    panels = 1 if sample_array is None else 2
    fig = Figure(figsize=(4.4 * panels, 3.8), layout="constrained")
    axs = fig.subplots(1, panels, squeeze=False)[0]
    exact_title = f"exact density (grid mass {grid.mass():.3f})"
    if dim == 1:
        _draw_1d(axs, grid, lo, hi, sample_array, scale, exact_title)
    else:
        _draw_2d(fig, axs, grid, lo, hi, sample_array, scale, exact_title)
    if point_array is not None:
        for ax in axs:
            _mark(ax, point_array, point_labels)
    if title is not None:
        fig.suptitle(title)
    return fig


def _points(values: ArrayLike, dim: int, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if dim == 1 and array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[1] != dim or len(array) == 0:
        raise JacrlError(f"{name} must be a non-empty (N, {dim}) array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise NonFiniteError(f"{name} must be finite")
    return array


def _draw_1d(
    axs: np.ndarray,
    grid: DensityGrid,
    lo: np.ndarray,
    hi: np.ndarray,
    samples: np.ndarray | None,
    scale: Scale,
    exact_title: str,
) -> None:
    (axis,), density = grid
    peak = float(density.max())
    axs[0].plot(axis, density, color="tab:blue")
    axs[0].set_title(exact_title, fontsize="medium")
    if samples is not None:
        inside = _inside(samples, lo, hi)
        axs[1].hist(
            samples[inside, 0],
            bins=min(len(axis), 60),
            range=(lo[0], hi[0]),
            density=True,
            histtype="stepfilled",
            alpha=0.6,
        )
        axs[1].plot(axis, density, color="black", linestyle="--", linewidth=1.0, label="exact")
        axs[1].legend(fontsize="small")
        axs[1].set_title(_sample_title(samples, inside), fontsize="medium")
    for ax in axs:
        ax.set_xlim(lo[0], hi[0])
        ax.set_xlabel("action")
        ax.set_ylabel("density")
        if scale == "log":
            ax.set_yscale("log")
            ax.set_ylim(bottom=max(peak, np.finfo(float).tiny) * 1e-4)


def _draw_2d(
    fig: Figure,
    axs: np.ndarray,
    grid: DensityGrid,
    lo: np.ndarray,
    hi: np.ndarray,
    samples: np.ndarray | None,
    scale: Scale,
    exact_title: str,
) -> None:
    from matplotlib.colors import LogNorm, Normalize

    peak = max(float(grid.density.max()), np.finfo(float).tiny)
    norm = Normalize(0.0, peak) if scale == "linear" else LogNorm(peak * 1e-4, peak, clip=True)
    extent = (lo[0], hi[0], lo[1], hi[1])
    image = axs[0].imshow(
        grid.density.T, origin="lower", extent=extent, aspect="auto", norm=norm, cmap="viridis"
    )
    axs[0].set_title(exact_title, fontsize="medium")
    if samples is not None:
        inside = _inside(samples, lo, hi)
        bins = min(len(grid.axes[0]), 60)
        axs[1].hist2d(
            samples[inside, 0],
            samples[inside, 1],
            bins=bins,
            range=[(lo[0], hi[0]), (lo[1], hi[1])],
            density=True,
            norm=norm,
            cmap="viridis",
        )
        axs[1].set_title(_sample_title(samples, inside), fontsize="medium")
    for ax in axs:
        ax.set_xlabel("action[0]")
        ax.set_ylabel("action[1]")
    fig.colorbar(image, ax=list(axs), label="density")


def _inside(samples: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.all((samples >= lo) & (samples <= hi), axis=1)


def _sample_title(samples: np.ndarray, inside: np.ndarray) -> str:
    outside = len(samples) - int(inside.sum())
    return f"histogram of {len(samples)} samples" + (f" ({outside} outside)" if outside else "")


def _mark(ax: Axes, points: np.ndarray, labels: list[str] | None) -> None:
    for i, point in enumerate(points):
        if points.shape[1] == 1:
            ax.axvline(point[0], color="tab:red", linestyle=":", linewidth=1.0)
            anchor = (point[0], 1.0)
            transform = ax.get_xaxis_transform()
        else:
            ax.plot(point[0], point[1], "x", color="tab:red", markersize=7, markeredgewidth=1.5)
            anchor, transform = (point[0], point[1]), ax.transData
        if labels is not None:
            ax.annotate(
                labels[i], anchor, xycoords=transform, xytext=(3, 3), textcoords="offset points",
                color="tab:red", fontsize="small",
            )  # fmt: skip


def figure_to_array(fig: Figure, dpi: float | None = None) -> np.ndarray:
    """Render a figure with the Agg canvas into a ``(H, W, 3)`` uint8 RGB array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if dpi is not None:
        fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def density_image_array(
    log_prob_fn: LogProbFn, low: ArrayLike, high: ArrayLike, *, dpi: float = 100, **options: Any
) -> np.ndarray:
    """:func:`plot_action_density` as a ``(H, W, 3)`` uint8 array, e.g. for TensorBoard.

    With SB3's logger: ``logger.record("policy/action_density", Image(array, "HWC"))``.

    :param options: the keyword arguments of :func:`plot_action_density`.
    """
    return figure_to_array(plot_action_density(log_prob_fn, low, high, **options), dpi=dpi)


def save_action_density_png(
    path: str | Path,
    log_prob_fn: LogProbFn,
    low: ArrayLike,
    high: ArrayLike,
    *,
    dpi: float = 120,
    **options: Any,
) -> Path:
    """Write :func:`plot_action_density` to a PNG file (parent folders are created).

    :param options: the keyword arguments of :func:`plot_action_density`.
    :return: the path written.
    """
    path = Path(path)
    fig = plot_action_density(log_prob_fn, low, high, **options)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    return path

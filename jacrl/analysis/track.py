"""Df over training: full-batch GD (seed 002, eq. 20) with the spectrum measured every K steps.

Cohen et al. (ICLR 2021, "Gradient descent on neural networks typically occurs at the edge of
stability") observed that the sharpness λ_max(∇²L) rises during full-batch GD until it reaches
2/α and then hovers there, while the loss keeps falling non-monotonically. This loop records
exactly the quantities needed to see that: loss, accuracy, λ_max next to the line 2/α, λ_min
and ρ(Df), to TensorBoard and to a :class:`History` for the plots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from torch import Tensor

from jacrl.analysis.hessian import FullBatchLoss
from jacrl.analysis.network import accuracy
from jacrl.analysis.spectrum import extreme_eigenvalues
from jacrl.analysis.stability import StabilityVerdict
from jacrl.common.errors import JacrlError, NonFiniteError

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter


@dataclass
class History:
    """One entry per measured step."""

    lr: float
    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    lam_max: list[float] = field(default_factory=list)
    lam_min: list[float] = field(default_factory=list)
    spectral_radius: list[float] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)

    def append(self, step: int, loss: float, accuracy: float, verdict: StabilityVerdict) -> None:
        """Record one measurement."""
        self.steps.append(step)
        self.loss.append(loss)
        self.accuracy.append(accuracy)
        self.lam_max.append(verdict.lam_max)
        self.lam_min.append(verdict.lam_min)
        self.spectral_radius.append(verdict.spectral_radius)
        self.kind.append(verdict.kind)

    def latest(self) -> dict[str, float]:
        """The last measurement under its TensorBoard key."""
        return {
            "train/loss": self.loss[-1],
            "train/accuracy": self.accuracy[-1],
            "analysis/sharpness": self.lam_max[-1],
            "analysis/two_over_lr": 2.0 / self.lr,
            "analysis/lambda_min": self.lam_min[-1],
            "analysis/spectral_radius": self.spectral_radius[-1],
        }


def track(
    loss: FullBatchLoss,
    theta: Tensor,
    lr: float,
    steps: int,
    every: int,
    logdir: str | None = None,
    on_record: Callable[[int, dict[str, float]], None] | None = None,
) -> tuple[Tensor, History]:
    """Run ``steps`` GD steps from θ, measuring the spectrum at step 0 and every ``every`` steps.

    The top eigenvector of one measurement starts the next Lanczos run: it moves little between
    measurements, so later runs need fewer products.

    :param logdir: TensorBoard folder (``SummaryWriter``); None writes nothing.
    :param on_record: called with (step, scalars) after each measurement (progress output).
    :return: the final θ and the recorded history.
    """
    if steps < 0 or every < 1:
        raise JacrlError(f"need steps >= 0 and every >= 1, got steps={steps}, every={every}")
    writer = _writer(logdir, lr)
    history = History(lr)
    top_vector: np.ndarray | None = None
    for step in range(steps + 1):
        if step % every == 0 or step == steps:
            value = loss.value(theta).item()
            if not np.isfinite(value):
                raise NonFiniteError(f"loss became {value} at step {step}: lower --lr")
            ends = extreme_eigenvalues(loss.hessian(theta), v0=top_vector)
            top_vector = ends.top_vector
            verdict = StabilityVerdict(lr, ends.lam_min, ends.lam_max)
            acc = accuracy(loss.layout, theta, loss.batch.x, loss.batch.t)
            history.append(step, value, acc, verdict)
            record = history.latest()
            if writer is not None:
                for key, scalar in record.items():
                    writer.add_scalar(key, scalar, step)
            if on_record is not None:
                on_record(step, record)
        if step < steps:
            theta = loss.step(theta, lr)
    if writer is not None:
        writer.close()
    return theta, history


def _writer(logdir: str | None, lr: float) -> SummaryWriter | None:
    """A SummaryWriter whose dashboard overlays the sharpness on 2/α in one chart."""
    if logdir is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(logdir)
    writer.add_custom_scalars(
        {
            "edge of stability": {
                f"sharpness vs 2/lr (lr={lr:g})": [
                    "Multiline",
                    ["analysis/sharpness", "analysis/two_over_lr"],
                ],
            }
        }
    )
    return writer

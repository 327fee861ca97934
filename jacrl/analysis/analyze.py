"""One analysis of Df(θ) = I − α∇²L(θ) at one θ: verdict, trace, log-determinant, blocks.

Dense when asked (every eigenvalue, exact blocks of eq. 23 and log|det Df|), matrix-free
otherwise (Lanczos for the two ends of the spectrum, probes for the blocks and the trace), so
the same call serves the 3,760-parameter digits net and the 39,760-parameter MNIST net of
seed 002.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import Tensor

from jacrl.analysis.hessian import FullBatchLoss
from jacrl.analysis.iteration_jacobian import (
    BlockNorms,
    IterationJacobian,
    ProbeEstimates,
    log_abs_det,
    probe_estimates,
)
from jacrl.analysis.network import accuracy
from jacrl.analysis.spectrum import extreme_eigenvalues
from jacrl.analysis.stability import StabilityVerdict


@dataclass(frozen=True)
class Analysis:
    """What is known about Df at one θ.

    :param hessian_eigenvalues: all eigenvalues of ∇²L (dense) or only λ_min and λ_max.
    :param block_norms: ‖(Df)_ij‖_F over (W1, b1, W2, b2), exact (dense) or probe estimates.
    :param exact_trace: tr(Df) when dense, else None.
    :param logabsdet: log|det Df| when dense, else None.
    """

    verdict: StabilityVerdict
    hessian_eigenvalues: np.ndarray
    block_norms: BlockNorms
    probes: ProbeEstimates
    n_params: int
    loss: float
    accuracy: float
    exact_trace: float | None = None
    logabsdet: float | None = None

    @property
    def dense(self) -> bool:
        """Whether the full spectrum (and so the exact blocks) was computed."""
        return self.exact_trace is not None

    def summary(self) -> str:
        """The verdict followed by trace and determinant, as the CLI prints it."""
        trace = f"tr(Df) ≈ {self.probes.trace:.4f} ± {self.probes.trace_stderr:.4f}"
        trace += f" (Hutchinson, {self.probes.n_probes} probes per block)"
        if self.exact_trace is not None:
            trace += f"; exact {self.exact_trace:.4f}"
        lines = [
            f"n = {self.n_params} parameters, loss = {self.loss:.6f},"
            f" accuracy = {self.accuracy:.4f}",
            self.verdict.summary(),
            f"  {trace}",
        ]
        if self.logabsdet is not None:
            lines.append(f"  log|det Df| = {self.logabsdet:.4f}")
        return "\n".join(lines)


def analyze(
    loss: FullBatchLoss,
    theta: Tensor,
    lr: float,
    dense: bool = False,
    n_probes: int = 8,
    seed: int = 0,
) -> Analysis:
    """Analyse the gradient step θ ↦ θ − α∇L(θ) (eq. 20) at θ.

    :param dense: build the full Df (n² numbers; n = 3,760 for digits 64-50-10) and take all
        its eigenvalues; otherwise use Lanczos and probes only.
    :param n_probes: probes per parameter block for the trace and block-norm estimates.
    """
    hessian = loss.hessian(theta)
    probes = probe_estimates(hessian, lr, n_probes=n_probes, seed=seed)
    exact_trace = logabsdet = None
    if dense:
        df = IterationJacobian.from_hessian(hessian, lr)
        df_eigenvalues = df.eigenvalues()
        eigenvalues = np.sort((1.0 - df_eigenvalues.cpu().numpy()) / lr)
        lam_min, lam_max = float(eigenvalues[0]), float(eigenvalues[-1])
        block_norms = df.block_norms()
        exact_trace = float(df.matrix.trace().item())
        logabsdet = log_abs_det(df_eigenvalues)
    else:
        ends = extreme_eigenvalues(hessian)
        lam_min, lam_max = ends.lam_min, ends.lam_max
        eigenvalues = np.array([lam_min, lam_max])
        block_norms = probes.block_norms
    return Analysis(
        verdict=StabilityVerdict(lr, lam_min, lam_max),
        hessian_eigenvalues=eigenvalues,
        block_norms=block_norms,
        probes=probes,
        n_params=hessian.n,
        loss=loss.value(theta).item(),
        accuracy=accuracy(loss.layout, theta, loss.batch.x, loss.batch.t),
        exact_trace=exact_trace,
        logabsdet=logabsdet,
    )

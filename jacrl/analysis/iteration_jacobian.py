"""Df(θ) = I − α∇²L(θ), the Jacobian of one gradient-descent step (seed 002, eqs. 12, 22, 23).

Seed 002 writes Df as 4 × 4 blocks ∂θ'_i/∂θ_j over θ = (W1, b1, W2, b2) (eq. 23). Here the
dense Df (when it fits) keeps that labelling, and the block norms ‖(Df)_ij‖_F — the picture of
eq. 23 — are also estimated matrix-free from block-restricted random probes, which at the same
time give a Hutchinson estimate of tr(Df).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from jacrl.analysis.hessian import HessianOperator
from jacrl.analysis.network import BLOCK_NAMES, ParamLayout


@dataclass(frozen=True)
class BlockNorms:
    """Frobenius norms over the 4 × 4 blocks (W1, b1, W2, b2) of eq. 23, rows = ∂θ'_i.

    :param df: ‖(Df)_ij‖_F; the identity dominates the diagonal blocks.
    :param step: ‖(Df − I)_ij‖_F = α‖(∇²L)_ij‖_F, what one step actually changes.
    """

    df: np.ndarray
    step: np.ndarray


@dataclass(frozen=True)
class IterationJacobian:
    """A dense Df = I − α∇²L with its blocks (W1, b1, W2, b2) labelled as in eq. 23.

    :param matrix: Df, shape (n, n); row block i, column block j is ∂θ'_i/∂θ_j.
    :param layout: where each block sits in θ.
    :param lr: the step size α it was built for.
    """

    matrix: Tensor
    layout: ParamLayout
    lr: float

    @classmethod
    def from_hessian(cls, hessian: HessianOperator, lr: float) -> IterationJacobian:
        """Assemble ∇²L column block by column block (see ``HessianOperator.dense``), then
        form I − α∇²L in place so only one n × n matrix is ever held."""
        matrix = hessian.dense().mul_(-lr)
        matrix.diagonal().add_(1.0)
        return cls(matrix, hessian.layout, lr)

    def block(self, row: str, col: str) -> Tensor:
        """∂θ'_row/∂θ_col of eq. 23, rows and columns in θ's order (W1 row-major)."""
        slices = self.layout.slices
        return self.matrix[slices[row], slices[col]]

    def block_norms(self) -> BlockNorms:
        """‖(Df)_ij‖_F and ‖(Df − I)_ij‖_F for the 4 × 4 blocks of eq. 23."""
        df = np.zeros((4, 4))
        step = np.zeros((4, 4))
        for i, row in enumerate(BLOCK_NAMES):
            for j, col in enumerate(BLOCK_NAMES):
                block = self.block(row, col)
                df[i, j] = block.norm().item()
                step[i, j] = _norm_minus_identity(block) if i == j else df[i, j]
        return BlockNorms(df, step)

    def eigenvalues(self) -> Tensor:
        """All eigenvalues of Df, ascending (real: Df is symmetric)."""
        return torch.linalg.eigvalsh(self.matrix)


def _norm_minus_identity(block: Tensor, rows: int = 2048) -> float:
    """‖B − I‖_F a few rows at a time: never a second copy of B (the W1 block of the MNIST net
    is 39,200² numbers), and no cancellation against the identity as in ‖B‖² − 2 tr B + n."""
    total = 0.0
    for start in range(0, len(block), rows):
        piece = block[start : start + rows].clone()
        piece.diagonal(offset=start).sub_(1.0)
        total += piece.square().sum().item()
    return math.sqrt(total)


def log_abs_det(df_eigenvalues: Tensor) -> float:
    """log|det Df| = Σ log|1 − αλ_i|; −inf when some λ_i = 1/α makes Df singular."""
    return float(torch.log(df_eigenvalues.abs()).sum().item())


@dataclass(frozen=True)
class ProbeEstimates:
    """Block norms and trace of Df estimated from random probes (no n × n matrix)."""

    block_norms: BlockNorms
    trace: float
    trace_stderr: float
    n_probes: int


def probe_estimates(
    hessian: HessianOperator, lr: float, n_probes: int = 8, seed: int = 0
) -> ProbeEstimates:
    """‖(Df)_ij‖_F, ‖(Df − I)_ij‖_F and tr(Df) from Rademacher probes, one block at a time.

    For v Rademacher on block j and zero elsewhere, E‖(Df v)_i‖² = ‖(Df)_ij‖_F² and
    E[v_jᵀ(Df v)_j] = tr((Df)_jj); summing the latter over j is Hutchinson's estimator of tr(Df)
    without the cross-block terms of its variance. Costs 4·n_probes Hessian-vector products.
    """
    layout, slices = hessian.layout, hessian.layout.slices
    generator = torch.Generator(device=hessian.a1.device).manual_seed(seed)
    squared_df = np.zeros((4, 4))
    squared_step = np.zeros((4, 4))
    traces = np.zeros(n_probes)
    for j, col in enumerate(BLOCK_NAMES):
        probes = torch.zeros(
            n_probes, layout.n_params, dtype=hessian.a1.dtype, device=hessian.a1.device
        )
        size = layout.sizes[col]
        signs = torch.randint(0, 2, (n_probes, size), generator=generator, device=hessian.a1.device)
        probes[:, slices[col]] = signs.to(probes.dtype) * 2 - 1
        steps = -lr * hessian.matmat(probes)  # (Df − I) v for each probe
        images = probes + steps  # Df v
        for i, row in enumerate(BLOCK_NAMES):
            squared_df[i, j] = images[:, slices[row]].square().sum(1).mean().item()
            squared_step[i, j] = steps[:, slices[row]].square().sum(1).mean().item()
        traces += (probes[:, slices[col]] * images[:, slices[col]]).sum(1).cpu().numpy()
    stderr = float(traces.std(ddof=1) / np.sqrt(n_probes)) if n_probes > 1 else float("nan")
    norms = BlockNorms(np.sqrt(squared_df), np.sqrt(squared_step))
    return ProbeEstimates(norms, float(traces.mean()), stderr, n_probes)

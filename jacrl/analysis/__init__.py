"""Seed 002: the Jacobian Df(θ) = I − α∇²L(θ) of one full-batch gradient-descent step.

For the 784-50-10 sigmoid/softmax network of seed 002 (and any d-h-c width), this package gives
the loss and its Hessian-vector products (:mod:`~jacrl.analysis.hessian`), the dense Df with
its 4 × 4 block structure (:mod:`~jacrl.analysis.iteration_jacobian`), Lanczos estimates of the
spectrum's ends (:mod:`~jacrl.analysis.spectrum`), the stability verdict
(:mod:`~jacrl.analysis.stability`), tracking over training (:mod:`~jacrl.analysis.track`),
figures (:mod:`~jacrl.analysis.plots`) and the ``jacrl analyze iteration-jacobian`` command
(:mod:`~jacrl.analysis.cli`).
"""

from jacrl.analysis.analyze import Analysis, analyze
from jacrl.analysis.data import Batch, load_batch
from jacrl.analysis.hessian import FullBatchLoss, HessianOperator
from jacrl.analysis.iteration_jacobian import BlockNorms, IterationJacobian, probe_estimates
from jacrl.analysis.network import ParamLayout, init_params
from jacrl.analysis.spectrum import extreme_eigenvalues, top_eigenpairs
from jacrl.analysis.stability import StabilityVerdict
from jacrl.analysis.track import History, track

__all__ = [
    "Analysis",
    "Batch",
    "BlockNorms",
    "FullBatchLoss",
    "HessianOperator",
    "History",
    "IterationJacobian",
    "ParamLayout",
    "StabilityVerdict",
    "analyze",
    "extreme_eigenvalues",
    "init_params",
    "load_batch",
    "probe_estimates",
    "top_eigenpairs",
    "track",
]

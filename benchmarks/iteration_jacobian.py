"""Benchmark of seed 002's iteration Jacobian Df = I − α∇²L (run on demand, not a test).

1. The seed's exact configuration: 60000 × 784 inputs (synthetic, MNIST-shaped), 784-50-10,
   α = 0.1, float64. Times one gradient and one Hessian-vector product three ways (the factored
   product of ``jacrl.analysis.hessian``, ``jvp(grad(L))`` of the whole loss, double backward),
   then λ_max, λ_min and ρ(Df) by Lanczos (target ≤ 60 s, peak RSS ≤ 4 GiB), then the probe
   estimates of tr(Df) and the block norms.
2. The dense Df of the digits net 64-50-10 on all 1797 images (target ≤ 30 s), and Lanczos' λ_max
   against the dense spectrum.

    .venv/bin/python benchmarks/iteration_jacobian.py [--threads 2]

Wall time depends on what else runs on the machine; CPU time and the load average are printed
next to it so contended runs can be recognised.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

import torch
from torch.func import grad, jvp

from jacrl.analysis import FullBatchLoss, HessianOperator, ParamLayout, init_params, load_batch
from jacrl.analysis.iteration_jacobian import IterationJacobian, probe_estimates
from jacrl.analysis.spectrum import extreme_eigenvalues, top_eigenpairs
from jacrl.analysis.stability import StabilityVerdict
from jacrl.common.threads import use_threads

LR = 0.1
T = TypeVar("T")


class CountingHessian(HessianOperator):
    """A HessianOperator that counts its products per dtype (how many Lanczos needed),
    including those of its float32 copies (``to``), which share the counter."""

    def __init__(self, loss: FullBatchLoss, theta: torch.Tensor) -> None:
        super().__init__(loss, theta)
        self.counts: Counter[torch.dtype] = Counter()

    @property
    def products(self) -> int:
        return sum(self.counts.values())

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        self.counts[v.dtype] += 1
        return super().matvec(v)


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def timed(label: str, fn: Callable[[], T]) -> tuple[float, T]:
    """Run fn once, print wall and CPU seconds, return (wall seconds, result)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"  {label:<44s} {wall:8.2f} s wall  {cpu:8.2f} s cpu")
    return wall, result


def best_of(fns: dict[str, Callable[[], object]], repeat: int = 5) -> dict[str, float]:
    """Fastest of ``repeat`` wall times per function, taken round-robin so that load from other
    processes hits every candidate alike."""
    for fn in fns.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {label: [] for label in fns}
    for _ in range(repeat):
        for label, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - start)
    return {label: min(values) for label, values in times.items()}


def power_iteration(
    hessian: HessianOperator, tol: float = 1e-3, max_iter: int = 100
) -> tuple[float, int]:
    """λ_max the way PyHessian's ``eigenvalues()`` gets it: power iteration stopped when the
    Rayleigh quotient changes by less than tol relative (its defaults: 1e-3, 100 iterations)."""
    v = torch.randn(hessian.n, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    v /= v.norm()
    eigenvalue: float | None = None
    new = float("nan")
    for iteration in range(1, max_iter + 1):
        hv = hessian.matvec(v)
        new = (v @ hv).item()
        v = hv / hv.norm()
        if eigenvalue is not None and abs(new - eigenvalue) / (abs(eigenvalue) + 1e-6) < tol:
            return new, iteration
        eigenvalue = new
    return new, max_iter


def seed_configuration() -> None:
    print("== seed 002 configuration: 60000 x 784 synthetic MNIST, 784-50-10, lr 0.1, float64")
    _, batch = timed("make synthetic data", lambda: load_batch("synthetic"))
    layout = ParamLayout(784, 50, 10)
    theta = init_params(layout)
    loss = FullBatchLoss(layout, batch)
    v = torch.randn(
        layout.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    hessian = loss.hessian(theta)
    hessian32, v32 = hessian.to(torch.float32), v.float()

    def double_backward() -> torch.Tensor:
        p = theta.clone().requires_grad_()
        (g,) = torch.autograd.grad(loss.value(p), p, create_graph=True)
        return torch.autograd.grad(g, p, v)[0]

    best = best_of(
        {
            "one gradient": lambda: loss.gradient(theta),
            "one HVP, factored through A1 (ours)": lambda: hessian.matvec(v),
            "  the same in float32 (used for lambda_min)": lambda: hessian32.matvec(v32),
            "one HVP, jvp(grad(L)) of the whole loss": lambda: jvp(
                grad(loss.value), (theta,), (v,)
            ),
            "one HVP, double backward": double_backward,
        }
    )
    t_grad = best["one gradient"]
    for label, seconds in best.items():
        print(f"  {label:<44s} {seconds:8.3f} s = {seconds / t_grad:.2f} x gradient")

    counting = CountingHessian(loss, theta)
    wall, ends = timed("lambda_max, lambda_min by Lanczos", lambda: extreme_eigenvalues(counting))
    verdict = StabilityVerdict(LR, ends.lam_min, ends.lam_max)
    estimate = (
        counting.counts[torch.float64] * best["one HVP, factored through A1 (ours)"]
        + counting.counts[torch.float32] * best["  the same in float32 (used for lambda_min)"]
    )
    print(f"  products x fastest time per product: {estimate:.1f} s (the run without contention)")
    print(
        f"  {counting.counts[torch.float64]} float64 (lambda_max) + "
        f"{counting.counts[torch.float32]} float32 (lambda_min) products; target <= 60 s: "
        f"{'met' if wall <= 60 else 'MISSED'} ({wall:.1f} s)"
    )
    print("  " + verdict.summary().replace("\n", "\n  "))
    _, probes = timed(
        "tr(Df), block norms (2 probes per block)", lambda: probe_estimates(hessian, LR, n_probes=2)
    )
    print(f"  tr(Df) ~ {probes.trace:.2f} +- {probes.trace_stderr:.2f}")
    rss = peak_rss_gib()
    print(f"  peak RSS {rss:.2f} GiB; target <= 4 GiB: {'met' if rss <= 4 else 'MISSED'}")


def digits_dense() -> None:
    print("== dense Df of the digits net 64-50-10, all 1797 images, lr 0.1, float64")
    layout = ParamLayout(64, 50, 10)
    loss = FullBatchLoss(layout, load_batch("digits"))
    theta = init_params(layout)
    hessian = loss.hessian(theta)
    start = time.perf_counter()
    _, df = timed(
        f"assemble Df ({layout.n_params} x {layout.n_params})",
        lambda: IterationJacobian.from_hessian(hessian, LR),
    )
    _, eigenvalues = timed("all eigenvalues (eigvalsh)", df.eigenvalues)
    total = time.perf_counter() - start
    print(
        f"  dense Df + spectrum {total:.1f} s; target <= 30 s: {'met' if total <= 30 else 'MISSED'}"
    )
    lam_max_dense = (1 - eigenvalues.min().item()) / LR
    counting = CountingHessian(loss, theta)
    (lam_max,), _ = top_eigenpairs(counting, k=1)
    power, iterations = power_iteration(hessian)
    print(
        f"  power iteration at PyHessian's default tol 1e-3: {power:.12f} after {iterations} "
        f"products, relative error {abs(power - lam_max_dense) / lam_max_dense:.1e}"
    )
    print(f"  Lanczos (tol 1e-6) used {counting.products} products")
    print(
        f"  lambda_max dense {lam_max_dense:.12f}, Lanczos {lam_max:.12f}, "
        f"relative error {abs(lam_max - lam_max_dense) / lam_max_dense:.1e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--part", choices=("all", "seed", "digits"), default="all")
    args = parser.parse_args()
    use_threads(args.threads)
    print(
        f"torch {torch.__version__}, {args.threads} threads, "
        f"load average at start {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    if args.part in ("all", "seed"):
        seed_configuration()
    if args.part in ("all", "digits"):
        digits_dense()
    print(f"load average at end {os.getloadavg()[0]:.2f}; peak RSS {peak_rss_gib():.2f} GiB")


if __name__ == "__main__":
    main()

"""``jacrl analyze iteration-jacobian``: seed 002's Df = I − α∇²L from the command line.

The ``jacrl`` command (:mod:`jacrl.cli`) mounts it with :func:`add_arguments` and :func:`run`::

    jacrl analyze iteration-jacobian --dataset digits --hidden 50 --lr 0.1 --dense
    jacrl analyze iteration-jacobian --dataset digits --track --steps 2000 --every 50
    jacrl analyze iteration-jacobian --dataset mnist --mnist-dir data/mnist

It prints the stability verdict and writes PNGs (block norms, spectrum, and with ``--track`` the
sharpness curve) to ``--out`` and TensorBoard scalars to ``<logdir>/analysis/<run>``.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from jacrl.analysis.analyze import analyze
from jacrl.analysis.data import DATASETS, load_batch
from jacrl.analysis.hessian import FullBatchLoss
from jacrl.analysis.network import ParamLayout, init_params
from jacrl.analysis.plots import plot_block_norms, plot_sharpness, plot_spectrum
from jacrl.analysis.track import track
from jacrl.common.errors import ConfigError, JacrlError

DTYPES = {"float64": torch.float64, "float32": torch.float32}
CPU_DENSE_LIMIT_BYTES = 4 * 2**30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``iteration-jacobian`` options to ``parser``."""
    parser.add_argument(
        "--dataset",
        choices=DATASETS,
        default="digits",
        help="digits (sklearn 8×8, 64 inputs), mnist (IDX files) or synthetic "
        "(MNIST-shaped, 60000×784)",
    )
    parser.add_argument("--hidden", type=int, default=50, help="hidden width h (seed: 50)")
    parser.add_argument("--lr", type=float, default=0.1, help="step size α (seed: 0.1)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="use the first K examples as the full batch (default: all)",
    )
    parser.add_argument("--mnist-dir", default=None, help="folder with the MNIST IDX files")
    parser.add_argument("--seed", type=int, default=0, help="initialisation (and synthetic data)")
    parser.add_argument(
        "--track",
        action="store_true",
        help="train by full-batch GD, measuring the spectrum every --every steps",
    )
    parser.add_argument("--steps", type=int, default=1000, help="GD steps with --track")
    parser.add_argument("--every", type=int, default=50, help="measure every K steps")
    parser.add_argument(
        "--dense",
        action="store_true",
        help="build the full Df and all its eigenvalues (small nets, or cuda)",
    )
    parser.add_argument(
        "--probes", type=int, default=8, help="random probes per block for tr(Df) and block norms"
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--dtype",
        choices=tuple(DTYPES),
        default="float64",
        help="float32 halves the dense Df (6.3 GB for 784-50-10 on a GPU)",
    )
    parser.add_argument(
        "--out", default=None, help="folder for the PNGs (default: the TensorBoard run folder)"
    )
    parser.add_argument("--logdir", default="runs", help="TensorBoard root")


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse values that mean nothing before any work: a step size that is not a positive
    finite number (2/α is the stability threshold), counts below 1.

    :raises ConfigError: naming the option and what is accepted.
    """
    if not math.isfinite(args.lr) or args.lr <= 0:
        raise ConfigError(f"--lr {args.lr:g}: the step size α must be a positive finite number")
    counts = {"--hidden": args.hidden, "--steps": args.steps, "--every": args.every}
    counts["--probes"] = args.probes
    if args.batch_size is not None:
        counts["--batch-size"] = args.batch_size
    for option, value in counts.items():
        if value < 1:
            raise ConfigError(f"{option} {value}: expected a positive whole number")


def run(args: argparse.Namespace) -> int:
    """Analyse Df at the initial θ, or after ``--steps`` GD steps with ``--track``; 0 on success."""
    check_arguments(args)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise JacrlError("--device cuda was asked for but torch sees no CUDA device; use cpu")
    batch = load_batch(
        args.dataset, args.batch_size, args.mnist_dir, args.seed, DTYPES[args.dtype], args.device
    )
    layout = ParamLayout(batch.x.shape[1], args.hidden, batch.t.shape[1])
    _check_dense_fits(args, layout)
    theta = init_params(layout, args.seed, DTYPES[args.dtype]).to(args.device)
    loss = FullBatchLoss(layout, batch)
    name = f"{args.dataset}_h{args.hidden}_lr{args.lr:g}"
    logdir = Path(args.logdir) / "analysis" / name
    out = Path(args.out) if args.out is not None else logdir
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"{name}: {layout.n_in}-{layout.n_hidden}-{layout.n_out} network, k = {batch.k},"
        f" n = {layout.n_params} parameters, lr = {args.lr:g}, {args.dtype} on {args.device}"
    )
    written = []
    if args.track:
        theta, history = track(
            loss, theta, args.lr, args.steps, args.every, str(logdir), on_record=_print_record
        )
        title = f"{name}: full-batch GD, sharpness against 2/α"
        written.append(plot_sharpness(history, out / "sharpness.png", title))
    started = time.perf_counter()
    result = analyze(loss, theta, args.lr, dense=args.dense, n_probes=args.probes, seed=args.seed)
    where = f"after {args.steps} GD steps" if args.track else "at initialisation"
    print(
        f"Df {where} ({'dense' if args.dense else 'Lanczos'},"
        f" {time.perf_counter() - started:.1f} s):"
    )
    print(result.summary())
    written.append(
        plot_block_norms(
            result.block_norms, args.lr, out / "block_norms.png", estimated=not result.dense
        )
    )
    written.append(plot_spectrum(result.hessian_eigenvalues, args.lr, out / "spectrum.png"))
    print("wrote " + ", ".join(str(path) for path in written))
    if args.track:
        print(f"TensorBoard: tensorboard --logdir {logdir}")
    return 0


def _check_dense_fits(args: argparse.Namespace, layout: ParamLayout) -> None:
    """Refuse a dense Df that would not fit in host memory, before any Hessian product."""
    size = layout.n_params**2 * DTYPES[args.dtype].itemsize
    if args.dense and args.device == "cpu" and size > CPU_DENSE_LIMIT_BYTES:
        raise JacrlError(
            f"a dense Df of {layout.n_params} parameters needs {size / 2**30:.1f} GiB; on cpu "
            f"--dense is accepted up to {CPU_DENSE_LIMIT_BYTES / 2**30:.0f} GiB: drop --dense "
            "(Lanczos) or use --device cuda"
        )


def _print_record(step: int, record: dict[str, float]) -> None:
    print(
        f"step {step:6d}  loss {record['train/loss']:.5f}  acc {record['train/accuracy']:.4f}"
        f"  lambda_max {record['analysis/sharpness']:.4f}"
        f" (2/lr {record['analysis/two_over_lr']:g})  lambda_min"
        f" {record['analysis/lambda_min']:.3e}  rho(Df) {record['analysis/spectral_radius']:.5f}",
        flush=True,
    )

"""The full batch (X, T) of seed 002 (eqs. 1, 6): MNIST, sklearn digits, or synthetic data.

Seed 002 trains on one batch of k = 60000 MNIST images; the analysis needs the same X ∈ R^{k×d}
with pixels in [0, 1] and one-hot targets T ∈ R^{k×c}. sklearn's 8×8 digits ship with sklearn
(no download) and give a 64-50-10 network small enough for a dense Df; the synthetic set has
MNIST's exact shape for benchmarks on machines without the IDX files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from jacrl.common.errors import JacrlError

DATASETS: tuple[str, ...] = ("digits", "mnist", "synthetic")


@dataclass(frozen=True)
class Batch:
    """One full batch: inputs X (k, d) in [0, 1] and one-hot targets T (k, c)."""

    name: str
    x: Tensor
    t: Tensor

    @property
    def k(self) -> int:
        """Batch size k (eq. 1)."""
        return self.x.shape[0]


def _one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    return np.eye(n_classes)[labels.astype(np.int64)]


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.data / 16.0, data.target


def _mnist(directory: str | None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's 60000 training images, flattened to 784 pixels in [0, 1] by jacrl.envs."""
    if directory is None:
        raise JacrlError("--dataset mnist needs --mnist-dir, the folder holding the IDX files")
    # Imported lazily: the IDX reader belongs to jacrl.envs and is not needed for other data sets.
    from jacrl.envs.datasets import load_mnist

    split = load_mnist(directory)
    return split.X_train, split.y_train


def synthetic_mnist(k: int = 60000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k MNIST-shaped examples: 784 pixels in [0, 1], 10 classes, learnable but not trivially.

    Each class has a sparse random prototype (about 20 % "ink", as in MNIST); an example is its
    class prototype plus Gaussian noise, clipped to [0, 1].
    """
    rng = np.random.default_rng(seed)
    prototypes = rng.random((10, 784)) * (rng.random((10, 784)) < 0.2)
    labels = rng.integers(0, 10, size=k)
    noise = rng.standard_normal((k, 784), dtype=np.float32) * 0.3
    return np.clip(prototypes[labels] + noise, 0.0, 1.0), labels


def load_batch(
    name: str,
    batch_size: int | None = None,
    mnist_dir: str | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> Batch:
    """The first ``batch_size`` examples of a data set as one full batch (all of it if None).

    :param name: ``"digits"`` (sklearn, 1797 × 64), ``"mnist"`` (60000 × 784 from the IDX files
        in ``mnist_dir``) or ``"synthetic"`` (60000 × 784, see :func:`synthetic_mnist`).
    """
    if name == "digits":
        x, labels = _digits()
    elif name == "mnist":
        x, labels = _mnist(mnist_dir)
    elif name == "synthetic":
        x, labels = synthetic_mnist(60000 if batch_size is None else batch_size, seed)
    else:
        raise JacrlError(f"unknown dataset {name!r}; accepted: {', '.join(DATASETS)}")
    if batch_size is not None:
        if not 1 <= batch_size <= len(x):
            raise JacrlError(f"--batch-size must be in [1, {len(x)}] for {name}, got {batch_size}")
        x, labels = x[:batch_size], labels[:batch_size]
    t = _one_hot(labels, 10)
    # the data sets are read-only arrays (shared, cached); torch wants writable memory to wrap
    return Batch(
        name,
        torch.as_tensor(np.require(x, requirements="W"), dtype=dtype, device=device),
        torch.as_tensor(np.require(t, requirements="W"), dtype=dtype, device=device),
    )

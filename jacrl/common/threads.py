"""How many threads a process computes with: torch's and those of the BLAS/OpenMP libraries
numpy and scipy load.

Why both: ``torch.set_num_threads`` governs torch alone, while numpy and scipy each bring their
own OpenBLAS (or MKL), which starts one thread per core. jacrl reaches them in LAPACK calls
(the log-det gradient's LU, :mod:`jacrl.logdet.fast`) and in NumPy matrix products (the backprop
baseline), so a process pinned to one torch thread could still run two BLAS threads per core,
and with one run per core (``jacrl compare``) the runs then oversubscribe the cores: measured
here, a 256-wide log-det gradient took 0.75 s instead of 0.026 s while two other runs held the
two cores.
"""

from __future__ import annotations

import numpy  # noqa: F401  (numpy's and scipy's BLAS are loaded here, so the limit reaches them)
import scipy.linalg  # noqa: F401
import torch
from threadpoolctl import threadpool_limits


def use_threads(count: int) -> None:
    """Compute with ``count`` threads from now on, in torch and in every BLAS/OpenMP library
    loaded so far — numpy's and scipy's included, as this module loads them (threadpoolctl; a
    library loaded later keeps its own default)."""
    torch.set_num_threads(count)
    threadpool_limits(limits=count)

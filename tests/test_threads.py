"""A compare worker (and every benchmark) computes with one thread in torch and in the BLAS
libraries numpy and scipy bring (jacrl.common.threads): torch's setting alone leaves scipy's
OpenBLAS at one thread per core."""

from __future__ import annotations

import torch
from threadpoolctl import threadpool_info, threadpool_limits

from jacrl.compare.backends import init_worker


def test_a_compare_worker_runs_torch_and_every_blas_on_one_thread() -> None:
    torch_before = torch.get_num_threads()
    blas_before = max(pool["num_threads"] for pool in threadpool_info())
    try:
        init_worker()
        pools = threadpool_info()
        assert torch.get_num_threads() == 1
        assert any(pool["user_api"] == "blas" for pool in pools)  # numpy's and scipy's
        assert all(pool["num_threads"] == 1 for pool in pools), pools
    finally:
        torch.set_num_threads(torch_before)
        threadpool_limits(limits=blas_before)

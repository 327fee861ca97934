"""How closely two gradient dicts agree (used by the tests and benchmarks/logdet_grad.py)."""

from __future__ import annotations

from torch import Tensor


def max_relative_error(grads: dict[str, Tensor], reference: dict[str, Tensor]) -> float:
    """max_k ‖grads_k − reference_k‖_∞ / max_k ‖reference_k‖_∞ over every parameter k.

    Normalising by the largest reference entry (not entry by entry) keeps parameters whose exact
    gradient is 0 — b_1, or the L/U factors of the first ``lu`` layer — from dividing by zero.
    """
    if sorted(grads) != sorted(reference):
        raise KeyError(f"different parameters: {sorted(grads)} vs {sorted(reference)}")
    scale = max((float(r.abs().max()) for r in reference.values()), default=0.0)
    error = max((float((grads[k] - r).abs().max()) for k, r in reference.items()), default=0.0)
    return error / scale if scale > 0 else error

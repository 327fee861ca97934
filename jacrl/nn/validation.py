"""The input checks of jacrl.nn. The errors they raise live with jacrl's others in
:mod:`jacrl.common.errors`; they are re-exported here and from :mod:`jacrl.nn`."""

from __future__ import annotations

import torch
from torch import Tensor

from jacrl.common.errors import InputShapeError, SingularWeightError

__all__ = ["InputShapeError", "SingularWeightError", "check_batch"]


def check_batch(t: object, n: int, dtype: torch.dtype, name: str) -> Tensor:
    """Return ``t`` if it is a ``(batch, n)`` tensor of ``dtype``, else raise InputShapeError."""
    if not isinstance(t, Tensor):
        raise InputShapeError(f"{name} must be a torch.Tensor of shape (batch, {n}), got {type(t)}")
    if t.ndim != 2 or t.shape[-1] != n:
        raise InputShapeError(
            f"{name} must have shape (batch, {n}), got {tuple(t.shape)}"
            + ("; add a batch dimension with x[None]" if t.ndim == 1 and t.shape[0] == n else "")
        )
    if t.dtype != dtype:
        raise InputShapeError(
            f"{name} has dtype {t.dtype}, the network has dtype {dtype}; convert with .to({dtype})"
        )
    return t

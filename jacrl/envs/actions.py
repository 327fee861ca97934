"""The check every continuous jacrl env makes of an incoming action, in one place."""

from __future__ import annotations

from typing import Any

import numpy as np

from jacrl.common.errors import JacrlError, NonFiniteError

__all__ = ["clipped_action"]


def clipped_action(action: Any, dim: int, env_name: str, bound: float = 1.0) -> np.ndarray:
    """``action`` as a float64 ``(dim,)`` array, clipped into ``[-bound, bound]^dim``.

    Clipping (rather than rejecting) an out-of-range action is what Gymnasium's continuous envs
    and the reference implementations do; a wrong size or a NaN is a bug in the caller, so it
    raises instead of moving the env somewhere meaningless.

    :raises JacrlError: for an action with the wrong number of components.
    :raises NonFiniteError: for a NaN or infinite component.
    """
    a = np.asarray(action, dtype=np.float64)
    if a.size != dim:
        raise JacrlError(f"{env_name} action must have {dim} components, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise NonFiniteError(f"{env_name} action must be finite, got {action!r}")
    return np.clip(a.reshape(dim), -bound, bound)

"""Training state as named tensors + JSON, so checkpoints use the saved-agent format (no pickle).

A checkpoint must restore everything that decides the next update for a resumed run to end with
bit-identical weights: the RNG streams (torch, NumPy's global generator, Python's ``random``) and
the optimizer's moments. Each is split into tensors (for ``weights.pt``) and JSON scalars (for
``meta.json``'s ``extra``); ``restore_*`` invert ``*_state`` exactly.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from jacrl.common.errors import CheckpointError


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The global torch, NumPy and Python RNG states."""
    # the legacy global generator is what SB3's set_random_seed seeds, so it is what we save
    _, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)  # noqa: NPY002
    version, python_state, gauss_next = random.getstate()
    tensors = {
        "rng.torch": torch.get_rng_state(),
        "rng.numpy_keys": torch.as_tensor(np.asarray(keys, dtype=np.int64)),
        "rng.python": torch.tensor(python_state, dtype=torch.int64),
    }
    extra = {
        "numpy": [int(pos), int(has_gauss), float(cached_gaussian)],
        "python": [version, gauss_next],
    }
    return tensors, extra


def restore_rng_state(tensors: dict[str, torch.Tensor], extra: dict[str, Any]) -> None:
    """Inverse of :func:`rng_state`."""
    torch.set_rng_state(tensors["rng.torch"])
    pos, has_gauss, cached_gaussian = extra["numpy"]
    keys = tensors["rng.numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, pos, has_gauss, cached_gaussian))  # noqa: NPY002
    version, gauss_next = extra["python"]
    random.setstate((version, tuple(int(v) for v in tensors["rng.python"].tolist()), gauss_next))


def optimizer_state(
    optimizer: torch.optim.Optimizer, prefix: str = "optimizer"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer's ``state_dict`` as ``{prefix.state.<param>.<key>: Tensor}`` + JSON groups."""
    state = optimizer.state_dict()
    tensors = {
        f"{prefix}.state.{index}.{key}": torch.as_tensor(value).clone()
        for index, per_param in state["state"].items()
        for key, value in per_param.items()
    }
    groups = [
        {k: list(v) if isinstance(v, tuple) else v for k, v in group.items()}
        for group in state["param_groups"]
    ]
    return tensors, {"param_groups": groups}


def restore_optimizer(
    optimizer: torch.optim.Optimizer,
    tensors: dict[str, torch.Tensor],
    extra: dict[str, Any],
    prefix: str = "optimizer",
) -> None:
    """Inverse of :func:`optimizer_state`.

    :raises CheckpointError: when the saved state does not fit ``optimizer``.
    """
    state: dict[int, dict[str, torch.Tensor]] = {}
    start = f"{prefix}.state."
    for name, value in tensors.items():
        if name.startswith(start):
            index, key = name[len(start) :].split(".", 1)
            state.setdefault(int(index), {})[key] = value
    groups = [
        {k: tuple(v) if k == "betas" else v for k, v in group.items()}
        for group in extra["param_groups"]
    ]
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"the saved optimizer state does not fit: {exc}") from exc

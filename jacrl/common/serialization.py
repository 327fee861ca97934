"""Saved agents and training checkpoints: one zip, no pickle.

A file holds two members:

- ``meta.json``: ``format_version``, ``class`` (the agent class name), ``jacrl_version``,
  ``hyperparameters`` (the constructor arguments, JSON values only), ``observation_space`` and
  ``action_space`` (see :func:`describe_space`), ``num_timesteps`` and ``extra`` (a free-form JSON
  mapping; a training checkpoint puts its optimizer hyperparameters and step counters there);
- ``weights.pt``: a flat ``{name: Tensor}`` mapping written by :func:`torch.save` and read back with
  ``torch.load(..., weights_only=True)``, which cannot execute code. Everything a checkpoint needs
  besides the weights (optimizer moments, the observation normaliser, RNG states) is stored as more
  named tensors in the same mapping, so resuming needs no new format.

Files are written atomically: a temporary file in the destination directory, flushed and
``fsync``-ed, then :func:`os.replace`-d over the target, so a crash (even SIGKILL) mid-save leaves
either the old file or the new one, never a torn one. An open binary file (SB3's ``save`` and
``load`` take one too) is written and read in place.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, overload

import numpy as np
import torch
from gymnasium import spaces

from jacrl.common.atomic import write_atomically
from jacrl.common.errors import CheckpointError

FORMAT_VERSION = 1
#: an open binary file, as SB3's save and load take one
BinaryFile = BinaryIO | io.BufferedIOBase
META_MEMBER = "meta.json"
WEIGHTS_MEMBER = "weights.pt"


@dataclass
class SavedAgent:
    """The contents of a saved agent: what :func:`write_agent` writes and :func:`read_agent` reads.

    :param cls: the agent class name; :func:`read_agent` refuses a file saved by another class.
    :param hyperparameters: the constructor arguments, JSON values only.
    :param observation_space: :func:`describe_space` of the observation space.
    :param action_space: :func:`describe_space` of the action space.
    :param num_timesteps: env steps trained so far.
    :param tensors: flat ``name -> Tensor`` mapping (weights, and for checkpoints optimizer and
        RNG state).
    :param extra: free-form JSON for state that is not a tensor (step counters, optimizer
        hyperparameters).
    """

    cls: str
    hyperparameters: dict[str, Any]
    observation_space: dict[str, Any]
    action_space: dict[str, Any]
    num_timesteps: int
    tensors: dict[str, torch.Tensor]
    extra: dict[str, Any] = field(default_factory=dict)


def _json_number(value: float) -> float | str:
    # JSON has no inf/nan; unbounded Box limits are written as the strings "inf" / "-inf".
    return float(value) if np.isfinite(value) else str(float(value))


def describe_space(space: spaces.Space) -> dict[str, Any]:
    """A JSON description of a Box or Discrete space, precise enough to compare on load.

    :raises CheckpointError: for other space types (agents reject them before they can be saved).
    """
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": str(space.dtype),
            "low": [_json_number(v) for v in space.low.flat],
            "high": [_json_number(v) for v in space.high.flat],
        }
    raise CheckpointError(f"cannot describe a {type(space).__name__} space; Box and Discrete only")


def space_from_description(description: Mapping[str, Any]) -> spaces.Space:
    """Rebuild the space :func:`describe_space` described (used by ``load`` without an env)."""
    if description["type"] == "Discrete":
        return spaces.Discrete(description["n"], start=description["start"])
    shape = tuple(description["shape"])
    dtype = np.dtype(description["dtype"])
    low = np.array([float(v) for v in description["low"]], dtype=dtype).reshape(shape)
    high = np.array([float(v) for v in description["high"]], dtype=dtype).reshape(shape)
    return spaces.Box(low=low, high=high, shape=shape, dtype=dtype)


def check_space_matches(what: str, saved: Mapping[str, Any], space: spaces.Space) -> None:
    """Raise :class:`CheckpointError` when ``space`` is not the space the agent was saved with.

    :param what: "observation" or "action", for the message.
    """
    actual = describe_space(space)
    if actual != dict(saved):
        raise CheckpointError(
            f"the env's {what} space {space} does not match the saved agent's "
            f"{space_from_description(saved)}; load with env=None to predict only, or pass an env "
            "with the same spaces"
        )


@overload
def write_agent(path: str | os.PathLike[str], saved: SavedAgent, jacrl_version: str) -> Path: ...
@overload
def write_agent(path: BinaryFile, saved: SavedAgent, jacrl_version: str) -> None: ...
def write_agent(
    path: str | os.PathLike[str] | BinaryFile, saved: SavedAgent, jacrl_version: str
) -> Path | None:
    """Write ``saved`` to ``path`` atomically (``.zip`` added when the name has no suffix), or
    into an open binary file.

    :return: the path written, or ``None`` for a file.
    """
    meta = {
        "format_version": FORMAT_VERSION,
        "class": saved.cls,
        "jacrl_version": jacrl_version,
        "hyperparameters": saved.hyperparameters,
        "observation_space": saved.observation_space,
        "action_space": saved.action_space,
        "num_timesteps": saved.num_timesteps,
        "extra": saved.extra,
    }
    weights = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in saved.tensors.items()}, weights)

    def write(file: BinaryFile) -> None:
        with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(META_MEMBER, json.dumps(meta, indent=2, allow_nan=False))
            archive.writestr(WEIGHTS_MEMBER, weights.getvalue())

    if not isinstance(path, (str, os.PathLike)):
        write(path)
        return None
    target = Path(path)
    return write_atomically(target if target.suffix else target.with_suffix(".zip"), write)


def read_agent(
    path: str | os.PathLike[str] | BinaryFile,
    expected_cls: str,
    hyperparameters: Sequence[str] | None = None,
    runtime: Sequence[str] = (),
) -> SavedAgent:
    """Read and validate a file written by :func:`write_agent` (a path or an open binary file).

    :param expected_cls: the class name the caller will build; another class's file is refused.
    :param hyperparameters: the names the file may set (the class's constructor arguments);
        ``None`` accepts any.
    :param runtime: the class's runtime settings (``tensorboard_log``, ``device``…): a file sets
        hyperparameters only, so one naming a runtime setting is refused — a crafted file could
        otherwise choose where TensorBoard writes, or the device.
    :raises CheckpointError: missing, truncated or corrupt file, missing member, a format newer
        than this jacrl reads, a file saved by another agent class, or one that sets a runtime
        setting or an unknown name.
    """
    source: Path | BinaryFile
    if isinstance(path, (str, os.PathLike)):
        source = Path(path)
        if not source.is_file() and source.suffix == "" and source.with_suffix(".zip").is_file():
            source = source.with_suffix(".zip")
        if not source.is_file():
            raise CheckpointError(f"no saved agent at {source}")
    else:
        source = path
    try:
        with zipfile.ZipFile(source) as archive:
            names = set(archive.namelist())
            missing = {META_MEMBER, WEIGHTS_MEMBER} - names
            if missing:
                raise CheckpointError(
                    f"{source} lacks {sorted(missing)}; a saved agent holds {META_MEMBER} and "
                    f"{WEIGHTS_MEMBER}"
                )
            meta = json.loads(archive.read(META_MEMBER))
            weights = archive.read(WEIGHTS_MEMBER)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise CheckpointError(
            f"{source} is not a readable zip (truncated or corrupt): {exc}"
        ) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{source}: {META_MEMBER} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("format_version"), int):
        raise CheckpointError(f"{source}: {META_MEMBER} has no integer format_version")
    if meta["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"{source} uses format version {meta['format_version']}, newer than the "
            f"{FORMAT_VERSION} this jacrl reads; upgrade jacrl (saved by jacrl "
            f"{meta.get('jacrl_version', '?')})"
        )
    if meta.get("class") != expected_cls:
        raise CheckpointError(
            f"{source} holds a {meta.get('class')}, not a {expected_cls}; load it with "
            f"{meta.get('class')}.load"
        )
    try:
        tensors = torch.load(io.BytesIO(weights), weights_only=True, map_location="cpu")
    except Exception as exc:  # torch raises many types for a corrupt stream
        raise CheckpointError(f"{source}: {WEIGHTS_MEMBER} cannot be read: {exc}") from exc
    if not isinstance(tensors, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in tensors.items()
    ):
        raise CheckpointError(f"{source}: {WEIGHTS_MEMBER} is not a flat name -> tensor mapping")
    try:
        saved = SavedAgent(
            cls=meta["class"],
            hyperparameters=dict(meta["hyperparameters"]),
            observation_space=dict(meta["observation_space"]),
            action_space=dict(meta["action_space"]),
            num_timesteps=int(meta["num_timesteps"]),
            tensors=tensors,
            extra=dict(meta.get("extra", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: {META_MEMBER} lacks a field: {exc}") from exc
    if hyperparameters is not None:
        _check_names(source, expected_cls, saved.hyperparameters, hyperparameters, runtime)
    return saved


def _check_names(
    source: object,
    cls: str,
    saved: Mapping[str, Any],
    accepted: Sequence[str],
    runtime: Sequence[str],
) -> None:
    """Refuse a file whose hyperparameters name a runtime setting or an unknown argument."""
    settings = sorted(set(saved) & set(runtime))
    if settings:
        raise CheckpointError(
            f"{source}: {META_MEMBER} sets {settings}, a runtime setting, not a hyperparameter; "
            f"a saved {cls} sets hyperparameters only (pass runtime settings to load)"
        )
    unknown = sorted(set(saved) - set(accepted))
    if unknown:
        raise CheckpointError(
            f"{source}: {META_MEMBER} sets {unknown}, which {cls} does not take (saved by another "
            f"version of jacrl?); its hyperparameters: {', '.join(accepted)}"
        )

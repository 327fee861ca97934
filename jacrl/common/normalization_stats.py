"""``VecNormalize`` statistics saved as plain arrays (``.npz``), not pickled.

SB3's ``VecNormalize.save`` pickles the whole wrapper, and ``VecNormalize.load`` unpickles it:
loading such a file runs whatever code it names. A run folder instead holds the numbers the
wrapper needs — the running mean, variance and count of observations and returns, and its
settings — read back with ``np.load(..., allow_pickle=False)``, which cannot run code.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from jacrl.common.atomic import write_atomically
from jacrl.common.errors import CheckpointError

SETTINGS = ("clip_obs", "clip_reward", "gamma", "epsilon", "norm_obs", "norm_reward")


def _statistics(prefix: str, rms: RunningMeanStd) -> dict[str, np.ndarray]:
    return {
        f"{prefix}_mean": np.asarray(rms.mean, dtype=np.float64),
        f"{prefix}_var": np.asarray(rms.var, dtype=np.float64),
        f"{prefix}_count": np.asarray(rms.count, dtype=np.float64),
    }


def save_statistics(norm: VecNormalize, path: str | os.PathLike[str]) -> Path:
    """Write ``norm``'s statistics and settings to ``path`` (an ``.npz``), atomically.

    :raises CheckpointError: for a dict observation space (per-key statistics), not supported.
    """
    if not isinstance(norm.obs_rms, RunningMeanStd):
        raise CheckpointError(
            "VecNormalize statistics of a dict observation space cannot be saved without pickle"
        )
    arrays = {
        **_statistics("obs", norm.obs_rms),
        **_statistics("ret", norm.ret_rms),
        **{name: np.asarray(getattr(norm, name)) for name in SETTINGS},
    }
    return write_atomically(path, lambda file: np.savez(file, **arrays))


def load_statistics(path: str | os.PathLike[str], venv: VecEnv) -> VecNormalize:
    """``venv`` inside a ``VecNormalize`` that uses the statistics in ``path``, frozen for
    evaluation (no updates, rewards as they are).

    :raises CheckpointError: for a file that is not such statistics, or that does not fit the
        env's observations.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not readable normalisation statistics: {exc}") from exc
    missing = sorted({*SETTINGS, "obs_mean", "obs_var", "obs_count"} - set(arrays))
    if missing:
        raise CheckpointError(f"{path} lacks {missing}; it is not VecNormalize statistics")
    shape = venv.observation_space.shape
    if arrays["obs_mean"].shape != shape or arrays["obs_var"].shape != shape:
        raise CheckpointError(
            f"{path} holds statistics of observations shaped {arrays['obs_mean'].shape}, the env's "
            f"are {shape}: they were saved for another env"
        )
    norm = VecNormalize(
        venv,
        training=False,
        norm_obs=bool(arrays["norm_obs"]),
        norm_reward=False,
        clip_obs=float(arrays["clip_obs"]),
        clip_reward=float(arrays["clip_reward"]),
        gamma=float(arrays["gamma"]),
        epsilon=float(arrays["epsilon"]),
    )
    assert isinstance(norm.obs_rms, RunningMeanStd)
    norm.obs_rms.mean, norm.obs_rms.var = arrays["obs_mean"], arrays["obs_var"]
    norm.obs_rms.count = float(arrays["obs_count"])
    return norm

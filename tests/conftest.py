"""Shared test helpers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


@pytest.fixture(autouse=True)
def _one_torch_thread() -> None:
    """Tests run in parallel (pytest -n auto): one torch thread each avoids oversubscription."""
    torch.set_num_threads(1)


def _scalar_tags(run_dir: Path) -> set[str]:
    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    return set(acc.Tags()["scalars"])


@pytest.fixture
def scalar_tags() -> Callable[[Path], set[str]]:
    """``scalar_tags(run_dir)``: the scalar tags TensorBoard shows for the events in a folder."""
    return _scalar_tags

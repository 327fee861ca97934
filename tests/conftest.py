"""Shared test helpers."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the slow tests unless ``-m`` names them (``-m slow``, ``-m "slow or not slow"``).

    A marker expression in ``addopts`` would be replaced by the user's ``-m``, so
    ``-m "not integration"`` (the fast unit tests) would run the slow tests too.
    """
    if "slow" in config.getoption("markexpr", ""):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


#: argv: kill point, then the CLI's arguments. The real `jacrl` CLI, which prints "paused" and
#: waits (to be killed) before its first env step at or past the kill point.
PAUSED_CLI = """
import sys, time
import torch
torch.set_num_threads(1)
from jacrl.agents.base import BaseAgent
from jacrl.cli import main

kill_at = int(sys.argv[1])
step_env = BaseAgent._step_env

def paused_step_env(self, actions, callback):
    if self.num_timesteps >= kill_at:
        print("paused", flush=True)
        time.sleep(300)
    return step_env(self, actions, callback)

BaseAgent._step_env = paused_step_env
sys.exit(main(sys.argv[2:]))
"""


def _start_paused_cli(kill_at: int, argv: Sequence[str]) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", PAUSED_CLI, str(kill_at), *argv], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert "paused\n" in process.stdout, "the run ended before the kill point"  # reads up to it
    return process


@pytest.fixture
def start_paused_cli() -> Callable[[int, Sequence[str]], subprocess.Popen[str]]:
    """``start_paused_cli(kill_at, argv)``: ``jacrl <argv>`` in a child process, returned once it
    has paused before its first env step at or past ``kill_at`` (so a test can kill it at a
    point that does not depend on timing)."""
    return _start_paused_cli

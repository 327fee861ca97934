"""The child side of a trial: one :func:`jacrl.train.train` run in its own ``spawn`` process.

Kept apart from :mod:`jacrl.tune.study` so the child imports only what training needs (not
Optuna). The child exits when its parent does — a killed ``jacrl tune`` must not leave trials
training on with no one to record them (the restarted study retries them instead).
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from pathlib import Path
from typing import Any

ERROR_FILE = "error.txt"
"""Written to the trial's run folder when training raised: the traceback."""


def _exit_with_parent(parent: int, every_s: float = 1.0) -> None:
    """End this process once its parent is gone (re-parenting changes ``getppid``)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(3)

    threading.Thread(target=watch, daemon=True).start()


def train_trial(parent: int, run_dir: str, train_kwargs: dict[str, Any]) -> None:
    """Run ``jacrl.train.train(**train_kwargs)``; on an exception, leave its traceback in
    ``<run_dir>/error.txt`` and exit with status 1."""
    _exit_with_parent(parent)
    import torch

    torch.set_num_threads(1)  # parallelism is across trials, as in jacrl compare
    from jacrl.train import train

    try:
        train(**train_kwargs)
    except BaseException:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        (Path(run_dir) / ERROR_FILE).write_text(traceback.format_exc())
        raise SystemExit(1) from None

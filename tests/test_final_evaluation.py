"""The run's final evaluation keeps everything the periodic ones record (issue #12 item 5)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jacrl.train import EVALUATIONS_FILE, train

TINY = {"n_steps": 16, "batch_size": 16, "n_epochs": 1, "lift_hidden": [8], "value_hidden": [8]}


def test_final_evaluation_keeps_success_rates(tmp_path: Path) -> None:
    """jacrl/Reach-v0 reports info["is_success"]: every evaluation, the final one included (the
    budget is not a multiple of eval_every, so the final one is an extra row), has a success
    flag per episode, each 0 or 1."""
    result = train(
        "jacobian", "jacrl/Reach-v0", steps=48, eval_every=32, eval_episodes=2, hp=TINY,
        log_root=tmp_path,
    )  # fmt: skip
    with np.load(Path(result.run_dir) / EVALUATIONS_FILE) as data:
        timesteps, successes = data["timesteps"], data["successes"]
    assert timesteps.tolist() == [32, 48]
    assert successes.shape == (2, 2)
    assert set(np.unique(successes)) <= {0.0, 1.0}

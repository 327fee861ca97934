"""`jacrl train` / `jacrl eval` with the SB3 baselines, end to end through the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

from jacrl.cli import main
from jacrl.common.errors import UnsupportedSpaceError
from jacrl.train import train


def test_ppo_through_the_cli_writes_a_complete_run_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], scalar_tags: Callable[[Path], set[str]]
) -> None:
    code = main(
        [
            "train", "--agent", "ppo", "--env", "CartPole-v1", "--steps", "2048", "--seed", "3",
            "--log-root", str(tmp_path), "--eval-every", "1024", "--eval-episodes", "2",
            "--hp", "n_epochs=2", "--no-progress",
        ]
    )  # fmt: skip
    assert code == 0
    run_dir = tmp_path / "CartPole-v1" / "ppo_3"
    assert {"model.zip", "config.yaml", "evaluations.npz", "result.json"} <= {
        p.name for p in run_dir.iterdir()
    }
    tags = scalar_tags(run_dir)
    assert {"rollout/ep_rew_mean", "time/fps", "eval/mean_reward"} <= tags
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["hyperparameters"]["n_epochs"] == 2  # the override beat the preset's 20
    assert config["n_envs"] == 8  # from the zoo preset
    result = json.loads((run_dir / "result.json").read_text())
    evals = np.load(run_dir / "evaluations.npz")
    assert result["steps"] >= 2048
    assert evals["timesteps"][-1] == result["steps"]
    assert result["final_eval_mean"] == pytest.approx(evals["results"][-1].mean())

    assert (
        main(["eval", str(run_dir / "model.zip"), "--env", "CartPole-v1", "--episodes", "2"]) == 0
    )
    assert "mean return" in capsys.readouterr().out


def test_unknown_env_id_is_a_clear_cli_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["train", "--agent", "ppo", "--env", "NoSuchEnv-v9", "--steps", "10",
                 "--log-root", str(tmp_path)])  # fmt: skip
    assert code == 2
    assert "unknown env id 'NoSuchEnv-v9'" in capsys.readouterr().err


def test_dqn_refuses_continuous_actions(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedSpaceError, match="Discrete"):
        train("dqn", "Pendulum-v1", steps=10, log_root=tmp_path)


def test_a2c_with_normalize_saves_its_statistics(tmp_path: Path) -> None:
    result = train(
        "a2c", "Pendulum-v1", steps=256, log_root=tmp_path, eval_every=128, eval_episodes=1,
        hp={"n_envs": 2},
    )  # fmt: skip
    run_dir = Path(result.run_dir)
    assert (run_dir / "vecnormalize.pkl").is_file()
    assert np.isfinite(result.final_eval_mean)
